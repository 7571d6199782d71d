//! End to end: `vsphereipam_vm` through Terraform 1.15 and 1.0.3 against the simulator's `test`
//! scenario: several VMs on one subnet, placement by port group, an additional wire, a requested
//! address, every refusal, rollback after a failing vCenter call, drift, import, and a plugin
//! killed in the middle of a create.

mod common;

use std::collections::BTreeSet;

use common::env::Env;
use common::sim::Sim;
use common::terraform::{expect_error, versions, Terraform, Workdir};
use common::wait_for;
use serde_json::Value;
use vsphereipam::store::ops::AllocRequest;
use vsphereipam::store::OwnerKind;

/// Subnets on pg-app (all DC0 hosts), pg-std-partial (one host) and pg-db, and one whose own
/// wire is in DC1 but which reaches DC0 through the additional wire pg-std-web.
const SUBNETS: &str = r#"
data "vsphereipam_wire" "app" {
  name = "pg-app"
}
data "vsphereipam_wire" "partial" {
  name = "pg-std-partial"
}
data "vsphereipam_wire" "db" {
  name = "pg-db"
}
data "vsphereipam_wire" "dc1" {
  name = "pg-dc1"
}
data "vsphereipam_wire" "web" {
  name = "pg-std-web"
}
resource "vsphereipam_ipsubnet" "app" {
  name        = "app"
  wire_id     = data.vsphereipam_wire.app.id
  cidr        = "10.20.0.0/24"
  start_ip    = "10.20.0.100"
  gateway     = "10.20.0.1"
  dns_servers = ["10.20.0.2"]
  domain      = "app.example.com"
}
resource "vsphereipam_ipsubnet" "partial" {
  name    = "partial"
  wire_id = data.vsphereipam_wire.partial.id
  cidr    = "10.60.0.0/24"
}
resource "vsphereipam_ipsubnet" "db" {
  name     = "db"
  wire_id  = data.vsphereipam_wire.db.id
  cidr     = "10.30.0.0/24"
  start_ip = "10.30.0.100"
  end_ip   = "10.30.0.101"
}
resource "vsphereipam_ipsubnet" "spread" {
  name    = "spread"
  wire_id = data.vsphereipam_wire.dc1.id
  cidr    = "10.70.0.0/24"
}
resource "vsphereipam_ipsubnet" "far" {
  name    = "far"
  wire_id = data.vsphereipam_wire.dc1.id
  cidr    = "10.80.0.0/24"
}
resource "vsphereipam_subnet_additional_wire" "spread_web" {
  subnet_id = vsphereipam_ipsubnet.spread.id
  wire_id   = data.vsphereipam_wire.web.id
}
"#;

/// A `vsphereipam_vm` block with `extra` lines and NIC blocks, and an output of it.
fn vm(label: &str, extra: &str, nics: &[&str]) -> String {
    let blocks: String = nics
        .iter()
        .map(|n| format!("  network_interface {{\n    {n}\n  }}\n"))
        .collect();
    format!(
        "resource \"vsphereipam_vm\" \"{label}\" {{\n  datacenter = \"DC0\"\n  template   = \"tmpl-linux\"\n\
         {extra}\n{blocks}}}\noutput \"{label}\" {{\n  value = vsphereipam_vm.{label}\n}}\n"
    )
}

fn config(body: &str) -> String {
    format!("{SUBNETS}\n{body}")
}

/// The subnets applied, then `main.tf` holding one VM on `app` named `<prefix>-<version>`
/// (not applied): the workdir, the VM's name and its resource block.
fn one_vm(env: &Env, tf: &Terraform, label: &str, prefix: &str) -> (Workdir, String, String) {
    let wd = env.workdir(tf, &config(""));
    wd.apply_ok();
    let name = format!("{prefix}-{}", tf.version.replace('.', ""));
    let body = vm(
        label,
        &format!("  name = \"{name}\""),
        &["subnet_id = vsphereipam_ipsubnet.app.id"],
    );
    wd.write("main.tf", &env.config(&config(&body)));
    (wd, name, body)
}

/// The simulator's current inventory, as the provider loads it.
fn inventory(sim: &Sim) -> vsphereipam::vsphere::model::Inventory {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = sim.client().await;
        vsphereipam::vsphere::inventory::load_inventory(&client)
            .await
            .unwrap()
    })
}

fn hosts_of(sim: &Sim, pg: &str) -> BTreeSet<String> {
    sim.manifest()
        .portgroups
        .iter()
        .find(|p| p.name == pg)
        .unwrap()
        .hosts
        .iter()
        .cloned()
        .collect()
}

fn host_moref(sim: &Sim, name: &str) -> String {
    sim.manifest()
        .hosts
        .iter()
        .find(|h| h.name == name)
        .unwrap()
        .moref
        .clone()
}

fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    }
}

