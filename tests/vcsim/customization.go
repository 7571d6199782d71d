package main

// Guest customization specs as they reached the simulator: the front hands
// every CustomizeVM_Task request body to recordCustomization, and
// GET /_control/customization?vm=NAME returns the last one for that VM as
// JSON, so tests can check what a real vCenter would have been asked to do.
// The simulator itself applies the host name and the fixed IPv4 addresses at
// power-on; govmomi 0.24.2 ignores ipV6Spec, so the front applies its fixed
// IPv6 addresses after the power-on that ran the customization
// (applyIPv6AfterPowerOn), and Tools report them beside the IPv4 one.

import (
	"bytes"
	"encoding/xml"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

type passwordJSON struct {
	Value     string `json:"value"`
	PlainText bool   `json:"plain_text"`
}

type linuxJSON struct {
	HostName   string `json:"host_name"`
	Domain     string `json:"domain"`
	TimeZone   string `json:"time_zone"`
	HwClockUTC *bool  `json:"hw_clock_utc"`
	ScriptText string `json:"script_text"`
}

type windowsJSON struct {
	ComputerName        string        `json:"computer_name"`
	Password            *passwordJSON `json:"password"`
	TimeZone            int32         `json:"time_zone"`
	AutoLogon           bool          `json:"auto_logon"`
	AutoLogonCount      int32         `json:"auto_logon_count"`
	FullName            string        `json:"full_name"`
	OrgName             string        `json:"org_name"`
	ProductID           string        `json:"product_id"`
	JoinWorkgroup       string        `json:"join_workgroup"`
	JoinDomain          string        `json:"join_domain"`
	DomainAdmin         string        `json:"domain_admin"`
	DomainAdminPassword *passwordJSON `json:"domain_admin_password"`
	DomainOU            string        `json:"domain_ou"`
	RunOnce             []string      `json:"run_once"`
}

type adapterJSON struct {
	MAC        string   `json:"mac"`
	IP         string   `json:"ip"`   // the fixed IPv4 address, "" otherwise
	DHCP       bool     `json:"dhcp"` // IPv4 from DHCP (CustomizationDhcpIpGenerator)
	SubnetMask string   `json:"subnet_mask"`
	Gateways   []string `json:"gateways"`
	DNSServers []string `json:"dns_servers"`
	DNSDomain  string   `json:"dns_domain"`
	// ipV6Spec: its fixed addresses ("2001:db8::5/64") and gateways.
	IPv6         []string `json:"ipv6"`
	IPv6Gateways []string `json:"ipv6_gateways"`
}

// customizationJSON is one CustomizeVM_Task request, flattened.
type customizationJSON struct {
	VM           string        `json:"vm"`
	Name         string        `json:"name"`
	Identity     string        `json:"identity"` // CustomizationLinuxPrep | CustomizationSysprep
	Linux        *linuxJSON    `json:"linux"`
	Windows      *windowsJSON  `json:"windows"`
	Adapters     []adapterJSON `json:"adapters"`
	DNSSuffixes  []string      `json:"dns_suffixes"`
	DNSServers   []string      `json:"dns_servers"`
	ChangeSID    *bool         `json:"change_sid"`
	RequestCount int           `json:"request_count"` // CustomizeVM_Task calls seen for this VM
}

var customizations = struct {
	sync.Mutex
	byName map[string]customizationJSON
}{byName: map[string]customizationJSON{}}

func password(p *types.CustomizationPassword) *passwordJSON {
	if p == nil {
		return nil
	}
	return &passwordJSON{Value: p.Value, PlainText: p.PlainText}
}

func fixedName(n types.BaseCustomizationName) string {
	if f, ok := n.(*types.CustomizationFixedName); ok {
		return f.Name
	}
	return ""
}

// recordCustomization decodes a CustomizeVM_Task SOAP body and keeps it under
// the VM's name. Bodies it cannot decode are logged, not fatal: the simulator
// answers them itself.
func recordCustomization(body []byte) {
	method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	if err != nil {
		log.Printf("customization: %v", err)
		return
	}
	req, ok := method.Body.(*types.CustomizeVM_Task)
	if !ok {
		return
	}
	spec := req.Spec
	rec := customizationJSON{VM: req.This.Value}
	v6Pending.reset(req.This.Value)
	if vm, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachine); ok {
		rec.Name = vm.Name
	}
	switch id := spec.Identity.(type) {
	case *types.CustomizationLinuxPrep:
		rec.Identity = "CustomizationLinuxPrep"
		rec.Linux = &linuxJSON{
			HostName:   fixedName(id.HostName),
			Domain:     id.Domain,
			TimeZone:   id.TimeZone,
			HwClockUTC: id.HwClockUTC,
			ScriptText: id.ScriptText,
		}
	case *types.CustomizationSysprep:
		rec.Identity = "CustomizationSysprep"
		w := &windowsJSON{
			ComputerName:        fixedName(id.UserData.ComputerName),
			Password:            password(id.GuiUnattended.Password),
			TimeZone:            id.GuiUnattended.TimeZone,
			AutoLogon:           id.GuiUnattended.AutoLogon,
			AutoLogonCount:      id.GuiUnattended.AutoLogonCount,
			FullName:            id.UserData.FullName,
			OrgName:             id.UserData.OrgName,
			ProductID:           id.UserData.ProductId,
			JoinWorkgroup:       id.Identification.JoinWorkgroup,
			JoinDomain:          id.Identification.JoinDomain,
			DomainAdmin:         id.Identification.DomainAdmin,
			DomainAdminPassword: password(id.Identification.DomainAdminPassword),
			// govmomi 0.24.2 predates domainOU (vSphere 8.0U2): read it from the XML.
			DomainOU: elementText(body, "domainOU"),
		}
		if id.GuiRunOnce != nil {
			w.RunOnce = id.GuiRunOnce.CommandList
		}
		rec.Windows = w
	}
	if o, ok := spec.Options.(*types.CustomizationWinOptions); ok {
		sid := o.ChangeSID
		rec.ChangeSID = &sid
	}
	for _, m := range spec.NicSettingMap {
		a := adapterJSON{
			MAC:        m.MacAddress,
			SubnetMask: m.Adapter.SubnetMask,
			Gateways:   m.Adapter.Gateway,
			DNSServers: m.Adapter.DnsServerList,
			DNSDomain:  m.Adapter.DnsDomain,
		}
		switch ip := m.Adapter.Ip.(type) {
		case *types.CustomizationFixedIp:
			a.IP = ip.IpAddress
		case *types.CustomizationDhcpIpGenerator:
			a.DHCP = true
		}
		if v6 := m.Adapter.IpV6Spec; v6 != nil {
			a.IPv6Gateways = v6.Gateway
			for _, gen := range v6.Ip {
				if f, ok := gen.(*types.CustomizationFixedIpV6); ok {
					a.IPv6 = append(a.IPv6, f.IpAddress+"/"+strconv.Itoa(int(f.SubnetMask)))
					v6Pending.add(req.This.Value, m.MacAddress, f.IpAddress, f.SubnetMask)
				}
			}
		}
		rec.Adapters = append(rec.Adapters, a)
	}
	rec.DNSSuffixes = spec.GlobalIPSettings.DnsSuffixList
	rec.DNSServers = spec.GlobalIPSettings.DnsServerList

	customizations.Lock()
	defer customizations.Unlock()
	rec.RequestCount = customizations.byName[rec.Name].RequestCount + 1
	customizations.byName[rec.Name] = rec
}

