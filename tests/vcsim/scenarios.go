package main

// The scenarios. Names here are what tests rely on; the manifest in the info
// file records the morefs the simulator gave them.

import (
	"fmt"
	"log"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

type scenario struct {
	model func(options) *simulator.Model
	shape func(*builder, options) error
}

var scenarios = map[string]scenario{
	"test":  {model: testModel, shape: shapeTest},
	"demo":  {model: demoModel, shape: shapeDemo},
	"scale": {model: scaleModel, shape: shapeScale},
}

const (
	linuxGuest   = "otherLinux64Guest"
	windowsGuest = "windows9Server64Guest"
	mask24       = "255.255.255.0"
)

var clusterHosts = []string{"DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2"}

// baseModel is VPX's inventory (DC0, cluster DC0_C0, LocalDS_0) without its
// default switch, port group and VMs: the scenarios create their own, with
// the names the tests expect.
func baseModel(clusterHostCount, standalone int) *simulator.Model {
	m := simulator.VPX()
	m.Datacenter = 1
	m.Cluster = 1
	m.ClusterHost = clusterHostCount
	m.Host = standalone
	m.Portgroup = 0
	m.Machine = 0
	m.Datastore = 1
	m.Autostart = false
	return m
}

// ---- test ----

func testModel(options) *simulator.Model { return baseModel(3, 1) }

func shapeTest(b *builder, _ options) error {
	steps := []func(*builder) error{testSwitches, testStandard, testVmknics, testDC1, testVMs}
	for _, step := range steps {
		if err := step(b); err != nil {
			return err
		}
	}
	return nil
}

// testSwitches: DSwitch0 on every DC0 host with the VM port groups, and
// DSwitch1 (in network folder "lab") on the cluster hosts with a second "pg-dup".
func testSwitches(b *builder) error {
	dc0Hosts := append(append([]string(nil), clusterHosts...), "DC0_H0")
	if _, err := b.addSwitch("DC0", "DSwitch0", "", dc0Hosts, pvlanMap{200: {201}}); err != nil {
		return err
	}
	pgs := []struct {
		name string
		v    vlan
	}{
		{"pg-app", vlan{id: 120}},
		{"pg-db", vlan{id: 130}},
		{"pg-trunk", vlan{trunk: []types.NumericRange{{Start: 100, End: 199}, {Start: 300, End: 300}}}},
		{"pg-pvlan", vlan{pvlan: 201}},
		{"pg-dup", vlan{id: 10}},
	}
	for _, pg := range pgs {
		if _, err := b.addDVPortgroup("DSwitch0", pg.name, pg.v); err != nil {
			return err
		}
	}
	if _, err := b.addSwitch("DC0", "DSwitch1", "lab", clusterHosts, nil); err != nil {
		return err
	}
	_, err := b.addDVPortgroup("DSwitch1", "pg-dup", vlan{id: 11})
	return err
}

func testStandard(b *builder) error {
	if _, err := b.addStdPortgroup("DC0", "pg-std-web", 200, clusterHosts); err != nil {
		return err
	}
	_, err := b.addStdPortgroup("DC0", "pg-std-partial", 0, []string{"DC0_C0_H0"})
	return err
}

func testVmknics(b *builder) error {
	nics := []struct{ host, pg, ip string }{
		{"DC0_C0_H0", "pg-std-web", "10.50.0.11"},
		{"DC0_C0_H1", "pg-app", "10.20.0.5,2001:db8:0:20::5"},
		{"DC0_C0_H2", "pg-std-web", "10.50.0.12"},
	}
	for _, n := range nics {
		if err := b.addVmknic(n.host, "vmk1", n.pg, n.ip, mask24); err != nil {
			return err
		}
	}
	return nil
}

// testDC1: a second datacenter with one standalone host and its own standard
// port group, for datacenter filters. It has its own "VM Network" too.
func testDC1(b *builder) error {
	if err := b.addDatacenter("DC1"); err != nil {
		return err
	}
	if err := b.addStandaloneHost("DC1", "DC1_H0"); err != nil {
		return err
	}
	_, err := b.addStdPortgroup("DC1", "pg-dc1", 310, []string{"DC1_H0"})
	return err
}

func testVMs(b *builder) error {
	vms := []vmSpec{
		// Dual stack: Tools report a global IPv6 address and a link-local one beside the IPv4.
		{name: "vm-app-1", host: "DC0_C0_H0", guestID: linuxGuest, nics: []nicSpec{{"pg-app", "10.20.0.21,2001:db8:0:20::21,fe80::250:56ff:fe00:21"}}},
		{name: "vm-app-2", host: "DC0_C0_H1", guestID: linuxGuest, nics: []nicSpec{{"pg-app", "10.20.0.22"}}},
		{name: "vm-app-noip", host: "DC0_H0", guestID: linuxGuest, noTools: true, nics: []nicSpec{{"pg-app", ""}}},
		{name: "vm-web-1", host: "DC0_C0_H1", guestID: linuxGuest, nics: []nicSpec{{"pg-std-web", "10.50.0.31"}}},
		{name: "vm-multi", host: "DC0_C0_H2", guestID: linuxGuest, nics: []nicSpec{{"pg-app", "10.20.0.23"}, {"pg-db", "10.30.0.41"}}},
		{name: "vm-legacy", host: "DC0_C0_H0", guestID: linuxGuest, nics: []nicSpec{{"pg-std-partial", "10.20.0.240"}}},
		// Running guests whose Tools report nothing: vsphereipam_vm_nic_fix records their addresses.
		{name: "vm-db-noip", host: "DC0_C0_H2", guestID: linuxGuest, noTools: true, nics: []nicSpec{{"pg-app", ""}, {"pg-db", ""}}},
		{name: "vm-web-noip", host: "DC0_C0_H1", guestID: linuxGuest, noTools: true, nics: []nicSpec{{"pg-std-web", ""}}},
		{name: "tmpl-linux", host: "DC0_C0_H0", guestID: linuxGuest, template: true, nics: []nicSpec{{"pg-app", ""}}},
		{name: "tmpl-windows", host: "DC0_C0_H1", guestID: windowsGuest, template: true, nics: []nicSpec{{"pg-app", ""}}},
	}
	return b.addVMs(vms)
}

func (b *builder) addVMs(vms []vmSpec) error {
	for _, spec := range vms {
		if _, err := b.addVM(spec); err != nil {
			return err
		}
	}
	return nil
}

// ---- demo ----

func demoModel(options) *simulator.Model { return baseModel(3, 0) }

func shapeDemo(b *builder, _ options) error {
	if _, err := b.addSwitch("DC0", "DSwitch0", "", clusterHosts, nil); err != nil {
		return err
	}
	if _, err := b.addDVPortgroup("DSwitch0", "pg-app", vlan{id: 120}); err != nil {
		return err
	}
	if _, err := b.addDVPortgroup("DSwitch0", "pg-db", vlan{id: 130}); err != nil {
		return err
	}
	if _, err := b.addStdPortgroup("DC0", "pg-std-web", 200, clusterHosts); err != nil {
		return err
	}
	return b.addVMs([]vmSpec{
		{name: "vm-app-1", host: "DC0_C0_H0", guestID: linuxGuest, nics: []nicSpec{{"pg-app", "10.20.0.21"}}},
		{name: "vm-app-2", host: "DC0_C0_H1", guestID: linuxGuest, nics: []nicSpec{{"pg-app", "10.20.0.22"}}},
		{name: "vm-db-1", host: "DC0_C0_H2", guestID: linuxGuest, nics: []nicSpec{{"pg-db", "10.30.0.41"}}},
		{name: "vm-web-1", host: "DC0_C0_H1", guestID: linuxGuest, nics: []nicSpec{{"pg-std-web", "10.50.0.31"}}},
		{name: "vm-app-legacy", host: "DC0_C0_H0", guestID: linuxGuest, noTools: true, nics: []nicSpec{{"pg-app", ""}}},
		{name: "tmpl-linux", host: "DC0_C0_H0", guestID: linuxGuest, template: true, nics: []nicSpec{{"pg-app", ""}}},
	})
}

// ---- scale ----

const scaleHosts = 8

func scaleModel(options) *simulator.Model { return baseModel(scaleHosts, 0) }

// scalePortgroups: a mix of distributed and standard port groups; VM i goes
// on scalePortgroups[i % 5] and gets an address in 10.(100+pg index).x.y.
var scalePortgroups = []string{"pg-app", "pg-db", "pg-std-web", "pg-k8s", "pg-std-mgmt"}

func shapeScale(b *builder, opt options) error {
	if opt.vms < 1 {
		return fmt.Errorf("-vms must be at least 1")
	}
	hosts := make([]string, scaleHosts)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("DC0_C0_H%d", i)
	}
	if err := scaleNetworks(b, hosts); err != nil {
		return err
	}
	start := time.Now()
	perPG := make([]int, len(scalePortgroups))
	for i := 0; i < opt.vms; i++ {
		p := i % len(scalePortgroups)
		k := perPG[p]
		perPG[p]++
		ip := fmt.Sprintf("10.%d.%d.%d", 100+p, k/250, k%250+1)
		spec := vmSpec{
			name: fmt.Sprintf("vm-scale-%05d", i), host: hosts[i%len(hosts)], guestID: linuxGuest,
			nics: []nicSpec{{scalePortgroups[p], ip}},
		}
		if _, err := b.addVM(spec); err != nil {
			return err
		}
		if (i+1)%1000 == 0 {
			log.Printf("scale: %d/%d VMs (%s)", i+1, opt.vms, time.Since(start).Round(time.Millisecond))
		}
	}
	_, err := b.addVM(vmSpec{name: "tmpl-linux", host: hosts[0], guestID: linuxGuest, template: true,
		nics: []nicSpec{{"pg-app", ""}}})
	return err
}

func scaleNetworks(b *builder, hosts []string) error {
	if _, err := b.addSwitch("DC0", "DSwitch0", "", hosts, nil); err != nil {
		return err
	}
	dv := map[string]int32{"pg-app": 120, "pg-db": 130, "pg-k8s": 140}
	for _, name := range []string{"pg-app", "pg-db", "pg-k8s"} {
		if _, err := b.addDVPortgroup("DSwitch0", name, vlan{id: dv[name]}); err != nil {
			return err
		}
	}
	if _, err := b.addStdPortgroup("DC0", "pg-std-web", 200, hosts); err != nil {
		return err
	}
	_, err := b.addStdPortgroup("DC0", "pg-std-mgmt", 210, hosts)
	return err
}
