//! Processes that use the PostgreSQL store end cleanly: the admin CLI's `ipam audit` exits 0
//! or 1 by its findings (never 101, a panic), and the plugin exits with status 0 after
//! Terraform is done, with no panic in Terraform's log. With the blocking `postgres` client
//! both panicked at exit ("Cannot start a runtime from within a runtime").

mod common;

use std::process::{Command, Output};

use common::env::Env;
use common::sim::Sim;
use common::terraform::versions;
use vsphereipam::ipam::ranges::RangeSet;
use vsphereipam::store::ops::AllocRequest;
use vsphereipam::store::{OwnerKind, Store};

fn audit(sim: &Sim, store: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_terraform-provider-vsphereipam"))
        .args(["ipam", "audit", "--allow-unverified-ssl"])
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .env("VSPHERE_SERVER", sim.server())
        .env("VSPHERE_USER", &sim.info.user)
        .env("VSPHERE_PASSWORD", &sim.info.password)
        .env("VSPHEREIPAM_STORE", store)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn audit_on_postgres_exits_by_its_findings() {
    let sim = Sim::start("test");
    let url = common::pg::fresh_database();
    let env = Env::with_store(&sim, "", &url);
    let wire = env.wire_id("pg-app");
    let store = Store::open(&url).unwrap();
    store
        .create_subnet(
            &common::subnet_record(&sim.info.instance_uuid, &wire, "app", "10.44.0.0/24"),
            &[],
        )
        .unwrap();

    let clean = audit(&sim, &url);
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));

    // A record for a VM vCenter does not have: a finding.
    store
        .allocate(
            &AllocRequest {
                subnet_id: "app".into(),
                ip: Some("10.44.0.9".parse().unwrap()),
                owner_kind: OwnerKind::Vm,
                owner_id: "4213aaaa-0000-0000-0000-000000000000".into(),
                vm_uuid: Some("4213aaaa-0000-0000-0000-000000000000".into()),
                mac: None,
                wire_id: Some(wire),
                pending: false,
                description: None,
            },
            &RangeSet::new(),
        )
        .unwrap();
    let found = audit(&sim, &url);
    assert_eq!(found.status.code(), Some(1), "{}", text(&found));
    assert!(text(&found).contains("10.44.0.9"), "{}", text(&found));
    assert!(!text(&found).contains("panicked"), "{}", text(&found));
}

#[test]
fn the_plugin_exits_cleanly_with_postgres() {
    let sim = Sim::start("test");
    let url = common::pg::fresh_database();
    let env = Env::with_store(
        &sim,
        "data \"vsphereipam_wire\" \"app\" {\n  name = \"pg-app\"\n}\n",
        &url,
    );
    for tf in versions() {
        let wd = env.workdir(
            &tf,
            &format!(
                "resource \"vsphereipam_ipsubnet\" \"app\" {{\n  name    = \"app-{v}\"\n  \
                 wire_id = data.vsphereipam_wire.app.id\n  cidr    = \"10.{n}.0.0/24\"\n}}\n",
                v = tf.version,
                n = if tf.version == "1.15" { 45 } else { 46 }
            ),
        );
        let log = wd.path().join("terraform.log");
        let wd = wd
            .env("TF_LOG", "debug")
            .env("TF_LOG_PATH", log.to_str().unwrap());
        wd.apply_ok();
        wd.destroy_ok();
        let log = std::fs::read_to_string(&log).unwrap();
        let exits: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("plugin process exited") && l.contains("vsphereipam"))
            .collect();
        assert!(!exits.is_empty(), "{}: no plugin exit logged", tf.version);
        for line in &exits {
            assert!(
                !line.contains("error=") && !line.contains("exit status"),
                "{}: the plugin did not exit cleanly: {line}",
                tf.version
            );
        }
        assert!(
            !log.contains("panicked") && !log.contains("Cannot start a runtime"),
            "{}: panic text in Terraform's log",
            tf.version
        );
    }
}
