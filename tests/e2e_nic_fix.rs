//! End to end: `vsphereipam_vm_nic_fix` through Terraform 1.15 and 1.0.3 against the
//! simulator's `test` scenario: recording, matching by MAC or device order, every refusal,
//! drift, a VM deleted outside Terraform, import, and observed records.

mod common;

use common::env::Env;
use common::sim::{MVm, Sim};
use common::terraform::{expect_error, versions};
use vsphereipam::store::OwnerKind;

/// Subnets on pg-app and pg-db, and the wire of pg-std-web.
const SUBNETS: &str = r#"
data "vsphereipam_wire" "app" {
  name = "pg-app"
}
data "vsphereipam_wire" "db" {
  name = "pg-db"
}
resource "vsphereipam_ipsubnet" "app" {
  name    = "app"
  wire_id = data.vsphereipam_wire.app.id
  cidr    = "10.20.0.0/24"
}
resource "vsphereipam_ipsubnet" "db" {
  name     = "db"
  wire_id  = data.vsphereipam_wire.db.id
  cidr     = "10.30.0.0/24"
  start_ip = "10.30.0.10"
}
"#;

fn vm<'m>(sim: &'m Sim, name: &str) -> &'m MVm {
    sim.manifest()
        .vms
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("{name} not in the scenario"))
}

fn fix(name: &str, uuid: &str, nics: &[(Option<&str>, &str)]) -> String {
    let blocks: String = nics
        .iter()
        .map(|(mac, ip)| {
            let mac = mac.map_or(String::new(), |m| format!("    mac        = \"{m}\"\n"));
            format!("  nic {{\n{mac}    ip_address = \"{ip}\"\n  }}\n")
        })
        .collect();
    format!(
        "resource \"vsphereipam_vm_nic_fix\" \"{name}\" {{\n  vm_id = \"{uuid}\"\n{blocks}}}\n\
         output \"{name}\" {{\n  value = vsphereipam_vm_nic_fix.{name}\n}}\n"
    )
}

/// The subnets and a fix recorded after them, in one configuration.
fn with_subnets(fix: &str) -> String {
    let after = fix.replacen(
        "\n  nic {",
        "\n  depends_on = [vsphereipam_ipsubnet.app, vsphereipam_ipsubnet.db]\n  nic {",
        1,
    );
    format!("{SUBNETS}\n{after}")
}