fn ip_of(vm: &Value, nic: usize) -> String {
    vm["network_interface"][nic]["ip_address"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Held by a finished `vsphereipam_vm` record of the VM, with its MAC.
fn assert_held_by(env: &Env, vm: &Value, version: &str) {
    let uuid = vm["id"].as_str().unwrap();
    let held = env.store().addresses_of_vm(uuid).unwrap();
    for nic in as_list(&vm["network_interface"]) {
        let ip = nic["ip_address"].as_str().unwrap();
        let r = held
            .iter()
            .find(|a| a.ip.to_string() == ip)
            .unwrap_or_else(|| panic!("{version}: {ip} not recorded for {uuid}: {held:?}"));
        assert_eq!(r.owner_kind, OwnerKind::Vm, "{version}");
        assert!(!r.pending, "{version}: {r:?}");
        assert_eq!(r.mac.as_deref(), nic["mac"].as_str(), "{version}");
        assert_eq!(r.wire_id.as_deref(), nic["wire_id"].as_str(), "{version}");
    }
}

#[test]
fn several_vms_on_one_subnet_get_distinct_addresses_on_hosts_with_the_port_group() {
    let sim = Sim::start("test");
    let app_hosts = hosts_of(&sim, "pg-app");
    for tf in versions() {
        let v: &str = tf.version;
        let env = Env::new(&sim, "");
        let name = format!("web-{}", v.replace('.', ""));
        let body = vm(
            "web",
            &format!("  count = 3\n  name = \"{name}-${{count.index}}\"\n  num_cpus = 2\n  memory_mb = 2048"),
            &["subnet_id = vsphereipam_ipsubnet.app.id"],
        );
        let wd = env.workdir(&tf, &config(&body));
        wd.apply_ok();
        let vms = as_list(&wd.outputs()["web"]);
        assert_eq!(vms.len(), 3, "{v}");
        let ips: BTreeSet<String> = vms.iter().map(|vm| ip_of(vm, 0)).collect();
        assert_eq!(ips.len(), 3, "{v}: addresses not distinct: {ips:?}");
        let inv = inventory(&sim);
        for vm in &vms {
            let ip = ip_of(vm, 0);
            let last: u8 = ip.strip_prefix("10.20.0.").unwrap().parse().unwrap();
            assert!(last >= 100, "{v}: {ip} outside the range");
            // VMware Tools report exactly the assigned address.
            assert_eq!(vm["guest_ip_addresses"], serde_json::json!([ip]), "{v}");
            let host = vm["host_id"].as_str().unwrap();
            assert!(app_hosts.contains(host), "{v}: {host} carries no pg-app");
            let nic = &vm["network_interface"][0];
            assert_eq!(nic["port_group"], "pg-app", "{v}");
            assert_eq!(nic["wire_id"], env.wire_id("pg-app").as_str(), "{v}");
            assert_eq!(vm["power_state"], "poweredOn", "{v}");
            assert_held_by(&env, vm, v);
            let live = inv
                .vms
                .iter()
                .find(|x| x.uuid.eq_ignore_ascii_case(vm["id"].as_str().unwrap()))
                .unwrap_or_else(|| panic!("{v}: VM not in vCenter"));
            assert_eq!(live.host.as_deref(), Some(host), "{v}");
            assert_eq!(live.num_cpus, Some(2), "{v}");
            assert_eq!(
                live.guest_hostname.as_deref(),
                vm["hostname"].as_str(),
                "{v}"
            );
            assert_eq!(
                live.nics[0].mac,
                nic["mac"].as_str().unwrap(),
                "{v}: state MAC is not the VM's"
            );
        }
        // Spread over hosts: three VMs do not all land on one.
        let hosts: BTreeSet<&str> = vms
            .iter()
            .map(|vm| vm["host_id"].as_str().unwrap())
            .collect();
        assert!(hosts.len() > 1, "{v}: all on {hosts:?}");
        wd.plan_no_changes();

        // CPU, memory and name change in place: same UUIDs and addresses.
        let changed = body
            .replace("num_cpus = 2", "num_cpus = 4")
            .replace("memory_mb = 2048", "memory_mb = 3072")
            .replace(&format!("\"{name}-"), &format!("\"{name}-renamed-"));
        wd.write("main.tf", &env.config(&config(&changed)));
        let plan = wd.run(&["plan", "-no-color", "-input=false"]);
        assert!(
            plan.stdout.contains("3 to change, 0 to destroy"),
            "{v}: {}",
            plan.all()
        );
        wd.apply_ok();
        let after = as_list(&wd.outputs()["web"]);
        let inv = inventory(&sim);
        for (before, now) in vms.iter().zip(&after) {
            assert_eq!(before["id"], now["id"], "{v}");
            assert_eq!(ip_of(before, 0), ip_of(now, 0), "{v}");
            let live = inv
                .vms
                .iter()
                .find(|x| x.uuid.eq_ignore_ascii_case(now["id"].as_str().unwrap()))
                .unwrap();
            assert_eq!(
                (live.num_cpus, live.memory_mb),
                (Some(4), Some(3072)),
                "{v}"
            );
            assert!(
                live.name.starts_with(&format!("{name}-renamed-")),
                "{v}: {}",
                live.name
            );
        }
        wd.plan_no_changes();

        wd.destroy_ok();
        let inv = inventory(&sim);
        for vm in &vms {
            let uuid = vm["id"].as_str().unwrap();
            assert!(
                !inv.vms.iter().any(|x| x.uuid.eq_ignore_ascii_case(uuid)),
                "{v}: VM {uuid} still in vCenter"
            );
            assert!(env.store().addresses_of_vm(uuid).unwrap().is_empty(), "{v}");
        }
    }
}

#[test]
fn placement_follows_the_port_groups_of_the_subnets() {
    let sim = Sim::start("test");
    let only = host_moref(&sim, "DC0_C0_H0");
    for tf in versions() {
        let v: &str = tf.version;
        let env = Env::new(&sim, "");
        let sfx = v.replace('.', "");
        // pg-std-partial is on one host only; the spread subnet reaches DC0 through pg-std-web.
        let body = vm(
            "one",
            &format!("  name = \"one-{sfx}\""),
            &[
                "subnet_id = vsphereipam_ipsubnet.partial.id",
                "subnet_id = vsphereipam_ipsubnet.spread.id",
            ],
        ) + &vm(
            "asked",
            &format!("  name = \"asked-{sfx}\"\n  host = \"DC0_C0_H2\""),
            &["subnet_id  = vsphereipam_ipsubnet.app.id\n    ip_address = \"10.20.0.177\""],
        );
        let body = body.replace(
            "resource \"vsphereipam_vm\" \"one\" {",
            "resource \"vsphereipam_vm\" \"one\" {\n  depends_on = [vsphereipam_subnet_additional_wire.spread_web]",
        );
        let wd = env.workdir(&tf, &config(&body));
        wd.apply_ok();
        let outs = wd.outputs();
        let one = &outs["one"];
        assert_eq!(one["host_id"], only.as_str(), "{v}");
        assert_eq!(
            one["network_interface"][0]["port_group"], "pg-std-partial",
            "{v}"
        );
        assert_eq!(
            one["network_interface"][1]["port_group"], "pg-std-web",
            "{v}"
        );
        assert_eq!(
            one["network_interface"][1]["wire_id"],
            env.wire_id("pg-std-web").as_str(),
            "{v}"
        );
        assert!(ip_of(one, 1).starts_with("10.70.0."), "{v}");
        let ips = one["guest_ip_addresses"].as_array().unwrap().len();
        assert_eq!(ips, 2, "{v}: {one}");
        assert_held_by(&env, one, v);
        let asked = &outs["asked"];
        assert_eq!(
            asked["host_id"],
            host_moref(&sim, "DC0_C0_H2").as_str(),
            "{v}"
        );
        assert_eq!(ip_of(asked, 0), "10.20.0.177", "{v}");
        assert_held_by(&env, asked, v);
        wd.plan_no_changes();

        // A host that does not carry pg-std-partial: refused at plan time, naming the subnet.
        let moved = body.replace(
            &format!("  name = \"one-{sfx}\""),
            &format!("  name = \"one-{sfx}\"\n  host = \"DC0_C0_H1\""),
        );
        wd.write("main.tf", &env.config(&config(&moved)));
        let run = wd.plan_err();
        expect_error(
            &run,
            v,
            "The host cannot reach the VM's subnets",
            "host = \"DC0_C0_H1\"",
        );
        assert!(
            run.flat().contains("\"partial\" (10.60.0.0/24)"),
            "{v}: {}",
            run.all()
        );
        wd.write("main.tf", &env.config(&config(&body)));
        wd.destroy_ok();
    }
}

#[test]
fn every_refusal_is_a_diagnostic_on_its_attribute() {
    let sim = Sim::start("test");
    for tf in versions() {
        let v: &str = tf.version;
        let env = Env::new(&sim, "");
        // The subnets exist before the refused VMs are planned.
        let wd = env.workdir(&tf, &config(""));
        wd.apply_ok();
        let cases: Vec<(String, &str, &str)> = vec![
            (
                vm(
                    "x",
                    "  name = \"x\"",
                    &["subnet_id = vsphereipam_ipsubnet.app.id\n    ip_address = \"10.20.0.50\""],
                ),
                "Refused by the IPAM",
                "ip_address = \"10.20.0.50\"",
            ),
            (
                vm(
                    "x",
                    "  name = \"x\"",
                    &["subnet_id = vsphereipam_ipsubnet.app.id\n    ip_address = \"10.20.0.300\""],
                ),
                "Invalid IP address",
                "ip_address = \"10.20.0.300\"",
            ),
            (
                vm("x", "  name = \"x\"", &["subnet_id = \"no-such-subnet\""]),
                "Subnet not found",
                "subnet_id = \"no-such-subnet\"",
            ),
            (
                vm(
                    "x",
                    "  name = \"x\"",
                    &["subnet_id = vsphereipam_ipsubnet.app.id"],
                )
                .replace("\"tmpl-linux\"", "\"tmpl-nope\""),
                "Template not found",
                "template   = \"tmpl-nope\"",
            ),
            (
                vm(
                    "x",
                    "  name = \"x\"",
                    &["subnet_id = vsphereipam_ipsubnet.app.id"],
                )
                .replace("\"DC0\"", "\"DC9\""),
                "Datacenter not found",
                "datacenter = \"DC9\"",
            ),
            (
                vm(
                    "x",
                    "  name = \"x\"\n  host = \"nope\"",
                    &["subnet_id = vsphereipam_ipsubnet.app.id"],
                ),
                "Host not found",
                "host = \"nope\"",
            ),
            (
                vm(
                    "x",
                    "  name = \"x\"\n  guest_ip_timeout = \"soon\"",
                    &["subnet_id = vsphereipam_ipsubnet.app.id"],
                ),
                "Invalid guest_ip_timeout",
                "guest_ip_timeout = \"soon\"",
            ),
            (
                vm(
                    "x",
                    "  name = \"x\"\n  num_cpus = 0",
                    &["subnet_id = vsphereipam_ipsubnet.app.id"],
                ),
                "Invalid num_cpus",
                "num_cpus = 0",
            ),
            (
                vm(
                    "x",
                    "  name = \"x\"\n  hostname = \"web_1\"",
                    &["subnet_id = vsphereipam_ipsubnet.app.id"],
                ),
                "Invalid hostname",
                "hostname = \"web_1\"",
            ),
            (
                vm("x", "  name = \"x\"", &[]),
                "No network_interface block",
                "resource \"vsphereipam_vm\" \"x\"",
            ),
        ];
        for (body, summary, snippet) in cases {
            wd.write("main.tf", &env.config(&config(&body)));
            let run = wd.plan_err();
            expect_error(&run, v, summary, snippet);
        }
        // An address held by another VM's record: taken.
        let held = vm(
            "a",
            "  name = \"a\"",
            &["subnet_id = vsphereipam_ipsubnet.app.id\n    ip_address = \"10.20.0.150\""],
        );
        wd.write("main.tf", &env.config(&config(&held)));
        wd.apply_ok();
        let again = held.clone()
            + &vm(
                "b",
                "  name = \"b\"",
                &["subnet_id = vsphereipam_ipsubnet.app.id\n    ip_address = \"10.20.0.150\""],
            );
        wd.write("main.tf", &env.config(&config(&again)));
        let run = wd.plan_err();
        expect_error(
            &run,
            v,
            "Address already taken",
            "ip_address = \"10.20.0.150\"",
        );
        assert!(run.flat().contains("vsphereipam_vm"), "{v}: {}", run.all());
        // The db subnet has two addresses: a third NIC finds it full.
        let full = held.clone()
            + &vm(
                "c",
                "  name = \"c\"",
                &[
                    "subnet_id = vsphereipam_ipsubnet.db.id",
                    "subnet_id = vsphereipam_ipsubnet.db.id",
                    "subnet_id = vsphereipam_ipsubnet.db.id",
                ],
            );
        wd.write("main.tf", &env.config(&config(&full)));
        let run = wd.plan_err();
        expect_error(
            &run,
            v,
            "Subnet full",
            "subnet_id = vsphereipam_ipsubnet.db.id",
        );
        // No DC0 host carries pg-dc1, the far subnet's only wire.
        let apart = held.clone()
            + &vm(
                "d",
                "  name = \"d\"",
                &[
                    "subnet_id = vsphereipam_ipsubnet.partial.id",
                    "subnet_id = vsphereipam_ipsubnet.far.id",
                ],
            );
        wd.write("main.tf", &env.config(&config(&apart)));
        let run = wd.plan_err();
        expect_error(
            &run,
            v,
            "No host can reach every subnet of the VM",
            "in resource \"vsphereipam_vm\" \"d\"",
        );
        let flat = run.flat();
        assert!(
            flat.contains("\"partial\" (10.60.0.0/24): DC0_C0_H0"),
            "{v}: {flat}"
        );
        assert!(flat.contains("\"far\" (10.80.0.0/24): none"), "{v}: {flat}");
        wd.write("main.tf", &env.config(&config(&held)));
        wd.destroy_ok();
    }
}

#[test]
fn a_failing_vcenter_call_rolls_the_create_back() {
    let sim = Sim::start("test");
    for tf in versions() {
        let v: &str = tf.version;
        let env = Env::new(&sim, "");
        let (wd, name, body) = one_vm(&env, &tf, "r", "rollback");
        // The clone succeeds; powering on fails.
        sim.control("fail", &[("method", "PowerOnVM_Task"), ("count", "1")]);
        let run = wd.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        assert!(!run.success, "{v}: {}", run.all());
        expect_error(
            &run,
            v,
            "Creating the VM failed",
            "resource \"vsphereipam_vm\" \"r\"",
        );
        assert!(
            run.flat().contains("Its addresses were released"),
            "{v}: {}",
            run.all()
        );
        assert!(
            !inventory(&sim).vms.iter().any(|x| x.name == name),
            "{v}: the partial VM is still there"
        );
        let subnet = env.store().subnets(None).unwrap();
        let app = subnet.iter().find(|s| s.name == "app").unwrap();
        let held: Vec<_> = env
            .store()
            .addresses(&app.id)
            .unwrap()
            .into_iter()
            .filter(|a| a.owner_kind == OwnerKind::Vm)
            .collect();
        assert!(held.is_empty(), "{v}: still held: {held:?}");
        // A folder that does not exist fails before any address is taken.
        let nowhere = body.replace(
            &format!("  name = \"{name}\""),
            &format!("  name = \"{name}\"\n  folder = \"no/such\""),
        );
        wd.write("main.tf", &env.config(&config(&nowhere)));
        let run = wd.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        expect_error(
            &run,
            v,
            "The VM folder was not found",
            "folder = \"no/such\"",
        );
        assert!(run.flat().contains("DC0/vm/no/such"), "{v}: {}", run.all());
        // The next apply creates it, in the datastore named by its path.
        let stored = body.replace(
            &format!("  name = \"{name}\""),
            &format!("  name = \"{name}\"\n  datastore = \"LocalDS_0\""),
        );
        wd.write("main.tf", &env.config(&config(&stored)));
        wd.apply_ok();
        assert!(inventory(&sim).vms.iter().any(|x| x.name == name), "{v}");
        wd.destroy_ok();
    }
}

#[test]
fn drift_shows_in_the_plan_and_a_vm_deleted_outside_is_replaced() {
    let sim = Sim::start("test");
    for tf in versions() {
        let v: &str = tf.version;
        let env = Env::new(&sim, "");
        let sfx = v.replace('.', "");
        let names = [
            format!("drift-a-{sfx}"),
            format!("drift-b-{sfx}"),
            format!("drift-c-{sfx}"),
        ];
        let body: String = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                vm(
                    &format!("d{i}"),
                    &format!("  name = \"{n}\""),
                    &["subnet_id = vsphereipam_ipsubnet.app.id"],
                )
            })
            .collect();
        let wd = env.workdir(&tf, &config(&body));
        wd.apply_ok();
        let outs = wd.outputs();
        wd.plan_no_changes();

        // Powered off outside Terraform: the plan powers it on again.
        sim.control("power_off", &[("vm", &names[0])]);
        let plan = wd.run(&["plan", "-no-color", "-input=false"]);
        assert!(
            plan.stdout.contains("\"poweredOff\" -> \"poweredOn\""),
            "{v}: {}",
            plan.all()
        );
        // A NIC moved off the subnet's wire: the plan replaces the VM.
        sim.control(
            "move_nic",
            &[("vm", &names[1]), ("nic", "0"), ("pg", "pg-std-web")],
        );
        let plan = wd.run(&["plan", "-no-color", "-input=false"]);
        assert!(
            plan.stdout.contains("must be replaced"),
            "{v}: {}",
            plan.all()
        );
        // Deleted outside Terraform: a refresh keeps it in the state, marked for replacement,
        // and its address stays held until the apply that replaces it.
        let gone = outs["d2"]["id"].as_str().unwrap().to_string();
        sim.control("destroy_vm", &[("vm", &names[2])]);
        let refresh = wd.run(&[
            "apply",
            "-refresh-only",
            "-auto-approve",
            "-no-color",
            "-input=false",
        ]);
        assert!(refresh.success, "{v}: {}", refresh.all());
        assert_eq!(
            env.store().addresses_of_vm(&gone).unwrap().len(),
            1,
            "{v}: a refresh released the address"
        );
        let state = wd.run(&["state", "list"]);
        assert!(
            state.stdout.contains("vsphereipam_vm.d2"),
            "{v}: {}",
            state.stdout
        );

        wd.apply_ok();
        let inv = inventory(&sim);
        let a = inv.vms.iter().find(|x| x.name == names[0]).unwrap();
        assert_eq!(a.power_state, "poweredOn", "{v}");
        let b = inv.vms.iter().find(|x| x.name == names[1]).unwrap();
        // The simulator derives UUIDs from names; the moref tells a new VM.
        assert_ne!(
            b.moref,
            outs["d1"]["moref"].as_str().unwrap(),
            "{v}: not replaced"
        );
        assert!(
            inv.vms.iter().any(|x| x.name == names[2]),
            "{v}: not recreated"
        );
        wd.plan_no_changes();
        wd.destroy_ok();
    }
}

