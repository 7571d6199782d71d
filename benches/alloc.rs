//! Allocation cost, store transaction included, in an empty subnet, a 99%-full /16 and a
//! nearly full /8 (16.6 million held addresses), and in IPv6 an empty /64 and a /64 with a
//! million held addresses; then allocations per second for one and for 8
//! concurrent clients (each with its own connection) on SQLite and on PostgreSQL (the
//! throwaway cluster of `scripts/postgres.sh`, or `VSPHEREIPAM_TEST_POSTGRES`). Prints
//! `name value unit` lines.
//!
//! Run: `cargo bench --bench alloc`.

use std::time::Instant;

use rusqlite::params;
use vsphereipam::ipam::ranges::RangeSet;
use vsphereipam::ipam::subnet::{validate, Field, SubnetInput};
use vsphereipam::store::ops::AllocRequest;
use vsphereipam::store::{OwnerKind, Store, SubnetRecord};

fn subnet(id: &str, cidr: &str) -> SubnetRecord {
    let input = SubnetInput {
        cidr: Field::Value(cidr.into()),
        ..Default::default()
    };
    SubnetRecord {
        id: id.into(),
        vcenter: "bench".into(),
        name: id.into(),
        wire_id: "bench/dvportgroup-1".into(),
        domain: None,
        spec: validate(&input).unwrap().unwrap(),
    }
}

/// Marks the top `fraction` of the subnet's range held, the way a long series of stepdown
/// allocations leaves it: one record per address plus the merged run the allocator reads.
fn fill(path: &str, s: &SubnetRecord, fraction: f64) -> u64 {
    let count = (s.spec.allocatable().len() as f64 * fraction) as u64;
    fill_count(path, s, count)
}