#[test]
fn records_each_nic_in_the_subnet_of_its_port_group() {
    let sim = Sim::start("test");
    let db = vm(&sim, "vm-db-noip");
    for tf in versions() {
        let env = Env::new(&sim, "");
        let body = with_subnets(&fix(
            "db",
            &db.uuid,
            &[(None, "10.20.0.60"), (None, "10.30.0.60")],
        ));
        let wd = env.workdir(&tf, &body);
        wd.apply_ok();
        let outs = wd.outputs();
        let got = &outs["db"];
        assert_eq!(got["id"], db.uuid.as_str(), "{}", tf.version);
        for (i, (pg, cidr)) in [("pg-app", "10.20.0.0/24"), ("pg-db", "10.30.0.0/24")]
            .iter()
            .enumerate()
        {
            let nic = &got["nic"][i];
            assert_eq!(
                nic["mac"],
                db.nics[i].mac.as_str(),
                "{}: nic {i}",
                tf.version
            );
            assert_eq!(nic["wire_id"], env.wire_id(pg).as_str(), "{}", tf.version);
            let subnet = env
                .store()
                .subnet(nic["subnet_id"].as_str().unwrap())
                .unwrap()
                .unwrap();
            assert_eq!(subnet.subnet.spec.cidr.to_string(), *cidr, "{}", tf.version);
        }
        let held = env.store().addresses_of_vm(&db.uuid).unwrap();
        let mut ips: Vec<String> = held
            .iter()
            .filter(|a| a.owner_kind == OwnerKind::NicFix)
            .map(|a| a.ip.to_string())
            .collect();
        ips.sort();
        assert_eq!(ips, ["10.20.0.60", "10.30.0.60"], "{}", tf.version);
        wd.plan_no_changes();

        // The same NICs named by MAC, in the other order and upper case: the same records.
        let by_mac = with_subnets(&fix(
            "db",
            &db.uuid,
            &[
                (Some(&db.nics[1].mac.to_uppercase()), "10.30.0.60"),
                (Some(&db.nics[0].mac), "10.20.0.60"),
            ],
        ));
        wd.write("main.tf", &env.config(&by_mac));
        let plan = wd.run(&["plan", "-no-color", "-input=false"]);
        assert!(
            plan.stdout.contains("must be replaced"),
            "{}: reordered blocks replace: {}",
            tf.version,
            plan.all()
        );
        wd.apply_ok();
        wd.plan_no_changes();
        let outs = wd.outputs();
        assert_eq!(
            outs["db"]["nic"][0]["mac"],
            db.nics[1].mac.to_uppercase().as_str(),
            "{}: the MAC stays as written",
            tf.version
        );

        // Import by VM UUID, then no difference.
        let rm = wd.run(&["state", "rm", "-no-color", "vsphereipam_vm_nic_fix.db"]);
        assert!(rm.success, "{}", rm.all());
        wd.write("main.tf", &env.config(&body));
        // The import only reads the fix's records (an `import` block runs it inside a plan).
        let listing = env.store_listing();
        let import = wd.run(&[
            "import",
            "-no-color",
            "-input=false",
            "vsphereipam_vm_nic_fix.db",
            &db.uuid,
        ]);
        assert!(import.success, "{}: {}", tf.version, import.all());
        assert_eq!(
            env.store_listing(),
            listing,
            "{}: the import wrote",
            tf.version
        );
        let applied = wd.apply_ok();
        assert!(
            applied.stdout.contains("0 added, 0 changed, 0 destroyed"),
            "{}: {}",
            tf.version,
            applied.stdout
        );

        // A changed address replaces the resource: the old one is released.
        let moved = with_subnets(&fix(
            "db",
            &db.uuid,
            &[(None, "10.20.0.61"), (None, "10.30.0.60")],
        ));
        wd.write("main.tf", &env.config(&moved));
        let plan = wd.run(&["plan", "-no-color", "-input=false"]);
        assert!(plan.stdout.contains("must be replaced"), "{}", plan.all());
        wd.apply_ok();
        let app_ips: Vec<String> = env
            .store()
            .addresses_of_vm(&db.uuid)
            .unwrap()
            .iter()
            .filter(|a| a.owner_kind == OwnerKind::NicFix)
            .map(|a| a.ip.to_string())
            .collect();
        assert!(app_ips.contains(&"10.20.0.61".to_string()), "{app_ips:?}");
        assert!(!app_ips.contains(&"10.20.0.60".to_string()), "{app_ips:?}");

        // Observed records name the VMs whose Tools report addresses, and do not keep the
        // subnets from being destroyed.
        let app_id = outs["db"]["nic"][1]["subnet_id"]
            .as_str()
            .unwrap()
            .to_string();
        let observed: Vec<String> = env
            .store()
            .addresses(&app_id)
            .unwrap()
            .iter()
            .filter(|a| a.owner_kind == OwnerKind::Observed)
            .map(|a| format!("{} {}", a.ip, a.owner_id))
            .collect();
        assert!(
            observed
                .iter()
                .any(|o| o.starts_with("10.20.0.21 VM \"vm-app-1\"")),
            "{}: {observed:?}",
            tf.version
        );
        wd.destroy_ok();
        assert!(
            env.store()
                .addresses_of_vm(&db.uuid)
                .unwrap()
                .iter()
                .all(|a| a.owner_kind != OwnerKind::NicFix),
            "{}: destroy releases the addresses",
            tf.version
        );
    }
}