#[test]
fn import_records_the_vms_addresses() {
    let sim = Sim::start("test");
    let app1 = sim
        .manifest()
        .vms
        .iter()
        .find(|v| v.name == "vm-app-1")
        .unwrap()
        .clone();
    let app2 = sim
        .manifest()
        .vms
        .iter()
        .find(|v| v.name == "vm-app-2")
        .unwrap()
        .clone();
    for tf in versions() {
        let v: &str = tf.version;
        let env = Env::new(&sim, "");
        let subnets = SUBNETS.replace(
            "start_ip    = \"10.20.0.100\"",
            "start_ip    = \"10.20.0.10\"",
        );
        let wd = env.workdir(&tf, &subnets);
        wd.apply_ok();
        let body = vm(
            "imported",
            "  name = \"vm-app-1\"",
            &["subnet_id = vsphereipam_ipsubnet.app.id"],
        );
        wd.write("main.tf", &env.config(&format!("{subnets}\n{body}")));
        let run = wd.run(&[
            "import",
            "-no-color",
            "-input=false",
            "vsphereipam_vm.imported",
            &app1.uuid,
        ]);
        assert!(run.success, "{v}: {}", run.all());
        // `terraform import` only writes the state: the VM's records come with the first
        // apply, which also records the create-time inputs (template) in the state.
        let own_records = || -> Vec<String> {
            env.store()
                .addresses_of_vm(&app1.uuid)
                .unwrap()
                .into_iter()
                .filter(|a| a.owner_kind == OwnerKind::Vm)
                .map(|a| {
                    assert_eq!(a.owner_id, app1.uuid.to_ascii_lowercase(), "{v}");
                    a.ip.to_string()
                })
                .collect()
        };
        assert!(own_records().is_empty(), "{v}: the import wrote");
        let applied = wd.apply_ok();
        assert!(
            applied.stdout.contains("0 added, 1 changed, 0 destroyed"),
            "{v}: {}",
            applied.stdout
        );
        assert_eq!(own_records(), ["10.20.0.21"], "{v}");
        wd.plan_no_changes();
        let live = inventory(&sim);
        let still = live.vms.iter().find(|x| x.name == "vm-app-1").unwrap();
        assert_eq!(still.moref, app1.moref, "{v}: the imported VM was replaced");
        // A re-import (the state forgot the VM, its records stayed) claims its own records.
        let rm = wd.run(&["state", "rm", "vsphereipam_vm.imported"]);
        assert!(rm.success, "{v}: {}", rm.all());
        let run = wd.run(&[
            "import",
            "-no-color",
            "-input=false",
            "vsphereipam_vm.imported",
            &app1.uuid,
        ]);
        assert!(run.success, "{v}: {}", run.all());
        wd.apply_ok();
        assert_eq!(own_records(), ["10.20.0.21"], "{v}");
        wd.plan_no_changes();
        // Forget it again without deleting the scenario's VM.
        let rm = wd.run(&["state", "rm", "vsphereipam_vm.imported"]);
        assert!(rm.success, "{v}: {}", rm.all());
        // Unknown UUIDs are refused.
        let run = wd.run(&[
            "import",
            "-no-color",
            "-input=false",
            "vsphereipam_vm.imported",
            "00000000-0000-0000-0000-000000000000",
        ]);
        assert!(!run.success, "{v}");
        assert!(run.flat().contains("VM not found"), "{v}: {}", run.all());
        // An address another record holds is refused, naming the VM, NIC, address and holder.
        let store = env.store();
        let app = store
            .subnets(None)
            .unwrap()
            .into_iter()
            .find(|s| s.name == "app")
            .unwrap();
        let taken: std::net::IpAddr = app2.ips[0].parse().unwrap();
        // (The reads mirrored vm-app-2's address as observed: an operator reserving it takes
        // the address over.)
        for observed in store.addresses(&app.id).unwrap() {
            if observed.ip == taken && observed.owner_kind == OwnerKind::Observed {
                store
                    .release_owner(OwnerKind::Observed, &observed.owner_id)
                    .unwrap();
            }
        }
        store
            .allocate(
                &AllocRequest {
                    subnet_id: app.id.clone(),
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
        let before = env.store_listing();
        let run = wd.run(&[
            "import",
            "-no-color",
            "-input=false",
            "vsphereipam_vm.imported",
            &app2.uuid,
        ]);
        assert!(!run.success, "{v}");
        let flat = run.flat();
        for part in [
            "Address already taken",
            "vm-app-2",
            app2.nics[0].mac.as_str(),
            app2.ips[0].as_str(),
            "reserved-by-netops",
        ] {
            assert!(flat.contains(part), "{v}: {part}: {}", run.all());
        }
        assert_eq!(env.store_listing(), before, "{v}");
        store
            .release_owner(OwnerKind::Manual, "reserved-by-netops")
            .unwrap();
    }
}

/// vCenter tasks (every VM change is one) the simulator saw since its last reset.
fn tasks(sim: &Sim) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stats = rt.block_on(sim.stats());
    stats
        .by_method
        .keys()
        .filter(|m| m.ends_with("_Task"))
        .cloned()
        .collect()
}

fn reset_tasks(sim: &Sim) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(sim.reset_stats());
}

