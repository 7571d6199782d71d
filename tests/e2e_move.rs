//! End to end on Terraform 1.15 (and the adoption also on 1.11, which has cross-provider moves
//! since 1.8; 1.0.3 rejects the `moved` block with its own error, checked):
//! `moved { from = vsphere_virtual_machine.x  to = vsphereipam_vm.x }` adopts VMs that
//! HashiCorp's vSphere provider 2.x managed. The state file is built as that
//! provider writes it (state version 4, schema version 3, its attribute names) for VMs of the
//! simulator; a stand-in `hashicorp/vsphere` (`tests/standin/`, served by this binary) lets
//! Terraform decode it. The move's plan changes nothing (no record, no vCenter task), its apply
//! records the addresses Tools report without a vCenter task, and the plan after is empty. A VM
//! whose address is in no subnet, or held by another record, fails the move naming it, and so
//! does a source of another type.
//!
//! This binary has no libtest harness (`harness = false`): Terraform starts it as the stand-in
//! provider, so `main` serves the stand-in when started as a plugin and runs the tests otherwise
//! (`cargo test --test e2e_move -- NAME` runs the tests whose name contains NAME).

#![recursion_limit = "256"]

mod common;
mod standin;

use std::collections::BTreeMap;

use common::env::Env;
use common::sim::{MVm, Sim};
use common::terraform::{versions, Terraform, Workdir};
use serde_json::{json, Value};
use vsphereipam::store::ops::AllocRequest;
use vsphereipam::store::OwnerKind;

const SUBNETS: &str = r#"
data "vsphereipam_wire" "app" {
  name = "pg-app"
}
data "vsphereipam_wire" "db" {
  name = "pg-db"
}
resource "vsphereipam_ipsubnet" "app" {
  name     = "app"
  wire_id  = data.vsphereipam_wire.app.id
  cidr     = "10.20.0.0/24"
  start_ip = "10.20.0.10"
}
resource "vsphereipam_ipsubnet" "db" {
  name     = "db"
  wire_id  = data.vsphereipam_wire.db.id
  cidr     = "10.30.0.0/24"
  start_ip = "10.30.0.10"
}
"#;

fn tf15() -> Terraform {
    versions()
        .into_iter()
        .find(|t| t.version == "1.15")
        .expect("Terraform 1.15")
}

fn vm<'s>(sim: &'s Sim, name: &str) -> &'s MVm {
    sim.manifest()
        .vms
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("VM {name} in the scenario"))
}

/// A working directory whose CLI config also serves the stand-in at `hashicorp/vsphere`.
fn workdir(env: &Env, tf: &Terraform, body: &str, standin: &std::path::Path) -> Workdir {
    let wd = env.workdir(tf, body);
    let rc = wd.path().join("terraformrc");
    let config = std::fs::read_to_string(&rc).expect("terraformrc");
    let config = config.replacen(
        "dev_overrides {\n",
        &format!("dev_overrides {{\n{}", standin::dev_override(standin)),
        1,
    );
    std::fs::write(&rc, config).expect("write terraformrc");
    wd
}