#[test]
fn every_refusal_names_its_cause_and_attribute() {
    let sim = Sim::start("test");
    let db = vm(&sim, "vm-db-noip");
    let web = vm(&sim, "vm-web-noip");
    let noip = vm(&sim, "vm-app-noip");
    for tf in versions() {
        let env = Env::new(&sim, "");
        let held = env.workdir(
            &tf,
            &with_subnets(&fix(
                "db",
                &db.uuid,
                &[(None, "10.20.0.60"), (None, "10.30.0.60")],
            )),
        );
        held.apply_ok();
        let v = tf.version;
        // Probes: a fix of their own, next to the subnets `held` created in the same store.
        let plan_err = |body: &str| env.workdir(&tf, body).plan_err();
        // An address in no subnet may be one the same apply creates: refused at apply time.
        let apply_err = |body: &str| {
            let wd = env.workdir(&tf, body);
            wd.init();
            let run = wd.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
            assert!(!run.success, "{v}: apply should fail:\n{}", run.all());
            run
        };

        // No subnet on the NIC's port group.
        let run = apply_err(&fix("db", &web.uuid, &[(None, "10.20.0.70")]));
        expect_error(
            &run,
            v,
            "Address in no subnet of the NIC's port group",
            "ip_address = \"10.20.0.70\"",
        );
        let flat = run.flat();
        assert!(flat.contains("pg-std-web"), "{v}: {flat}");
        assert!(flat.contains("Subnets tried: none"), "{v}: {flat}");
        // A subnet on the port group, but not holding the address: the tried subnet is named.
        let run = apply_err(&fix("db", &noip.uuid, &[(None, "10.30.0.70")]));
        expect_error(
            &run,
            v,
            "Address in no subnet of the NIC's port group",
            "ip_address = \"10.30.0.70\"",
        );
        assert!(run.flat().contains("\"app\""), "{v}: {}", run.flat());

        // Held by another resource's record: the holder is named.
        let run = plan_err(&fix("db", &noip.uuid, &[(None, "10.20.0.60")]));
        expect_error(
            &run,
            v,
            "Address already taken",
            "ip_address = \"10.20.0.60\"",
        );
        assert!(
            run.flat()
                .contains(&format!("vsphereipam_vm_nic_fix {}", db.uuid)),
            "{v}: {}",
            run.flat()
        );
        // Reported by VMware Tools of another VM.
        let run = plan_err(&fix("db", &noip.uuid, &[(None, "10.20.0.21")]));
        expect_error(
            &run,
            v,
            "Address already taken",
            "ip_address = \"10.20.0.21\"",
        );
        assert!(run.flat().contains("vm-app-1"), "{v}: {}", run.flat());

        // A NIC that already has a record (of this VM's other fix: at plan time that is not told
        // apart from a replacement of the same resource, so apply refuses it).
        let run = apply_err(&fix(
            "db",
            &db.uuid,
            &[(Some(&db.nics[0].mac), "10.20.0.80")],
        ));
        expect_error(&run, v, "Refused by the IPAM", "nic {");
        assert!(run.flat().contains("already has address 10.20.0.60"), "{v}");

        // Unknown VM, unknown MAC, too many blocks, malformed values.
        let run = plan_err(&fix(
            "db",
            "42000000-0000-0000-0000-000000000000",
            &[(None, "10.20.0.80")],
        ));
        expect_error(
            &run,
            v,
            "VM not found",
            "vm_id = \"42000000-0000-0000-0000-000000000000\"",
        );
        let run = plan_err(&fix(
            "db",
            &noip.uuid,
            &[(Some("00:50:56:ff:ff:ff"), "10.20.0.80")],
        ));
        expect_error(
            &run,
            v,
            "Unknown MAC address",
            "mac        = \"00:50:56:ff:ff:ff\"",
        );
        assert!(run.flat().contains(&noip.nics[0].mac), "{v}");
        let run = plan_err(&fix(
            "db",
            &noip.uuid,
            &[(None, "10.20.0.80"), (None, "10.20.0.81")],
        ));
        expect_error(
            &run,
            v,
            "More nic blocks than the VM has NICs",
            "resource \"vsphereipam_vm_nic_fix\" \"db\"",
        );
        let run = plan_err(&fix("db", &noip.uuid, &[(None, "10.20.0.999")]));
        expect_error(
            &run,
            v,
            "Invalid IP address",
            "ip_address = \"10.20.0.999\"",
        );
        let run = plan_err(&fix("db", &noip.uuid, &[(Some("00:50:56"), "10.20.0.80")]));
        expect_error(&run, v, "Invalid MAC address", "mac        = \"00:50:56\"");

        held.destroy_ok();
    }
}