/// Terraform 1.5+ runs an `import {}` block's import inside `terraform plan`: that plan leaves
/// the store as it was and runs no vCenter task; its apply records the addresses Tools report,
/// still without a task, and the plan after is empty. By id on 1.15 and 1.11 (1.0.3 has no
/// import blocks), by identity on 1.15 (1.12+), and on 1.15 with the configuration generated
/// by the plan (`-generate-config-out`, `template = null`: the plan must still apply to record).
#[test]
fn an_import_block_plan_writes_nothing_and_its_apply_records() {
    let sim = Sim::start("test");
    let app1 = sim
        .manifest()
        .vms
        .iter()
        .find(|v| v.name == "vm-app-1")
        .unwrap()
        .clone();
    let uuid = app1.uuid.to_ascii_lowercase();
    let by_id = format!("id = \"{}\"", app1.uuid);
    let by_identity = format!("identity = {{\n    vm_uuid = \"{uuid}\"\n  }}");
    let cases = [
        ("1.15", "id", &by_id, false),
        ("1.15", "identity", &by_identity, false),
        ("1.15", "generated", &by_id, true),
        ("1.11", "id", &by_id, false),
    ];
    for (version, what, by, generated) in cases {
        let tf = versions()
            .into_iter()
            .find(|t| t.version == version)
            .unwrap_or_else(|| panic!("Terraform {version}"));
        let v = format!("{version} {what}");
        let env = Env::new(&sim, "");
        let subnets = SUBNETS.replace(
            "start_ip    = \"10.20.0.100\"",
            "start_ip    = \"10.20.0.10\"",
        );
        let wd = env.workdir(&tf, &subnets);
        wd.apply_ok();
        // A plan first, so the observed-address mirror (the one write a read may make, never
        // to a held record) has seen the new subnets before the listing is taken.
        wd.plan_no_changes();
        let before = env.store_listing();
        // Until the apply records it, the VM's Tools-reported address is an observed record,
        // which no allocation hands out (checked below).
        assert!(
            before
                .iter()
                .any(|l| l.starts_with("  10.20.0.21 Observed")),
            "{v}: {before:?}"
        );
        reset_tasks(&sim);

        let import = format!("import {{\n  to = vsphereipam_vm.imported\n  {by}\n}}\n");
        let body = vm(
            "imported",
            "  name = \"vm-app-1\"",
            &["subnet_id = vsphereipam_ipsubnet.app.id"],
        );
        let vm_tf = wd.path().join("vm.tf");
        let plan = if generated {
            wd.write("main.tf", &env.config(&format!("{subnets}\n{import}")));
            let plan = wd.run(&[
                "plan",
                "-no-color",
                "-input=false",
                "-generate-config-out=vm.tf",
            ]);
            let gen = std::fs::read_to_string(&vm_tf).unwrap_or_default();
            println!("{gen}");
            assert!(gen.contains("template          = null"), "{v}: {gen}");
            assert!(plan.success, "{v}: {}", plan.all());
            assert_eq!(env.store_listing(), before, "{v}: the plan wrote");
            assert!(tasks(&sim).is_empty(), "{v}: {:?}", tasks(&sim));
            // A plan saved with `-generate-config-out` lacks the generated configuration
            // (Terraform 1.15's apply of it fails "Resource node has no configuration
            // attached"): plan again with it.
            wd.run(&["plan", "-no-color", "-input=false", "-out=import.tfplan"])
        } else {
            wd.write(
                "main.tf",
                &env.config(&format!("{subnets}\n{import}\n{body}")),
            );
            wd.run(&["plan", "-no-color", "-input=false", "-out=import.tfplan"])
        };
        assert!(plan.success, "{v}: {}", plan.all());
        assert!(
            plan.stdout
                .contains("1 to import, 0 to add, 1 to change, 0 to destroy"),
            "{v}: {}",
            plan.all()
        );
        assert!(!plan.stdout.contains("must be replaced"), "{v}");
        assert_eq!(env.store_listing(), before, "{v}: the plan wrote");
        assert!(tasks(&sim).is_empty(), "{v}: {:?}", tasks(&sim));

        // Nothing may take the address between that plan and its apply.
        let main_tf = std::fs::read_to_string(wd.path().join("main.tf")).unwrap();
        let aside = wd.path().join("vm.tf.aside");
        if generated {
            std::fs::rename(&vm_tf, &aside).unwrap();
        }
        let squat = "resource \"vsphereipam_ip_address\" \"squat\" {\n  subnet_id  = vsphereipam_ipsubnet.app.id\n  ip_address = \"10.20.0.21\"\n}\n";
        wd.write("main.tf", &env.config(&format!("{subnets}\n{squat}")));
        let refused = wd.plan_err();
        assert!(
            refused.flat().contains("10.20.0.21") && refused.flat().contains("vm-app-1"),
            "{v}: {}",
            refused.all()
        );
        assert_eq!(env.store_listing(), before, "{v}");
        wd.write("main.tf", &main_tf);
        if generated {
            std::fs::rename(&aside, &vm_tf).unwrap();
        }

        let apply = wd.run(&["apply", "-no-color", "-input=false", "import.tfplan"]);
        assert!(apply.success, "{v}: {}", apply.all());
        assert!(tasks(&sim).is_empty(), "{v}: {:?}", tasks(&sim));
        let held = env.store().addresses_of_vm(&app1.uuid).unwrap();
        let own: Vec<_> = held
            .iter()
            .filter(|a| a.owner_kind == OwnerKind::Vm)
            .collect();
        assert_eq!(own.len(), 1, "{v}: {held:?}");
        assert_eq!(own[0].ip.to_string(), "10.20.0.21", "{v}");
        assert_eq!(own[0].owner_id, uuid, "{v}");
        assert!(
            own[0]
                .mac
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(&app1.nics[0].mac)),
            "{v}: {own:?}"
        );
        if generated {
            // The generated configuration leaves the template for the operator to fill in;
            // then one apply records it, without changing the VM.
            let gen = std::fs::read_to_string(&vm_tf).unwrap();
            wd.write(
                "vm.tf",
                &gen.replace("template          = null", "template = \"tmpl-linux\""),
            );
            wd.apply_ok();
            assert!(tasks(&sim).is_empty(), "{v}: {:?}", tasks(&sim));
        }
        wd.plan_no_changes();
        let live = inventory(&sim);
        let still = live.vms.iter().find(|x| x.name == "vm-app-1").unwrap();
        assert_eq!(still.moref, app1.moref, "{v}: the imported VM was replaced");
        // Forget it again without deleting the scenario's VM.
        let rm = wd.run(&["state", "rm", "vsphereipam_vm.imported"]);
        assert!(rm.success, "{v}: {}", rm.all());
    }
}