/// `vsphere_virtual_machine.<name>` as the vSphere provider 2.x stores a VM it cloned from
/// `tmpl-linux` (only attributes the stand-in's schema has).
fn vsphere_resource(sim: &Sim, name: &str, vm: &MVm) -> Value {
    let template = self::vm(sim, "tmpl-linux");
    let nics: Vec<Value> = vm
        .nics
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({
                "adapter_type": "vmxnet3",
                "bandwidth_limit": -1,
                "bandwidth_reservation": 0,
                "bandwidth_share_count": 50,
                "bandwidth_share_level": "normal",
                "device_address": format!("pci:0:{}", 7 + i),
                "key": n.key,
                "mac_address": n.mac,
                "network_id": n.portgroup,
                "ovf_mapping": "",
                "physical_function": "",
                "use_static_mac": false
            })
        })
        .collect();
    json!({
        "mode": "managed",
        "type": "vsphere_virtual_machine",
        "name": name,
        "provider": "provider[\"registry.terraform.io/hashicorp/vsphere\"]",
        "instances": [{
            "schema_version": 3,
            "attributes": {
                "annotation": "",
                "change_version": "2026-11-20T09:12:44.123456Z",
                "clone": [{"linked_clone": false, "template_uuid": template.uuid, "timeout": 30}],
                "custom_attributes": null,
                "datastore_id": "datastore-61",
                "default_ip_address": vm.ips.first(),
                "disk": [{
                    "datastore_id": "datastore-61", "device_address": "scsi:0:0",
                    "eagerly_scrub": false, "key": 2000, "label": "disk0",
                    "path": format!("{}/{}.vmdk", vm.name, vm.name), "size": 16,
                    "thin_provisioned": true, "unit_number": 0,
                    "uuid": "6000C29a-1c2b-3d4e-5f60-718293a4b5c6"
                }],
                "firmware": "bios",
                "folder": "",
                "force_power_off": true,
                "guest_id": "otherLinux64Guest",
                "guest_ip_addresses": vm.ips,
                "host_system_id": vm.host,
                "id": vm.uuid,
                "imported": null,
                "memory": 32,
                "migrate_wait_timeout": 30,
                "moid": vm.moref,
                "name": vm.name,
                "network_interface": nics,
                "num_cpus": 1,
                "power_state": "on",
                "reboot_required": false,
                "resource_pool_id": "resgroup-22",
                "scsi_controller_count": 1,
                "scsi_type": "pvscsi",
                "shutdown_wait_timeout": 3,
                "tags": null,
                "uuid": vm.uuid,
                "vmware_tools_status": "guestToolsRunning",
                "vmx_path": format!("{}/{}.vmx", vm.name, vm.name),
                "wait_for_guest_ip_timeout": 0,
                "wait_for_guest_net_routable": true,
                "wait_for_guest_net_timeout": 5
            },
            "sensitive_attributes": [],
            "private": "eyJzY2hlbWFfdmVyc2lvbiI6IjMifQ=="
        }]
    })
}

/// Adds vSphere provider resources to the working directory's state, as if that provider had
/// written them.
fn add_to_state(wd: &Workdir, resources: Vec<Value>) {
    let path = wd.path().join("terraform.tfstate");
    let mut state: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("a state")).expect("JSON");
    state["serial"] = json!(state["serial"].as_i64().unwrap_or(1) + 1);
    state["resources"]
        .as_array_mut()
        .expect("resources")
        .extend(resources);
    std::fs::write(&path, serde_json::to_string_pretty(&state).unwrap()).expect("write state");
}

