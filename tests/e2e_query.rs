//! `terraform query` (Terraform 1.14+) on 1.15: the list resources `vsphereipam_vm_nic_fix`,
//! `vsphereipam_vm` and `vsphereipam_ipsubnet` with their filters; onboarding VMs made outside
//! Terraform with `-generate-config-out` (the generated import blocks and configuration apply,
//! record the addresses, and the next plan is empty); listing writes nothing to the store or to
//! vCenter. Terraform 1.0.3 and 1.11 ignore a `.tfquery.hcl` file. At the protocol level: 10,000
//! VMs are listed within the vCenter calls of one inventory load, and the limit is honoured.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::env::Env;
use common::plugin::{errors, proto, Plugin};
use common::sim::Sim;
use common::terraform::{versions, Terraform, Workdir};
use serde_json::{json, Value};
use vsphereipam::store::ops::AddressFilter;
use vsphereipam::store::{AddressRecord, OwnerKind};

const SUBNETS: &str = r#"
data "vsphereipam_wire" "app" {
  name = "pg-app"
}
data "vsphereipam_wire" "db" {
  name = "pg-db"
}
data "vsphereipam_wire" "web" {
  name = "pg-std-web"
}
resource "vsphereipam_ipsubnet" "app" {
  name    = "app"
  wire_id = data.vsphereipam_wire.app.id
  cidr    = "10.20.0.0/24"
  gateway = "10.20.0.1"
}
resource "vsphereipam_ipsubnet" "db" {
  name    = "db"
  wire_id = data.vsphereipam_wire.db.id
  cidr    = "10.30.0.0/24"
}
resource "vsphereipam_ipsubnet" "web" {
  name    = "web"
  wire_id = data.vsphereipam_wire.web.id
  cidr    = "10.50.0.0/24"
}
output "ids" {
  value = {
    app = vsphereipam_ipsubnet.app.id
    db  = vsphereipam_ipsubnet.db.id
    web = vsphereipam_ipsubnet.web.id
  }
}
output "web_wire" {
  value = data.vsphereipam_wire.web.id
}
"#;

fn tf(version: &str) -> Terraform {
    versions()
        .into_iter()
        .find(|t| t.version == version)
        .unwrap_or_else(|| panic!("Terraform {version} is installed"))
}

/// Every record of the store, for "nothing changed" comparisons.
fn all_records(env: &Env) -> Vec<AddressRecord> {
    let store = env.store();
    let mut out = Vec::new();
    for s in store.subnets(None).expect("subnets") {
        out.extend(
            store
                .subnet_addresses(&s.id, &AddressFilter::default())
                .expect("addresses"),
        );
    }
    out
}

fn sim_stats(sim: &Sim) -> common::sim::SimStats {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(sim.stats())
}