/// The plugin process of a pending create: its ticket names it.
fn pending_pid(env: &Env) -> Option<(u32, String)> {
    let store = env.store();
    let vcenter = env.sim.info.instance_uuid.clone();
    let owners = store.pending_owners(&vcenter, OwnerKind::Vm).ok()?;
    let owner = owners.first()?;
    let ticket = vsphereipam::pending::Ticket::parse(&owner.owner_id)?;
    Some((ticket.pid, ticket.instance_uuid))
}

#[test]
fn a_plugin_killed_mid_create_leaves_nothing_held_after_the_next_apply() {
    let sim = Sim::start("test");
    for tf in versions() {
        let v: &str = tf.version;
        let env = Env::new(&sim, "");
        let (wd, name, _) = one_vm(&env, &tf, "k", "killed");
        // The clone happens at once but its answer is held back: the plugin is killed while
        // it waits, with its address pending and a VM it never learnt about.
        sim.control("delay", &[("method", "CloneVM_Task"), ("ms", "60000")]);
        let child = spawn_apply(&wd);
        let every = std::time::Duration::from_millis(100);
        let (pid, instance_uuid) = wait_for(&format!("{v}: a pending record"), every, || {
            pending_pid(&env)
        });
        wait_for(&format!("{v}: the cloned VM"), every, || {
            inventory(&sim)
                .vms
                .iter()
                .any(|x| x.instance_uuid.as_deref() == Some(instance_uuid.as_str()))
                .then_some(())
        });
        kill(pid);
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "{v}: apply survived the kill");
        sim.control("delay", &[("method", "CloneVM_Task"), ("ms", "0")]);
        assert!(
            pending_pid(&env).is_some(),
            "{v}: nothing pending after the kill"
        );

        // The next apply removes the orphan, releases its address, and creates the VM.
        wd.apply_ok();
        assert!(pending_pid(&env).is_none(), "{v}: still pending");
        let inv = inventory(&sim);
        let same: Vec<_> = inv.vms.iter().filter(|x| x.name == name).collect();
        assert_eq!(same.len(), 1, "{v}: {} VMs named {name}", same.len());
        assert_ne!(
            same[0].instance_uuid.as_deref(),
            Some(instance_uuid.as_str()),
            "{v}: the orphan survived"
        );
        let vm = &wd.outputs()["k"];
        assert_held_by(&env, vm, v);
        wd.destroy_ok();
    }
}