fn vsphereipam_vm(name: &str, vm_name: &str, subnets: &[&str]) -> String {
    let nics: String = subnets
        .iter()
        .map(|s| {
            format!("  network_interface {{\n    subnet_id = vsphereipam_ipsubnet.{s}.id\n  }}\n")
        })
        .collect();
    format!(
        "resource \"vsphereipam_vm\" \"{name}\" {{\n  name       = \"{vm_name}\"\n  datacenter = \"DC0\"\n  template   = \"tmpl-linux\"\n{nics}}}\n\
         moved {{\n  from = vsphere_virtual_machine.{name}\n  to   = vsphereipam_vm.{name}\n}}\n"
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// vCenter tasks (every VM change is one: clone, reconfigure, relocate, customize, power,
/// destroy) the simulator saw since its last reset.
fn tasks(sim: &Sim) -> Vec<String> {
    let stats = runtime().block_on(sim.stats());
    stats
        .by_method
        .keys()
        .filter(|m| m.ends_with("_Task"))
        .cloned()
        .collect()
}

/// What vCenter shows of the VMs: name, host, power, CPUs, memory, NICs.
fn vms_in_vcenter(sim: &Sim) -> BTreeMap<String, String> {
    let inventory = runtime().block_on(async {
        let client = sim.client().await;
        vsphereipam::vsphere::inventory::load_inventory(&client)
            .await
            .unwrap()
    });
    inventory
        .vms
        .iter()
        .map(|v| {
            (
                v.uuid.clone(),
                format!(
                    "{} {:?} {} {:?} {:?} {:?} {:?}",
                    v.name, v.host, v.power_state, v.num_cpus, v.memory_mb, v.nics, v.guest_ips
                ),
            )
        })
        .collect()
}

/// The VM's own records (not observed ones), as `address@subnet name`, sorted.
fn own_records(env: &Env, uuid: &str) -> Vec<String> {
    let store = env.store();
    let names: BTreeMap<String, String> = store
        .subnets(None)
        .unwrap()
        .into_iter()
        .map(|s| (s.id, s.name))
        .collect();
    let mut out: Vec<String> = store
        .addresses_of_vm(uuid)
        .unwrap()
        .into_iter()
        .filter(|a| a.owner_kind == OwnerKind::Vm)
        .map(|a| {
            assert_eq!(a.owner_id, uuid.to_ascii_lowercase());
            format!("{}@{}", a.ip, names[&a.subnet_id])
        })
        .collect();
    out.sort();
    out
}

fn moved_vms_are_adopted_without_a_change_and_recorded_by_the_first_apply() {
    let sim = Sim::start("test");
    // Terraform 1.8+ moves across providers: 1.15 and the 1.11 on PATH.
    for tf in versions().into_iter().filter(|t| t.version != "1.0.3") {
        adopt_on(&sim, &tf);
    }
}

/// pg-app is dual stack here: vm-app-1's guest reports 2001:db8:0:20::21 beside its IPv4
/// address, so its move adopts a dual-stack NIC (the configuration leaves ipv6_subnet_id unset).
const APP6: &str = r#"
resource "vsphereipam_ipsubnet" "app6" {
  name    = "app6"
  wire_id = data.vsphereipam_wire.app.id
  cidr    = "2001:db8:0:20::/64"
}
"#;

fn adopt_on(sim: &Sim, tf: &Terraform) {
    let env = Env::new(sim, "");
    let plugin = standin::plugin_dir();
    let subnets = format!("{SUBNETS}{APP6}");
    let wd = workdir(&env, tf, &subnets, plugin.path());
    wd.apply_ok();
    let app1 = vm(sim, "vm-app-1").clone();
    let multi = vm(sim, "vm-multi").clone();
    add_to_state(
        &wd,
        vec![
            vsphere_resource(sim, "app1", &app1),
            vsphere_resource(sim, "multi", &multi),
        ],
    );
    wd.write(
        "main.tf",
        &env.config(&format!(
            "{subnets}\n{}\n{}",
            vsphereipam_vm("app1", "vm-app-1", &["app"]),
            vsphereipam_vm("multi", "vm-multi", &["app", "db"])
        )),
    );
    let before = vms_in_vcenter(sim);
    runtime().block_on(sim.reset_stats());

    // Without the refresh the NICs' addresses are unknown: an error, never a replacement.
    let blind = wd.run(&["plan", "-refresh=false", "-no-color", "-input=false"]);
    assert!(!blind.success, "{}", blind.all());
    assert!(
        blind.flat().contains("A moved VM needs a refresh"),
        "{}",
        blind.all()
    );

    // The plan moves both, changes nothing, and shows only the recording update.
    let plan = wd.run(&["plan", "-no-color", "-input=false", "-out=move.tfplan"]);
    assert!(plan.success, "{}", plan.all());
    let out = plan.stdout.clone();
    println!("{out}");
    for (from, to) in [("app1", "app1"), ("multi", "multi")] {
        assert!(
            out.contains(&format!(
                "# vsphereipam_vm.{to} will be updated in-place\n  # (moved from vsphere_virtual_machine.{from})"
            )),
            "{out}"
        );
    }
    assert!(
        out.contains("Plan: 0 to add, 2 to change, 0 to destroy."),
        "{out}"
    );
    assert!(!out.contains("must be replaced"), "{out}");
    assert!(
        tasks(sim).is_empty(),
        "the plan called vCenter: {:?}",
        tasks(sim)
    );
    assert!(own_records(&env, &app1.uuid).is_empty(), "the plan wrote");
    assert!(own_records(&env, &multi.uuid).is_empty(), "the plan wrote");

    // Its apply records the addresses VMware Tools report, and touches no VM.
    let apply = wd.run(&["apply", "-no-color", "-input=false", "move.tfplan"]);
    assert!(apply.success, "{}", apply.all());
    println!("{}", apply.stdout);
    assert!(
        tasks(sim).is_empty(),
        "the apply changed vCenter: {:?}",
        tasks(sim)
    );
    assert_eq!(vms_in_vcenter(sim), before, "a VM changed");
    assert_eq!(
        own_records(&env, &app1.uuid),
        ["10.20.0.21@app", "2001:db8:0:20::21@app6"]
    );
    assert_eq!(
        own_records(&env, &multi.uuid),
        ["10.20.0.23@app", "10.30.0.41@db"]
    );
    let after = wd.run(&["plan", "-detailed-exitcode", "-no-color", "-input=false"]);
    assert!(
        after.success,
        "the plan after the move shows changes:\n{}",
        after.all()
    );
    println!("{}", after.stdout);
    // The admin CLI lists them as the VMs' records.
    let app_subnet = env
        .store()
        .subnets(None)
        .unwrap()
        .into_iter()
        .find(|s| s.name == "app")
        .unwrap();
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_terraform-provider-vsphereipam"))
        .args(["ipam", "addresses", "--subnet", &app_subnet.id])
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .env("VSPHERE_SERVER", sim.server())
        .env("VSPHERE_USER", &sim.info.user)
        .env("VSPHERE_PASSWORD", &sim.info.password)
        .env("VSPHEREIPAM_STORE", env.store_url())
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&cli.stdout);
    println!("{listed}");
    assert!(cli.status.success(), "{listed}");
    for ip in ["10.20.0.21", "10.20.0.23"] {
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(ip) && l.contains("vsphereipam_vm")),
            "{listed}"
        );
    }

    // The state holds our resources only, with their identity (where Terraform stores one).
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(wd.path().join("terraform.tfstate")).unwrap(),
    )
    .unwrap();
    let types: Vec<&str> = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["mode"] == "managed")
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert!(!types.contains(&"vsphere_virtual_machine"), "{types:?}");
    let moved = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "vsphereipam_vm" && r["name"] == "multi")
        .expect("vsphereipam_vm.multi");
    let instance = &moved["instances"][0];
    if tf.version == "1.15" {
        // Identity is Terraform 1.12+.
        assert_eq!(
            instance["identity"],
            json!({"vm_uuid": multi.uuid.to_ascii_lowercase()})
        );
    }
    assert_eq!(instance["attributes"]["moref"], json!(multi.moref));
    assert_eq!(
        instance["attributes"]["network_interface"][1]["ip_address"],
        json!("10.30.0.41")
    );
    let app1_state = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "vsphereipam_vm" && r["name"] == "app1")
        .expect("vsphereipam_vm.app1");
    assert_eq!(
        app1_state["instances"][0]["attributes"]["network_interface"][0]["ipv6_address"],
        json!("2001:db8:0:20::21")
    );

    // Forget them without deleting the scenario's VMs.
    for address in ["vsphereipam_vm.app1", "vsphereipam_vm.multi"] {
        let rm = wd.run(&["state", "rm", "-no-color", address]);
        assert!(rm.success, "{}", rm.all());
    }
}