/// `terraform query -json`: list address → the results' display names and identities.
fn query(wd: &Workdir, extra: &[&str]) -> BTreeMap<String, Vec<(String, Value)>> {
    let mut args = vec!["query", "-json", "-no-color"];
    args.extend_from_slice(extra);
    let run = wd.run(&args);
    assert!(run.success, "terraform query failed:\n{}", run.all());
    let mut found: BTreeMap<String, Vec<(String, Value)>> = BTreeMap::new();
    for line in run.stdout.lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if msg["type"] != "list_resource_found" {
            continue;
        }
        let result = &msg["list_resource_found"];
        found
            .entry(result["address"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push((
                result["display_name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                result["identity"].clone(),
            ));
    }
    found
}

fn names(results: &[(String, Value)]) -> BTreeSet<String> {
    results.iter().map(|(n, _)| n.clone()).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn query_lists_and_onboards_vms_on_terraform_1_15() {
    let sim = Sim::start("test");
    let env = Env::new(&sim, "");
    let tf = tf("1.15");
    let wd = env.workdir(&tf, SUBNETS);
    wd.apply_ok();
    let outputs = wd.outputs();
    let ids = &outputs["ids"];
    let (app, db) = (ids["app"].as_str().unwrap(), ids["db"].as_str().unwrap());
    let web_wire = outputs["web_wire"].as_str().unwrap();

    wd.write(
        "lists.tfquery.hcl",
        &format!(
            r#"
list "vsphereipam_vm_nic_fix" "all" {{
  provider = vsphereipam
}}
list "vsphereipam_vm_nic_fix" "db" {{
  provider = vsphereipam
  config {{
    subnet_id = "{db}"
  }}
}}
list "vsphereipam_vm_nic_fix" "app_named" {{
  provider = vsphereipam
  config {{
    datacenter = "DC0"
    name_regex = "^vm-app-\\d$"
  }}
}}
list "vsphereipam_vm" "on_app" {{
  provider = vsphereipam
  config {{
    subnet_id  = "{app}"
    name_regex = "^vm-"
  }}
}}
list "vsphereipam_vm" "limited" {{
  provider = vsphereipam
  limit    = 2
}}
list "vsphereipam_ipsubnet" "web" {{
  provider = vsphereipam
  config {{
    wire_id = "{web_wire}"
  }}
}}
list "vsphereipam_ipsubnet" "not_web" {{
  provider = vsphereipam
  config {{
    name_regex = "^(app|db)$"
  }}
}}
"#
        ),
    );
    let records = all_records(&env);
    let before = sim_stats(&sim);
    let found = query(&wd, &[]);
    let after = sim_stats(&sim);
    // A read never writes: the store and vCenter are as they were.
    assert_eq!(all_records(&env), records, "query changed the store");
    let tasks: Vec<&String> = after
        .by_method
        .keys()
        .filter(|m| m.ends_with("_Task") && before.by_method.get(*m) != after.by_method.get(*m))
        .collect();
    assert!(tasks.is_empty(), "query changed vCenter: {tasks:?}");

    // vm-legacy's port group is a wire the app subnet detected (same VLAN).
    let unrecorded = set(&["vm-app-1", "vm-app-2", "vm-legacy", "vm-multi", "vm-web-1"]);
    assert_eq!(
        names(&found["list.vsphereipam_vm_nic_fix.all"]),
        unrecorded,
        "{found:#?}"
    );
    for (name, identity) in &found["list.vsphereipam_vm_nic_fix.all"] {
        let vm = sim.manifest().vms.iter().find(|v| v.name == *name).unwrap();
        assert_eq!(
            identity,
            &json!({"vm_uuid": vm.uuid.to_ascii_lowercase()}),
            "{name}"
        );
    }
    assert_eq!(
        names(&found["list.vsphereipam_vm_nic_fix.db"]),
        set(&["vm-multi"])
    );
    assert_eq!(
        names(&found["list.vsphereipam_vm_nic_fix.app_named"]),
        set(&["vm-app-1", "vm-app-2"])
    );
    // Every VM with a NIC on a wire of the app subnet (templates left out), Tools or not.
    assert_eq!(
        names(&found["list.vsphereipam_vm.on_app"]),
        set(&[
            "vm-app-1",
            "vm-app-2",
            "vm-app-noip",
            "vm-db-noip",
            "vm-legacy",
            "vm-multi"
        ]),
    );
    assert_eq!(found["list.vsphereipam_vm.limited"].len(), 2, "{found:#?}");
    assert_eq!(
        names(&found["list.vsphereipam_ipsubnet.web"]),
        set(&["web (10.50.0.0/24)"])
    );
    assert_eq!(
        names(&found["list.vsphereipam_ipsubnet.not_web"]),
        set(&["app (10.20.0.0/24)", "db (10.30.0.0/24)"])
    );

    // A bad pattern is refused before anything is listed, pointing at name_regex.
    wd.write(
        "lists.tfquery.hcl",
        "list \"vsphereipam_vm\" \"bad\" {\n  provider = vsphereipam\n  config {\n    name_regex = \"web-(\"\n  }\n}\n",
    );
    let run = wd.run(&["query", "-no-color"]);
    assert!(!run.success, "{}", run.all());
    common::terraform::expect_error(&run, "1.15", "Invalid name_regex", "name_regex = \"web-(\"");

    // The examples under examples/list-resources run as written.
    std::fs::remove_file(wd.path().join("lists.tfquery.hcl")).unwrap();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/list-resources");
    for name in [
        "vsphereipam_vm_nic_fix",
        "vsphereipam_vm",
        "vsphereipam_ipsubnet",
    ] {
        let text = std::fs::read_to_string(examples.join(name).join("list.tfquery.hcl")).unwrap();
        wd.write(&format!("{name}.tfquery.hcl"), &text);
    }
    let found = query(&wd, &[]);
    assert_eq!(
        names(&found["list.vsphereipam_vm_nic_fix.unrecorded"]),
        set(&["vm-app-1", "vm-app-2"])
    );
    assert!(found["list.vsphereipam_vm.dc0"].len() >= 8, "{found:#?}");
    assert_eq!(
        names(&found["list.vsphereipam_ipsubnet.app"]),
        set(&["app (10.20.0.0/24)"])
    );
    for name in [
        "vsphereipam_vm_nic_fix",
        "vsphereipam_vm",
        "vsphereipam_ipsubnet",
    ] {
        std::fs::remove_file(wd.path().join(format!("{name}.tfquery.hcl"))).unwrap();
    }

    // Onboarding: generated import blocks and configuration record the addresses.
    wd.write(
        "lists.tfquery.hcl",
        "list \"vsphereipam_vm_nic_fix\" \"onboard\" {\n  provider = vsphereipam\n}\n",
    );
    let run = wd.run(&["query", "-no-color", "-generate-config-out=onboard.tf"]);
    assert!(run.success, "{}", run.all());
    let generated = std::fs::read_to_string(wd.path().join("onboard.tf")).expect("onboard.tf");
    eprintln!("{generated}");
    assert_eq!(generated.matches("import {").count(), 5, "{generated}");
    assert!(generated.contains("vm_uuid"), "{generated}");
    assert_eq!(
        all_records(&env),
        records,
        "query -generate-config-out changed the store"
    );
    let applied = wd.apply_ok();
    assert!(
        applied
            .stdout
            .contains("5 imported, 0 added, 5 changed, 0 destroyed"),
        "{}",
        applied.stdout
    );
    let store = env.store();
    let fixed: BTreeSet<(String, String)> = store
        .subnets(None)
        .unwrap()
        .iter()
        .flat_map(|s| {
            store
                .subnet_addresses(&s.id, &AddressFilter::default())
                .unwrap()
        })
        .filter(|r| r.owner_kind == OwnerKind::NicFix)
        .map(|r| (r.ip.to_string(), r.mac.unwrap_or_default()))
        .collect();
    let ips: BTreeSet<&str> = fixed.iter().map(|(ip, _)| ip.as_str()).collect();
    assert_eq!(
        ips,
        BTreeSet::from([
            "10.20.0.21",
            "10.20.0.22",
            "10.20.0.23",
            "10.20.0.240",
            "10.30.0.41",
            "10.50.0.31"
        ]),
        "{fixed:?}"
    );
    wd.plan_no_changes();
    // Recorded now: nothing is left to onboard.
    wd.write(
        "lists.tfquery.hcl",
        "list \"vsphereipam_vm_nic_fix\" \"onboard\" {\n  provider = vsphereipam\n}\n",
    );
    let found = query(&wd, &[]);
    assert!(
        found
            .get("list.vsphereipam_vm_nic_fix.onboard")
            .is_none_or(Vec::is_empty),
        "{found:#?}"
    );
    // Generated resources do not reference the subnets: their records go first.
    let mut args = vec!["destroy", "-auto-approve", "-no-color"];
    let targets: Vec<String> = (0..5)
        .map(|i| format!("-target=vsphereipam_vm_nic_fix.onboard_{i}"))
        .collect();
    args.extend(targets.iter().map(String::as_str));
    let run = wd.run(&args);
    assert!(run.success, "{}", run.all());
    wd.destroy_ok();
}

/// Terraform 1.0.3 and 1.11 know no `terraform query`; a `.tfquery.hcl` beside the
/// configuration changes nothing for them.
#[test]
fn older_terraform_ignores_query_files() {
    let sim = Sim::start("test");
    for tf in versions().into_iter().filter(|t| t.version != "1.15") {
        let env = Env::new(&sim, "");
        let wd = env.workdir(&tf, SUBNETS);
        wd.write(
            "lists.tfquery.hcl",
            "list \"vsphereipam_vm_nic_fix\" \"onboard\" {\n  provider = vsphereipam\n}\n",
        );
        wd.apply_ok();
        wd.plan_no_changes();
        wd.destroy_ok();
    }
}

/// A provider configured against `sim` with the store `store`.
async fn configured(sim: &Sim, store: &str) -> Plugin {
    let mut plugin = Plugin::start(&[]).await;
    let config = json!({
        "vsphere_server": sim.server(),
        "user": sim.info.user,
        "password": sim.info.password,
        "allow_unverified_ssl": true,
        "api_transport": "soap",
        "store": store,
    });
    let resp = plugin
        .client
        .configure_provider(proto::configure_provider::Request {
            terraform_version: "1.15.5".into(),
            config: common::plugin::dynamic(&config),
            ..Default::default()
        })
        .await
        .expect("ConfigureProvider")
        .into_inner();
    assert!(
        errors(&resp.diagnostics).is_empty(),
        "{:?}",
        resp.diagnostics
    );
    plugin
}

async fn list(
    plugin: &mut Plugin,
    type_name: &str,
    config: Value,
    include: bool,
    limit: i64,
) -> Vec<proto::list_resource::Event> {
    let mut stream = plugin
        .client
        .list_resource(proto::list_resource::Request {
            type_name: type_name.into(),
            config: common::plugin::dynamic(&config),
            include_resource_object: include,
            limit,
        })
        .await
        .expect("ListResource")
        .into_inner();
    let mut events = Vec::new();
    while let Some(event) = stream.message().await.expect("list event") {
        events.push(event);
    }
    events
}

/// 10,000 VMs with unrecorded addresses are listed, objects included, within the vCenter
/// calls of one inventory load (a bulk PropertyCollector fetch, never a call per VM).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_10000_vms_costs_one_inventory_load() {
    let vms = 10_000;
    let sim = Sim::start_with("scale", &["-vms", &vms.to_string()]);
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite://{}", dir.path().join("ipam.db").display());
    // The scale scenario puts VM i on port group i % 5 with an address in 10.(100 + i % 5).0.0/16.
    let client = sim.client().await;
    let inventory = vsphereipam::vsphere::inventory::load_inventory(&client)
        .await
        .expect("inventory");
    let store = vsphereipam::store::Store::open(&store_url).unwrap();
    for (i, pg) in ["pg-app", "pg-db", "pg-std-web", "pg-k8s", "pg-std-mgmt"]
        .iter()
        .enumerate()
    {
        let moref = &inventory
            .portgroups
            .iter()
            .find(|p| p.name == *pg)
            .unwrap()
            .moref;
        let wire = format!("{}/{moref}", inventory.instance_uuid);
        let record = common::subnet_record(
            &inventory.instance_uuid,
            &wire,
            pg,
            &format!("10.{}.0.0/16", 100 + i),
        );
        store.create_subnet(&record, &[]).expect("subnet");
    }
    // The calls of one inventory load, on a session that has not loaded yet.
    let fresh = sim.client().await;
    sim.reset_stats().await;
    vsphereipam::vsphere::inventory::load_inventory(&fresh)
        .await
        .expect("inventory");
    let load_calls = sim.stats().await.total;

    let mut plugin = configured(&sim, &store_url).await;
    sim.reset_stats().await;
    let events = list(
        &mut plugin,
        "vsphereipam_vm_nic_fix",
        json!(null),
        true,
        20_000,
    )
    .await;
    let list_calls = sim.stats().await;
    let errors: Vec<_> = events.iter().flat_map(|e| errors(&e.diagnostic)).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        events.len(),
        vms,
        "one result per VM with an unrecorded address"
    );
    assert!(events.iter().all(|e| e.resource_object.is_some()));
    eprintln!(
        "listed {} VMs in {} vCenter calls ({:?}); one inventory load: {load_calls} calls",
        events.len(),
        list_calls.total,
        list_calls.by_method
    );
    assert!(
        list_calls.total <= load_calls,
        "listing cost {} calls, one inventory load {load_calls}: {:?}",
        list_calls.total,
        list_calls.by_method
    );
    // Terraform's limit ends the stream; the snapshot is shared, so no call either.
    sim.reset_stats().await;
    let events = list(&mut plugin, "vsphereipam_vm", json!(null), false, 7).await;
    assert_eq!(events.len(), 7);
    assert!(events.iter().all(|e| e.resource_object.is_none()));
    assert_eq!(sim.stats().await.total, 0);
}

/// IPv6: a VM whose only unrecorded address in a known subnet is IPv6 is found, and the
/// generated configuration records it; with an IPv4 subnet beside it, a dual-stack NIC's
/// result carries both addresses (`ip_address` and `ipv6_address`) and the apply records both.
#[test]
fn query_onboards_ipv6_and_dual_stack_nics() {
    let sim = Sim::start("test");
    let env = Env::new(&sim, "");
    let tf = tf("1.15");
    let app6 = r#"
data "vsphereipam_wire" "app" {
  name = "pg-app"
}
resource "vsphereipam_ipsubnet" "app6" {
  name    = "app6"
  wire_id = data.vsphereipam_wire.app.id
  cidr    = "2001:db8:0:20::/64"
}
"#;
    let wd = env.workdir(&tf, app6);
    wd.apply_ok();
    let list = "list \"vsphereipam_vm_nic_fix\" \"onboard\" {\n  provider = vsphereipam\n}\n";
    wd.write("lists.tfquery.hcl", list);
    // Only vm-app-1 reports an address of the IPv6 subnet (host vmk1's ::5 is no VM's).
    let found = query(&wd, &[]);
    assert_eq!(
        names(&found["list.vsphereipam_vm_nic_fix.onboard"]),
        set(&["vm-app-1"]),
        "{found:#?}"
    );
    let run = wd.run(&["query", "-no-color", "-generate-config-out=onboard.tf"]);
    assert!(run.success, "{}", run.all());
    let generated = std::fs::read_to_string(wd.path().join("onboard.tf")).expect("onboard.tf");
    assert!(
        generated.contains("\"2001:db8:0:20::21\""),
        "the NIC's IPv6 address as its ip_address: {generated}"
    );
    let applied = wd.apply_ok();
    assert!(
        applied
            .stdout
            .contains("1 imported, 0 added, 1 changed, 0 destroyed"),
        "{}",
        applied.stdout
    );
    let app1 = sim
        .manifest()
        .vms
        .iter()
        .find(|v| v.name == "vm-app-1")
        .unwrap()
        .clone();
    let fixed = |env: &Env| -> BTreeSet<(String, String)> {
        all_records(env)
            .into_iter()
            .filter(|r| r.owner_kind == OwnerKind::NicFix)
            .map(|r| (r.ip.to_string(), r.mac.unwrap_or_default()))
            .collect()
    };
    let mac = app1.nics[0].mac.clone();
    assert_eq!(
        fixed(&env),
        BTreeSet::from([("2001:db8:0:20::21".to_string(), mac.clone())])
    );
    wd.plan_no_changes();
    let run = wd.run(&[
        "destroy",
        "-auto-approve",
        "-no-color",
        "-target=vsphereipam_vm_nic_fix.onboard_0",
    ]);
    assert!(run.success, "{}", run.all());
    std::fs::remove_file(wd.path().join("onboard.tf")).unwrap();

    // With the IPv4 subnet too, vm-app-1's NIC is dual-stack: one block, both addresses.
    let app4 = format!(
        "{app6}
resource \"vsphereipam_ipsubnet\" \"app\" {{
  name    = \"app\"
  wire_id = data.vsphereipam_wire.app.id
  cidr    = \"10.20.0.0/24\"
}}
"
    );
    wd.write("main.tf", &env.config(&app4));
    wd.apply_ok();
    wd.write(
        "lists.tfquery.hcl",
        "list \"vsphereipam_vm_nic_fix\" \"onboard\" {\n  provider = vsphereipam\n  config {\n    name_regex = \"^vm-app-1$\"\n  }\n}\n",
    );
    let run = wd.run(&["query", "-no-color", "-generate-config-out=onboard.tf"]);
    assert!(run.success, "{}", run.all());
    let generated = std::fs::read_to_string(wd.path().join("onboard.tf")).expect("onboard.tf");
    eprintln!("{generated}");
    assert_eq!(generated.matches("nic {").count(), 1, "{generated}");
    let flat: String = generated.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("ip_address = \"10.20.0.21\"")
            && flat.contains("ipv6_address = \"2001:db8:0:20::21\""),
        "{generated}"
    );
    let applied = wd.apply_ok();
    assert!(
        applied
            .stdout
            .contains("1 imported, 0 added, 1 changed, 0 destroyed"),
        "{}",
        applied.stdout
    );
    assert_eq!(
        fixed(&env),
        BTreeSet::from([
            ("10.20.0.21".to_string(), mac.clone()),
            ("2001:db8:0:20::21".to_string(), mac)
        ])
    );
    wd.plan_no_changes();
    let run = wd.run(&[
        "destroy",
        "-auto-approve",
        "-no-color",
        "-target=vsphereipam_vm_nic_fix.onboard_0",
    ]);
    assert!(run.success, "{}", run.all());
    wd.destroy_ok();
}

