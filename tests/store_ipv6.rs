//! IPv6 subnets in the IPAM store, on SQLite and on PostgreSQL through the same public
//! operations as IPv4: allocation under each policy, requested addresses, refusals (an IPv4
//! address from an IPv6 subnet, reserved ranges, the gateway), overlap per family, counts of a
//! /64, release, and several connections allocating from one /120 at once without a duplicate.

mod common;

use std::collections::HashSet;
use std::net::IpAddr;

use vsphereipam::ipam::ranges::{Range, RangeSet};
use vsphereipam::ipam::subnet::{validate, Field, SubnetInput};
use vsphereipam::store::ops::{AllocRequest, NicClaim, Observation, SubnetQuery};
use vsphereipam::store::{OwnerKind, Store, StoreError, SubnetRecord};

/// A fresh store of each backend: its URL, and the temp dir the SQLite file lives in.
fn fresh_stores() -> Vec<(String, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("ipam.db").display());
    vec![(sqlite, Some(dir)), (common::pg::fresh_database(), None)]
}

fn subnet(id: &str, cidr: &str, extra: impl FnOnce(&mut SubnetInput)) -> SubnetRecord {
    let mut input = SubnetInput {
        cidr: Field::Value(cidr.into()),
        ..Default::default()
    };
    extra(&mut input);
    SubnetRecord {
        id: id.into(),
        vcenter: "vc-1".into(),
        name: format!("name-{id}"),
        wire_id: "vc-1/dvportgroup-1".into(),
        domain: None,
        spec: validate(&input).expect("valid").expect("complete"),
    }
}

fn v(s: &str) -> Field<String> {
    Field::Value(s.into())
}