fn a_move_fails_naming_the_vm_nic_address_and_subnet_or_holder() {
    let sim = Sim::start("test");
    let tf = tf15();
    let env = Env::new(&sim, "");
    let plugin = standin::plugin_dir();
    let wd = workdir(&env, &tf, SUBNETS, plugin.path());
    wd.apply_ok();
    let web = vm(&sim, "vm-web-1").clone();
    let app2 = vm(&sim, "vm-app-2").clone();
    // A VM deleted since the vSphere provider last saw it.
    let ghost = MVm {
        name: "vm-ghost".into(),
        uuid: "4216dead-0000-0000-0000-00000000beef".into(),
        moref: "vm-999".into(),
        ..app2.clone()
    };
    // Someone else holds vm-app-2's address.
    let store = env.store();
    let app_subnet = store
        .subnets(None)
        .unwrap()
        .into_iter()
        .find(|s| s.name == "app")
        .unwrap();
    // (The plan before mirrored vm-app-2's Tools-reported address as observed: an operator
    // reserving it takes the address over.)
    let taken: std::net::IpAddr = "10.20.0.22".parse().unwrap();
    for observed in store.addresses(&app_subnet.id).unwrap() {
        if observed.ip == taken && observed.owner_kind == OwnerKind::Observed {
            store
                .release_owner(OwnerKind::Observed, &observed.owner_id)
                .unwrap();
        }
    }
    store
        .allocate(
            &AllocRequest {
                subnet_id: app_subnet.id.clone(),
                ip: Some(taken),
                owner_kind: OwnerKind::Manual,
                owner_id: "reserved-by-netops".into(),
                vm_uuid: None,
                mac: None,
                wire_id: None,
                pending: false,
                description: None,
            },
            &Default::default(),
        )
        .expect("a manual record");
    add_to_state(
        &wd,
        vec![
            vsphere_resource(&sim, "web", &web),
            vsphere_resource(&sim, "app2", &app2),
            vsphere_resource(&sim, "ghost", &ghost),
        ],
    );
    wd.write(
        "main.tf",
        &env.config(&format!(
            "{SUBNETS}\n{}\n{}\n{}",
            vsphereipam_vm("web", "vm-web-1", &["app"]),
            vsphereipam_vm("app2", "vm-app-2", &["app"]),
            vsphereipam_vm("ghost", "vm-ghost", &["app"])
        )),
    );
    runtime().block_on(sim.reset_stats());
    let run = wd.plan_err();
    let flat = run.flat();
    println!("{}", run.all());
    // No subnet: which VM, NIC, address and port group.
    assert!(
        flat.contains("Address in no subnet of the NIC's port group"),
        "{flat}"
    );
    let web_nic = &web.nics[0];
    assert!(
        flat.contains(&format!(
            "10.50.0.31 (NIC {} of VM \"vm-web-1\") is not in the range of any subnet reachable from port group \"pg-std-web\"",
            web_nic.mac
        )),
        "{flat}"
    );
    // Held: which VM, NIC, address, subnet and holder.
    assert!(flat.contains("Address already taken"), "{flat}");
    assert!(
        flat.contains(&format!(
            "NIC {} of VM \"vm-app-2\" ({}) uses 10.20.0.22 in subnet \"app\" ({})",
            app2.nics[0].mac, app2.uuid, app_subnet.id
        )),
        "{flat}"
    );
    assert!(flat.contains("reserved-by-netops"), "{flat}");
    // Gone from vCenter: not found, never a new VM.
    assert!(
        flat.contains("VM not found")
            && flat.contains("names VM UUID 4216dead-0000-0000-0000-00000000beef"),
        "{flat}"
    );
    assert!(!flat.contains("panicked") && !flat.contains("plugin crashed"));
    // Nothing moved, nothing written, nothing called.
    assert!(tasks(&sim).is_empty());
    assert!(own_records(&env, &web.uuid).is_empty());
    assert!(own_records(&env, &app2.uuid).is_empty());
    let list = wd.run(&["state", "list", "-no-color"]);
    assert!(
        list.stdout.contains("vsphere_virtual_machine.web")
            && list.stdout.contains("vsphere_virtual_machine.app2"),
        "{}",
        list.all()
    );

    // Once the holder lets go and vm-web-1 is dropped from the move, vm-app-2 moves.
    store
        .release_owner(OwnerKind::Manual, "reserved-by-netops")
        .unwrap();
    wd.write(
        "main.tf",
        &env.config(&format!(
            "{SUBNETS}\n{}\nremoved {{\n  from = vsphere_virtual_machine.web\n  lifecycle {{\n    destroy = false\n  }}\n}}\n\
             removed {{\n  from = vsphere_virtual_machine.ghost\n  lifecycle {{\n    destroy = false\n  }}\n}}\n",
            vsphereipam_vm("app2", "vm-app-2", &["app"])
        )),
    );
    wd.apply_ok();
    assert_eq!(own_records(&env, &app2.uuid), ["10.20.0.22@app"]);
    wd.plan_no_changes();
    let rm = wd.run(&["state", "rm", "-no-color", "vsphereipam_vm.app2"]);
    assert!(rm.success, "{}", rm.all());
}

