//! Faults of the shared PostgreSQL store: the connection dropped inside a transaction, the
//! server restarted or down between operations, and a Terraform apply while it is down. Each
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

fn take(store: &Store, owner: &str) -> Result<std::net::Ipv4Addr, StoreError> {
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
    let (admin, url) = database("store");
    let store = Store::open(&url).unwrap();
    store.create_subnet(&subnet(), &[]).unwrap();
    let first = take(&store, "a").unwrap();

    // The connection dies inside a transaction, after the record was written: nothing stays.
    let killer = {
        let admin = admin.clone();
        move || {
            let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
            c.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname LIKE 'faults_%' AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap();
        }
    };
    let err = store
        .transaction(|tx| {
            let half = vsphereipam::store::AddressRecord {
                subnet_id: "faulty".into(),
                ip: "10.90.0.5".parse().unwrap(),
                owner_kind: OwnerKind::Manual,
                owner_id: "half".into(),
                vm_uuid: None,
                mac: None,
                wire_id: None,
                pending: false,
                description: None,
                created_at: 0,
            };
            tx.insert_address(&half)?;
            std::thread::spawn(killer.clone()).join().unwrap();
            tx.addresses("faulty").map(drop)
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains("not-for-logs"), "{err}");
    let held: Vec<String> = store
        .addresses("faulty")
        .expect("the next call reconnects")
        .iter()
        .map(|a| a.owner_id.clone())
        .collect();
    assert_eq!(held, ["a"], "the half-written record was rolled back");

    // The server restarts between two calls: at most one call fails, clearly; then it converges.
    cluster("restart");
    let after_restart = take(&store, "b");
    if let Err(e) = &after_restart {
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
        take(&store, "b").expect("the call after a failed one reconnects");
    }

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
