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
use vsphereipam::store::{AddressRecord, OwnerKind, Store, StoreError, SubnetRecord};

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

fn record(ip: &str, owner: &str) -> AddressRecord {
    AddressRecord {
        subnet_id: "faulty".into(),
        ip: ip.parse().unwrap(),
        owner_kind: OwnerKind::Manual,
        owner_id: owner.into(),
        vm_uuid: None,
        mac: None,
        wire_id: None,
        pending: false,
        description: None,
        created_at: 0,
    }
}

/// Removes a record written by [`record`] (it has no held run, so allocation would trip on it).
fn forget(store: &Store, ip: &str) {
    let ip = ip.parse().unwrap();
    store
        .transaction(|tx| tx.delete_address("faulty", ip))
        .unwrap();
}

/// The addresses `owner` holds in the test subnet.
fn owners_of(store: &Store, owner: &str) -> Vec<String> {
    store
        .addresses("faulty")
        .unwrap()
        .iter()
        .filter(|a| a.owner_id == owner)
        .map(|a| a.ip.to_string())
        .collect()
}

#[test]
fn faults_of_the_postgres_store() {
    let _one_at_a_time = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let (admin, url) = database("store");
    let store = Store::open(&url).unwrap();
    store.create_subnet(&subnet(), &[]).unwrap();
    let first = take(&store, "a").unwrap();

    // The connection is killed inside a transaction, after the record was written: the server
    // rolled the transaction back, so it runs again on a fresh connection; the record is there
    // once.
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
    let mut runs = 0;
    store
        .transaction(|tx| {
            runs += 1;
            tx.insert_address(&record("10.90.0.5", "half"))?;
            if runs == 1 {
                std::thread::spawn(killer.clone()).join().unwrap();
            }
            tx.addresses("faulty").map(drop)
        })
        .expect("run again after the connection was killed");
    assert_eq!(runs, 2);
    assert_eq!(owners_of(&store, "half"), ["10.90.0.5"]);
    forget(&store, "10.90.0.5");

    // The server restarts between two calls: the next call runs on a fresh connection.
    cluster("restart");
    take(&store, "b").expect("the call after a restart reconnects");

    // The server restarts inside a transaction, before COMMIT: the server rolled it back, so it
    // runs again, whole, on a fresh connection, and its record is there once.
    let mut runs = 0;
    store
        .transaction(|tx| {
            runs += 1;
            tx.insert_address(&record("10.90.0.6", "mid"))?;
            if runs == 1 {
                cluster("restart");
            }
            tx.addresses("faulty").map(drop)
        })
        .expect("rerun after the restart");
    assert_eq!(runs, 2, "run once more after the restart");
    assert_eq!(owners_of(&store, "mid"), ["10.90.0.6"]);
    forget(&store, "10.90.0.6");

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

/// Where [`CommitCutter`] cuts the next connection that sends COMMIT.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cut {
    Off,
    /// COMMIT reaches the server; its answer never reaches the client.
    AfterCommit,
    /// COMMIT never reaches the server.
    BeforeCommit,
}

/// A TCP front for the test cluster that, once armed, cuts one connection at its COMMIT
/// (plain-text connections only: it looks for the simple-query message).
struct CommitCutter {
    port: u16,
    cut: std::sync::Arc<std::sync::Mutex<Cut>>,
}

impl CommitCutter {
    fn start(server_port: &str) -> Self {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(std::sync::Mutex::new(Cut::Off));
        let armed = cut.clone();
        let server = format!("127.0.0.1:{server_port}");
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let Ok(mut upstream) = TcpStream::connect(&server) else {
                    continue;
                };
                let dead = Arc::new(AtomicBool::new(false));
                // Server to client, until the connection is cut.
                let (mut from_server, mut to_client) =
                    (upstream.try_clone().unwrap(), client.try_clone().unwrap());
                let dead_down = dead.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = from_server.read(&mut buf) {
                        if n == 0 || dead_down.load(Ordering::SeqCst) {
                            break;
                        }
                        if to_client.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to_client.shutdown(Shutdown::Both);
                });
                // Client to server, watching for COMMIT.
                let armed = armed.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = client.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let chunk = &buf[..n];
                        let commit = chunk.windows(7).any(|w| w == b"COMMIT\0");
                        let cut = {
                            let mut armed = armed.lock().unwrap();
                            let cut = if commit { *armed } else { Cut::Off };
                            if cut != Cut::Off {
                                *armed = Cut::Off;
                            }
                            cut
                        };
                        if cut != Cut::Off {
                            dead.store(true, Ordering::SeqCst);
                            if cut == Cut::AfterCommit {
                                let _ = upstream.write_all(chunk);
                                // Let the server commit before the connection goes.
                                std::thread::sleep(std::time::Duration::from_millis(300));
                            }
                            break;
                        }
                        if upstream.write_all(chunk).is_err() {
                            break;
                        }
                    }
                    let _ = upstream.shutdown(Shutdown::Both);
                    let _ = client.shutdown(Shutdown::Both);
                });
            }
        });
        CommitCutter { port, cut }
    }

    fn arm(&self, cut: Cut) {
        *self.cut.lock().unwrap() = cut;
    }
}

#[test]
fn a_lost_commit_answer_is_asked_for_not_assumed() {
    let _one_at_a_time = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let (_admin, url) = database("commit");
    let proxy = CommitCutter::start(PORT);
    let url = format!(
        "{}?sslmode=disable",
        url.replace(&format!(":{PORT}/"), &format!(":{}/", proxy.port))
    );
    let store = Store::open(&url).unwrap();
    store.create_subnet(&subnet(), &[]).unwrap();

    // The server committed, the answer was lost: done, and not run again (a second run would
    // fail on the address it already holds).
    proxy.arm(Cut::AfterCommit);
    let mut runs = 0;
    store
        .transaction(|tx| {
            runs += 1;
            tx.insert_address(&record("10.90.0.7", "lost-answer"))
        })
        .expect("the server says it committed");
    assert_eq!(runs, 1, "a committed transaction is not run again");
    assert_eq!(owners_of(&store, "lost-answer"), ["10.90.0.7"]);

    // COMMIT never reached the server, which rolled back: run again.
    proxy.arm(Cut::BeforeCommit);
    let mut runs = 0;
    store
        .transaction(|tx| {
            runs += 1;
            tx.insert_address(&record("10.90.0.8", "lost-commit"))
        })
        .expect("run again after the server rolled back");
    assert_eq!(runs, 2, "an aborted transaction runs again");
    assert_eq!(owners_of(&store, "lost-commit"), ["10.90.0.8"]);
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
