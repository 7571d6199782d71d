//! A store written by the release before IPv6 (schema version 3, addresses as integers) opens
//! with this code, on SQLite and on PostgreSQL, and keeps every record: subnets, wire links and
//! address records read back as the old code read them, the held runs still steer allocation,
//! and IPv6 subnets can be added beside them. A store of a newer schema than this code knows is
//! refused with a message that says to upgrade, and left as it was; so is the next operation of
//! a process that had the store open (SQLite or PostgreSQL) while a newer release migrated it.
//!
//! The stores are checked-in dumps (`tests/fixtures/store_v3/`, see its README) made by the
//! code at 01163a8; `*.expected` is what that code read from them.

mod common;

use std::path::Path;

use vsphereipam::ipam::ranges::RangeSet;
use vsphereipam::ipam::subnet::{validate, Field, SubnetInput};
use vsphereipam::store::ops::AllocRequest;
use vsphereipam::store::{OwnerKind, Store, StoreError, SubnetRecord};

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/store_v3")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every subnet (by id) with its links, counts and records, one line each, as the v3 code
/// rendered the same stores into `*.expected`.
fn render(store: &Store) -> String {
    let mut out = String::new();
    let mut usages = store.subnet_usages(None).unwrap();
    usages.sort_by(|a, b| a.view.subnet.id.cmp(&b.view.subnet.id));
    for u in usages {
        let s = &u.view.subnet;
        let sp = &s.spec;
        out += &format!(
            "subnet {} vcenter={} name={} wire={} domain={:?} cidr={} start={} end={} gateway={:?} dns={:?} vlan={:?} policy={} reserved={:?}\n",
            s.id,
            s.vcenter,
            s.name,
            s.wire_id,
            s.domain,
            sp.cidr,
            sp.start,
            sp.end,
            sp.gateway.map(|g| g.to_string()),
            sp.dns_servers.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            sp.vlan_id,
            sp.policy.as_str(),
            sp.reserved.iter().map(|r| r.to_string()).collect::<Vec<_>>()
        );
        for l in &u.view.links {
            out += &format!(
                "  link {} detected={} attached={}\n",
                l.wire_id, l.detected, l.attached
            );
        }
        out += &format!(
            "  counts size={} held={} observed={} reserved={} free={}\n",
            u.counts.size, u.counts.held, u.counts.observed, u.counts.reserved, u.counts.free
        );
        for a in store.subnet_addresses(&s.id, &Default::default()).unwrap() {
            out += &format!(
                "  address {} kind={} owner={} vm={:?} mac={:?} wire={:?} pending={} description={:?} created_at={}\n",
                a.ip,
                a.owner_kind.as_str(),
                a.owner_id,
                a.vm_uuid,
                a.mac,
                a.wire_id,
                a.pending,
                a.description,
                a.created_at
            );
        }
    }
    out
}

fn alloc(store: &Store, subnet: &str, owner: &str) -> String {
    store
        .allocate(
            &AllocRequest {
                subnet_id: subnet.into(),
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
        .unwrap()
        .ip
        .to_string()
}

/// What every migrated store must show: the old records, runs that still steer allocation, and
/// room for IPv6.
fn check_migrated(store: &Store, expected: &str, what: &str) {
    assert_eq!(
        render(store),
        expected,
        "{what}: records differ after migration"
    );
    // s1 (stepdown) holds .252-.254, the gateway .1 and reserved ranges: next is .251.
    assert_eq!(alloc(store, "s1", "after"), "10.20.0.251", "{what}");
    // s2 (stepup) holds 192.168.8.10-.14 as one run: next is .15.
    assert_eq!(alloc(store, "s2", "after"), "192.168.8.15", "{what}");
    let mut input = SubnetInput {
        cidr: Field::Value("2001:db8:0:1::/64".into()),
        ..Default::default()
    };
    input.alloc_policy = Field::Value("stepup".into());
    let v6 = SubnetRecord {
        id: "v6".into(),
        vcenter: "vc-a".into(),
        name: "net-v6".into(),
        wire_id: "vc-a/dvportgroup-s1".into(),
        domain: None,
        spec: validate(&input).unwrap().unwrap(),
    };
    store.create_subnet(&v6, &[]).unwrap();
    assert_eq!(alloc(store, "v6", "after"), "2001:db8:0:1::1", "{what}");
}

fn sqlite_v3(dir: &Path) -> String {
    let path = dir.join("ipam.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&fixture("sqlite.sql")).unwrap();
    drop(conn);
    path.display().to_string()
}

#[test]
fn sqlite_store_of_the_previous_release_migrates_with_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_v3(dir.path());
    let store = Store::open(&format!("sqlite://{path}")).unwrap();
    check_migrated(&store, &fixture("sqlite.expected"), "sqlite");
    drop(store);
    // Reopening finds nothing left to migrate and the same records.
    let store = Store::open(&format!("sqlite://{path}")).unwrap();
    assert_eq!(alloc(&store, "s1", "again"), "10.20.0.250", "reopened");
}

#[test]
fn postgres_store_of_the_previous_release_migrates_with_every_record() {
    let url = common::pg::fresh_database();
    let dump = fixture("postgres.sql");
    let load_url = url.clone();
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&load_url, postgres::NoTls).unwrap();
        client.batch_execute(&dump).unwrap();
    })
    .join()
    .unwrap();
    let store = Store::open(&url).unwrap();
    check_migrated(&store, &fixture("postgres.expected"), "postgres");
}

