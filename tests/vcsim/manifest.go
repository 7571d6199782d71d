package main

// The manifest: ground truth for tests, read back from the simulator's
// objects after the scenario is built. Morefs are the value part
// ("host-21", "dvportgroup-14", "network-7", "vm-55"); the type follows from
// the field (and "type" for port groups).

import (
	"sort"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

type manifest struct {
	Datacenters []mDatacenter `json:"datacenters"`
	Clusters    []mCluster    `json:"clusters"`
	Hosts       []mHost       `json:"hosts"`
	Switches    []mSwitch     `json:"switches"`
	Portgroups  []mPortgroup  `json:"portgroups"`
	VMs         []mVM         `json:"vms"`
	Vmknics     []mVmknic     `json:"vmknics"`
}

type mDatacenter struct {
	Moref string `json:"moref"`
	Name  string `json:"name"`
}

type mCluster struct {
	Moref      string   `json:"moref"`
	Name       string   `json:"name"`
	Datacenter string   `json:"datacenter"`
	Hosts      []string `json:"hosts"`
}

type mHost struct {
	Moref      string `json:"moref"`
	Name       string `json:"name"`
	Datacenter string `json:"datacenter"`
	Cluster    string `json:"cluster"` // "" for a standalone host
}

type mSwitch struct {
	Moref      string   `json:"moref"`
	Name       string   `json:"name"`
	UUID       string   `json:"uuid"`
	Datacenter string   `json:"datacenter"`
	Hosts      []string `json:"hosts"`
}

type mRange struct {
	Start int32 `json:"start"`
	End   int32 `json:"end"`
}

type mPortgroup struct {
	Moref      string   `json:"moref"`
	Name       string   `json:"name"`
	Type       string   `json:"type"` // standard | distributed
	Datacenter string   `json:"datacenter"`
	Switch     string   `json:"switch"`      // vSwitch name for standard
	SwitchUUID string   `json:"switch_uuid"` // "" for standard
	Key        string   `json:"key"`         // distributed port group key
	Vlan       int32    `json:"vlan"`        // 0 none, id, -1 trunk, pvlan secondary id
	VlanKind   string   `json:"vlan_kind"`   // none | vlan | trunk | pvlan
	Trunk      []mRange `json:"trunk,omitempty"`
	Uplink     bool     `json:"uplink"`
	Hosts      []string `json:"hosts"` // host morefs, sorted
}

type mNIC struct {
	Key           int32  `json:"key"`
	MAC           string `json:"mac"`
	Portgroup     string `json:"portgroup"` // port group moref
	PortgroupName string `json:"portgroup_name"`
	Backing       string `json:"backing"` // standard | distributed
	SwitchUUID    string `json:"switch_uuid,omitempty"`
	IP            string `json:"ip,omitempty"`
	// Global IPv6 addresses Tools report on the NIC (link-local ones left out).
	IPv6 []string `json:"ipv6,omitempty"`
}

type mVM struct {
	Moref        string   `json:"moref"`
	Name         string   `json:"name"`
	UUID         string   `json:"uuid"`
	InstanceUUID string   `json:"instance_uuid"`
	Datacenter   string   `json:"datacenter"`
	Host         string   `json:"host"`
	Template     bool     `json:"template"`
	PowerState   string   `json:"power_state"`
	GuestID      string   `json:"guest_id"`
	NICs         []mNIC   `json:"nics"`
	IPs          []string `json:"ips"`
}

type mVmknic struct {
	Host          string   `json:"host"`
	HostName      string   `json:"host_name"`
	Device        string   `json:"device"`
	Portgroup     string   `json:"portgroup"` // "" when no Network object (e.g. Management Network)
	PortgroupName string   `json:"portgroup_name"`
	IP            string   `json:"ip"`
	IPv6          []string `json:"ipv6,omitempty"`
	Netmask       string   `json:"netmask"`
	MAC           string   `json:"mac"`
}

func collectManifest() *manifest {
	m := &manifest{}
	for _, e := range simulator.Map.All("Datacenter") {
		m.Datacenters = append(m.Datacenters, mDatacenter{e.Reference().Value, e.Entity().Name})
	}
	m.Clusters = collectClusters()
	m.Hosts = collectHosts()
	m.Switches = collectSwitches()
	m.Portgroups = append(collectStdPortgroups(), collectDVPortgroups()...)
	m.VMs = collectVMs()
	m.Vmknics = collectVmknics()
	sortManifest(m)
	return m
}

func dcName(ref types.ManagedObjectReference) string {
	if dc := datacenterOf(ref); dc != nil {
		return dc.Name
	}
	return ""
}

func values(refs []types.ManagedObjectReference) []string {
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		out = append(out, r.Value)
	}
	sort.Strings(out)
	return out
}

func collectClusters() []mCluster {
	var out []mCluster
	for _, e := range simulator.Map.All("ClusterComputeResource") {
		c := e.(*simulator.ClusterComputeResource)
		out = append(out, mCluster{c.Self.Value, c.Name, dcName(c.Self), values(c.Host)})
	}
	return out
}

