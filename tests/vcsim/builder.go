package main

// builder shapes a scenario on top of a simulator Model. It uses the vSphere
// API (through an in-process client) where the simulator implements an
// operation well enough, and edits the in-memory objects under
// simulator.Map.WithLock where it does not (see /work/shared/SIMULATOR.md).

import (
	"context"
	"fmt"
	"net"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// netInfo is a port group the scenario created, as VM NICs and vmknics need it.
type netInfo struct {
	ref     types.ManagedObjectReference
	name    string
	dc      string
	dvsUUID string // empty for a standard port group
}

func (n *netInfo) distributed() bool { return n.dvsUUID != "" }

type switchInfo struct {
	ref  types.ManagedObjectReference
	name string
	uuid string
	dc   string
}

type builder struct {
	ctx       context.Context
	c         *vim25.Client
	vmkMacSeq int
	vmMacSeq  int
	vms       int
	nets      map[string]*netInfo    // "<dc>/std/<name>" or "<switch>/<name>"
	byName    map[string][]*netInfo  // port group name -> all port groups of that name
	switches  map[string]*switchInfo // by name
}

func newBuilder(ctx context.Context, c *vim25.Client) *builder {
	return &builder{
		ctx:      ctx,
		c:        c,
		nets:     map[string]*netInfo{},
		byName:   map[string][]*netInfo{},
		switches: map[string]*switchInfo{},
	}
}

func (b *builder) vmCount() int { return b.vms }

// taskResult returns the result of a task started through the in-process
// client. Simulator tasks run synchronously inside the call that creates them,
// so the outcome is already in the registry; reading it there avoids a
// property-collector wait per task, which matters for thousands of VMs.
func taskResult(ref types.ManagedObjectReference) (types.AnyType, error) {
	t, ok := simulator.Map.Get(ref).(*simulator.Task)
	if !ok {
		return nil, fmt.Errorf("task %s not found", ref)
	}
	if t.Info.Error != nil {
		return nil, fmt.Errorf("task %s (%s): %s %T", ref, t.Info.DescriptionId,
			t.Info.Error.LocalizedMessage, t.Info.Error.Fault)
	}
	return t.Info.Result, nil
}

func waitTask(t *object.Task, err error) (types.AnyType, error) {
	if err != nil {
		return nil, err
	}
	return taskResult(t.Reference())
}

// entityByName finds a managed entity of the given type by its name.
func entityByName(kind, name string) (mo.Entity, error) {
	var found mo.Entity
	for _, e := range simulator.Map.All(kind) {
		if e.Entity().Name == name {
			if found != nil {
				return nil, fmt.Errorf("%s %q is ambiguous", kind, name)
			}
			found = e
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%s %q not found", kind, name)
	}
	return found, nil
}

func (b *builder) datacenter(name string) (*simulator.Datacenter, error) {
	e, err := entityByName("Datacenter", name)
	if err != nil {
		return nil, err
	}
	return e.(*simulator.Datacenter), nil
}

func (b *builder) host(name string) (*simulator.HostSystem, error) {
	e, err := entityByName("HostSystem", name)
	if err != nil {
		return nil, err
	}
	return e.(*simulator.HostSystem), nil
}

// datacenterOf walks up the inventory from ref to its Datacenter.
func datacenterOf(ref types.ManagedObjectReference) *simulator.Datacenter {
	for {
		obj := simulator.Map.Get(ref)
		if obj == nil {
			return nil
		}
		if dc, ok := obj.(*simulator.Datacenter); ok {
			return dc
		}
		e, ok := obj.(mo.Entity)
		if !ok || e.Entity().Parent == nil {
			return nil
		}
		ref = *e.Entity().Parent
	}
}

// hostPool is the root resource pool of the host's cluster or standalone
// compute resource: where VMs on that host live.
func hostPool(h *simulator.HostSystem) (types.ManagedObjectReference, error) {
	switch p := simulator.Map.Get(*h.Parent).(type) {
	case *simulator.ClusterComputeResource:
		return *p.ResourcePool, nil
	case *mo.ComputeResource:
		return *p.ResourcePool, nil
	}
	return types.ManagedObjectReference{}, fmt.Errorf("host %s: unexpected parent %s", h.Name, h.Parent)
}

// addDatacenter creates a datacenter under the root folder.
func (b *builder) addDatacenter(name string) error {
	root := object.NewRootFolder(b.c)
	_, err := root.CreateDatacenter(b.ctx, name)
	return err
}

// addStandaloneHost adds a connected standalone host to a datacenter.
func (b *builder) addStandaloneHost(dcName, hostName string) error {
	dc, err := b.datacenter(dcName)
	if err != nil {
		return err
	}
	folder := object.NewFolder(b.c, dc.HostFolder)
	_, err = waitTask(folder.AddStandaloneHost(b.ctx, types.HostConnectSpec{HostName: hostName}, true, nil, nil))
	return err
}

// nextVMMAC and nextVmkMAC hand out distinct MACs in vCenter's "assigned" range, 00:50:56:80-bf.
// VM NICs count up from 00:50:56:80:00:00, vmknics from 00:50:56:bf:ff:ff down.
func (b *builder) nextVMMAC() string {
	n := b.vmMacSeq
	b.vmMacSeq++
	return macFrom(0x800000 + n)
}

func (b *builder) nextVmkMAC() string {
	n := b.vmkMacSeq
	b.vmkMacSeq++
	return macFrom(0xbfffff - n)
}

func macFrom(n int) string {
	return net.HardwareAddr{0x00, 0x50, 0x56, byte(n >> 16), byte(n >> 8), byte(n)}.String()
}

// lookupNet resolves a port group name the scenario created. A name shared by
// several port groups must be qualified as "<switch>/<name>".
func (b *builder) lookupNet(name string) (*netInfo, error) {
	if n, ok := b.nets[name]; ok {
		return n, nil
	}
	all := b.byName[name]
	switch len(all) {
	case 0:
		return nil, fmt.Errorf("port group %q not created by the scenario", name)
	case 1:
		return all[0], nil
	}
	return nil, fmt.Errorf("port group name %q is ambiguous; qualify it as <switch>/<name>", name)
}

func (b *builder) recordNet(key string, n *netInfo) {
	b.nets[key] = n
	b.byName[n.name] = append(b.byName[n.name], n)
}