/// Marks the top `count` addresses of the subnet's range held, as [`fill`] does. Addresses
/// are stored as the 16 big-endian bytes of their number (`store::key_column`).
fn fill_count(path: &str, s: &SubnetRecord, count: u64) -> u64 {
    let range = s.spec.allocatable();
    let first = range.end - u128::from(count) + 1;
    let mut conn = rusqlite::Connection::open(path).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare("INSERT INTO addresses (subnet_id, ip, owner_kind, owner_id, vm_uuid, mac, wire_id, pending, created_at) VALUES (?1, ?2, 'manual', ?3, NULL, NULL, NULL, 0, 0)")
            .unwrap();
        for ip in first..=range.end {
            insert
                .execute(params![s.id, ip.to_be_bytes(), format!("fill-{ip}")])
                .unwrap();
        }
        tx.execute(
            "INSERT INTO held_runs (subnet_id, start_ip, end_ip) VALUES (?1, ?2, ?3)",
            params![s.id, first.to_be_bytes(), range.end.to_be_bytes()],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    count
}

fn measure(store: &Store, subnet_id: &str, first: u32, n: u32) -> f64 {
    let observed = RangeSet::new();
    let start = Instant::now();
    for i in first..first + n {
        let req = AllocRequest {
            subnet_id: subnet_id.into(),
            ip: None,
            owner_kind: OwnerKind::Manual,
            owner_id: format!("bench-{i}"),
            vm_uuid: None,
            mac: None,
            wire_id: None,
            pending: false,
            description: None,
        };
        store.allocate(&req, &observed).unwrap();
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

/// Microseconds per allocation in each subnet: `ROUNDS` rounds taking turns between the subnets
/// (so a slow moment of the machine or a WAL checkpoint hits them alike), median round of each.
fn measure_rounds(store: &Store, subnets: &[(&str, u32)]) -> Vec<f64> {
    let mut rounds: Vec<Vec<f64>> = vec![Vec::new(); subnets.len()];
    for round in 0..ROUNDS {
        for (i, (id, n)) in subnets.iter().enumerate() {
            rounds[i].push(measure(store, id, round * n, *n));
        }
    }
    rounds
        .into_iter()
        .map(|mut r| {
            r.sort_by(f64::total_cmp);
            r[r.len() / 2]
        })
        .collect()
}

const ROUNDS: u32 = 7;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::open(&url).unwrap();
    let path = path.display().to_string();

    let empty = subnet("empty16", "10.1.0.0/16");
    store.create_subnet(&empty, &[]).unwrap();
    let full16 = subnet("full16", "10.2.0.0/16");
    store.create_subnet(&full16, &[]).unwrap();
    let held16 = fill(&path, &full16, 0.99);
    let full8 = subnet("full8", "11.0.0.0/8");
    store.create_subnet(&full8, &[]).unwrap();
    let t = Instant::now();
    let held8 = fill(&path, &full8, 0.99);
    eprintln!(
        "filled the /8 with {held8} records in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let empty64 = subnet("empty64", "2001:db8:0:1::/64");
    store.create_subnet(&empty64, &[]).unwrap();
    let full64 = subnet("full64", "2001:db8:0:2::/64");
    store.create_subnet(&full64, &[]).unwrap();
    let held64 = fill_count(&path, &full64, 1_000_000);
    // 1% of a /16 is 655 free addresses: fewer allocations there.
    let [alloc_empty, alloc_full_16, alloc_full_8, alloc_empty_v6, alloc_full_v6] = measure_rounds(
        &store,
        &[
            ("empty16", 300),
            ("full16", 60),
            ("full8", 300),
            ("empty64", 300),
            ("full64", 300),
        ],
    )[..] else {
        unreachable!("five subnets measured")
    };

    println!("alloc_empty_us {alloc_empty:.1} us");
    println!("alloc_full_16_us {alloc_full_16:.1} us (held {held16})");
    println!("alloc_full_8_us {alloc_full_8:.1} us (held {held8})");
    println!("alloc_full_8_ratio {:.2} x", alloc_full_8 / alloc_empty);
    println!("alloc_empty_v6_us {alloc_empty_v6:.1} us");
    println!("alloc_full_v6_us {alloc_full_v6:.1} us (held {held64})");
    println!(
        "alloc_full_v6_ratio {:.2} x",
        alloc_full_v6 / alloc_empty_v6
    );

    let sqlite_rate = format!("sqlite://{}", dir.path().join("rate.db").display());
    let postgres_rate = postgres_database();
    for (name, url) in [("sqlite", sqlite_rate), ("postgres", postgres_rate)] {
        let store = Store::open(&url).unwrap();
        store
            .create_subnet(&subnet("rate", "10.3.0.0/16"), &[])
            .unwrap();
        for clients in [1, 8] {
            let per_client = 4000 / clients;
            let rate = rate(&url, clients, per_client);
            println!("alloc_rate_{name}_{clients}_clients {rate:.0} allocations/s");
        }
    }
}

/// Allocations per second of `clients` threads, each with its own store connection, all
/// allocating `per_client` addresses from one subnet.
fn rate(url: &str, clients: usize, per_client: usize) -> f64 {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let url = url.to_string();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let store = Store::open(&url).unwrap();
                let observed = RangeSet::new();
                barrier.wait();
                for i in 0..per_client {
                    let req = AllocRequest {
                        subnet_id: "rate".into(),
                        ip: None,
                        owner_kind: OwnerKind::Manual,
                        owner_id: format!("rate-{clients}-{c}-{i}"),
                        vm_uuid: None,
                        mac: None,
                        wire_id: None,
                        pending: false,
                        description: None,
                    };
                    store.allocate(&req, &observed).unwrap();
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for t in threads {
        t.join().unwrap();
    }
    (clients * per_client) as f64 / start.elapsed().as_secs_f64()
}

/// A new database on the test cluster (started if needed).
fn postgres_database() -> String {
    let admin = std::env::var("VSPHEREIPAM_TEST_POSTGRES").unwrap_or_else(|_| {
        let out =
            std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/postgres.sh"))
                .arg("start")
                .output()
                .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    });
    let name = format!("bench_{}", std::process::id());
    let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
}
