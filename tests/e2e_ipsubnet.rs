//! End to end: `vsphereipam_ipsubnet` and `vsphereipam_subnet_additional_wire` through
//! Terraform 1.15 and 1.0.3 against the simulator's `test` scenario, with the embedded store.

mod common;

use common::env::Env;
use common::sim::Sim;
use common::terraform::{expect_error, versions};
use vsphereipam::ipam::ranges::RangeSet;
use vsphereipam::store::ops::AllocRequest;
use vsphereipam::store::OwnerKind;

const WIRES: &str = r#"
data "vsphereipam_wire" "app" {
  name = "pg-app"
}
data "vsphereipam_wire" "db" {
  name = "pg-db"
}
data "vsphereipam_wire" "web" {
  name = "pg-std-web"
}
data "vsphereipam_wire" "partial" {
  name = "pg-std-partial"
}
"#;

const APP_SUBNET: &str = r#"
resource "vsphereipam_ipsubnet" "app" {
  name        = "app"
  wire_id     = data.vsphereipam_wire.app.id
  cidr        = "10.20.0.0/24"
  gateway     = "10.20.0.1"
  dns_servers = ["10.20.0.2"]
  reserved_ranges = ["10.20.0.100-10.20.0.119", "10.20.0.200"]
}
output "app" {
  value = vsphereipam_ipsubnet.app
}
"#;

