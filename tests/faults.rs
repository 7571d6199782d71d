//! Faults in the middle of an operation, through the fault proxy (`common::proxy`) between the
//! provider and the simulator, with real Terraform: every vCenter call whose answer is lost
//! (clone, reconfigure, relocate, customize, power on, power off, destroy) is found out and the
//! operation goes on; an outcome that cannot be found out (vCenter unreachable) keeps the
//! addresses pending (both addresses of a dual-stack NIC), and the next apply converges. Each case ends with the same checks: no
//! orphan VM, no address held twice or by nobody, nothing pending.
//!
//! Also here: a plan (and a refresh) after a VM was deleted outside Terraform leaves the store
//! as it was, and the apply that follows replaces the VM without leaking its address.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::env::Env;
use common::proxy::FaultProxy;
use common::sim::Sim;
use common::terraform::{versions, Terraform, Workdir};
use common::wait_for;
use vsphereipam::store::{AddressRecord, OwnerKind};

/// How long the provider keeps asking what a call with a lost answer did, in these tests.
const FIND_OUT: &str = "2s";

/// One simulator for every test of this file (it exits with the test process).
fn sim() -> &'static Sim {
    static SIM: OnceLock<Sim> = OnceLock::new();
    SIM.get_or_init(|| Sim::start("test"))
}

fn terraform_115() -> Terraform {
    versions()
        .into_iter()
        .find(|t| t.version == "1.15")
        .expect("Terraform 1.15")
}

const SUBNET: &str = r#"
data "vsphereipam_wire" "app" {
  name = "pg-app"
}
resource "vsphereipam_ipsubnet" "app" {
  name     = "app"
  wire_id  = data.vsphereipam_wire.app.id
  cidr     = "10.20.0.0/24"
  start_ip = "10.20.0.100"
  gateway  = "10.20.0.1"
  domain   = "app.example.com"
}
"#;

/// An IPv6 subnet on the same wire, for dual-stack NICs.
const SUBNET6: &str = r#"
resource "vsphereipam_ipsubnet" "app6" {
  name    = "app6"
  wire_id = data.vsphereipam_wire.app.id
  cidr    = "2001:db8:0:20::/64"
  gateway = "2001:db8:0:20::1"
}
"#;

/// [`vm`] with a dual-stack NIC (the IPv4 subnet and [`SUBNET6`]).
fn dual_vm(name: &str) -> String {
    vm(name, "").replace(
        "subnet_id = vsphereipam_ipsubnet.app.id",
        "subnet_id      = vsphereipam_ipsubnet.app.id\n    ipv6_subnet_id = vsphereipam_ipsubnet.app6.id",
    )
}

fn vm(name: &str, extra: &str) -> String {
    format!(
        r#"
resource "vsphereipam_vm" "x" {{
  name       = "{name}"
  datacenter = "DC0"
  template   = "tmpl-linux"
{extra}
  network_interface {{
    subnet_id = vsphereipam_ipsubnet.app.id
  }}
}}
output "x" {{
  value = vsphereipam_vm.x
}}
"#
    )
}

/// The subnet applied in a store of its own, with the provider going through `proxy`.
fn workdir(env: &Env, tf: &Terraform, proxy: &FaultProxy) -> Workdir {
    let wd = env
        .workdir(tf, SUBNET)
        .env("VSPHERE_SERVER", &proxy.server())
        .env("VSPHEREIPAM_FIND_OUT_TIMEOUT", FIND_OUT);
    wd.apply_ok();
    wd
}

fn apply(wd: &Workdir) -> common::terraform::Run {
    wd.run(&["apply", "-auto-approve", "-input=false", "-no-color"])
}

fn inventory() -> vsphereipam::vsphere::model::Inventory {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let client = sim().client().await;
            vsphereipam::vsphere::inventory::load_inventory(&client)
                .await
                .unwrap()
        })
}

/// Every held record of the store (all but the observed ones, which mirror what vCenter
/// reports, here also the VMs of the tests running beside), sorted, as text.
fn dump(env: &Env) -> Vec<String> {
    let store = env.store();
    let mut out: Vec<String> = store
        .subnets(None)
        .unwrap()
        .iter()
        .flat_map(|s| store.addresses(&s.id).unwrap())
        .filter(|a| a.owner_kind != OwnerKind::Observed)
        .map(|a| format!("{a:?}"))
        .collect();
    out.sort();
    out
}