#[test]
fn drift_shows_in_the_plan_and_a_deleted_vm_releases_its_addresses() {
    for tf in versions() {
        // A simulator per version: this test deletes a VM.
        let sim = Sim::start("test");
        let db = vm(&sim, "vm-db-noip").clone();
        let env = Env::new(&sim, "");
        let wd = env.workdir(
            &tf,
            &with_subnets(&fix(
                "db",
                &db.uuid,
                &[(None, "10.20.0.60"), (None, "10.30.0.60")],
            )),
        );
        wd.apply_ok();

        // The second NIC moves to a port group that is no wire of the db subnet.
        sim.control(
            "move_nic",
            &[("vm", "vm-db-noip"), ("nic", "1"), ("pg", "pg-std-web")],
        );
        let plan = wd.run(&["plan", "-no-color", "-input=false", "-detailed-exitcode"]);
        assert_eq!(plan.code(), Some(2), "{}: {}", tf.version, plan.all());
        assert!(
            plan.stdout.contains("must be replaced"),
            "{}: {}",
            tf.version,
            plan.all()
        );
        assert!(
            plan.stdout.contains(&env.wire_id("pg-std-web")),
            "{}: the plan shows the new wire: {}",
            tf.version,
            plan.stdout
        );

        // The VM is deleted outside Terraform: the plan cannot record it again (an error on
        // vm_id) and writes nothing; its addresses stay held until the resource is removed.
        sim.control("destroy_vm", &[("vm", "vm-db-noip")]);
        let held = |env: &Env| -> Vec<_> {
            env.store()
                .addresses_of_vm(&db.uuid)
                .unwrap()
                .into_iter()
                .filter(|a| a.owner_kind == OwnerKind::NicFix)
                .collect()
        };
        let before = held(&env);
        assert_eq!(before.len(), 2, "{}: {before:?}", tf.version);
        let run = wd.plan_err();
        expect_error(&run, tf.version, "VM not found", "vm_id = ");
        assert_eq!(held(&env), before, "{}: the plan released", tf.version);
        wd.write("main.tf", &env.config(SUBNETS));
        wd.apply_ok();
        let left = held(&env);
        assert!(left.is_empty(), "{}: {left:?}", tf.version);
    }
}

/// The IPv6 subnet on pg-app beside the IPv4 ones (vm-app-1's Tools report 2001:db8:0:20::21,
/// host DC0_C0_H1's vmk1 2001:db8:0:20::5).
const SUBNET6: &str = r#"
resource "vsphereipam_ipsubnet" "app6" {
  name    = "app6"
  wire_id = data.vsphereipam_wire.app.id
  cidr    = "2001:db8:0:20::/64"
}
"#;

/// A fix whose blocks are `(mac, ip_address, ipv6_address)`.
fn fix6(name: &str, uuid: &str, nics: &[(Option<&str>, &str, Option<&str>)]) -> String {
    let blocks: String = nics
        .iter()
        .map(|(mac, ip, ipv6)| {
            let mac = mac.map_or(String::new(), |m| format!("    mac          = \"{m}\"\n"));
            let ipv6 = ipv6.map_or(String::new(), |v| format!("    ipv6_address = \"{v}\"\n"));
            format!("  nic {{\n{mac}    ip_address   = \"{ip}\"\n{ipv6}  }}\n")
        })
        .collect();
    format!(
        "resource \"vsphereipam_vm_nic_fix\" \"{name}\" {{\n  vm_id = \"{uuid}\"\n{blocks}}}\n\
         output \"{name}\" {{\n  value = vsphereipam_vm_nic_fix.{name}\n}}\n"
    )
}

