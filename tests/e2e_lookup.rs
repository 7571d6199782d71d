//! End to end: the data sources `vsphereipam_ipsubnet` (one subnet by id, name, cidr or wire,
//! with its counts) and `vsphereipam_ip_addresses` (a subnet's records, filtered), on Terraform
//! 1.15 and 1.0.3, with the embedded store and with PostgreSQL. A plan that reads them leaves
//! the store as it was.

mod common;

use common::env::Env;
use common::sim::Sim;
use common::terraform::{expect_error, versions, Terraform};
use serde_json::{json, Value};
use vsphereipam::store::Store;

const PREAMBLE: &str = r#"
data "vsphereipam_wire" "app" {
  name = "pg-app"
}
"#;

/// The subnet and a VIP the lookups read: .20-.29, .28-.29 reserved; VMware Tools of
/// vm-app-1, vm-app-2 and vm-multi report .21, .22 and .23.
const RESOURCES: &str = r#"
resource "vsphereipam_ipsubnet" "app" {
  name            = "app"
  wire_id         = data.vsphereipam_wire.app.id
  cidr            = "10.20.0.0/24"
  start_ip        = "10.20.0.20"
  end_ip          = "10.20.0.29"
  gateway         = "10.20.0.1"
  reserved_ranges = ["10.20.0.28-10.20.0.29"]
}
resource "vsphereipam_ip_address" "vip" {
  subnet_id   = vsphereipam_ipsubnet.app.id
  description = "app VIP"
}
"#;

fn lookups(vm_app_1: &str) -> String {
    format!(
        r#"
data "vsphereipam_ipsubnet" "by_name" {{
  name = "app"
}}
data "vsphereipam_ipsubnet" "by_network" {{
  cidr    = "10.20.0.0/24"
  wire_id = data.vsphereipam_wire.app.id
}}
data "vsphereipam_ip_addresses" "all" {{
  subnet_id = data.vsphereipam_ipsubnet.by_name.id
}}
data "vsphereipam_ip_addresses" "vips" {{
  subnet_id  = data.vsphereipam_ipsubnet.by_name.id
  owner_kind = "vsphereipam_ip_address"
}}
data "vsphereipam_ip_addresses" "vm_app_1" {{
  subnet_id = data.vsphereipam_ipsubnet.by_name.id
  vm_id     = "{vm_app_1}"
}}
output "subnet" {{
  value = data.vsphereipam_ipsubnet.by_name
}}
output "same" {{
  value = data.vsphereipam_ipsubnet.by_network.id == vsphereipam_ipsubnet.app.id
}}
output "all" {{
  value = data.vsphereipam_ip_addresses.all.addresses
}}
output "vips" {{
  value = data.vsphereipam_ip_addresses.vips.addresses
}}
output "vm_app_1" {{
  value = data.vsphereipam_ip_addresses.vm_app_1.addresses
}}
"#
    )
}

/// Every record of the store, for "a plan wrote nothing".
fn records(store: &Store) -> Vec<String> {
    let mut all = Vec::new();
    for s in store.subnets(None).unwrap() {
        for a in store.addresses(&s.id).unwrap() {
            all.push(format!("{a:?}"));
        }
        all.push(format!("{s:?}"));
    }
    all
}