func collectHosts() []mHost {
	var out []mHost
	for _, e := range simulator.Map.All("HostSystem") {
		h := e.(*simulator.HostSystem)
		cluster := ""
		if c, ok := simulator.Map.Get(*h.Parent).(*simulator.ClusterComputeResource); ok {
			cluster = c.Name
		}
		out = append(out, mHost{h.Self.Value, h.Name, dcName(h.Self), cluster})
	}
	return out
}

func collectSwitches() []mSwitch {
	var out []mSwitch
	// The simulator types switches "DistributedVirtualSwitch"; vCenter says
	// "VmwareDistributedVirtualSwitch". Accept both.
	all := append(simulator.Map.All("DistributedVirtualSwitch"), simulator.Map.All("VmwareDistributedVirtualSwitch")...)
	for _, e := range all {
		s := e.(*simulator.DistributedVirtualSwitch)
		out = append(out, mSwitch{s.Self.Value, s.Name, s.Uuid, dcName(s.Self), values(s.Summary.HostMember)})
	}
	return out
}

// collectStdPortgroups lists standard networks, with the VLAN and vSwitch of
// the first carrying host's port group config.
func collectStdPortgroups() []mPortgroup {
	var out []mPortgroup
	for _, e := range simulator.Map.All("Network") {
		n, ok := e.(*mo.Network)
		if !ok {
			continue
		}
		pg := mPortgroup{
			Moref: n.Self.Value, Name: n.Name, Type: "standard",
			Datacenter: dcName(n.Self), VlanKind: "none", Hosts: values(n.Host),
		}
		if spec := hostPortgroupSpec(n); spec != nil {
			pg.Switch = spec.VswitchName
			setStdVlan(&pg, spec.VlanId)
		}
		out = append(out, pg)
	}
	return out
}

func hostPortgroupSpec(n *mo.Network) *types.HostPortGroupSpec {
	for _, ref := range n.Host {
		h := simulator.Map.Get(ref).(*simulator.HostSystem)
		for i := range h.Config.Network.Portgroup {
			if spec := &h.Config.Network.Portgroup[i].Spec; spec.Name == n.Name {
				return spec
			}
		}
	}
	return nil
}

// setStdVlan maps a standard port group VLAN id: 4095 means all VLANs (trunk).
func setStdVlan(pg *mPortgroup, id int32) {
	switch {
	case id == 4095:
		pg.Vlan, pg.VlanKind = -1, "trunk"
		pg.Trunk = []mRange{{0, 4094}}
	case id > 0:
		pg.Vlan, pg.VlanKind = id, "vlan"
	}
}

func collectDVPortgroups() []mPortgroup {
	var out []mPortgroup
	for _, e := range simulator.Map.All("DistributedVirtualPortgroup") {
		p := e.(*simulator.DistributedVirtualPortgroup)
		pg := mPortgroup{
			Moref: p.Self.Value, Name: p.Name, Type: "distributed", Key: p.Key,
			Datacenter: dcName(p.Self), VlanKind: "none", Hosts: values(p.Host),
			Uplink: p.Config.Uplink != nil && *p.Config.Uplink,
		}
		if s, ok := simulator.Map.Get(*p.Config.DistributedVirtualSwitch).(*simulator.DistributedVirtualSwitch); ok {
			pg.Switch, pg.SwitchUUID = s.Name, s.Uuid
		}
		if setting, ok := p.Config.DefaultPortConfig.(*types.VMwareDVSPortSetting); ok {
			setDVVlan(&pg, setting.Vlan)
		}
		out = append(out, pg)
	}
	return out
}

func setDVVlan(pg *mPortgroup, spec types.BaseVmwareDistributedVirtualSwitchVlanSpec) {
	switch v := spec.(type) {
	case *types.VmwareDistributedVirtualSwitchVlanIdSpec:
		if v.VlanId > 0 {
			pg.Vlan, pg.VlanKind = v.VlanId, "vlan"
		}
	case *types.VmwareDistributedVirtualSwitchTrunkVlanSpec:
		pg.Vlan, pg.VlanKind = -1, "trunk"
		for _, r := range v.VlanId {
			pg.Trunk = append(pg.Trunk, mRange{r.Start, r.End})
		}
	case *types.VmwareDistributedVirtualSwitchPvlanSpec:
		pg.Vlan, pg.VlanKind = v.PvlanId, "pvlan"
	}
}

func collectVMs() []mVM {
	var out []mVM
	for _, e := range simulator.Map.All("VirtualMachine") {
		vm := e.(*simulator.VirtualMachine)
		v := mVM{
			Moref: vm.Self.Value, Name: vm.Name, UUID: vm.Config.Uuid, InstanceUUID: vm.Config.InstanceUuid,
			Datacenter: dcName(vm.Self), Template: vm.Config.Template,
			PowerState: string(vm.Runtime.PowerState), GuestID: vm.Config.GuestId,
			NICs: []mNIC{}, IPs: []string{},
		}
		if vm.Runtime.Host != nil {
			v.Host = vm.Runtime.Host.Value
		}
		for _, d := range vm.Config.Hardware.Device {
			if nic, ok := vmNIC(vm, d); ok {
				v.NICs = append(v.NICs, nic)
				if nic.IP != "" {
					v.IPs = append(v.IPs, nic.IP)
				}
			}
		}
		out = append(out, v)
	}
	return out
}