// elementText is the text of the first element with this local name, or "".
func elementText(body []byte, name string) string {
	dec := xml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		if start, ok := tok.(xml.StartElement); ok && start.Name.Local == name {
			var text string
			if dec.DecodeElement(&text, &start) == nil {
				return text
			}
			return ""
		}
	}
}

// serveCustomization (GET /_control/customization?vm=NAME) answers the last
// customization spec that reached the VM, or 404 when none did.
func serveCustomization(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	name := r.URL.Query().Get("vm")
	customizations.Lock()
	rec, ok := customizations.byName[name]
	customizations.Unlock()
	if !ok {
		http.Error(w, "no customization recorded for VM "+strconv.Quote(name), http.StatusNotFound)
		return
	}
	writeJSON(w, rec)
}

// v6Address is a fixed IPv6 address of a customization spec, for one MAC.
type v6Address struct {
	mac    string
	ip     string
	prefix int32
}

// v6Pending holds the fixed IPv6 addresses of the last customization spec of
// each VM (by moref) until a power-on applies them.
var v6Pending = &pendingV6{byVM: map[string][]v6Address{}}

type pendingV6 struct {
	sync.Mutex
	byVM map[string][]v6Address
}

func (p *pendingV6) add(vm, mac, ip string, prefix int32) {
	p.Lock()
	defer p.Unlock()
	p.byVM[vm] = append(p.byVM[vm], v6Address{mac: strings.ToLower(mac), ip: ip, prefix: prefix})
}