fn a_source_of_another_type_gets_a_diagnostic() {
    let sim = Sim::start("test");
    let tf = tf15();
    let env = Env::new(&sim, "");
    let plugin = standin::plugin_dir();
    let wd = workdir(&env, &tf, SUBNETS, plugin.path());
    wd.apply_ok();
    add_to_state(
        &wd,
        vec![json!({
            "mode": "managed",
            "type": "vsphere_folder",
            "name": "prod",
            "provider": "provider[\"registry.terraform.io/hashicorp/vsphere\"]",
            "instances": [{
                "schema_version": 1,
                "attributes": {"id": "group-v22", "path": "prod", "type": "vm",
                               "datacenter_id": "datacenter-2"},
                "sensitive_attributes": []
            }]
        })],
    );
    wd.write(
        "main.tf",
        &env.config(&format!(
            "{SUBNETS}\nresource \"vsphereipam_vm\" \"prod\" {{\n  name       = \"vm-app-1\"\n  datacenter = \"DC0\"\n  template   = \"tmpl-linux\"\n  network_interface {{\n    subnet_id = vsphereipam_ipsubnet.app.id\n  }}\n}}\n\
             moved {{\n  from = vsphere_folder.prod\n  to   = vsphereipam_vm.prod\n}}\n"
        )),
    );
    let run = wd.plan_err();
    let flat = run.flat();
    assert!(
        flat.contains("Cannot move vsphere_folder to vsphereipam_vm"),
        "{flat}"
    );
    assert!(
        flat.contains(
            "vsphereipam_vm adopts only vsphere_virtual_machine of hashicorp/vsphere (provider 2.x state)"
        ),
        "{flat}"
    );
    assert!(!flat.contains("panicked") && !flat.contains("plugin crashed"));

    // Terraform 1.0.3 knows no `moved` block at all: its own error, no crash.
    let old = versions()
        .into_iter()
        .find(|t| t.version == "1.0.3")
        .expect("Terraform 1.0.3");
    let wd = workdir(&env, &old, SUBNETS, plugin.path());
    wd.write(
        "main.tf",
        &env.config(&format!(
            "{SUBNETS}\n{}",
            vsphereipam_vm("app1", "vm-app-1", &["app"])
        )),
    );
    let run = wd.plan_err();
    let flat = run.flat();
    assert!(flat.contains("Unsupported block type"), "{flat}");
    assert!(flat.contains("moved"), "{flat}");
    assert!(!flat.contains("panicked") && !flat.contains("plugin crashed"));
}

