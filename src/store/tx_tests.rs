//! The store's transactions under faults, tested from inside the store because a transaction
//! is private to it: a closure that fails leaves nothing behind (both backends); on
//! PostgreSQL, a connection killed or a server restarted inside a transaction runs it again
//! whole, and a lost answer to COMMIT is asked for (`txid_status`), never assumed. The
//! PostgreSQL faults run on a cluster of their own (port 55433, shared with
//! `tests/store_faults.rs`; test binaries run one after another).

use std::process::Command;

use super::*;
use crate::ipam::ranges::RangeSet;
use crate::ipam::subnet::{validate, Field, SubnetInput};
use crate::store::ops::AllocRequest;

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
    let mut client = ::postgres::Client::connect(&admin, ::postgres::NoTls).unwrap();
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

/// A transaction that fails after writing leaves nothing behind, on either store.
#[test]
fn a_failed_transaction_leaves_no_half_written_record() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("ipam.db").display());
    let _one_at_a_time = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let (_admin, pg) = database("half");
    for url in [sqlite, pg] {
        let store = Store::open(&url).unwrap();
        store.create_subnet(&subnet(), &[]).unwrap();
        let err = store
            .transaction(|tx| {
                tx.insert_address(&record("10.90.0.9", "half"))?;
                let ip: IpAddr = "10.90.0.9".parse().unwrap();
                tx.insert_run("faulty", Range::new(ip, ip))?;
                Err::<(), _>(StoreError::Unavailable("injected failure".into()))
            })
            .unwrap_err();
        assert!(err.to_string().contains("injected failure"), "{err}");
        assert!(store.addresses("faulty").unwrap().is_empty(), "{url}");
        // The run was rolled back too: the address is still free.
        let a = store.allocate(&request("o", Some("10.90.0.9")), &RangeSet::new());
        assert!(a.is_ok(), "{url}: {a:?}");
    }
}

fn request(owner: &str, ip: Option<&str>) -> AllocRequest {
    AllocRequest {
        subnet_id: "faulty".into(),
        ip: ip.map(|ip| ip.parse().unwrap()),
        owner_kind: OwnerKind::Manual,
        owner_id: owner.into(),
        vm_uuid: None,
        mac: None,
        wire_id: None,
        pending: false,
        description: None,
    }
}

#[test]
fn a_transaction_cut_off_by_the_server_runs_again_whole() {
    let _one_at_a_time = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let (admin, url) = database("store");
    let store = Store::open(&url).unwrap();
    store.create_subnet(&subnet(), &[]).unwrap();

    // The connection is killed inside a transaction, after the record was written: the server
    // rolled the transaction back, so it runs again on a fresh connection; the record is there
    // once.
    let killer = {
        let admin = admin.clone();
        move || {
            let mut c = ::postgres::Client::connect(&admin, ::postgres::NoTls).unwrap();
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