func (p *pendingV6) reset(vm string) {
	p.Lock()
	defer p.Unlock()
	delete(p.byVM, vm)
}

func (p *pendingV6) take(vm string) []v6Address {
	p.Lock()
	defer p.Unlock()
	out := p.byVM[vm]
	delete(p.byVM, vm)
	return out
}

// powerOnTarget is the VM a PowerOnVM_Task body powers on and whether a
// customization is pending on it (the simulator then applies it at this
// power-on), or "" when the body is not such a call.
func powerOnTarget(body []byte) (string, bool) {
	method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	if err != nil {
		return "", false
	}
	req, ok := method.Body.(*types.PowerOnVM_Task)
	if !ok {
		return "", false
	}
	vm, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	if !ok {
		return "", false
	}
	pending := false
	simulator.Map.WithLock(vm, func() {
		pending = vm.Config != nil && vm.Config.Tools != nil && vm.Config.Tools.PendingCustomization != ""
	})
	return req.This.Value, pending
}

// guestIPv6 is how guests treat the fixed IPv6 addresses of a customization
// (POST /_control/guest_ipv6?mode=...): "apply" (the default) configures them;
// "slaac" also configures, before each, a SLAAC address of the same /64 (its
// interface id from the MAC, EUI-64), as a guest with router advertisements
// does; "ignore" never configures them (a guest whose IPv6 setup fails).
var guestIPv6 = struct {
	sync.Mutex
	mode string
}{mode: "apply"}

func serveGuestIPv6(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	mode := r.URL.Query().Get("mode")
	switch mode {
	case "apply", "slaac", "ignore":
	default:
		http.Error(w, "mode: apply, slaac or ignore", http.StatusBadRequest)
		return
	}
	guestIPv6.Lock()
	guestIPv6.mode = mode
	guestIPv6.Unlock()
	writeJSON(w, map[string]bool{"ok": true})
}

// slaacAddress is the EUI-64 address of mac in ip's /64, or "" when either
// does not parse.
func slaacAddress(ip, mac string) string {
	addr := net.ParseIP(ip)
	hw, err := net.ParseMAC(mac)
	if addr == nil || addr.To4() != nil || err != nil || len(hw) != 6 {
		return ""
	}
	out := make(net.IP, net.IPv6len)
	copy(out, addr.To16()[:8])
	out[8] = hw[0] ^ 0x02
	out[9], out[10], out[11], out[12] = hw[1], hw[2], 0xff, 0xfe
	out[13], out[14], out[15] = hw[3], hw[4], hw[5]
	return out.String()
}

// applyIPv6AfterPowerOn adds the fixed IPv6 addresses of the VM's applied
// customization to its guest.net, on the NIC with each address's MAC, as
// VMware Tools would report them once the guest configured them (as
// guestIPv6's mode says).
func applyIPv6AfterPowerOn(vmRef string) {
	addrs := v6Pending.take(vmRef)
	guestIPv6.Lock()
	mode := guestIPv6.mode
	guestIPv6.Unlock()
	if len(addrs) == 0 || mode == "ignore" {
		return
	}
	if mode == "slaac" {
		var with []v6Address
		for _, a := range addrs {
			if extra := slaacAddress(a.ip, a.mac); extra != "" && extra != a.ip {
				with = append(with, v6Address{mac: a.mac, ip: extra, prefix: 64})
			}
			with = append(with, a)
		}
		addrs = with
	}
	ref := types.ManagedObjectReference{Type: "VirtualMachine", Value: vmRef}
	vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return
	}
	simulator.Map.WithLock(vm, func() {
		if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
			return
		}
		for _, a := range addrs {
			for i := range vm.Guest.Net {
				nic := &vm.Guest.Net[i]
				if strings.ToLower(nic.MacAddress) != a.mac {
					continue
				}
				if nic.IpConfig == nil {
					nic.IpConfig = new(types.NetIpConfigInfo)
				}
				nic.IpAddress = append(nic.IpAddress, a.ip)
				nic.IpConfig.IpAddress = append(nic.IpConfig.IpAddress, types.NetIpConfigInfoIpAddress{
					IpAddress: a.ip, PrefixLength: a.prefix,
					State: string(types.NetIpConfigInfoIpAddressStatusPreferred),
				})
			}
		}
	})
}