fn vm_records(env: &Env) -> Vec<AddressRecord> {
    let store = env.store();
    store
        .subnets(None)
        .unwrap()
        .iter()
        .flat_map(|s| store.addresses(&s.id).unwrap())
        .filter(|a| a.owner_kind == OwnerKind::Vm)
        .collect()
}

/// The checks every case ends with: the VMs named `names` exist once each, each holds exactly
/// one address that Tools report for it, nothing is pending, no record belongs to a VM that is
/// gone, and no VM made by a ticket of this store is left over.
fn assert_converged(env: &Env, names: &[&str], what: &str) {
    assert_converged_dual(env, names, false, what)
}

/// [`assert_converged`]; with `dual`, each VM holds an IPv4 and an IPv6 address, each reported
/// by Tools.
fn assert_converged_dual(env: &Env, names: &[&str], dual: bool, what: &str) {
    let per_vm = if dual { 2 } else { 1 };
    let inv = inventory();
    let records = vm_records(env);
    assert!(
        records.iter().all(|r| !r.pending),
        "{what}: pending records left: {records:?}"
    );
    for name in names {
        let same: Vec<_> = inv.vms.iter().filter(|v| v.name == *name).collect();
        assert_eq!(same.len(), 1, "{what}: {} VMs named {name}", same.len());
        let uuid = same[0].uuid.to_ascii_lowercase();
        let held: Vec<_> = records.iter().filter(|r| r.owner_id == uuid).collect();
        assert_eq!(held.len(), per_vm, "{what}: {name} holds {held:?}");
        let v4: Vec<_> = held
            .iter()
            .map(|r| r.ip)
            .filter(|ip| ip.is_ipv4())
            .collect();
        assert_eq!(
            same[0].all_guest_ips(),
            v4,
            "{what}: {name} reports other addresses than it holds"
        );
        for r in held.iter().filter(|r| r.ip.is_ipv6()) {
            assert!(
                same[0]
                    .guest_ipv6
                    .values()
                    .flatten()
                    .any(|ip| std::net::IpAddr::V6(*ip) == r.ip),
                "{what}: {name} does not report {}",
                r.ip
            );
        }
    }
    for r in &records {
        assert!(
            inv.vms
                .iter()
                .any(|v| v.uuid.eq_ignore_ascii_case(&r.owner_id)),
            "{what}: {r:?} is held for a VM that does not exist"
        );
    }
    assert_eq!(
        records.len(),
        names.len() * per_vm,
        "{what}: records {records:?} for {names:?}"
    );
}

fn pending(env: &Env) -> Vec<vsphereipam::store::ops::PendingOwner> {
    env.store()
        .pending_owners(&sim().info.instance_uuid, OwnerKind::Vm)
        .unwrap()
}

#[test]
fn the_fault_proxy_drops_answers_after_the_call_ran_and_refuses_connections() {
    assert_eq!(
        common::proxy::soap_method(
            br#"<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="s"><soapenv:Body><CloneVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">vm-1</_this></CloneVM_Task></soapenv:Body></soapenv:Envelope>"#
        )
        .as_deref(),
        Some("CloneVM_Task")
    );
    let proxy = FaultProxy::https(&sim().info.url);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let options = vsphereipam::vsphere::client::ConnectOptions {
            server: proxy.server(),
            ..sim().connect_options()
        };
        let client = vsphereipam::vsphere::client::connect(&options)
            .await
            .expect("login through the proxy");
        let before = client.calls();
        // The call runs upstream; its answer is lost with the connection.
        proxy.drop_answer("RetrievePropertiesEx", 1);
        let err = vsphereipam::vsphere::inventory::load_inventory(&client)
            .await
            .expect_err("answer dropped");
        assert!(client.calls() > before);
        assert_eq!(proxy.dropped("RetrievePropertiesEx"), 1, "{err:#}");
        assert!(proxy.seen("RetrievePropertiesEx") >= 1);
        // The next request goes through on a new connection.
        vsphereipam::vsphere::inventory::load_inventory(&client)
            .await
            .expect("after the drop");
        // Refused: no new connection gets through until the time is up.
        proxy.refuse_for(Duration::from_secs(30));
        proxy.cut_all();
        vsphereipam::vsphere::inventory::load_inventory(&client)
            .await
            .expect_err("refused");
        assert!(proxy.refused() >= 1);
        proxy.clear();
        vsphereipam::vsphere::inventory::load_inventory(&client)
            .await
            .expect("after the refusal");
    });
}