fn run_lookups(sim: &Sim, tf: &Terraform, store: Option<&str>) {
    let v = tf.version;
    let env = match store {
        Some(url) => Env::with_store(sim, PREAMBLE, url),
        None => Env::new(sim, PREAMBLE),
    };
    let vm = |name: &str| {
        sim.manifest()
            .vms
            .iter()
            .find(|m| m.name == name)
            .unwrap()
            .uuid
            .clone()
    };
    let wd = env.workdir(tf, RESOURCES);
    wd.apply_ok();
    let body = format!("{RESOURCES}{}", lookups(&vm("vm-app-1")));
    wd.write("main.tf", &env.config(&body));
    wd.apply_ok();
    let outs = wd.outputs();

    let subnet = &outs["subnet"];
    for (key, want) in [
        ("name", json!("app")),
        ("cidr", json!("10.20.0.0/24")),
        ("start_ip", json!("10.20.0.20")),
        ("end_ip", json!("10.20.0.29")),
        ("gateway", json!("10.20.0.1")),
        ("netmask", json!("255.255.255.0")),
        ("prefix_length", json!(24)),
        ("alloc_policy", json!("stepdown")),
        ("reserved_ranges", json!(["10.20.0.28-10.20.0.29"])),
        ("wire_id", json!(env.wire_id("pg-app"))),
        // Counts: 10 addresses, 2 reserved, the VIP held, 3 reported by Tools, 4 free.
        ("size", json!("10")),
        ("reserved", json!("2")),
        ("held", json!(1)),
        ("observed", json!(3)),
        ("free", json!("4")),
    ] {
        assert_eq!(subnet[key], want, "{v}: {key} in {subnet}");
    }
    assert_eq!(outs["same"], json!(true), "{v}");

    let all = outs["all"].as_array().unwrap();
    let ips: Vec<&str> = all
        .iter()
        .map(|a| a["ip_address"].as_str().unwrap())
        .collect();
    assert_eq!(
        ips,
        ["10.20.0.21", "10.20.0.22", "10.20.0.23", "10.20.0.27"],
        "{v}"
    );
    for (a, name) in all.iter().zip(["vm-app-1", "vm-app-2", "vm-multi"]) {
        assert_eq!(a["owner_kind"], "observed", "{v}: {a}");
        assert_eq!(a["vm_id"], json!(vm(name)), "{v}: {a}");
        assert_eq!(a["vm_name"], name, "{v}: {a}");
    }
    let vip = &all[3];
    assert_eq!(vip["owner_kind"], "vsphereipam_ip_address", "{v}");
    assert_eq!(vip["description"], "app VIP", "{v}");
    assert_eq!(vip["vm_id"], Value::Null, "{v}");
    assert_eq!(vip["vm_name"], Value::Null, "{v}");
    assert_eq!(outs["vips"], json!([vip]), "{v}");
    let only = outs["vm_app_1"].as_array().unwrap();
    assert_eq!(only.len(), 1, "{v}: {only:?}");
    assert_eq!(only[0]["ip_address"], "10.20.0.21", "{v}");

    // Reads never write: a plan of the lookups leaves every record as it was.
    let before = records(&env.store());
    wd.plan_no_changes();
    assert_eq!(records(&env.store()), before, "{v}");

    // A second subnet of the same name (the lookups of this apply's plan still saw one): from
    // then on the name alone no longer picks one.
    let twin = format!(
        "{body}{}",
        r#"
resource "vsphereipam_ipsubnet" "twin" {
  name    = "app"
  wire_id = data.vsphereipam_wire.app.id
  cidr    = "10.21.0.0/24"
}
"#
    );
    wd.write("main.tf", &env.config(&twin));
    wd.apply_ok();
    let run = wd.run(&["plan", "-input=false", "-no-color"]);
    assert!(!run.success, "{v}");
    expect_error(&run, v, "Several subnets match", "name = \"app\"");
    assert!(
        run.flat().contains("10.20.0.0/24") && run.flat().contains("10.21.0.0/24"),
        "{v}: {}",
        run.flat()
    );

    // Bad input is found at plan time, on the attribute at fault.
    for (config, summary, snippet) in [
        (
            "data \"vsphereipam_ipsubnet\" \"x\" {\n  name = \"nope\"\n}\n",
            "Subnet not found",
            "name = \"nope\"",
        ),
        (
            "data \"vsphereipam_ipsubnet\" \"x\" {\n}\n",
            "No subnet named",
            "data \"vsphereipam_ipsubnet\" \"x\"",
        ),
        (
            "data \"vsphereipam_ipsubnet\" \"x\" {\n  cidr = \"10.20.0/24\"\n}\n",
            "Invalid cidr",
            "cidr = \"10.20.0/24\"",
        ),
        (
            "data \"vsphereipam_ip_addresses\" \"x\" {\n  subnet_id = \"nope\"\n  owner_kind = \"vm\"\n}\n",
            "Unknown owner_kind",
            "owner_kind = \"vm\"",
        ),
        (
            "data \"vsphereipam_ip_addresses\" \"x\" {\n  subnet_id = \"nope\"\n}\n",
            "Subnet not found",
            "subnet_id = \"nope\"",
        ),
    ] {
        let wd = env.workdir(tf, config);
        wd.init();
        let run = wd.run(&["plan", "-input=false", "-no-color"]);
        assert!(!run.success, "{v}: {config}");
        expect_error(&run, v, summary, snippet);
    }
}

#[test]
fn subnet_and_address_lookups_on_the_embedded_store() {
    let sim = Sim::start("test");
    for tf in versions() {
        run_lookups(&sim, &tf, None);
    }
}

#[test]
fn subnet_and_address_lookups_on_postgresql() {
    let sim = Sim::start("test");
    for tf in versions() {
        let url = common::pg::fresh_database();
        run_lookups(&sim, &tf, Some(&url));
    }
}