fn spawn_apply(wd: &Workdir) -> std::process::Child {
    wd.command(&["apply", "-auto-approve", "-input=false", "-no-color"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn terraform apply")
}

fn kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {pid}");
}

fn stats(sim: &Sim) -> common::sim::SimStats {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(sim.stats())
}

#[test]
fn many_vms_in_one_apply_run_in_parallel_without_one_inventory_load_each() {
    let sim = Sim::start("test");
    for tf in versions() {
        let v: &str = tf.version;
        let env = Env::new(&sim, "");
        let wd = env.workdir(&tf, &config(""));
        wd.apply_ok();
        let many = |count: usize| {
            vm(
                "many",
                &format!(
                    "  count = {count}\n  name = \"many-{}-${{count.index}}\"",
                    v.replace('.', "")
                ),
                &["subnet_id = vsphereipam_ipsubnet.app.id"],
            )
        };
        // Terraform's default parallelism (10), then 32.
        for (count, args) in [(12, vec![]), (30, vec!["-parallelism=32"])] {
            wd.write("main.tf", &env.config(&config(&many(count))));
            let before = stats(&sim);
            let mut cmd = vec!["apply", "-auto-approve", "-input=false", "-no-color"];
            cmd.extend(args.iter());
            let run = wd.run(&cmd);
            assert!(run.success, "{v}: {}", run.all());
            let after = stats(&sim);
            let views = after
                .by_method
                .get("CreateContainerView")
                .copied()
                .unwrap_or(0)
                - before
                    .by_method
                    .get("CreateContainerView")
                    .copied()
                    .unwrap_or(0);
            // One inventory per provider process (plan, apply), not one per VM.
            assert!(views <= 2, "{v}: {views} inventory loads for {count} VMs");
            let vms = as_list(&wd.outputs()["many"]);
            assert_eq!(vms.len(), count, "{v}");
            let ips: BTreeSet<String> = vms.iter().map(|vm| ip_of(vm, 0)).collect();
            assert_eq!(ips.len(), count, "{v}: duplicate addresses");
            for vm in &vms {
                assert_held_by(&env, vm, v);
            }
            let hosts: BTreeSet<&str> = vms
                .iter()
                .map(|vm| vm["host_id"].as_str().unwrap())
                .collect();
            assert_eq!(
                hosts.len(),
                4,
                "{v}: VMs not spread over the 4 hosts: {hosts:?}"
            );
        }
        // Refreshing the 30 VMs costs the calls of one inventory load, not one per VM.
        let before = stats(&sim);
        let plan = wd.run(&["plan", "-detailed-exitcode", "-no-color", "-input=false"]);
        assert!(plan.success, "{v}: {}", plan.all());
        let after = stats(&sim);
        let calls: BTreeSet<String> = after
            .by_method
            .iter()
            .filter(|(m, n)| before.by_method.get(*m) != Some(n))
            .map(|(m, n)| format!("{m}={}", n - before.by_method.get(m).copied().unwrap_or(0)))
            .collect();
        eprintln!(
            "{v}: refresh of 30 VMs: {} calls: {calls:?}",
            after.total - before.total
        );
        assert!(after.total - before.total <= 5, "{v}: {calls:?}");
        wd.destroy_ok();
    }
}