#[test]
fn subnet_lifecycle_detection_update_replace_import() {
    let sim = Sim::start("test");
    for tf in versions() {
        let env = Env::new(&sim, WIRES);
        let wd = env.workdir(&tf, APP_SUBNET);
        wd.apply_ok();
        let app = &wd.outputs()["app"];
        assert_eq!(app["netmask"], "255.255.255.0", "{}", tf.version);
        assert_eq!(app["prefix_length"], 24);
        assert_eq!(app["start_ip"], "10.20.0.1");
        assert_eq!(app["end_ip"], "10.20.0.254");
        assert_eq!(app["alloc_policy"], "stepdown");
        // vm-legacy on pg-std-partial reports 10.20.0.240: its wire is detected; pg-app itself is not listed.
        assert_eq!(
            app["additional_wire_ids"],
            serde_json::json!([env.wire_id("pg-std-partial")]),
            "{}",
            tf.version
        );
        wd.plan_no_changes();
        let id = app["id"].as_str().unwrap().to_string();
        let stored = env
            .store()
            .subnet(&id)
            .unwrap()
            .expect("subnet in the store");
        assert_eq!(stored.subnet.spec.reserved.len(), 2);

        // In place: name, dns, range.
        wd.write(
            "main.tf",
            &std::fs::read_to_string(wd.path().join("main.tf"))
                .unwrap()
                .replace(
                    "name        = \"app\"",
                    "name        = \"app-renamed\"\n  start_ip    = \"10.20.0.10\"",
                ),
        );
        let plan = wd.run(&["plan", "-no-color", "-input=false"]);
        assert!(
            plan.stdout.contains("updated in-place"),
            "{}: {}",
            tf.version,
            plan.all()
        );
        wd.apply_ok();
        assert_eq!(
            wd.outputs()["app"]["id"],
            id.as_str(),
            "{}: in-place keeps the id",
            tf.version
        );
        assert_eq!(
            env.store().subnet(&id).unwrap().unwrap().subnet.name,
            "app-renamed"
        );

        // A held address in the way of a narrower range: refused at plan time with the list.
        let holder = env
            .store()
            .allocate(
                &AllocRequest {
                    subnet_id: id.clone(),
                    ip: Some("10.20.0.20".parse().unwrap()),
                    owner_kind: OwnerKind::NicFix,
                    owner_id: "4213a6f2-test-vm".into(),
                    vm_uuid: Some("4213a6f2-test-vm".into()),
                    mac: Some("00:50:56:aa:bb:cc".into()),
                    wire_id: None,
                    pending: false,
                    description: None,
                },
                &RangeSet::new(),
            )
            .unwrap();
        let main = std::fs::read_to_string(wd.path().join("main.tf")).unwrap();
        wd.write("main.tf", &main.replace("10.20.0.10\"", "10.20.0.30\""));
        let run = wd.plan_err();
        expect_error(
            &run,
            tf.version,
            "Held addresses would leave the allocatable range",
            "start_ip    = \"10.20.0.30\"",
        );
        assert!(
            run.all()
                .contains("10.20.0.20 (vsphereipam_vm_nic_fix 4213a6f2-test-vm"),
            "{}",
            run.all()
        );
        wd.write("main.tf", &main);

        // Destroy is refused while a resource owns an address, and names it.
        let run = wd.run(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
        assert!(!run.success);
        expect_error(&run, tf.version, "Subnet still in use", "4213a6f2-test-vm");
        env.store()
            .release_owner(OwnerKind::NicFix, &holder.owner_id)
            .unwrap();

        // Changing cidr replaces.
        wd.write("main.tf", &main.replace("10.20.0.0/24", "10.20.0.0/23"));
        let plan = wd.run(&["plan", "-no-color", "-input=false"]);
        assert!(
            plan.stdout.contains("must be replaced") && plan.stdout.contains("forces replacement"),
            "{}: {}",
            tf.version,
            plan.all()
        );
        wd.write("main.tf", &main);

        // Import into a fresh state.
        let fresh = env.workdir(
            &tf,
            APP_SUBNET
                .replace(
                    "\"app\"\n",
                    "\"app-renamed\"\n  start_ip    = \"10.20.0.10\"\n",
                )
                .as_str(),
        );
        fresh.init();
        let run = fresh.run(&[
            "import",
            "-no-color",
            "-input=false",
            "vsphereipam_ipsubnet.app",
            &id,
        ]);
        assert!(run.success, "{}: import failed:\n{}", tf.version, run.all());
        // Outputs are not imported: the apply writes them and must change no resource.
        let applied = fresh.apply_ok();
        assert!(
            applied.stdout.contains("0 added, 0 changed, 0 destroyed"),
            "{}: import left a diff:\n{}",
            tf.version,
            applied.all()
        );
        fresh.plan_no_changes();

        // Destroy releases the subnet from the store.
        let run = wd.run(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
        assert!(run.success, "{}: {}", tf.version, run.all());
        assert!(env.store().subnet(&id).unwrap().is_none());
    }
}

#[test]
fn every_invalid_input_names_its_attribute() {
    let sim = Sim::start("test");
    // Each resource breaks one rule; validation reports them all in one run.
    let bad = [
        (
            "cidr_not_network",
            r#"cidr = "10.20.0.5/24""#,
            "cidr is not a network address",
        ),
        (
            "cidr_prefix",
            r#"cidr = "10.20.0.0/31""#,
            "Unsupported prefix length",
        ),
        ("cidr_garbage", r#"cidr = "10.20.0.0""#, "Invalid cidr"),
    ];
    let with_cidr = [
        (
            "start_after_end",
            r#"start_ip = "10.41.0.50"
  end_ip = "10.41.0.40""#,
            "end_ip before start_ip",
            r#"end_ip = "10.41.0.40""#,
        ),
        (
            "start_outside",
            r#"start_ip = "10.99.0.1""#,
            "start_ip outside cidr",
            r#"start_ip = "10.99.0.1""#,
        ),
        (
            "end_broadcast",
            r#"end_ip = "10.41.0.255""#,
            "end_ip is the broadcast address",
            r#"end_ip = "10.41.0.255""#,
        ),
        (
            "gw_network",
            r#"gateway = "10.41.0.0""#,
            "gateway is the network address",
            r#"gateway = "10.41.0.0""#,
        ),
        (
            "reserved_outside",
            r#"start_ip = "10.41.0.10"
  reserved_ranges = ["10.41.0.20", "10.41.0.2-10.41.0.12"]"#,
            "Reserved range outside the allocatable range",
            r#"reserved_ranges = ["10.41.0.20", "10.41.0.2-10.41.0.12"]"#,
        ),
        (
            "vlan",
            r#"vlan_id = 5000"#,
            "Invalid vlan_id",
            "vlan_id = 5000",
        ),
        (
            "policy",
            r#"alloc_policy = "lowest""#,
            "Invalid alloc_policy",
            r#"alloc_policy = "lowest""#,
        ),
        (
            "dns",
            r#"dns_servers = ["10.41.0.2", "dns.example"]"#,
            "Invalid DNS server",
            r#"dns_servers = ["10.41.0.2", "dns.example"]"#,
        ),
    ];
    let mut body = String::new();
    for (name, attr, _) in bad {
        body.push_str(&format!("resource \"vsphereipam_ipsubnet\" \"{name}\" {{\n  name = \"{name}\"\n  wire_id = data.vsphereipam_wire.db.id\n  {attr}\n}}\n"));
    }
    for (name, attr, _, _) in with_cidr {
        body.push_str(&format!("resource \"vsphereipam_ipsubnet\" \"{name}\" {{\n  name = \"{name}\"\n  wire_id = data.vsphereipam_wire.db.id\n  cidr = \"10.41.0.0/24\"\n  {attr}\n}}\n"));
    }
    for tf in versions() {
        let env = Env::new(&sim, WIRES);
        let run = env.workdir(&tf, &body).plan_err();
        for (_, attr, summary) in bad {
            expect_error(&run, tf.version, summary, attr);
        }
        for (_, _, summary, snippet) in with_cidr {
            expect_error(&run, tf.version, summary, snippet);
        }
        assert!(
            env.store().subnets(None).unwrap().is_empty(),
            "nothing half done"
        );
    }
}

#[test]
fn plan_time_checks_against_vcenter_and_the_store() {
    let sim = Sim::start("test");
    for tf in versions() {
        let env = Env::new(&sim, WIRES);
        // An unknown wire.
        let wd = env.workdir(
            &tf,
            r#"resource "vsphereipam_ipsubnet" "x" {
  name    = "x"
  wire_id = "not-a-vcenter/dvportgroup-999"
  cidr    = "10.42.0.0/24"
}"#,
        );
        expect_error(
            &wd.plan_err(),
            tf.version,
            "Wire not found",
            r#"wire_id = "not-a-vcenter/dvportgroup-999""#,
        );

        // Overlap with a subnet another configuration (another state) created.
        let first = env.workdir(&tf, APP_SUBNET);
        first.apply_ok();
        let wd = env.workdir(
            &tf,
            r#"resource "vsphereipam_ipsubnet" "other" {
  name     = "other"
  wire_id  = data.vsphereipam_wire.db.id
  cidr     = "10.20.0.0/16"
  start_ip = "10.20.0.200"
  end_ip   = "10.20.3.0"
}"#,
        );
        let run = wd.plan_err();
        expect_error(
            &run,
            tf.version,
            "Subnet range overlaps another subnet",
            r#"start_ip = "10.20.0.200""#,
        );
        assert!(
            run.all().contains("subnet \"app\""),
            "{}: the other subnet is named:\n{}",
            tf.version,
            run.all()
        );
        first.run(&["destroy", "-auto-approve", "-no-color"]);
    }
}

#[test]
fn additional_wires_attach_detach_and_import() {
    let sim = Sim::start("test");
    for tf in versions() {
        let env = Env::new(&sim, WIRES);
        let body = format!(
            "{APP_SUBNET}\nresource \"vsphereipam_subnet_additional_wire\" \"web\" {{\n  subnet_id = vsphereipam_ipsubnet.app.id\n  wire_id   = data.vsphereipam_wire.web.id\n}}\nresource \"vsphereipam_subnet_additional_wire\" \"partial\" {{\n  subnet_id = vsphereipam_ipsubnet.app.id\n  wire_id   = data.vsphereipam_wire.partial.id\n}}\n"
        );
        let wd = env.workdir(&tf, &body);
        wd.apply_ok();
        // The refresh after apply shows both wires.
        wd.apply_ok();
        let app = &wd.outputs()["app"];
        let id = app["id"].as_str().unwrap().to_string();
        let mut want = vec![env.wire_id("pg-std-partial"), env.wire_id("pg-std-web")];
        want.sort();
        assert_eq!(
            app["additional_wire_ids"],
            serde_json::json!(want),
            "{}",
            tf.version
        );
        wd.plan_no_changes();

        // Import of an attachment.
        let state_rm = wd.run(&[
            "state",
            "rm",
            "-no-color",
            "vsphereipam_subnet_additional_wire.web",
        ]);
        assert!(state_rm.success, "{}", state_rm.all());
        let import_id = format!("{id}/{}", env.wire_id("pg-std-web"));
        let run = wd.run(&[
            "import",
            "-no-color",
            "-input=false",
            "vsphereipam_subnet_additional_wire.web",
            &import_id,
        ]);
        assert!(run.success, "{}: {}", tf.version, run.all());
        wd.plan_no_changes();

        // Destroying the explicit attachments keeps the detected one.
        let main_tf = std::fs::read_to_string(wd.path().join("main.tf")).unwrap();
        let without_attachments = main_tf
            .split("resource \"vsphereipam_subnet_additional_wire\"")
            .next()
            .unwrap();
        wd.write("main.tf", without_attachments);
        wd.apply_ok();
        wd.apply_ok();
        assert_eq!(
            wd.outputs()["app"]["additional_wire_ids"],
            serde_json::json!([env.wire_id("pg-std-partial")]),
            "{}",
            tf.version
        );

        // The subnet's own wire is refused.
        let own = format!("{APP_SUBNET}\nresource \"vsphereipam_subnet_additional_wire\" \"own\" {{\n  subnet_id = vsphereipam_ipsubnet.app.id\n  wire_id   = data.vsphereipam_wire.app.id\n}}\n");
        wd.write("main.tf", &env.config(&own));
        expect_error(
            &wd.plan_err(),
            tf.version,
            "Cannot attach a subnet's own wire",
            "wire_id   = data.vsphereipam_wire.app.id",
        );
        wd.write("main.tf", &env.config(APP_SUBNET));
        wd.run(&["destroy", "-auto-approve", "-no-color"]);
    }
}
