//! Faults of the shared PostgreSQL store: the server restarted or down between operations, and a
//! Terraform apply while it is down (faults inside a transaction are tested in the store,
//! `src/store/tx_tests.rs`, where transactions are visible). Each
//! gives a clear error, leaves no half-written record, and the next operation converges.
//! Runs on a cluster of its own (port 55433), so restarting it disturbs no other test.

mod common;

use std::process::Command;

use common::env::Env;
use common::sim::Sim;
use common::terraform::versions;
use vsphereipam::ipam::ranges::RangeSet;
use vsphereipam::ipam::subnet::{validate, Field, SubnetInput};
use vsphereipam::store::ops::AllocRequest;
use vsphereipam::store::{OwnerKind, Store, StoreError, SubnetRecord};

const PORT: &str = "55433";

/// The tests stop and restart the cluster: one at a time.
static CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn cluster(action: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/postgres.sh");
    let out = Command::new(script)
        .arg(action)
        .env("VSPHEREIPAM_TEST_PG_PORT", PORT)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "postgres.sh {action}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A fresh database on the dedicated cluster, as a URL with a password that must never show.
fn database(tag: &str) -> (String, String) {
    let admin = cluster("start");
    let name = format!("faults_{tag}_{}", std::process::id());
    let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .unwrap();
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let base = admin.rsplit_once('/').unwrap().0.to_string();
    let url = format!("{base}/{name}").replacen("postgres@", "postgres:not-for-logs@", 1);
    (admin, url)
}

fn subnet() -> SubnetRecord {
    SubnetRecord {
        id: "faulty".into(),
        vcenter: "vc".into(),
        name: "faulty".into(),
        wire_id: "vc/dvportgroup-1".into(),
        domain: None,
        spec: validate(&SubnetInput {
            cidr: Field::Value("10.90.0.0/28".into()),
            ..Default::default()
        })
        .unwrap()
        .unwrap(),
    }
}

fn take(store: &Store, owner: &str) -> Result<std::net::IpAddr, StoreError> {
    store
        .allocate(
            &AllocRequest {
                subnet_id: "faulty".into(),
                ip: None,
                owner_kind: OwnerKind::Manual,
                owner_id: owner.into(),
                vm_uuid: None,
                mac: None,
                wire_id: None,
                pending: false,
                description: None,
            },
            &RangeSet::new(),
        )
        .map(|a| a.ip)
}

#[test]
fn faults_of_the_postgres_store() {
    let _one_at_a_time = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let (_admin, url) = database("store");
    let store = Store::open(&url).unwrap();
    store.create_subnet(&subnet(), &[]).unwrap();
    let first = take(&store, "a").unwrap();

    // The server restarts between two calls: the next call runs on a fresh connection.
    cluster("restart");
    take(&store, "b").expect("the call after a restart reconnects");

    // The server is down: a clear error naming the store without its password.
    cluster("stop");
    let err = take(&store, "c").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(text.contains("faults_"), "names the database: {text}");
    assert!(!text.contains("not-for-logs"), "{text}");
    cluster("start");
    let c = take(&store, "c").expect("converges once the server is back");

    // Every address handed out once; the subnet fills up exactly.
    let mut got = vec![first, c];
    got.extend(store.addresses("faulty").unwrap().iter().map(|a| a.ip));
    while let Ok(ip) = take(&store, "fill") {
        got.push(ip);
    }
    let all: Vec<_> = store.addresses("faulty").unwrap();
    assert_eq!(all.len(), 14, "a /28 has 14 host addresses: {all:?}");
    let mut ips: Vec<_> = all.iter().map(|a| a.ip).collect();
    ips.dedup();
    assert_eq!(ips.len(), 14);
}

#[test]
fn terraform_with_the_store_down_fails_clearly_then_converges() {
    let _one_at_a_time = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let sim = Sim::start("test");
    for tf in versions() {
        let (_admin, url) = database(&tf.version.replace('.', "_"));
        let env = Env::with_store(
            &sim,
            "data \"vsphereipam_wire\" \"app\" {\n  name = \"pg-app\"\n}\n",
            &url,
        );
        let wd = env.workdir(
            &tf,
            "resource \"vsphereipam_ipsubnet\" \"app\" {\n  name    = \"app\"\n  wire_id = data.vsphereipam_wire.app.id\n  cidr    = \"10.20.0.0/24\"\n}\n",
        );
        wd.init();
        cluster("stop");
        let run = wd.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        cluster("start");
        assert!(!run.success, "{}: apply without the store", tf.version);
        let out = run.flat();
        assert!(
            out.contains("Cannot open the IPAM store"),
            "{}: {out}",
            tf.version
        );
        assert!(out.contains("VSPHEREIPAM_STORE"), "{}: {out}", tf.version);
        assert!(!out.contains("not-for-logs"), "{}: {out}", tf.version);
        assert!(
            env.store().subnets(None).unwrap().is_empty(),
            "nothing written"
        );
        wd.apply_ok();
        wd.plan_no_changes();
        assert_eq!(
            env.store().subnets(None).unwrap().len(),
            1,
            "{}",
            tf.version
        );
        wd.destroy_ok();
    }
}

#[test]
fn a_postgres_restart_during_a_vm_create_does_not_undo_it() {
    let _one_at_a_time = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let sim = Sim::start("test");
    let tf = versions().remove(0);
    let (_admin, url) = database("vmcreate");
    let env = Env::with_store(&sim, "", &url);
    let store = Store::open(&url).unwrap();
    store
        .create_subnet(
            &SubnetRecord {
                id: "app".into(),
                vcenter: sim.info.instance_uuid.clone(),
                name: "app".into(),
                wire_id: env.wire_id("pg-app"),
                domain: None,
                spec: validate(&SubnetInput {
                    cidr: Field::Value("10.91.0.0/24".into()),
                    ..Default::default()
                })
                .unwrap()
                .unwrap(),
            },
            &[],
        )
        .unwrap();
    let wd = env.workdir(
        &tf,
        "resource \"vsphereipam_vm\" \"v\" {\n  name       = \"restarted\"\n  datacenter = \"DC0\"\n  \
         template   = \"tmpl-linux\"\n  network_interface {\n    subnet_id = \"app\"\n  }\n}\n",
    );
    wd.init();
    // The power-on answer is held back; the server restarts while the address is pending, so
    // the pooled connection is dead when the create hands the address to the VM.
    sim.control("delay", &[("method", "PowerOnVM_Task"), ("ms", "3000")]);
    let child = wd
        .command(&["apply", "-auto-approve", "-input=false", "-no-color"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_for(
        "a pending record",
        std::time::Duration::from_millis(100),
        || {
            store
                .addresses("app")
                .ok()?
                .iter()
                .any(|a| a.pending)
                .then_some(())
        },
    );
    cluster("restart");
    let out = child.wait_with_output().unwrap();
    sim.control("delay", &[("method", "PowerOnVM_Task"), ("ms", "0")]);
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the create survives the restart: {text}"
    );
    let held = store.addresses("app").unwrap();
    let vm: Vec<_> = held
        .iter()
        .filter(|a| a.owner_kind == OwnerKind::Vm)
        .collect();
    assert_eq!(vm.len(), 1, "{held:?}");
    assert!(!vm[0].pending, "handed to the VM: {held:?}");
    wd.destroy_ok();
    assert!(
        store
            .addresses("app")
            .unwrap()
            .iter()
            .all(|a| a.owner_kind == OwnerKind::Observed),
        "released"
    );
}