/// The byte relay (for a store, or any TCP peer): bytes pass; refused and cut connections fail
/// the client, which recovers once they are let through again.
#[test]
fn the_tcp_relay_passes_bytes_and_refuses_and_cuts_connections() {
    let front: std::net::SocketAddr = sim().server().parse().unwrap();
    let proxy = FaultProxy::tcp(front);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let options = vsphereipam::vsphere::client::ConnectOptions {
            server: proxy.server(),
            ..sim().connect_options()
        };
        let client = vsphereipam::vsphere::client::connect(&options)
            .await
            .expect("login through the relay");
        vsphereipam::vsphere::inventory::load_inventory(&client)
            .await
            .expect("through the relay");
        proxy.refuse_for(Duration::from_secs(30));
        proxy.cut_all();
        vsphereipam::vsphere::inventory::load_inventory(&client)
            .await
            .expect_err("refused");
        assert!(proxy.refused() >= 1);
        proxy.clear();
        vsphereipam::vsphere::inventory::load_inventory(&client)
            .await
            .expect("after the refusal");
    });
}

/// One VM whose create needs every step (its CPU count differs from the template's, its host
/// from the clone's), with the answer of each step lost once; then in-place changes, a power-on
/// after drift and a destroy, each with its answer lost.
#[test]
fn lost_answers_are_found_out_and_the_operation_goes_on() {
    let tf = terraform_115();
    let env = Env::new(sim(), "");
    let proxy = FaultProxy::https(&sim().info.url);
    let wd = workdir(&env, &tf, &proxy);
    let name = "lost-answers";
    wd.write(
        "main.tf",
        &env.config(&format!(
            "{SUBNET}{}",
            vm(name, "  num_cpus = 3\n  host = \"DC0_C0_H1\"")
        )),
    );
    let steps = [
        "CloneVM_Task",
        "ReconfigVM_Task",
        "RelocateVM_Task",
        "CustomizeVM_Task",
        "PowerOnVM_Task",
    ];
    for method in steps {
        proxy.drop_answer(method, 1);
    }
    let run = apply(&wd);
    assert!(run.success, "{}", run.all());
    for method in steps {
        assert_eq!(proxy.dropped(method), 1, "{method} was not dropped");
    }
    assert_converged(&env, &[name], "create");
    let made = inventory();
    let vm0 = made.vms.iter().find(|v| v.name == name).unwrap();
    assert_eq!(vm0.num_cpus, Some(3));
    wd.plan_no_changes();

    // In place: CPU count, and a move to another host, each answer lost.
    wd.write(
        "main.tf",
        &env.config(&format!(
            "{SUBNET}{}",
            vm(name, "  num_cpus = 2\n  host = \"DC0_C0_H2\"")
        )),
    );
    proxy.drop_answer("ReconfigVM_Task", 1);
    proxy.drop_answer("RelocateVM_Task", 1);
    let run = apply(&wd);
    assert!(run.success, "{}", run.all());
    assert_eq!(proxy.dropped("ReconfigVM_Task"), 2);
    assert_eq!(proxy.dropped("RelocateVM_Task"), 2);
    let inv = inventory();
    let vm1 = inv.vms.iter().find(|v| v.name == name).unwrap();
    assert_eq!(vm1.moref, vm0.moref, "the VM was replaced");
    assert_eq!(vm1.num_cpus, Some(2));
    let h2 = sim()
        .manifest()
        .hosts
        .iter()
        .find(|h| h.name == "DC0_C0_H2")
        .unwrap();
    assert_eq!(vm1.host.as_deref(), Some(h2.moref.as_str()));
    wd.plan_no_changes();

    // Powered off outside Terraform: the power-on's answer is lost.
    sim().control("power_off", &[("vm", name)]);
    proxy.drop_answer("PowerOnVM_Task", 1);
    let run = apply(&wd);
    assert!(run.success, "{}", run.all());
    assert_eq!(proxy.dropped("PowerOnVM_Task"), 2);
    assert_converged(&env, &[name], "power on");

    // Destroy: the power-off's and the destroy's answers are lost.
    proxy.drop_answer("PowerOffVM_Task", 1);
    proxy.drop_answer("Destroy_Task", 1);
    wd.destroy_ok();
    assert_eq!(proxy.dropped("PowerOffVM_Task"), 1);
    assert_eq!(proxy.dropped("Destroy_Task"), 1);
    assert!(!inventory().vms.iter().any(|v| v.name == name));
    assert!(vm_records(&env).is_empty(), "{:?}", vm_records(&env));
}

