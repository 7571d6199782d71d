package main

// Networking: distributed switches and port groups (through the API, which the
// simulator handles well), standard port groups and VMkernel adapters (in
// memory, because HostNetworkSystem.AddPortGroup does not link hosts and
// networks and there is no AddVirtualNic).

import (
	"fmt"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// vlan describes a port group's VLAN setting. At most one field is set.
type vlan struct {
	id    int32                // access VLAN; 0 = none
	trunk []types.NumericRange // trunk ranges
	pvlan int32                // private VLAN secondary id
}

// dvsSetting is the distributed port group VLAN spec for v.
func (v vlan) dvsSetting() types.BaseVmwareDistributedVirtualSwitchVlanSpec {
	switch {
	case len(v.trunk) > 0:
		return &types.VmwareDistributedVirtualSwitchTrunkVlanSpec{VlanId: v.trunk}
	case v.pvlan != 0:
		return &types.VmwareDistributedVirtualSwitchPvlanSpec{PvlanId: v.pvlan}
	}
	return &types.VmwareDistributedVirtualSwitchVlanIdSpec{VlanId: v.id}
}

// pvlanMap is a switch's private VLAN table: primary -> isolated secondaries.
type pvlanMap map[int32][]int32

// addSwitch creates a distributed switch in the datacenter's network folder,
// or in a sub-folder of it when folderName is set, with the given hosts as
// members. A sub-folder lets two switches carry port groups of the same name,
// as on a real vCenter (the simulator, like vCenter, refuses duplicate names
// within one folder).
func (b *builder) addSwitch(dcName, name, folderName string, hostNames []string, pvlans pvlanMap) (*switchInfo, error) {
	dc, err := b.datacenter(dcName)
	if err != nil {
		return nil, err
	}
	folder := object.NewFolder(b.c, dc.NetworkFolder)
	if folderName != "" {
		if folder, err = folder.CreateFolder(b.ctx, folderName); err != nil {
			return nil, err
		}
	}
	spec := types.DVSCreateSpec{ConfigSpec: &types.VMwareDVSConfigSpec{
		DVSConfigSpec: types.DVSConfigSpec{Name: name, MaxPorts: 2048},
	}}
	res, err := waitTask(folder.CreateDVS(b.ctx, spec))
	if err != nil {
		return nil, fmt.Errorf("create switch %s: %w", name, err)
	}
	ref := res.(types.ManagedObjectReference)
	if err := b.addSwitchHosts(ref, hostNames); err != nil {
		return nil, fmt.Errorf("switch %s: %w", name, err)
	}
	s := simulator.Map.Get(ref).(*simulator.DistributedVirtualSwitch)
	markUplinks(s)
	setPvlans(s, pvlans)
	info := &switchInfo{ref: ref, name: name, uuid: s.Uuid, dc: dcName}
	b.switches[name] = info
	return info, nil
}

// addSwitchHosts joins hosts to a switch (ReconfigureDvs with host "add").
func (b *builder) addSwitchHosts(ref types.ManagedObjectReference, hostNames []string) error {
	spec := &types.DVSConfigSpec{}
	for _, name := range hostNames {
		h, err := b.host(name)
		if err != nil {
			return err
		}
		spec.Host = append(spec.Host, types.DistributedVirtualSwitchHostMemberConfigSpec{
			Operation: string(types.ConfigSpecOperationAdd),
			Host:      h.Self,
		})
	}
	_, err := waitTask(object.NewDistributedVirtualSwitch(b.c, ref).Reconfigure(b.ctx, spec))
	return err
}

// markUplinks flags the switch's uplink port group (created with the switch)
// the way vCenter does, so clients can tell it from VM port groups.
func markUplinks(s *simulator.DistributedVirtualSwitch) {
	simulator.Map.WithLock(s, func() {
		cfg := s.Config.GetDVSConfigInfo()
		cfg.UplinkPortgroup = append([]types.ManagedObjectReference(nil), s.Portgroup...)
		for _, ref := range s.Portgroup {
			pg := simulator.Map.Get(ref).(*simulator.DistributedVirtualPortgroup)
			simulator.Map.WithLock(pg, func() {
				pg.Config.Uplink = types.NewBool(true)
				pg.Tag = []types.Tag{{Key: "SYSTEM/DVS.UPLINKPG"}}
			})
		}
	})
}

// setPvlans fills the switch's PVLAN table: vCenter only accepts a PVLAN port
// group whose secondary id is in it. CreateDVS ignores pvlanConfig in the
// create spec, hence the in-memory edit.
func setPvlans(s *simulator.DistributedVirtualSwitch, pvlans pvlanMap) {
	if len(pvlans) == 0 {
		return
	}
	simulator.Map.WithLock(s, func() {
		cfg := s.Config.(*types.VMwareDVSConfigInfo)
		for primary, secondaries := range pvlans {
			cfg.PvlanConfig = append(cfg.PvlanConfig, types.VMwareDVSPvlanMapEntry{
				PrimaryVlanId: primary, SecondaryVlanId: primary, PvlanType: "promiscuous",
			})
			for _, sec := range secondaries {
				cfg.PvlanConfig = append(cfg.PvlanConfig, types.VMwareDVSPvlanMapEntry{
					PrimaryVlanId: primary, SecondaryVlanId: sec, PvlanType: "isolated",
				})
			}
		}
	})
}

// addDVPortgroup adds an early-binding port group to a switch.
func (b *builder) addDVPortgroup(switchName, name string, v vlan) (*netInfo, error) {
	sw, ok := b.switches[switchName]
	if !ok {
		return nil, fmt.Errorf("switch %q not created", switchName)
	}
	spec := types.DVPortgroupConfigSpec{
		Name:       name,
		Type:       string(types.DistributedVirtualPortgroupPortgroupTypeEarlyBinding),
		NumPorts:   8,
		AutoExpand: types.NewBool(true),
		DefaultPortConfig: &types.VMwareDVSPortSetting{
			Vlan: v.dvsSetting(),
		},
	}
	dvs := object.NewDistributedVirtualSwitch(b.c, sw.ref)
	if _, err := waitTask(dvs.AddPortgroup(b.ctx, []types.DVPortgroupConfigSpec{spec})); err != nil {
		return nil, fmt.Errorf("add port group %s to %s: %w", name, switchName, err)
	}
	// AddDVPortgroup_Task returns no moref: find the new port group by name.
	s := simulator.Map.Get(sw.ref).(*simulator.DistributedVirtualSwitch)
	for _, ref := range s.Portgroup {
		if pg := simulator.Map.Get(ref).(*simulator.DistributedVirtualPortgroup); pg.Name == name {
			n := &netInfo{ref: ref, name: name, dc: sw.dc, dvsUUID: sw.uuid}
			b.recordNet(switchName+"/"+name, n)
			return n, nil
		}
	}
	return nil, fmt.Errorf("port group %s not found on %s after adding it", name, switchName)
}

// addStdPortgroup adds a standard port group on vSwitch0 of each named host.
//
// The datacenter's Network object comes from HostNetworkSystem.AddPortGroup on
// the first host; it refuses the name on any further host (DuplicateName), so
// every host's port group entry is written in memory instead. finish() then
// links hosts and the Network both ways, as vCenter shows them.
func (b *builder) addStdPortgroup(dcName, name string, vlanID int32, hostNames []string) (*netInfo, error) {
	if len(hostNames) == 0 {
		return nil, fmt.Errorf("standard port group %s: no hosts", name)
	}
	first, err := b.host(hostNames[0])
	if err != nil {
		return nil, err
	}
	spec := types.HostPortGroupSpec{
		Name:        name,
		VlanId:      vlanID,
		VswitchName: "vSwitch0",
		Policy:      types.HostNetworkPolicy{},
	}
	ns := object.NewHostNetworkSystem(b.c, *first.ConfigManager.NetworkSystem)
	if err := ns.AddPortGroup(b.ctx, spec); err != nil {
		return nil, fmt.Errorf("add port group %s on %s: %w", name, first.Name, err)
	}
	for _, hn := range hostNames {
		h, err := b.host(hn)
		if err != nil {
			return nil, err
		}
		addHostPortGroup(h, spec)
	}
	dc, err := b.datacenter(dcName)
	if err != nil {
		return nil, err
	}
	for _, ref := range dc.Network {
		if n, ok := simulator.Map.Get(ref).(*mo.Network); ok && n.Name == name {
			info := &netInfo{ref: ref, name: name, dc: dcName}
			b.recordNet(dcName+"/std/"+name, info)
			return info, nil
		}
	}
	return nil, fmt.Errorf("network %s not found in %s after adding it", name, dcName)
}

// addHostPortGroup writes a standard port group into the host's
// config.network, in the shape ESX reports it (keys, vswitch membership).
func addHostPortGroup(h *simulator.HostSystem, spec types.HostPortGroupSpec) {
	key := "key-vim.host.PortGroup-" + spec.Name
	simulator.Map.WithLock(h, func() {
		netcfg := h.Config.Network
		netcfg.Portgroup = append(append([]types.HostPortGroup(nil), netcfg.Portgroup...), types.HostPortGroup{
			Key:            key,
			Vswitch:        "key-vim.host.VirtualSwitch-" + spec.VswitchName,
			Spec:           spec,
			ComputedPolicy: spec.Policy,
		})
		for i := range netcfg.Vswitch {
			if netcfg.Vswitch[i].Name == spec.VswitchName {
				vs := &netcfg.Vswitch[i]
				vs.Portgroup = append(append([]string(nil), vs.Portgroup...), key)
			}
		}
	})
}

// addVmknic adds a VMkernel adapter with a static IPv4 address on a standard
// or distributed port group; ip may list IPv6 addresses after the IPv4 one
// ("10.20.0.5,2001:db8::5"), set as the adapter's static IPv6 configuration. The simulator has no AddVirtualNic, so the
// adapter is written into the host's config.network.vnic directly.
func (b *builder) addVmknic(hostName, device, pgName, ip, mask string) error {
	h, err := b.host(hostName)
	if err != nil {
		return err
	}
	pg, err := b.lookupNet(pgName)
	if err != nil {
		return err
	}
	ips := strings.Split(ip, ",")
	ipConfig := &types.HostIpConfig{IpAddress: ips[0], SubnetMask: mask}
	if len(ips) > 1 {
		ipConfig.IpV6Config = &types.HostIpConfigIpV6AddressConfiguration{}
		for _, v6 := range ips[1:] {
			ipConfig.IpV6Config.IpV6Address = append(ipConfig.IpV6Config.IpV6Address, types.HostIpConfigIpV6Address{
				IpAddress: v6, PrefixLength: 64, Origin: "manual", DadState: "preferred",
			})
		}
	}
	nic := types.HostVirtualNic{
		Device: device,
		Key:    "key-vim.host.VirtualNic-" + device,
		Spec: types.HostVirtualNicSpec{
			Ip:                  ipConfig,
			Mac:                 b.nextVmkMAC(),
			Mtu:                 1500,
			NetStackInstanceKey: "defaultTcpipStack",
		},
	}
	if pg.distributed() {
		// Like vCenter: no port group name, the switch port connection instead.
		nic.Spec.DistributedVirtualPort = &types.DistributedVirtualSwitchPortConnection{
			SwitchUuid:   pg.dvsUUID,
			PortgroupKey: pg.ref.Value,
		}
	} else {
		nic.Portgroup = pg.name
		nic.Spec.Portgroup = pg.name
	}
	simulator.Map.WithLock(h, func() {
		netcfg := h.Config.Network
		netcfg.Vnic = append(append([]types.HostVirtualNic(nil), netcfg.Vnic...), nic)
	})
	return nil
}