fn req(subnet_id: &str, owner: &str, ip: Option<&str>) -> AllocRequest {
    AllocRequest {
        subnet_id: subnet_id.into(),
        ip: ip.map(|i| i.parse().unwrap()),
        owner_kind: OwnerKind::Vm,
        owner_id: owner.into(),
        vm_uuid: Some(owner.into()),
        mac: None,
        wire_id: None,
        pending: false,
        description: None,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ipv6_conformance(store: &Store, url: &str) {
    // A dual-stack wire: one IPv4 and two IPv6 subnets on the same port group.
    let v4 = subnet("v4", "10.20.0.0/24", |_| {});
    store.create_subnet(&v4, &[]).unwrap();
    let a = subnet("a", "2001:db8:0:1::/64", |i| {
        i.gateway = v("2001:db8:0:1::1");
        i.dns_servers = Field::Value(vec![v("2001:db8::53"), v("10.0.0.2")]);
        i.reserved_ranges = Field::Value(vec![v(
            "2001:db8:0:1:ffff:ffff:ffff:fff0-2001:db8:0:1:ffff:ffff:ffff:ffff",
        )]);
    });
    store.create_subnet(&a, &[]).unwrap();
    assert_eq!(store.subnet("a").unwrap().unwrap().subnet, a, "{url}");
    store
        .create_subnet(&subnet("b", "2001:db8:0:2::/64", |_| {}), &[])
        .unwrap();
    // Overlap is per family: an IPv6 range inside another is refused.
    match store.create_subnet(&subnet("c", "2001:db8:0:1::/96", |_| {}), &[]) {
        Err(StoreError::Overlap { other_id, .. }) => assert_eq!(other_id, "a", "{url}"),
        other => panic!("{url}: expected overlap, got {other:?}"),
    }

    // stepdown: the top of the range minus the reserved run.
    let got = store
        .allocate(&req("a", "vm-1", None), &RangeSet::new())
        .unwrap();
    assert_eq!(got.ip, ip("2001:db8:0:1:ffff:ffff:ffff:ffef"), "{url}");
    // A free address can be asked for.
    let asked = store
        .allocate(
            &req("a", "vm-1", Some("2001:db8:0:1::abcd")),
            &RangeSet::new(),
        )
        .unwrap();
    assert_eq!(asked.ip, ip("2001:db8:0:1::abcd"));
    // Observed addresses are skipped.
    let observed = RangeSet::from_ranges([Range::single(ip("2001:db8:0:1:ffff:ffff:ffff:ffee"))]);
    assert_eq!(
        store
            .allocate(&req("a", "vm-2", None), &observed)
            .unwrap()
            .ip,
        ip("2001:db8:0:1:ffff:ffff:ffff:ffed")
    );

    // Refusals name why.
    for (asked, why) in [
        ("10.20.0.5", "IPv4 address"),
        ("2001:db8:0:1::1", "gateway"),
        ("2001:db8:0:1:ffff:ffff:ffff:fff5", "reserved"),
        ("2001:db8:0:2::5", "outside"),
    ] {
        match store.allocate(&req("a", "vm-3", Some(asked)), &RangeSet::new()) {
            Err(StoreError::Refused(msg)) => assert!(msg.contains(why), "{url} {asked}: {msg}"),
            other => panic!("{url} {asked}: expected a refusal, got {other:?}"),
        }
    }
    match store.allocate(
        &req("a", "vm-3", Some(&got.ip.to_string())),
        &RangeSet::new(),
    ) {
        Err(StoreError::AddressTaken { ip: taken, holder }) => {
            assert_eq!(taken, got.ip);
            assert!(holder.contains("vm-1"), "{holder}");
        }
        other => panic!("{url}: expected taken, got {other:?}"),
    }
    // An IPv4 subnet refuses an IPv6 address the same way.
    match store.allocate(
        &req("v4", "vm-3", Some("2001:db8:0:1::9")),
        &RangeSet::new(),
    ) {
        Err(StoreError::Refused(msg)) => assert!(msg.contains("IPv6 address"), "{msg}"),
        other => panic!("{url}: expected a refusal, got {other:?}"),
    }

    // Counts of a /64 beyond 2^53 and 2^64 - 1.
    let usage = store
        .find_subnet(
            Some("vc-1"),
            &SubnetQuery {
                cidr: Some("2001:db8:0:1::/64".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(usage.counts.size, (1u128 << 64) - 1, "{url}");
    assert_eq!(usage.counts.held, 3);
    assert_eq!(usage.counts.reserved, 17, "16 reserved and the gateway");
    assert_eq!(usage.counts.free, (1u128 << 64) - 1 - 3 - 17);

    // stepup and random in a small IPv6 subnet fill it exactly once each.
    for policy in ["stepup", "random"] {
        let id = format!("small-{policy}");
        let cidr = if policy == "stepup" {
            "2001:db8:0:3::/124"
        } else {
            "2001:db8:0:4::/124"
        };
        store
            .create_subnet(&subnet(&id, cidr, |i| i.alloc_policy = v(policy)), &[])
            .unwrap();
        let mut got = Vec::new();
        loop {
            match store.allocate(&req(&id, "o", None), &RangeSet::new()) {
                Ok(a) => got.push(a.ip),
                Err(StoreError::SubnetFull { .. }) => break,
                Err(e) => panic!("{url} {policy}: {e}"),
            }
        }
        let unique: HashSet<IpAddr> = got.iter().copied().collect();
        assert_eq!(
            unique.len(),
            15,
            "{url} {policy}: 16 addresses minus the anycast one"
        );
        assert_eq!(got.len(), 15);
        if policy == "stepup" {
            assert_eq!(got[0], ip("2001:db8:0:3::1"));
        }
    }

    // Claims, observations and release on IPv6 records.
    store
        .claim_nics(
            (OwnerKind::NicFix, "vm-9"),
            "vm-9",
            &[NicClaim {
                subnet_id: "b".into(),
                ip: ip("2001:db8:0:2::99"),
                mac: "00:50:56:00:00:09".into(),
                wire_id: "vc-1/dvportgroup-1".into(),
            }],
            &|_| None,
        )
        .unwrap();
    let (added, _) = store
        .sync_observed(
            "vc-1",
            &[Observation {
                ip: ip("2001:db8:0:2::77"),
                wire_id: "vc-1/dvportgroup-1".into(),
                who: "VM \"x\"".into(),
                vm_uuid: None,
                mac: None,
            }],
        )
        .unwrap();
    assert_eq!(added, 1, "{url}");
    let released = store.release_owner(OwnerKind::Vm, "vm-1").unwrap();
    assert_eq!(released.len(), 2);
    // Released means free again: stepdown hands out the same address once more.
    assert_eq!(
        store
            .allocate(&req("a", "vm-4", None), &RangeSet::new())
            .unwrap()
            .ip,
        got.ip
    );
}

#[test]
fn ipv6_subnets_behave_like_ipv4_on_every_backend() {
    for (url, _dir) in fresh_stores() {
        ipv6_conformance(&Store::open(&url).unwrap(), &url);
    }
}

/// Eight connections (each its own `Store`, so its own SQLite connection or PostgreSQL
/// session) allocate from one IPv6 /120 under `random` until it is full: every address once.
#[test]
fn connections_sharing_an_ipv6_subnet_never_get_the_same_address() {
    for (url, _dir) in fresh_stores() {
        Store::open(&url)
            .unwrap()
            .create_subnet(
                &subnet("s", "2001:db8:0:9::/120", |i| i.alloc_policy = v("random")),
                &[],
            )
            .unwrap();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let url = url.clone();
                std::thread::spawn(move || {
                    let store = Store::open(&url).unwrap();
                    let mut got = Vec::new();
                    loop {
                        match store.allocate(&req("s", &format!("t{t}"), None), &RangeSet::new()) {
                            Ok(a) => got.push(a.ip),
                            Err(StoreError::SubnetFull { .. }) => return got,
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        let all: Vec<IpAddr> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let unique: HashSet<IpAddr> = all.iter().copied().collect();
        assert_eq!(all.len(), 255, "{url}: 256 addresses minus the anycast one");
        assert_eq!(
            unique.len(),
            all.len(),
            "{url}: an address was handed out twice"
        );
    }
}