/// vCenter stays unreachable after a call went through: the create cannot find out what the
/// clone (or the customization) did, so the addresses stay pending (both of a dual-stack NIC);
/// the next apply removes the orphan, releases them and creates the VM. The same for a destroy:
/// the records stay until a destroy knows.
#[test]
fn an_outcome_that_cannot_be_found_out_keeps_the_addresses_until_it_is() {
    for (dual, method) in [
        (false, "CloneVM_Task"),
        (true, "CloneVM_Task"),
        (true, "CustomizeVM_Task"),
    ] {
        unknown_outcome(dual, method);
    }
}

fn unknown_outcome(dual: bool, method: &str) {
    let tf = terraform_115();
    let env = Env::new(sim(), "");
    let proxy = FaultProxy::https(&sim().info.url);
    let wd = workdir(&env, &tf, &proxy);
    let name = format!(
        "unknown-{}-{}",
        if dual { "dual" } else { "v4" },
        method.trim_end_matches("VM_Task").to_ascii_lowercase()
    );
    let name = name.as_str();
    let what = format!("{name} ({method})");
    let body = if dual {
        format!("{SUBNET}{SUBNET6}{}", dual_vm(name))
    } else {
        format!("{SUBNET}{}", vm(name, ""))
    };
    wd.write("main.tf", &env.config(&body));
    let unreachable = Duration::from_secs(5);
    proxy.drop_answer_then_refuse(method, 1, unreachable);
    let run = apply(&wd);
    assert!(!run.success, "{what}: {}", run.all());
    // After the clone, vCenter cannot say what the call did (or the partial VM cannot be
    // removed after the customization's rerun failed): either way nothing is released.
    let flat = run.flat();
    assert!(
        (flat.contains("The outcome of creating the VM is unknown")
            || (method == "CustomizeVM_Task"
                && flat.contains("Removing the partially created VM")))
            && flat.contains("stay held as pending"),
        "{what}: {}",
        run.all()
    );
    assert!(!flat.contains("panicked"), "{}", run.all());
    // The clone happened: its VM carries the ticket, and the ticket still holds the
    // addresses (both of a dual-stack NIC).
    let tickets = pending(&env);
    assert_eq!(tickets.len(), 1, "{what}: {tickets:?}");
    assert_eq!(
        tickets[0].addresses.len(),
        if dual { 2 } else { 1 },
        "{what}: {tickets:?}"
    );
    if dual {
        assert!(
            tickets[0].addresses.iter().any(|ip| ip.is_ipv6()),
            "{what}: {tickets:?}"
        );
    }
    let ticket = vsphereipam::pending::Ticket::parse(&tickets[0].owner_id).unwrap();
    assert!(
        inventory()
            .vms
            .iter()
            .any(|v| v.instance_uuid.as_deref() == Some(ticket.instance_uuid.as_str())),
        "{what}: the clone did not happen"
    );

    // Reachable again: the next apply sweeps the orphan and converges.
    wait_for(
        "vCenter reachable again",
        Duration::from_millis(200),
        || (!proxy.refusing()).then_some(()),
    );
    wd.apply_ok();
    assert!(pending(&env).is_empty(), "{what}");
    assert!(
        !inventory()
            .vms
            .iter()
            .any(|v| v.instance_uuid.as_deref() == Some(ticket.instance_uuid.as_str())),
        "{what}: the orphan survived"
    );
    assert_converged_dual(&env, &[name], dual, &what);
    wd.plan_no_changes();

    // The destroy went through but vCenter is gone before the provider learns it.
    let held = vm_records(&env);
    proxy.drop_answer_then_refuse("Destroy_Task", 1, unreachable);
    let run = wd.run(&["destroy", "-auto-approve", "-input=false", "-no-color"]);
    assert!(!run.success, "{what}: {}", run.all());
    assert!(
        run.flat().contains("Its addresses stay held"),
        "{what}: {}",
        run.all()
    );
    assert_eq!(vm_records(&env), held, "{what}: released without knowing");
    wait_for(
        "vCenter reachable again",
        Duration::from_millis(200),
        || (!proxy.refusing()).then_some(()),
    );
    wd.destroy_ok();
    assert!(!inventory().vms.iter().any(|v| v.name == name), "{what}");
    assert!(vm_records(&env).is_empty(), "{:?}", vm_records(&env));
}