/// The IPv4 and IPv6 subnets and a fix recorded after them, in one configuration.
fn with_subnets6(fix: &str) -> String {
    let after = fix.replacen(
        "\n  nic {",
        "\n  depends_on = [vsphereipam_ipsubnet.app, vsphereipam_ipsubnet.db, \
         vsphereipam_ipsubnet.app6]\n  nic {",
        1,
    );
    format!("{SUBNETS}{SUBNET6}\n{after}")
}

/// The fix's records of the VM: `(address, MAC)`, sorted.
fn fix_records(env: &Env, uuid: &str) -> Vec<(String, String)> {
    let mut held: Vec<(String, String)> = env
        .store()
        .addresses_of_vm(uuid)
        .unwrap()
        .into_iter()
        .filter(|a| a.owner_kind == OwnerKind::NicFix)
        .map(|a| (a.ip.to_string(), a.mac.unwrap_or_default()))
        .collect();
    held.sort();
    held
}

#[test]
fn a_dual_stack_nic_records_both_addresses_together() {
    let sim = Sim::start("test");
    let db = vm(&sim, "vm-db-noip");
    let app1 = vm(&sim, "vm-app-1");
    for tf in versions() {
        let v = tf.version;
        let env = Env::new(&sim, "");
        let body = with_subnets6(&fix6(
            "db",
            &db.uuid,
            &[
                (None, "10.20.0.60", Some("2001:db8:0:20::60")),
                (None, "10.30.0.60", None),
            ],
        ));
        let wd = env.workdir(&tf, &body);
        wd.apply_ok();
        let outs = wd.outputs();
        let nic0 = &outs["db"]["nic"][0];
        assert_eq!(nic0["ipv6_address"], "2001:db8:0:20::60", "{v}: {nic0}");
        let six = env
            .store()
            .subnet(nic0["ipv6_subnet_id"].as_str().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            six.subnet.spec.cidr.to_string(),
            "2001:db8:0:20::/64",
            "{v}"
        );
        assert_ne!(nic0["subnet_id"], nic0["ipv6_subnet_id"], "{v}");
        let nic1 = &outs["db"]["nic"][1];
        assert!(nic1["ipv6_address"].is_null(), "{v}: {nic1}");
        assert!(nic1["ipv6_subnet_id"].is_null(), "{v}: {nic1}");
        let (mac0, mac1) = (db.nics[0].mac.clone(), db.nics[1].mac.clone());
        let recorded = vec![
            ("10.20.0.60".to_string(), mac0.clone()),
            ("10.30.0.60".to_string(), mac1.clone()),
            ("2001:db8:0:20::60".to_string(), mac0.clone()),
        ];
        assert_eq!(fix_records(&env, &db.uuid), recorded, "{v}");
        wd.plan_no_changes();

        // Import by VM UUID reads both addresses of the NIC back into one block.
        let rm = wd.run(&["state", "rm", "-no-color", "vsphereipam_vm_nic_fix.db"]);
        assert!(rm.success, "{v}: {}", rm.all());
        let listing = env.store_listing();
        let import = wd.run(&[
            "import",
            "-no-color",
            "-input=false",
            "vsphereipam_vm_nic_fix.db",
            &db.uuid,
        ]);
        assert!(import.success, "{v}: {}", import.all());
        assert_eq!(env.store_listing(), listing, "{v}: the import wrote");
        let applied = wd.apply_ok();
        assert!(
            applied.stdout.contains("0 added, 0 changed, 0 destroyed"),
            "{v}: {}",
            applied.stdout
        );

        // A changed IPv6 address replaces the resource; the old one is released.
        let moved = with_subnets6(&fix6(
            "db",
            &db.uuid,
            &[
                (None, "10.20.0.60", Some("2001:db8:0:20::61")),
                (None, "10.30.0.60", None),
            ],
        ));
        wd.write("main.tf", &env.config(&moved));
        let plan = wd.run(&["plan", "-no-color", "-input=false"]);
        assert!(
            plan.stdout.contains("must be replaced"),
            "{v}: {}",
            plan.all()
        );
        wd.apply_ok();
        let held = fix_records(&env, &db.uuid);
        assert!(
            held.contains(&("2001:db8:0:20::61".into(), mac0.clone())),
            "{v}: {held:?}"
        );
        assert!(
            !held.iter().any(|(ip, _)| ip == "2001:db8:0:20::60"),
            "{v}: {held:?}"
        );
        wd.plan_no_changes();

        // A NIC reported by Tools with both families, imported without records: the apply
        // records both.
        let app = fix6(
            "app1",
            &app1.uuid,
            &[(None, "10.20.0.21", Some("2001:db8:0:20::21"))],
        );
        wd.write("main.tf", &env.config(&format!("{moved}\n{app}")));
        let import = wd.run(&[
            "import",
            "-no-color",
            "-input=false",
            "vsphereipam_vm_nic_fix.app1",
            &app1.uuid,
        ]);
        assert!(import.success, "{v}: {}", import.all());
        assert!(
            fix_records(&env, &app1.uuid).is_empty(),
            "{v}: the import wrote"
        );
        let applied = wd.apply_ok();
        assert!(
            applied.stdout.contains("0 added, 1 changed, 0 destroyed"),
            "{v}: {}",
            applied.stdout
        );
        let mac = app1.nics[0].mac.clone();
        assert_eq!(
            fix_records(&env, &app1.uuid),
            vec![
                ("10.20.0.21".to_string(), mac.clone()),
                ("2001:db8:0:20::21".to_string(), mac)
            ],
            "{v}"
        );
        wd.plan_no_changes();

        wd.destroy_ok();
        assert!(
            fix_records(&env, &db.uuid).is_empty(),
            "{v}: destroy releases both"
        );
        assert!(fix_records(&env, &app1.uuid).is_empty(), "{v}");
    }
}

