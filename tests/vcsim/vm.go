package main

// VMs: created with CreateVM_Task (NIC backings and MACs set explicitly),
// powered on through the API, then given Tools-reported guest networking in
// memory, because the simulator has no guest to report it (SIMULATOR.md 3, 10).

import (
	"fmt"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"
)

// vmSpec is one VM of a scenario.
type vmSpec struct {
	name     string
	host     string
	guestID  string
	template bool
	noTools  bool // powered on, but Tools not reporting any address
	nics     []nicSpec
}

// nicSpec is a NIC: port group name (or "<switch>/<name>") and the IPv4
// address Tools reports for it ("" = none).
type nicSpec struct {
	pg string
	ip string
}

// firstNICKey is where vCenter numbers VM network adapters from.
const firstNICKey = 4000

// guestNIC is what the VM's guest.net entry must show for one NIC.
type guestNIC struct {
	key     int32
	mac     string
	network string
	ip      string
}

// addVM creates, powers on (unless a template) and fixes up one VM.
func (b *builder) addVM(spec vmSpec) (types.ManagedObjectReference, error) {
	h, err := b.host(spec.host)
	if err != nil {
		return types.ManagedObjectReference{}, err
	}
	dc := datacenterOf(h.Self)
	pool, err := hostPool(h)
	if err != nil {
		return types.ManagedObjectReference{}, err
	}
	config, nics, err := b.vmConfig(spec)
	if err != nil {
		return types.ManagedObjectReference{}, fmt.Errorf("vm %s: %w", spec.name, err)
	}
	res, err := methods.CreateVM_Task(b.ctx, b.c, &types.CreateVM_Task{
		This:   dc.VmFolder,
		Config: config,
		Pool:   pool,
		Host:   &h.Self,
	})
	if err != nil {
		return types.ManagedObjectReference{}, fmt.Errorf("create vm %s: %w", spec.name, err)
	}
	out, err := taskResult(res.Returnval)
	if err != nil {
		return types.ManagedObjectReference{}, fmt.Errorf("create vm %s: %w", spec.name, err)
	}
	ref := out.(types.ManagedObjectReference)
	b.vms++

	if spec.template {
		if err := object.NewVirtualMachine(b.c, ref).MarkAsTemplate(b.ctx); err != nil {
			return ref, fmt.Errorf("mark %s as template: %w", spec.name, err)
		}
		setGuest(ref, nics, false)
		return ref, nil
	}
	if _, err := b.powerOn(ref); err != nil {
		return ref, fmt.Errorf("power on %s: %w", spec.name, err)
	}
	setGuest(ref, nics, !spec.noTools)
	return ref, nil
}

func (b *builder) powerOn(ref types.ManagedObjectReference) (types.AnyType, error) {
	res, err := methods.PowerOnVM_Task(b.ctx, b.c, &types.PowerOnVM_Task{This: ref})
	if err != nil {
		return nil, err
	}
	return taskResult(res.Returnval)
}

// vmConfig is the CreateVM spec for spec, and the guest.net entries to show.
func (b *builder) vmConfig(spec vmSpec) (types.VirtualMachineConfigSpec, []guestNIC, error) {
	config := types.VirtualMachineConfigSpec{
		Name:     spec.name,
		GuestId:  spec.guestID,
		NumCPUs:  1,
		MemoryMB: 1024,
		Files:    &types.VirtualMachineFileInfo{VmPathName: "[LocalDS_0]"},
	}
	var nics []guestNIC
	for i, n := range spec.nics {
		pg, err := b.lookupNet(n.pg)
		if err != nil {
			return config, nil, err
		}
		key := int32(firstNICKey + i)
		mac := b.nextVMMAC()
		config.DeviceChange = append(config.DeviceChange, &types.VirtualDeviceConfigSpec{
			Operation: types.VirtualDeviceConfigSpecOperationAdd,
			Device:    nicDevice(key, mac, pg),
		})
		nics = append(nics, guestNIC{key: key, mac: mac, network: pg.name, ip: n.ip})
	}
	return config, nics, nil
}