// vmNIC describes a NIC device, with the IP Tools reports for it.
func vmNIC(vm *simulator.VirtualMachine, d types.BaseVirtualDevice) (mNIC, bool) {
	card, ok := d.(types.BaseVirtualEthernetCard)
	if !ok {
		return mNIC{}, false
	}
	c := card.GetVirtualEthernetCard()
	nic := mNIC{Key: c.Key, MAC: c.MacAddress}
	switch b := c.Backing.(type) {
	case *types.VirtualEthernetCardNetworkBackingInfo:
		nic.Backing, nic.PortgroupName = "standard", b.DeviceName
		if b.Network != nil {
			nic.Portgroup = b.Network.Value
		}
	case *types.VirtualEthernetCardDistributedVirtualPortBackingInfo:
		nic.Backing, nic.SwitchUUID, nic.Portgroup = "distributed", b.Port.SwitchUuid, b.Port.PortgroupKey
		ref := types.ManagedObjectReference{Type: "DistributedVirtualPortgroup", Value: b.Port.PortgroupKey}
		if pg, ok := simulator.Map.Get(ref).(*simulator.DistributedVirtualPortgroup); ok {
			nic.PortgroupName = pg.Name
		}
	}
	if vm.Guest != nil {
		for _, g := range vm.Guest.Net {
			if g.DeviceConfigId == c.Key && len(g.IpAddress) > 0 {
				nic.IP = g.IpAddress[0]
				for _, ip := range g.IpAddress[1:] {
					if strings.Contains(ip, ":") && !strings.HasPrefix(ip, "fe80:") {
						nic.IPv6 = append(nic.IPv6, ip)
					}
				}
			}
		}
	}
	return nic, true
}

func collectVmknics() []mVmknic {
	var out []mVmknic
	for _, e := range simulator.Map.All("HostSystem") {
		h := e.(*simulator.HostSystem)
		dc := datacenterOf(h.Self)
		for _, v := range h.Config.Network.Vnic {
			k := mVmknic{Host: h.Self.Value, HostName: h.Name, Device: v.Device, MAC: v.Spec.Mac}
			if v.Spec.Ip != nil {
				k.IP, k.Netmask = v.Spec.Ip.IpAddress, v.Spec.Ip.SubnetMask
				if v6 := v.Spec.Ip.IpV6Config; v6 != nil {
					for _, a := range v6.IpV6Address {
						k.IPv6 = append(k.IPv6, a.IpAddress)
					}
				}
			}
			k.Portgroup, k.PortgroupName = vmknicPortgroup(dc, v)
			out = append(out, k)
		}
	}
	return out
}

// vmknicPortgroup resolves a vmknic's port group to a network moref and name.
func vmknicPortgroup(dc *simulator.Datacenter, v types.HostVirtualNic) (string, string) {
	if p := v.Spec.DistributedVirtualPort; p != nil {
		ref := types.ManagedObjectReference{Type: "DistributedVirtualPortgroup", Value: p.PortgroupKey}
		if pg, ok := simulator.Map.Get(ref).(*simulator.DistributedVirtualPortgroup); ok {
			return pg.Self.Value, pg.Name
		}
		return p.PortgroupKey, ""
	}
	if dc != nil {
		for _, ref := range dc.Network {
			if n, ok := simulator.Map.Get(ref).(*mo.Network); ok && n.Name == v.Portgroup {
				return ref.Value, n.Name
			}
		}
	}
	return "", v.Portgroup
}

func sortManifest(m *manifest) {
	sort.Slice(m.Datacenters, func(i, j int) bool { return m.Datacenters[i].Name < m.Datacenters[j].Name })
	sort.Slice(m.Clusters, func(i, j int) bool { return m.Clusters[i].Name < m.Clusters[j].Name })
	sort.Slice(m.Hosts, func(i, j int) bool { return m.Hosts[i].Name < m.Hosts[j].Name })
	sort.Slice(m.Switches, func(i, j int) bool { return m.Switches[i].Name < m.Switches[j].Name })
	sort.Slice(m.Portgroups, func(i, j int) bool {
		a, b := m.Portgroups[i], m.Portgroups[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Moref < b.Moref
	})
	sort.Slice(m.VMs, func(i, j int) bool { return m.VMs[i].Name < m.VMs[j].Name })
	sort.Slice(m.Vmknics, func(i, j int) bool {
		a, b := m.Vmknics[i], m.Vmknics[j]
		if a.HostName != b.HostName {
			return a.HostName < b.HostName
		}
		return a.Device < b.Device
	})
}
