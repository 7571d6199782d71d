//! The no-duplicate guarantee under load, on both stores: several `terraform apply` runs at
//! once (Terraform 1.15 and 1.0.3 side by side, each with its own state and
//! `-parallelism=32`) take addresses from one small subnet until it is full. Every address is
//! handed out once, the runs that find it full say so clearly, and destroying everything leaves
//! nothing held.

mod common;

use std::collections::HashSet;

use common::env::Env;
use common::sim::Sim;
use common::terraform::{versions, Workdir};
use vsphereipam::ipam::subnet::{validate, Field, SubnetInput};
use vsphereipam::store::{OwnerKind, SubnetRecord};

const RUNS: usize = 4;
const PER_RUN: usize = 20;
/// A /26: 62 addresses for 4 × 20 requests.
const CIDR: &str = "10.77.0.0/26";

fn body(subnet_id: &str) -> String {
    format!(
        "resource \"vsphereipam_ip_address\" \"a\" {{\n  count     = {PER_RUN}\n  subnet_id = \"{subnet_id}\"\n}}\n\
         output \"ips\" {{\n  value = vsphereipam_ip_address.a[*].ip_address\n}}\n"
    )
}

/// The addresses a run's state holds.
fn held_by(wd: &Workdir) -> Vec<String> {
    let run = wd.run(&["show", "-json", "-no-color"]);
    assert!(run.success, "{}", run.all());
    let state: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    state["values"]["root_module"]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r["values"]["ip_address"].as_str().map(str::to_string))
        .collect()
}

fn fill_one_subnet_from_parallel_applies(sim: &Sim, store_url: &str) {
    let env = Env::with_store(sim, "", store_url);
    let subnet = SubnetRecord {
        id: "busy".into(),
        vcenter: sim.info.instance_uuid.clone(),
        name: "busy".into(),
        wire_id: env.wire_id("pg-db"),
        domain: None,
        spec: validate(&SubnetInput {
            cidr: Field::Value(CIDR.into()),
            ..Default::default()
        })
        .unwrap()
        .unwrap(),
    };
    env.store().create_subnet(&subnet, &[]).unwrap();
    let tfs = versions();
    let workdirs: Vec<Workdir> = (0..RUNS)
        .map(|i| {
            let wd = env.workdir(&tfs[i % tfs.len()], &body("busy"));
            wd.init();
            wd
        })
        .collect();

    let runs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = workdirs
            .iter()
            .map(|wd| {
                s.spawn(move || {
                    wd.run(&[
                        "apply",
                        "-auto-approve",
                        "-input=false",
                        "-no-color",
                        "-parallelism=32",
                    ])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut all = Vec::new();
    for (wd, run) in workdirs.iter().zip(&runs) {
        let out = run.flat();
        assert!(
            !out.contains("panicked") && !out.contains("plugin crashed"),
            "{store_url}: {out}"
        );
        if !run.success {
            assert!(
                out.contains("Subnet full") && out.contains("no free address left"),
                "{store_url} {}: a failed run must fail only for a full subnet: {out}",
                wd.tf.version
            );
        }
        all.extend(held_by(wd));
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(
        unique.len(),
        all.len(),
        "{store_url}: an address twice: {all:?}"
    );
    assert_eq!(all.len(), 62, "{store_url}: the /26 is full: {all:?}");
    assert!(
        runs.iter().filter(|r| !r.success).count() >= 1,
        "{store_url}: 80 requests for 62 addresses must find the subnet full"
    );
    let records: Vec<_> = env
        .store()
        .addresses("busy")
        .unwrap()
        .into_iter()
        .filter(|a| a.owner_kind == OwnerKind::Address)
        .collect();
    assert_eq!(records.len(), 62, "{store_url}: store and states agree");

    for wd in &workdirs {
        wd.destroy_ok();
    }
    assert!(
        env.store().addresses("busy").unwrap().is_empty(),
        "{store_url}: nothing held after destroy"
    );
}

#[test]
fn parallel_applies_never_share_an_address_sqlite() {
    let sim = Sim::start("test");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ipam.db").display());
    fill_one_subnet_from_parallel_applies(&sim, &url);
}

#[test]
fn parallel_applies_never_share_an_address_postgres() {
    let sim = Sim::start("test");
    fill_one_subnet_from_parallel_applies(&sim, &common::pg::fresh_database());
}