/// The `vsphereipam_vm` list shows a NIC's addresses as an import adopts them from VMware
/// Tools (`vm_adopt::sole_reported_ipv4`, `reported_ipv6`): the NIC's one IPv4 address with
/// its IPv6 one beside it; without a single IPv4 address, the IPv6 one as `ip_address` (as the
/// nic_fix list does); an IPv4 address in no subnet of the store lists none (an import refuses
/// it). vm-app-1's NIC reports, in turn: its scenario addresses with only app6 in the store;
/// an IPv6 address only; then, with app4 too, two IPv4 addresses (the list took the first in
/// a subnet, which an import does not), and one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vm_list_shows_a_nics_addresses_as_an_import_adopts_them() {
    let sim = Sim::start("test");
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite://{}", dir.path().join("ipam.db").display());
    let client = sim.client().await;
    let inventory = vsphereipam::vsphere::inventory::load_inventory(&client)
        .await
        .expect("inventory");
    let moref = &inventory
        .portgroups
        .iter()
        .find(|p| p.name == "pg-app")
        .unwrap()
        .moref;
    let mac = inventory
        .vms
        .iter()
        .find(|vm| vm.name == "vm-app-1")
        .expect("vm-app-1")
        .nics[0]
        .mac
        .clone();
    let wire = format!("{}/{moref}", inventory.instance_uuid);
    let store = vsphereipam::store::Store::open(&store_url).unwrap();
    let record = common::subnet_record(
        &inventory.instance_uuid,
        &wire,
        "app6",
        "2001:db8:0:20::/64",
    );
    store.create_subnet(&record, &[]).expect("subnet");

    // (what Tools report, whether app4 is added first, the NIC's ip_address, subnet_id,
    // ipv6_address, ipv6_subnet_id)
    type Case<'a> = (Option<&'a str>, bool, [Option<&'a str>; 4]);
    let cases: [Case; 4] = [
        // 10.20.0.21 (in no subnet) and 2001:db8:0:20::21.
        (None, false, [None, None, None, None]),
        (
            Some("2001:db8:0:20::21"),
            false,
            [Some("2001:db8:0:20::21"), Some("app6"), None, None],
        ),
        (
            Some("10.20.0.21,10.20.0.99,2001:db8:0:20::21"),
            true,
            [Some("2001:db8:0:20::21"), Some("app6"), None, None],
        ),
        (
            Some("10.20.0.21,2001:db8:0:20::21"),
            false,
            [
                Some("10.20.0.21"),
                Some("app4"),
                Some("2001:db8:0:20::21"),
                Some("app6"),
            ],
        ),
    ];
    for (ips, add_app4, want) in cases {
        if let Some(ips) = ips {
            tokio::task::block_in_place(|| {
                sim.control(
                    "guest_ips",
                    &[("vm", "vm-app-1"), ("mac", &mac), ("ips", ips)],
                )
            });
        }
        if add_app4 {
            let app4 =
                common::subnet_record(&inventory.instance_uuid, &wire, "app4", "10.20.0.0/24");
            store.create_subnet(&app4, &[]).expect("subnet");
        }
        let mut plugin = configured(&sim, &store_url).await;
        let events = list(
            &mut plugin,
            "vsphereipam_vm",
            json!({"name_regex": "^vm-app-1$", "datacenter": null, "subnet_id": null}),
            true,
            10,
        )
        .await;
        let errors: Vec<_> = events.iter().flat_map(|e| errors(&e.diagnostic)).collect();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(events.len(), 1, "{events:?}");
        let vm = common::plugin::decode(&events[0].resource_object);
        let nic = &vm["network_interface"][0];
        let got: Vec<Option<&str>> = ["ip_address", "subnet_id", "ipv6_address", "ipv6_subnet_id"]
            .iter()
            .map(|k| nic[*k].as_str())
            .collect();
        assert_eq!(got, want, "{ips:?}: {vm:#}");
    }
}
