//! End to end on Terraform 1.15: resource identity (Terraform 1.12+). Every resource stores
//! the identity CONTRACT.md names (`vm_uuid`; `id`; `subnet_id` + `wire_id`; `subnet_id` +
//! `ip_address`), and `import { to = ..., identity = { ... } }` blocks bring the same objects
//! back into a state that forgot them, with nothing to change after. Import by id on every
//! Terraform version stays covered by the other suites (`e2e_customization`, `e2e_nic_fix`).

mod common;

use std::collections::BTreeMap;

use common::env::Env;
use common::sim::Sim;
use common::terraform::{versions, Workdir};
use serde_json::{json, Value};

const BODY: &str = r#"
data "vsphereipam_wire" "app" {
  name = "pg-app"
}
data "vsphereipam_wire" "dc1" {
  name = "pg-dc1"
}
data "vsphereipam_wire" "web" {
  name = "pg-std-web"
}
resource "vsphereipam_ipsubnet" "app" {
  name     = "app"
  wire_id  = data.vsphereipam_wire.app.id
  cidr     = "10.20.0.0/24"
  start_ip = "10.20.0.100"
}
resource "vsphereipam_ipsubnet" "spread" {
  name    = "spread"
  wire_id = data.vsphereipam_wire.dc1.id
  cidr    = "10.70.0.0/24"
}
resource "vsphereipam_subnet_additional_wire" "spread_web" {
  subnet_id = vsphereipam_ipsubnet.spread.id
  wire_id   = data.vsphereipam_wire.web.id
}
resource "vsphereipam_ip_address" "vip" {
  subnet_id   = vsphereipam_ipsubnet.app.id
  description = "vip"
}
resource "vsphereipam_vm" "web" {
  name       = "ident-web"
  datacenter = "DC0"
  template   = "tmpl-linux"
  network_interface {
    subnet_id = vsphereipam_ipsubnet.app.id
  }
}
"#;

/// Each managed resource's address → (its state's attributes, its stored identity).
fn resources(wd: &Workdir) -> BTreeMap<String, (Value, Value)> {
    let raw = std::fs::read_to_string(wd.path().join("terraform.tfstate")).expect("a state");
    let state: Value = serde_json::from_str(&raw).expect("state JSON");
    state["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter(|r| r["mode"] == "managed")
        .map(|r| {
            let instance = &r["instances"][0];
            (
                format!(
                    "{}.{}",
                    r["type"].as_str().unwrap(),
                    r["name"].as_str().unwrap()
                ),
                (instance["attributes"].clone(), instance["identity"].clone()),
            )
        })
        .collect()
}

fn hcl_object(v: &Value) -> String {
    v.as_object()
        .expect("an identity object")
        .iter()
        .map(|(k, v)| format!("    {k} = {v}\n"))
        .collect()
}

#[test]
fn identities_are_stored_and_import_blocks_take_them() {
    let sim = Sim::start("test");
    let tf = versions()
        .into_iter()
        .find(|t| t.version == "1.15")
        .expect("Terraform 1.15");
    let env = Env::new(&sim, "");
    let wd = env.workdir(&tf, BODY);
    wd.apply_ok();
    let before = resources(&wd);
    let (subnet, subnet_id) = &before["vsphereipam_ipsubnet.app"];
    assert_eq!(*subnet_id, json!({"id": subnet["id"]}), "{before:?}");
    let (spread, _) = &before["vsphereipam_ipsubnet.spread"];
    let (wire, wire_identity) = &before["vsphereipam_subnet_additional_wire.spread_web"];
    assert_eq!(
        *wire_identity,
        json!({"subnet_id": spread["id"], "wire_id": wire["wire_id"]})
    );
    let (vip, vip_identity) = &before["vsphereipam_ip_address.vip"];
    assert_eq!(
        *vip_identity,
        json!({"subnet_id": subnet["id"], "ip_address": vip["ip_address"]})
    );
    let (vm, vm_identity) = &before["vsphereipam_vm.web"];
    let uuid = vm["id"].as_str().expect("the VM's UUID");
    assert_eq!(*vm_identity, json!({"vm_uuid": uuid}));
    assert_eq!(
        uuid,
        uuid.to_ascii_lowercase(),
        "the identity is the canonical UUID"
    );
    wd.plan_no_changes();

    // The state forgets everything; import blocks name each object by its identity alone.
    for address in before.keys() {
        let rm = wd.run(&["state", "rm", "-no-color", address]);
        assert!(rm.success, "{}", rm.all());
    }
    let imports: String = before
        .iter()
        .map(|(address, (_, identity))| {
            format!(
                "import {{\n  to = {address}\n  identity = {{\n{}  }}\n}}\n",
                hcl_object(identity)
            )
        })
        .collect();
    wd.write("main.tf", &env.config(&format!("{BODY}\n{imports}")));
    // The imports run inside the plan, which writes nothing to the store (the VM's records
    // stayed with `state rm`, and its re-import claims them without writing).
    let listing = env.store_listing();
    let plan = wd.run(&["plan", "-no-color", "-input=false"]);
    assert!(plan.success, "{}", plan.all());
    assert_eq!(env.store_listing(), listing, "the plan wrote");
    assert!(
        plan.stdout.contains("5 to import, 0 to add")
            && plan.stdout.contains("0 to destroy")
            && !plan.stdout.contains("must be replaced"),
        "{}",
        plan.all()
    );
    wd.apply_ok();
    wd.plan_no_changes();
    let after = resources(&wd);
    for (address, (attributes, identity)) in &before {
        assert_eq!(&after[address].1, identity, "{address}");
        assert_eq!(after[address].0["id"], attributes["id"], "{address}");
    }

    // An identity naming nothing gets the resource's own diagnostic.
    let missing = "import {\n  to = vsphereipam_vm.ghost\n  identity = {\n    vm_uuid = \"42000000-0000-0000-0000-00000000dead\"\n  }\n}\n\
                   resource \"vsphereipam_vm\" \"ghost\" {\n  name = \"ghost\"\n  datacenter = \"DC0\"\n  template = \"tmpl-linux\"\n  network_interface {\n    subnet_id = vsphereipam_ipsubnet.app.id\n  }\n}\n";
    wd.write("main.tf", &env.config(&format!("{BODY}\n{missing}")));
    let run = wd.plan_err();
    assert!(run.flat().contains("VM not found"), "{}", run.all());
    assert!(
        run.flat().contains("42000000-0000-0000-0000-00000000dead"),
        "{}",
        run.all()
    );
}