/// A VM deleted outside Terraform: the plan shows its replacement and writes nothing; so does a
/// refresh; the apply replaces it without leaking the old address; with its configuration gone,
/// the plan shows the removal (still writing nothing) and the apply releases the address.
#[test]
fn a_plan_after_the_vm_vanished_writes_nothing_and_the_apply_converges() {
    for tf in versions() {
        let v = tf.version;
        let env = Env::new(sim(), "");
        let name = format!("vanished-{}", v.replace('.', ""));
        let wd = env.workdir(&tf, &format!("{SUBNET}{}", vm(&name, "")));
        wd.apply_ok();
        assert_converged(&env, &[&name], v);

        sim().control("destroy_vm", &[("vm", &name)]);
        let before = dump(&env);
        let plan = wd.run(&["plan", "-detailed-exitcode", "-no-color", "-input=false"]);
        assert_eq!(plan.code(), Some(2), "{v}: {}", plan.all());
        assert!(
            plan.stdout.contains("must be replaced"),
            "{v}: {}",
            plan.all()
        );
        assert_eq!(dump(&env), before, "{v}: the plan changed the store");
        let refresh = wd.run(&[
            "apply",
            "-refresh-only",
            "-auto-approve",
            "-no-color",
            "-input=false",
        ]);
        assert!(refresh.success, "{v}: {}", refresh.all());
        assert_eq!(dump(&env), before, "{v}: the refresh changed the store");

        wd.apply_ok();
        assert_converged(&env, &[&name], v);
        wd.plan_no_changes();

        // Gone again, and its configuration removed: the plan removes it, the apply releases.
        sim().control("destroy_vm", &[("vm", &name)]);
        wd.write("main.tf", &env.config(SUBNET));
        let before = dump(&env);
        let plan = wd.run(&["plan", "-detailed-exitcode", "-no-color", "-input=false"]);
        assert_eq!(plan.code(), Some(2), "{v}: {}", plan.all());
        assert!(plan.stdout.contains("destroyed"), "{v}: {}", plan.all());
        assert_eq!(dump(&env), before, "{v}: the plan changed the store");
        wd.apply_ok();
        assert!(vm_records(&env).is_empty(), "{v}: {:?}", vm_records(&env));
        wd.plan_no_changes();
    }
}

/// vCenter takes the inventory request and goes silent: the plan fails with a diagnostic once
/// the answer is overdue (here 2 s, `VSPHEREIPAM_ANSWER_TIMEOUT`), instead of waiting as long
/// as vCenter stays silent (the answer is held back far longer); once vCenter answers again,
/// the same plan goes through.
#[test]
fn a_silent_vcenter_fails_the_plan_instead_of_hanging_it() {
    let tf = terraform_115();
    let env = Env::new(sim(), "");
    let proxy = FaultProxy::https(&sim().info.url);
    let wd = workdir(&env, &tf, &proxy).env("VSPHEREIPAM_ANSWER_TIMEOUT", "2s");
    proxy.delay("RetrievePropertiesEx", Duration::from_secs(120));
    let run = wd.run(&["plan", "-input=false", "-no-color"]);
    assert!(!run.success, "{}", run.all());
    assert!(
        run.flat().contains("Cannot load the vCenter inventory"),
        "{}",
        run.all()
    );
    assert!(!run.flat().contains("panicked"), "{}", run.all());
    assert!(proxy.seen("RetrievePropertiesEx") > 0);
    proxy.clear();
    wd.plan_no_changes();
}