fn newer_schema_message(result: Result<Store, StoreError>) -> String {
    match result {
        Err(StoreError::Unavailable(msg)) => msg,
        Err(other) => panic!("expected the newer-schema refusal, got {other:?}"),
        Ok(_) => panic!("a store of a newer schema was opened"),
    }
}

#[test]
fn sqlite_store_of_a_newer_release_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ipam.db");
    let url = format!("sqlite://{}", path.display());
    drop(Store::open(&url).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("INSERT INTO schema_version (version) VALUES (99)", [])
        .unwrap();
    let before: String = conn
        .query_row(
            "SELECT group_concat(sql, ';') FROM sqlite_master",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    let msg = newer_schema_message(Store::open(&url));
    assert!(
        msg.contains("schema version 99") && msg.contains("upgrade the provider"),
        "{msg}"
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    let after: String = conn
        .query_row(
            "SELECT group_concat(sql, ';') FROM sqlite_master",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(before, after, "the refused store was changed");
}

#[test]
fn postgres_store_of_a_newer_release_is_refused() {
    let url = common::pg::fresh_database();
    drop(Store::open(&url).unwrap());
    let admin = url.clone();
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        client
            .batch_execute("INSERT INTO schema_version (version) VALUES (99)")
            .unwrap();
    })
    .join()
    .unwrap();
    let msg = newer_schema_message(Store::open(&url));
    assert!(
        msg.contains("schema version 99") && msg.contains("upgrade the provider"),
        "{msg}"
    );
}

/// A subnet `s` (10.9.0.0/24) with one allocation, in `store`.
fn one_allocation(store: &Store) {
    let input = SubnetInput {
        cidr: Field::Value("10.9.0.0/24".into()),
        ..Default::default()
    };
    let subnet = SubnetRecord {
        id: "s".into(),
        vcenter: "vc-a".into(),
        name: "net".into(),
        wire_id: "vc-a/dvportgroup-1".into(),
        domain: None,
        spec: validate(&input).unwrap().unwrap(),
    };
    store.create_subnet(&subnet, &[]).unwrap();
    assert_eq!(alloc(store, "s", "before"), "10.9.0.254");
}

/// After a newer release (schema version 5) migrated the store under `store`: a read and an
/// allocation each fail, without a panic, saying the store was upgraded and to upgrade.
fn refused_as_upgraded(store: &Store) {
    let upgraded = |what: &str, result: std::thread::Result<Result<String, StoreError>>| {
        let msg = match result {
            Err(_) => panic!("{what} panicked"),
            Ok(Err(e)) => e.to_string(),
            Ok(Ok(got)) => panic!("{what}: worked on a store of a newer schema: {got}"),
        };
        assert!(
            msg.contains("upgraded to schema version 5")
                && msg.contains("newer release")
                && msg.contains("upgrade the provider"),
            "{what}: {msg}"
        );
    };
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store
            .subnet_addresses("s", &Default::default())
            .map(|a| format!("{a:?}"))
    }));
    upgraded("read", read);
    let write = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store
            .allocate(
                &AllocRequest {
                    subnet_id: "s".into(),
                    ip: None,
                    owner_kind: OwnerKind::Manual,
                    owner_id: "after".into(),
                    vm_uuid: None,
                    mac: None,
                    wire_id: None,
                    pending: false,
                    description: None,
                },
                &RangeSet::new(),
            )
            .map(|a| a.ip.to_string())
    }));
    upgraded("allocate", write);
}

/// A provider connected to a PostgreSQL store while a newer release migrates it (as version 4
/// converted the address columns of version 3 stores under running version 3 providers): its
/// next operation fails with a message saying the store was upgraded and the provider must be
/// upgraded, not with a column type error (or a panic reading a row), and writes nothing.
#[test]
fn postgres_store_upgraded_by_a_newer_release_while_connected_says_so() {
    let url = common::pg::fresh_database();
    let store = Store::open(&url).unwrap();
    one_allocation(&store);
    // The newer release's migration: address columns change type, the version goes up.
    let admin = url.clone();
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        client
            .batch_execute(
                "BEGIN;
                 ALTER TABLE addresses ALTER COLUMN ip TYPE text USING encode(ip, 'hex');
                 ALTER TABLE held_runs ALTER COLUMN start_ip TYPE text USING encode(start_ip, 'hex');
                 ALTER TABLE held_runs ALTER COLUMN end_ip TYPE text USING encode(end_ip, 'hex');
                 INSERT INTO schema_version (version) VALUES (5);
                 COMMIT;",
            )
            .unwrap();
    })
    .join()
    .unwrap();
    refused_as_upgraded(&store);
    let count = std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let row = client
            .query_one("SELECT count(*) FROM addresses", &[])
            .unwrap();
        row.get::<_, i64>(0)
    })
    .join()
    .unwrap();
    assert_eq!(count, 1, "the refused allocation wrote");
}

/// The same with a SQLite file another process migrates while this one has it open.
#[test]
fn sqlite_store_upgraded_by_a_newer_release_while_open_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ipam.db");
    let store = Store::open(&format!("sqlite://{}", path.display())).unwrap();
    one_allocation(&store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         UPDATE addresses SET ip = hex(ip);
         UPDATE held_runs SET start_ip = hex(start_ip), end_ip = hex(end_ip);
         INSERT INTO schema_version (version) VALUES (5);
         COMMIT;",
    )
    .unwrap();
    refused_as_upgraded(&store);
    let count: i64 = conn
        .query_row("SELECT count(*) FROM addresses", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 1, "the refused allocation wrote");
}
