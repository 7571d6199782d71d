package main

// finish makes every host <-> network <-> VM link consistent, the way a real
// vCenter shows them. The simulator keeps these lists only partly (standard
// port groups are not linked at all, "VM Network" has no hosts) and shares
// slice backing arrays between a cluster and its hosts, so all lists are
// rebuilt here from the ground truth: host port group configs, switch
// membership and VM NIC backings.

import (
	"fmt"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

type refSet map[types.ManagedObjectReference]bool

// dcNetworks is the datacenter's networking, classified.
type dcNetworks struct {
	order    []types.ManagedObjectReference // dc.Network order, for stable lists
	stdNames map[string]types.ManagedObjectReference
	switches []*simulator.DistributedVirtualSwitch
}

func (b *builder) finish() error {
	for _, e := range simulator.Map.All("Datacenter") {
		if err := linkDatacenter(e.(*simulator.Datacenter)); err != nil {
			return err
		}
	}
	return nil
}

func classify(dc *simulator.Datacenter) dcNetworks {
	out := dcNetworks{stdNames: map[string]types.ManagedObjectReference{}}
	for _, ref := range dc.Network {
		switch obj := simulator.Map.Get(ref).(type) {
		case *mo.Network:
			out.stdNames[obj.Name] = ref
			out.order = append(out.order, ref)
		case *simulator.DistributedVirtualPortgroup:
			out.order = append(out.order, ref)
		case *simulator.DistributedVirtualSwitch:
			out.switches = append(out.switches, obj)
		}
	}
	return out
}

func linkDatacenter(dc *simulator.Datacenter) error {
	nets := classify(dc)
	netHosts := map[types.ManagedObjectReference][]types.ManagedObjectReference{}
	hostNets := map[types.ManagedObjectReference]refSet{}

	for _, e := range simulator.Map.All("HostSystem") {
		h := e.(*simulator.HostSystem)
		if datacenterOf(h.Self) != dc {
			continue
		}
		carried := hostNetworks(h, nets)
		hostNets[h.Self] = carried
		for _, ref := range nets.order {
			if carried[ref] {
				netHosts[ref] = append(netHosts[ref], h.Self)
			}
		}
		setProxySwitches(h, nets.switches)
		shareNetworkInfo(h)
	}

	netVMs, err := linkVMs(dc)
	if err != nil {
		return err
	}
	for _, ref := range nets.order {
		setNetworkLinks(ref, netHosts[ref], netVMs[ref])
	}
	for host, carried := range hostNets {
		h := simulator.Map.Get(host).(*simulator.HostSystem)
		simulator.Map.WithLock(h, func() { h.Network = ordered(nets.order, carried) })
	}
	linkComputeResources(dc, nets.order, hostNets)
	return nil
}

// hostNetworks is what a host carries: the datacenter's standard networks named
// in its port group config, and every port group of the switches it is on.
func hostNetworks(h *simulator.HostSystem, nets dcNetworks) refSet {
	carried := refSet{}
	for _, pg := range h.Config.Network.Portgroup {
		if ref, ok := nets.stdNames[pg.Spec.Name]; ok {
			carried[ref] = true
		}
	}
	for _, s := range nets.switches {
		if simulator.FindReference(s.Summary.HostMember, h.Self) == nil {
			continue
		}
		for _, ref := range s.Portgroup {
			carried[ref] = true
		}
	}
	return carried
}

// linkVMs rebuilds each VM's network list from its NIC backings and returns
// the VMs on each network.
func linkVMs(dc *simulator.Datacenter) (map[types.ManagedObjectReference][]types.ManagedObjectReference, error) {
	netVMs := map[types.ManagedObjectReference][]types.ManagedObjectReference{}
	for _, e := range simulator.Map.All("VirtualMachine") {
		vm := e.(*simulator.VirtualMachine)
		if datacenterOf(vm.Self) != dc {
			continue
		}
		var refs []types.ManagedObjectReference
		seen := refSet{}
		for _, d := range vm.Config.Hardware.Device {
			ref, ok, err := nicNetwork(d)
			if err != nil {
				return nil, fmt.Errorf("vm %s: %w", vm.Name, err)
			}
			if ok && !seen[ref] {
				seen[ref] = true
				refs = append(refs, ref)
				netVMs[ref] = append(netVMs[ref], vm.Self)
			}
		}
		simulator.Map.WithLock(vm, func() { vm.Network = refs })
	}
	return netVMs, nil
}

// nicNetwork is the network a device's backing points to, if it is a NIC.
func nicNetwork(d types.BaseVirtualDevice) (types.ManagedObjectReference, bool, error) {
	if _, ok := d.(types.BaseVirtualEthernetCard); !ok {
		return types.ManagedObjectReference{}, false, nil
	}
	switch b := d.GetVirtualDevice().Backing.(type) {
	case *types.VirtualEthernetCardNetworkBackingInfo:
		if b.Network == nil {
			return types.ManagedObjectReference{}, false, fmt.Errorf("NIC %d: standard backing without network", d.GetVirtualDevice().Key)
		}
		return *b.Network, true, nil
	case *types.VirtualEthernetCardDistributedVirtualPortBackingInfo:
		// The simulator uses the port group moref value as its key.
		return types.ManagedObjectReference{Type: "DistributedVirtualPortgroup", Value: b.Port.PortgroupKey}, true, nil
	}
	return types.ManagedObjectReference{}, false, nil
}

// setNetworkLinks sets a network's host and vm lists.
func setNetworkLinks(ref types.ManagedObjectReference, hosts, vms []types.ManagedObjectReference) {
	switch n := simulator.Map.Get(ref).(type) {
	case *mo.Network:
		simulator.Map.WithLock(n, func() { n.Host, n.Vm = hosts, vms })
	case *simulator.DistributedVirtualPortgroup:
		simulator.Map.WithLock(n, func() { n.Host, n.Vm = hosts, vms })
	}
}

// linkComputeResources gives each cluster / standalone compute resource the
// union of its hosts' networks.
func linkComputeResources(dc *simulator.Datacenter, order []types.ManagedObjectReference, hostNets map[types.ManagedObjectReference]refSet) {
	union := func(hosts []types.ManagedObjectReference) []types.ManagedObjectReference {
		all := refSet{}
		for _, h := range hosts {
			for ref := range hostNets[h] {
				all[ref] = true
			}
		}
		return ordered(order, all)
	}
	for _, e := range simulator.Map.All("ClusterComputeResource") {
		if c := e.(*simulator.ClusterComputeResource); datacenterOf(c.Self) == dc {
			simulator.Map.WithLock(c, func() { c.Network = union(c.Host) })
		}
	}
	for _, e := range simulator.Map.All("ComputeResource") {
		if c, ok := e.(*mo.ComputeResource); ok && datacenterOf(c.Self) == dc {
			simulator.Map.WithLock(c, func() { c.Network = union(c.Host) })
		}
	}
}

// ordered lists the members of set in the order given (a fresh slice).
func ordered(order []types.ManagedObjectReference, set refSet) []types.ManagedObjectReference {
	out := make([]types.ManagedObjectReference, 0, len(set))
	for _, ref := range order {
		if set[ref] {
			out = append(out, ref)
		}
	}
	return out
}

// setProxySwitches lists the host's distributed switches in
// config.network.proxySwitch, as ESX does for a switch member.
func setProxySwitches(h *simulator.HostSystem, switches []*simulator.DistributedVirtualSwitch) {
	var proxies []types.HostProxySwitch
	for i, s := range switches {
		if simulator.FindReference(s.Summary.HostMember, h.Self) == nil {
			continue
		}
		proxies = append(proxies, types.HostProxySwitch{
			DvsUuid:           s.Uuid,
			DvsName:           s.Name,
			Key:               fmt.Sprintf("DvsPortset-%d", i),
			NumPorts:          512,
			NumPortsAvailable: 500,
			Mtu:               1500,
		})
	}
	simulator.Map.WithLock(h, func() { h.Config.Network.ProxySwitch = proxies })
}

// shareNetworkInfo makes HostNetworkSystem.networkInfo the host's
// config.network, so both report the same thing (on ESX they are one).
func shareNetworkInfo(h *simulator.HostSystem) {
	ns, ok := simulator.Map.Get(*h.ConfigManager.NetworkSystem).(*simulator.HostNetworkSystem)
	if !ok {
		return
	}
	simulator.Map.WithLock(ns, func() { ns.NetworkInfo = h.Config.Network })
}