#[test]
fn every_ipv6_refusal_names_ipv6_address() {
    let sim = Sim::start("test");
    let db = vm(&sim, "vm-db-noip");
    let noip = vm(&sim, "vm-app-noip");
    let app1 = vm(&sim, "vm-app-1");
    for tf in versions() {
        let v = tf.version;
        let env = Env::new(&sim, "");
        let held = env.workdir(
            &tf,
            &with_subnets6(&fix6(
                "db",
                &db.uuid,
                &[(None, "10.20.0.60", Some("2001:db8:0:20::60"))],
            )),
        );
        held.apply_ok();
        let plan_err = |body: &str| env.workdir(&tf, body).plan_err();
        let one = |uuid: &str, ip: &str, ipv6: &str| fix6("x", uuid, &[(None, ip, Some(ipv6))]);

        // Malformed: IPv4 there, IPv4-mapped, a zone id, not canonical, two IPv6 addresses.
        let run = plan_err(&one(&noip.uuid, "10.20.0.70", "10.20.0.71"));
        expect_error(
            &run,
            v,
            "IPv4 address in ipv6_address",
            "ipv6_address = \"10.20.0.71\"",
        );
        for (bad, why) in [
            ("::ffff:10.20.0.71", "IPv4-mapped"),
            ("2001:db8:0:20::71%eth0", "zone id"),
            ("2001:DB8:0:20::71", "canonical form"),
            // Copied from `ip addr`: every interface has one, no subnet can hold it.
            ("fe80::250:56ff:fe00:71", "link-local"),
        ] {
            let run = plan_err(&one(&noip.uuid, "10.20.0.70", bad));
            expect_error(
                &run,
                v,
                "Invalid IPv6 address",
                &format!("ipv6_address = \"{bad}\""),
            );
            assert!(run.flat().contains(why), "{v}: {bad}: {}", run.flat());
        }
        // On an IPv6-only NIC, the link-local address in ip_address: refused the same way.
        let run = plan_err(&fix6(
            "x",
            &noip.uuid,
            &[(None, "fe80::250:56ff:fe00:70", None)],
        ));
        expect_error(
            &run,
            v,
            "Invalid IP address",
            "ip_address   = \"fe80::250:56ff:fe00:70\"",
        );
        assert!(run.flat().contains("link-local"), "{v}: {}", run.flat());
        // One address in two blocks (one NIC's IPv6-only address, the other's ipv6_address):
        // refused at plan time, not as "already taken" by this very resource at apply time.
        let run = plan_err(&fix6(
            "x",
            &db.uuid,
            &[
                (None, "2001:db8:0:20::72", None),
                (None, "10.30.0.72", Some("2001:db8:0:20::72")),
            ],
        ));
        expect_error(
            &run,
            v,
            "One address in two nic blocks",
            "ipv6_address = \"2001:db8:0:20::72\"",
        );
        assert!(
            run.flat().contains("nic[0].ip_address"),
            "{v}: {}",
            run.flat()
        );
        let run = plan_err(&one(&noip.uuid, "2001:db8:0:20::70", "2001:db8:0:20::71"));
        expect_error(
            &run,
            v,
            "Two IPv6 addresses on one NIC",
            "ipv6_address = \"2001:db8:0:20::71\"",
        );

        // Held by another resource's record, and reported by another VM's Tools: named.
        let run = plan_err(&one(&noip.uuid, "10.20.0.70", "2001:db8:0:20::60"));
        expect_error(
            &run,
            v,
            "Address already taken",
            "ipv6_address = \"2001:db8:0:20::60\"",
        );
        assert!(
            run.flat()
                .contains(&format!("vsphereipam_vm_nic_fix {}", db.uuid)),
            "{v}: {}",
            run.flat()
        );
        let run = plan_err(&one(&noip.uuid, "10.20.0.70", "2001:db8:0:20::21"));
        expect_error(
            &run,
            v,
            "Address already taken",
            "ipv6_address = \"2001:db8:0:20::21\"",
        );
        assert!(run.flat().contains("vm-app-1"), "{v}: {}", run.flat());
        // Tools of the VM itself report another IPv6 address on that NIC.
        let run = plan_err(&one(&app1.uuid, "10.20.0.21", "2001:db8:0:20::77"));
        expect_error(
            &run,
            v,
            "VMware Tools report another address",
            "ipv6_address = \"2001:db8:0:20::77\"",
        );
        assert!(
            run.flat().contains("2001:db8:0:20::21"),
            "{v}: {}",
            run.flat()
        );

        // An IPv6 address in no subnet of the NIC's port group: refused at apply time (at plan
        // time the subnet may come with the same apply), and the IPv4 address of the same
        // block is not recorded either.
        let wd = env.workdir(&tf, &one(&noip.uuid, "10.20.0.70", "2001:db8:0:99::70"));
        wd.init();
        let run = wd.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        assert!(!run.success, "{v}: {}", run.all());
        expect_error(
            &run,
            v,
            "Address in no subnet of the NIC's port group",
            "ipv6_address = \"2001:db8:0:99::70\"",
        );
        let flat = run.flat();
        assert!(
            flat.contains("pg-app") && flat.contains("\"app6\""),
            "{v}: {flat}"
        );
        assert!(
            fix_records(&env, &noip.uuid).is_empty(),
            "{v}: nothing half done"
        );

        held.destroy_ok();
    }
}