// nicDevice is a vmxnet3 adapter with a fixed MAC on the given port group:
// standard backing by network + device name, distributed by switch uuid +
// port group key, as vCenter reports them.
func nicDevice(key int32, mac string, pg *netInfo) types.BaseVirtualDevice {
	var backing types.BaseVirtualDeviceBackingInfo
	if pg.distributed() {
		backing = &types.VirtualEthernetCardDistributedVirtualPortBackingInfo{
			Port: types.DistributedVirtualSwitchPortConnection{
				SwitchUuid:   pg.dvsUUID,
				PortgroupKey: pg.ref.Value,
			},
		}
	} else {
		ref := pg.ref
		backing = &types.VirtualEthernetCardNetworkBackingInfo{
			VirtualDeviceDeviceBackingInfo: types.VirtualDeviceDeviceBackingInfo{DeviceName: pg.name},
			Network:                        &ref,
		}
	}
	return &types.VirtualVmxnet3{VirtualVmxnet: types.VirtualVmxnet{VirtualEthernetCard: types.VirtualEthernetCard{
		VirtualDevice: types.VirtualDevice{
			Key:     key,
			Backing: backing,
			Connectable: &types.VirtualDeviceConnectInfo{
				StartConnected: true, Connected: true, AllowGuestControl: true,
			},
		},
		AddressType: string(types.VirtualEthernetCardMacTypeAssigned),
		MacAddress:  mac,
	}}}
}

// setGuest writes guest.net (one entry per NIC, as VMware Tools reports it)
// and the Tools/guest summary fields. With tools=false the VM shows Tools not
// running and no addresses, like a template or a guest that never booted.
func setGuest(ref types.ManagedObjectReference, nics []guestNIC, tools bool) {
	vm := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	simulator.Map.WithLock(vm, func() {
		g := vm.Guest
		g.Net = nil
		g.IpAddress = ""
		for _, n := range nics {
			entry := types.GuestNicInfo{
				Network:        n.network,
				MacAddress:     n.mac,
				Connected:      true,
				DeviceConfigId: n.key,
			}
			if tools && n.ip != "" {
				// n.ip may list several addresses ("10.20.0.21,2001:db8::21,fe80::1"): the
				// first is the NIC's IPv4 address, the others IPv6 ones as Tools report them.
				entry.IpConfig = &types.NetIpConfigInfo{}
				for _, ip := range strings.Split(n.ip, ",") {
					prefix := int32(24)
					if strings.Contains(ip, ":") {
						prefix = 64
					}
					entry.IpAddress = append(entry.IpAddress, ip)
					entry.IpConfig.IpAddress = append(entry.IpConfig.IpAddress, types.NetIpConfigInfoIpAddress{
						IpAddress: ip, PrefixLength: prefix, State: string(types.NetIpConfigInfoIpAddressStatusPreferred),
					})
				}
				if g.IpAddress == "" {
					g.IpAddress = entry.IpAddress[0]
				}
			}
			g.Net = append(g.Net, entry)
		}
		setToolsState(vm, tools)
	})
}

// setToolsState fills the Tools status fields of guest and summary.guest.
func setToolsState(vm *simulator.VirtualMachine, running bool) {
	g := vm.Guest
	g.GuestId = vm.Config.GuestId
	g.GuestFullName = vm.Config.GuestFullName
	g.GuestFamily = guestFamily(vm.Config.GuestId)
	g.ToolsVersion = "11365"
	g.ToolsVersionStatus2 = string(types.VirtualMachineToolsVersionStatusGuestToolsCurrent)
	heartbeat := types.ManagedEntityStatusGray
	if running {
		g.ToolsStatus = types.VirtualMachineToolsStatusToolsOk
		g.ToolsRunningStatus = string(types.VirtualMachineToolsRunningStatusGuestToolsRunning)
		g.GuestState = "running"
		g.HostName = vm.Name
		heartbeat = types.ManagedEntityStatusGreen
	} else {
		g.ToolsStatus = types.VirtualMachineToolsStatusToolsNotRunning
		g.ToolsRunningStatus = string(types.VirtualMachineToolsRunningStatusGuestToolsNotRunning)
		g.GuestState = "notRunning"
		g.HostName = ""
	}
	vm.GuestHeartbeatStatus = heartbeat
	vm.Summary.QuickStats.GuestHeartbeatStatus = heartbeat
	vm.Summary.Guest = &types.VirtualMachineGuestSummary{
		GuestId:             g.GuestId,
		GuestFullName:       g.GuestFullName,
		ToolsStatus:         g.ToolsStatus,
		ToolsVersionStatus2: g.ToolsVersionStatus2,
		ToolsRunningStatus:  g.ToolsRunningStatus,
		HostName:            g.HostName,
		IpAddress:           g.IpAddress,
	}
}

func guestFamily(guestID string) string {
	switch {
	case strings.HasPrefix(guestID, "win"):
		return string(types.VirtualMachineGuestOsFamilyWindowsGuest)
	case strings.Contains(strings.ToLower(guestID), "linux"), strings.HasPrefix(guestID, "ubuntu"),
		strings.HasPrefix(guestID, "rhel"), strings.HasPrefix(guestID, "centos"), strings.HasPrefix(guestID, "debian"):
		return string(types.VirtualMachineGuestOsFamilyLinuxGuest)
	}
	return string(types.VirtualMachineGuestOsFamilyOtherGuestFamily)
}
