package main

// Control endpoints on the front, for tests that need vCenter to change under
// the provider the way an operator would change it: POST
//   /_control/move_nic?vm=NAME&nic=INDEX&pg=PORTGROUP  edit a NIC's backing
//   /_control/destroy_vm?vm=NAME                        power off and delete
//   /_control/power_off?vm=NAME                         power off
//   /_control/guest_ips?vm=NAME&mac=MAC&ips=A,B[&dup=A] what Tools report on a NIC
// They go through the vSphere API (ReconfigVM_Task, Destroy_Task, PowerOffVM_Task).
// front.go adds /_control/delay and /_control/fail, which act on SOAP calls in flight.

import (
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"
)

func (b *builder) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/_control/move_nic", b.post(func(r *http.Request) error {
		q := r.URL.Query()
		index, err := strconv.Atoi(q.Get("nic"))
		if err != nil {
			return fmt.Errorf("nic: %w", err)
		}
		return b.moveNIC(q.Get("vm"), index, q.Get("pg"))
	}))
	mux.HandleFunc("/_control/destroy_vm", b.post(func(r *http.Request) error {
		return b.destroyVM(r.URL.Query().Get("vm"))
	}))
	mux.HandleFunc("/_control/power_off", b.post(func(r *http.Request) error {
		vm, err := vmByName(r.URL.Query().Get("vm"))
		if err != nil {
			return err
		}
		res, err := methods.PowerOffVM_Task(b.ctx, b.c, &types.PowerOffVM_Task{This: vm.Self})
		if err != nil {
			return err
		}
		_, err = taskResult(res.Returnval)
		return err
	}))
	mux.HandleFunc("/_control/guest_ips", b.post(func(r *http.Request) error {
		q := r.URL.Query()
		var ips []string
		if q.Get("ips") != "" {
			ips = strings.Split(q.Get("ips"), ",")
		}
		return setGuestIPs(q.Get("vm"), q.Get("mac"), ips, q.Get("dup"))
	}))
	return mux
}

func (b *builder) post(f func(*http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		defer func() {
			if p := recover(); p != nil {
				http.Error(w, fmt.Sprintf("panic: %v\n%s", p, debug.Stack()), http.StatusInternalServerError)
			}
		}()
		if err := f(r); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, map[string]bool{"ok": true})
	}
}

func vmByName(name string) (*simulator.VirtualMachine, error) {
	e, err := entityByName("VirtualMachine", name)
	if err != nil {
		return nil, err
	}
	return e.(*simulator.VirtualMachine), nil
}

// moveNIC puts the VM's index-th network adapter (device order) on another
// port group, keeping its MAC, and updates guest.net's network name, which
// the simulator leaves stale (SIMULATOR.md 3).
func (b *builder) moveNIC(vmName string, index int, pgName string) error {
	vm, err := vmByName(vmName)
	if err != nil {
		return err
	}
	pg, err := b.lookupNet(pgName)
	if err != nil {
		return err
	}
	var card types.BaseVirtualEthernetCard
	n := 0
	for _, d := range vm.Config.Hardware.Device {
		if c, ok := d.(types.BaseVirtualEthernetCard); ok {
			if n == index {
				card = c
			}
			n++
		}
	}
	if card == nil {
		return fmt.Errorf("vm %s has %d NICs, no NIC %d", vmName, n, index)
	}
	eth := card.GetVirtualEthernetCard()
	edited := nicDevice(eth.Key, eth.MacAddress, pg)
	e := edited.(types.BaseVirtualEthernetCard).GetVirtualEthernetCard()
	e.ControllerKey = eth.ControllerKey
	e.UnitNumber = eth.UnitNumber
	e.DeviceInfo = &types.Description{Label: eth.DeviceInfo.GetDescription().Label, Summary: pg.name}
	res, err := methods.ReconfigVM_Task(b.ctx, b.c, &types.ReconfigVM_Task{
		This: vm.Self,
		Spec: types.VirtualMachineConfigSpec{DeviceChange: []types.BaseVirtualDeviceConfigSpec{
			&types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationEdit, Device: edited},
		}},
	})
	if err != nil {
		return err
	}
	if _, err := taskResult(res.Returnval); err != nil {
		return err
	}
	simulator.Map.WithLock(vm, func() {
		for i := range vm.Guest.Net {
			if vm.Guest.Net[i].MacAddress == eth.MacAddress {
				vm.Guest.Net[i].Network = pg.name
			}
		}
	})
	return nil
}

// destroyVM powers the VM off when needed and deletes it.
func (b *builder) destroyVM(vmName string) error {
	vm, err := vmByName(vmName)
	if err != nil {
		return err
	}
	if vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
		res, err := methods.PowerOffVM_Task(b.ctx, b.c, &types.PowerOffVM_Task{This: vm.Self})
		if err != nil {
			return err
		}
		if _, err := taskResult(res.Returnval); err != nil {
			return err
		}
	}
	res, err := methods.Destroy_Task(b.ctx, b.c, &types.Destroy_Task{This: vm.Self})
	if err != nil {
		return err
	}
	_, err = taskResult(res.Returnval)
	return err
}

// setGuestIPs makes VMware Tools report exactly ips (either family; empty:
// none) on the VM's NIC with this MAC, as a guest whose network configuration
// was changed inside it would; dup (if one of them) in state duplicate, as
// when duplicate address detection found another host holding it.
func setGuestIPs(vmName, mac string, ips []string, dup string) error {
	vm, err := vmByName(vmName)
	if err != nil {
		return err
	}
	found := false
	simulator.Map.WithLock(vm, func() {
		for i := range vm.Guest.Net {
			nic := &vm.Guest.Net[i]
			if !strings.EqualFold(nic.MacAddress, mac) {
				continue
			}
			found = true
			nic.IpAddress = append([]string(nil), ips...)
			nic.IpConfig = new(types.NetIpConfigInfo)
			for _, ip := range ips {
				prefix := int32(64)
				if strings.Contains(ip, ".") {
					prefix = 24
				}
				state := types.NetIpConfigInfoIpAddressStatusPreferred
				if ip == dup {
					state = types.NetIpConfigInfoIpAddressStatusDuplicate
				}
				nic.IpConfig.IpAddress = append(nic.IpConfig.IpAddress, types.NetIpConfigInfoIpAddress{
					IpAddress: ip, PrefixLength: prefix, State: string(state),
				})
			}
		}
	})
	if !found {
		return fmt.Errorf("vm %s reports no NIC with MAC %s", vmName, mac)
	}
	return nil
}