#[test]
fn an_ipv6_record_whose_nic_left_its_subnets_wires_plans_a_replacement() {
    let sim = Sim::start("test");
    let db = vm(&sim, "vm-db-noip").clone();
    let tf = versions().into_iter().next().expect("a Terraform");
    let env = Env::new(&sim, "");
    // pg-std-web is an additional wire of the IPv4 app subnet only: a NIC moved there keeps
    // its IPv4 address's subnet and leaves its IPv6 address's.
    let extra = r#"
data "vsphereipam_wire" "web" {
  name = "pg-std-web"
}
resource "vsphereipam_subnet_additional_wire" "web" {
  subnet_id = vsphereipam_ipsubnet.app.id
  wire_id   = data.vsphereipam_wire.web.id
}
"#;
    let body = format!(
        "{extra}{}",
        with_subnets6(&fix6(
            "db",
            &db.uuid,
            &[(None, "10.20.0.60", Some("2001:db8:0:20::60"))],
        ))
    );
    let wd = env.workdir(&tf, &body);
    wd.apply_ok();
    wd.plan_no_changes();
    sim.control(
        "move_nic",
        &[("vm", "vm-db-noip"), ("nic", "0"), ("pg", "pg-std-web")],
    );
    let plan = wd.run(&["plan", "-no-color", "-input=false", "-detailed-exitcode"]);
    assert_eq!(plan.code(), Some(2), "{}: {}", tf.version, plan.all());
    assert!(
        plan.stdout.contains("must be replaced"),
        "{}: {}",
        tf.version,
        plan.all()
    );
    // The plan wrote nothing: both records are still there.
    assert_eq!(fix_records(&env, &db.uuid).len(), 2, "{}", tf.version);
}