fn main() {
    if standin::started_as_plugin() {
        return standin::serve();
    }
    let tests: [(&str, fn()); 3] = [
        (
            "moved_vms_are_adopted_without_a_change_and_recorded_by_the_first_apply",
            moved_vms_are_adopted_without_a_change_and_recorded_by_the_first_apply,
        ),
        (
            "a_move_fails_naming_the_vm_nic_address_and_subnet_or_holder",
            a_move_fails_naming_the_vm_nic_address_and_subnet_or_holder,
        ),
        (
            "a_source_of_another_type_gets_a_diagnostic",
            a_source_of_another_type_gets_a_diagnostic,
        ),
    ];
    // The libtest options Cargo and people pass: filters, `--skip F`, `--exact`, `--list`;
    // others (`--nocapture`, `--test-threads N`) do not apply to a sequential run.
    let (mut filters, mut skips, mut exact, mut list) = (Vec::new(), Vec::new(), false, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--skip" => skips.extend(args.next()),
            "--exact" => exact = true,
            "--list" => list = true,
            "--test-threads" | "--format" | "--color" | "-Z" | "--logfile" => {
                args.next();
            }
            a if a.starts_with('-') => {}
            _ => filters.push(arg),
        }
    }
    let matches = |name: &str, f: &String| {
        if exact {
            name == f
        } else {
            name.contains(f.as_str())
        }
    };
    let mut ran = 0;
    for (name, test) in tests {
        let chosen = filters.is_empty() || filters.iter().any(|f| matches(name, f));
        if !chosen || skips.iter().any(|f| matches(name, f)) {
            continue;
        }
        if list {
            println!("{name}: test");
            continue;
        }
        println!("test {name} ...");
        test();
        println!("test {name} ... ok");
        ran += 1;
    }
    if list {
        return;
    }
    println!("test result: ok. {ran} passed");
}