/// A state written before `ipv6_address` existed (its `nic` objects lack the IPv6 attributes)
/// reads back with them null, and the unchanged configuration plans no change.
#[test]
fn a_state_from_before_ipv6_plans_no_changes() {
    let sim = Sim::start("test");
    let db = vm(&sim, "vm-db-noip");
    for tf in versions() {
        let v = tf.version;
        let env = Env::new(&sim, "");
        let wd = env.workdir(
            &tf,
            &with_subnets(&fix(
                "db",
                &db.uuid,
                &[(None, "10.20.0.60"), (None, "10.30.0.60")],
            )),
        );
        wd.apply_ok();
        let path = wd.path().join("terraform.tfstate");
        let mut state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut stripped = 0;
        for resource in state["resources"].as_array_mut().unwrap() {
            if resource["type"] != "vsphereipam_vm_nic_fix" {
                continue;
            }
            for instance in resource["instances"].as_array_mut().unwrap() {
                for nic in instance["attributes"]["nic"].as_array_mut().unwrap() {
                    let nic = nic.as_object_mut().unwrap();
                    nic.remove("ipv6_address").unwrap();
                    nic.remove("ipv6_subnet_id").unwrap();
                    stripped += 1;
                }
            }
        }
        assert_eq!(stripped, 2, "{v}");
        std::fs::write(&path, serde_json::to_string_pretty(&state).unwrap()).unwrap();
        wd.plan_no_changes();
        wd.destroy_ok();
        assert!(fix_records(&env, &db.uuid).is_empty(), "{v}");
    }
}

/// Tools are checked per family: vm-app-2's report IPv4 only (10.20.0.22), so they say nothing
/// of the IPv6 address recorded beside it, which is recorded.
#[test]
fn tools_reporting_ipv4_only_say_nothing_of_the_ipv6_address() {
    let sim = Sim::start("test");
    let app2 = vm(&sim, "vm-app-2").clone();
    let tf = versions().into_iter().next().expect("a Terraform");
    let env = Env::new(&sim, "");
    let wd = env.workdir(
        &tf,
        &with_subnets6(&fix6(
            "app2",
            &app2.uuid,
            &[(None, "10.20.0.22", Some("2001:db8:0:20::22"))],
        )),
    );
    wd.apply_ok();
    let mac = app2.nics[0].mac.clone();
    assert_eq!(
        fix_records(&env, &app2.uuid),
        vec![
            ("10.20.0.22".to_string(), mac.clone()),
            ("2001:db8:0:20::22".to_string(), mac)
        ],
        "{}",
        tf.version
    );
    wd.destroy_ok();
}
