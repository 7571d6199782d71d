//! The IPAM store's behaviour, written once against `Store` so every backend runs the same
//! suite, on SQLite and on PostgreSQL. Includes several processes allocating from one store at
//! once until the subnet is full.

mod common;

use std::collections::HashSet;
use std::net::IpAddr;
use std::process::Command;

use common::wait_for;
use vsphereipam::ipam::ranges::{Range, RangeSet};
use vsphereipam::ipam::subnet::{validate, Field, SubnetInput};
use vsphereipam::store::ops::{
    AddressFilter, AllocRequest, LookupError, NicClaim, Observation, OnConflict, SubnetCounts,
    SubnetQuery,
};
use vsphereipam::store::{OwnerKind, Store, StoreError, SubnetRecord};

fn sqlite_store(dir: &tempfile::TempDir) -> Store {
    let url = format!("sqlite://{}", dir.path().join("ipam.db").display());
    Store::open(&url).expect("open sqlite store")
}

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

fn set(input: &mut SubnetInput, attr: &str, value: &str) {
    let v = Field::Value(value.to_string());
    match attr {
        "start_ip" => input.start_ip = v,
        "end_ip" => input.end_ip = v,
        "gateway" => input.gateway = v,
        "alloc_policy" => input.alloc_policy = v,
        _ => unreachable!(),
    }
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

/// The suite every backend must pass.
fn conformance(store: &Store) {
    // Create, read, overlap.
    let a = subnet("a", "10.20.0.0/24", |i| set(i, "gateway", "10.20.0.254"));
    let view = store
        .create_subnet(&a, &["vc-1/network-9".into(), a.wire_id.clone()])
        .unwrap();
    assert_eq!(
        view.additional_wire_ids(),
        ["vc-1/network-9"],
        "own wire is never an additional wire"
    );
    assert_eq!(store.subnet("a").unwrap().unwrap().subnet, a);
    let b = subnet("b", "10.20.0.0/25", |_| {});
    match store.create_subnet(&b, &[]) {
        Err(StoreError::Overlap {
            other_id,
            other_name,
            ..
        }) => {
            assert_eq!((other_id.as_str(), other_name.as_str()), ("a", "name-a"))
        }
        other => panic!("expected overlap, got {other:?}"),
    }
    // Same range in another vCenter is fine.
    let other_vc = SubnetRecord {
        id: "c".into(),
        vcenter: "vc-2".into(),
        ..b.clone()
    };
    store.create_subnet(&other_vc, &[]).unwrap();

    // stepdown skips the gateway; stepup takes the lowest.
    let got = store
        .allocate(&req("a", "vm-1", None), &RangeSet::new())
        .unwrap();
    assert_eq!(got.ip, ip("10.20.0.253"));
    // Observed addresses are skipped too.
    let observed = RangeSet::from_ranges([Range::single(ip("10.20.0.252"))]);
    assert_eq!(
        store
            .allocate(&req("a", "vm-2", None), &observed)
            .unwrap()
            .ip,
        ip("10.20.0.251")
    );

    // Requests: free, held, gateway, observed, outside.
    assert_eq!(
        store
            .allocate(&req("a", "vm-3", Some("10.20.0.10")), &observed)
            .unwrap()
            .ip,
        ip("10.20.0.10")
    );
    match store.allocate(&req("a", "vm-4", Some("10.20.0.10")), &observed) {
        Err(StoreError::AddressTaken { holder, .. }) => {
            assert!(holder.contains("vm-3"), "{holder}")
        }
        other => panic!("expected taken, got {other:?}"),
    }
    for (addr, why) in [("10.20.0.254", "gateway"), ("10.20.1.1", "outside")] {
        match store.allocate(&req("a", "vm-4", Some(addr)), &observed) {
            Err(StoreError::Refused(msg)) => assert!(msg.contains(why), "{msg}"),
            other => panic!("expected refusal for {addr}, got {other:?}"),
        }
    }
    assert!(matches!(
        store.allocate(&req("a", "vm-4", Some("10.20.0.252")), &observed),
        Err(StoreError::AddressTaken { .. })
    ));

    // In-place update: shrinking the range past a held address is refused with the list.
    let mut shrunk = subnet("a", "10.20.0.0/24", |i| {
        set(i, "start_ip", "10.20.0.20");
        set(i, "gateway", "10.20.0.254");
    });
    match store.update_subnet(&shrunk) {
        Err(StoreError::InTheWay { addresses }) => {
            assert_eq!(addresses.len(), 1);
            assert!(addresses[0].starts_with("10.20.0.10 "), "{addresses:?}");
        }
        other => panic!("expected in the way, got {other:?}"),
    }
    shrunk.spec.start = ip("10.20.0.5");
    store.update_subnet(&shrunk).unwrap();

    // Destroy refused while resources own addresses; allowed after release.
    match store.delete_subnet("a") {
        Err(StoreError::InUse { owners }) => assert_eq!(owners.len(), 3, "{owners:?}"),
        other => panic!("expected in use, got {other:?}"),
    }
    for vm in ["vm-1", "vm-2", "vm-3"] {
        assert_eq!(store.release_owner(OwnerKind::Vm, vm).unwrap().len(), 1);
    }
    // Released addresses are free again.
    assert_eq!(
        store
            .allocate(&req("a", "vm-5", None), &RangeSet::new())
            .unwrap()
            .ip,
        ip("10.20.0.253")
    );
    store.release_owner(OwnerKind::Vm, "vm-5").unwrap();
    // Observed records do not block deletion.
    let mut obs = req("a", "vm-x", Some("10.20.0.77"));
    obs.owner_kind = OwnerKind::Observed;
    store.allocate(&obs, &RangeSet::new()).unwrap();
    store.delete_subnet("a").unwrap();
    assert!(store.subnet("a").unwrap().is_none());
    assert!(store.addresses("a").unwrap().is_empty());

    // Wires: own wire refused; explicit + detected; detaching keeps the detected link.
    let d = subnet("d", "10.30.0.0/24", |_| {});
    store.create_subnet(&d, &["vc-1/network-5".into()]).unwrap();
    assert!(matches!(
        store.attach_wire("d", &d.wire_id),
        Err(StoreError::Refused(_))
    ));
    store.attach_wire("d", "vc-1/network-5").unwrap();
    let v = store.attach_wire("d", "vc-1/network-6").unwrap();
    assert_eq!(
        v.additional_wire_ids(),
        ["vc-1/network-5", "vc-1/network-6"]
    );
    store.detach_wire("d", "vc-1/network-5").unwrap();
    store.detach_wire("d", "vc-1/network-6").unwrap();
    assert_eq!(
        store.subnet("d").unwrap().unwrap().additional_wire_ids(),
        ["vc-1/network-5"]
    );

    // A /30 fills up and says so.
    let e = subnet("e", "10.40.0.0/30", |i| set(i, "alloc_policy", "stepup"));
    store.create_subnet(&e, &[]).unwrap();
    assert_eq!(
        store
            .allocate(&req("e", "x", None), &RangeSet::new())
            .unwrap()
            .ip,
        ip("10.40.0.1")
    );
    assert_eq!(
        store
            .allocate(&req("e", "y", None), &RangeSet::new())
            .unwrap()
            .ip,
        ip("10.40.0.2")
    );
    assert!(matches!(
        store.allocate(&req("e", "z", None), &RangeSet::new()),
        Err(StoreError::SubnetFull { .. })
    ));

    // Re-claiming a VM's NICs (a re-import) is one transaction: refused, the old records stay.
    let r = subnet("r", "10.50.0.0/24", |_| {});
    store.create_subnet(&r, &[]).unwrap();
    let claim = |address: &str, mac: &str| NicClaim {
        subnet_id: "r".into(),
        ip: ip(address),
        mac: mac.into(),
        wire_id: r.wire_id.clone(),
    };
    let nobody = |_: &NicClaim| None;
    let owner = (OwnerKind::Vm, "vm-r");
    store
        .claim_nics(
            owner,
            "vm-r",
            &[claim("10.50.0.10", "00:50:56:00:00:01")],
            &nobody,
        )
        .unwrap();
    store
        .allocate(&req("r", "other-vm", Some("10.50.0.20")), &RangeSet::new())
        .unwrap();
    let held = |store: &Store| -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = store
            .addresses_of_owner(OwnerKind::Vm, "vm-r")
            .unwrap()
            .iter()
            .map(|a| a.ip)
            .collect();
        ips.sort();
        ips
    };
    let refused = store
        .reclaim_nics(
            owner,
            "vm-r",
            &[
                claim("10.50.0.11", "00:50:56:00:00:01"),
                claim("10.50.0.20", "00:50:56:00:00:02"),
            ],
            &nobody,
        )
        .unwrap_err();
    assert_eq!(refused.index, Some(1), "{refused:?}");
    assert_eq!(held(store), [ip("10.50.0.10")]);
    store
        .reclaim_nics(
            owner,
            "vm-r",
            &[claim("10.50.0.11", "00:50:56:00:00:01")],
            &nobody,
        )
        .unwrap();
    assert_eq!(held(store), [ip("10.50.0.11")]);
}

fn query(
    id: Option<&str>,
    name: Option<&str>,
    cidr: Option<&str>,
    wire_id: Option<&str>,
) -> SubnetQuery {
    SubnetQuery {
        id: id.map(Into::into),
        name: name.map(Into::into),
        cidr: cidr.map(Into::into),
        wire_id: wire_id.map(Into::into),
    }
}

/// What the data sources read: one subnet by id or by name / cidr / wire with its counts, and
/// a subnet's address records with filters.
fn lookups(store: &Store) {
    let (w1, w2) = ("vc-1/dvportgroup-1", "vc-1/dvportgroup-2");
    let a = subnet("a", "10.30.0.0/24", |i| {
        set(i, "gateway", "10.30.0.1");
        i.reserved_ranges = Field::Value(vec![Field::Value("10.30.0.100-10.30.0.109".into())]);
    });
    let a = SubnetRecord {
        name: "app".into(),
        ..a
    };
    let b = SubnetRecord {
        name: "app".into(),
        wire_id: w2.into(),
        ..subnet("b", "10.31.0.0/24", |_| {})
    };
    let c = SubnetRecord {
        name: "db".into(),
        ..subnet("c", "10.32.0.0/24", |_| {})
    };
    let d = SubnetRecord {
        name: "db".into(),
        vcenter: "vc-2".into(),
        ..subnet("d", "10.33.0.0/24", |_| {})
    };
    for s in [&a, &b, &c, &d] {
        store.create_subnet(s, &[]).unwrap();
    }
    store
        .allocate(
            &AllocRequest {
                mac: Some("00:50:56:00:00:01".into()),
                description: Some("web".into()),
                ..req("a", "vm-1", Some("10.30.0.10"))
            },
            &RangeSet::new(),
        )
        .unwrap();
    store
        .allocate(&req("a", "vm-2", Some("10.30.0.11")), &RangeSet::new())
        .unwrap();
    store
        .allocate(
            &AllocRequest {
                owner_kind: OwnerKind::Address,
                owner_id: "vip-1".into(),
                vm_uuid: None,
                description: Some("VIP".into()),
                ..req("a", "", Some("10.30.0.12"))
            },
            &RangeSet::new(),
        )
        .unwrap();
    let seen = |ip_: &str, who: &str| Observation {
        ip: ip(ip_),
        wire_id: w1.into(),
        who: who.into(),
        vm_uuid: Some(format!("uuid-{who}")),
        mac: None,
    };
    // One observed address inside the reserved range: counted as reserved and as observed,
    // and once as not free.
    store
        .sync_observed(
            "vc-1",
            &[
                seen("10.30.0.50", "legacy"),
                seen("10.30.0.105", "appliance"),
            ],
        )
        .unwrap();

    // By id: its wires and counts.
    let found = store
        .find_subnet(Some("vc-1"), &query(Some("a"), None, None, None))
        .unwrap();
    assert_eq!(found.view.subnet, a);
    assert_eq!(
        found.counts,
        SubnetCounts {
            size: 254,
            held: 3,
            observed: 2,
            reserved: 11,
            free: 254 - 11 - 3 - 1,
        }
    );
    let empty = store
        .find_subnet(None, &query(Some("c"), None, None, None))
        .unwrap();
    assert_eq!(
        empty.counts,
        SubnetCounts {
            size: 254,
            held: 0,
            observed: 0,
            reserved: 0,
            free: 254,
        }
    );
    // An id names a subnet of any vCenter.
    let other = store
        .find_subnet(Some("vc-1"), &query(Some("d"), None, None, None))
        .unwrap();
    assert_eq!(other.view.subnet.vcenter, "vc-2");

    // By name, cidr, wire: exactly one match, searched in the vCenter given.
    let one = |q: SubnetQuery| {
        store
            .find_subnet(Some("vc-1"), &q)
            .map(|u| u.view.subnet.id)
    };
    assert_eq!(
        one(query(None, Some("app"), Some("10.30.0.0/24"), None)).unwrap(),
        "a"
    );
    assert_eq!(
        one(query(None, None, Some("10.31.0.0/24"), None)).unwrap(),
        "b"
    );
    assert_eq!(one(query(None, None, None, Some(w2))).unwrap(), "b");
    assert_eq!(one(query(None, Some("db"), None, Some(w1))).unwrap(), "c");
    assert_eq!(one(query(None, Some("db"), None, None)).unwrap(), "c");
    match one(query(None, Some("app"), None, None)) {
        Err(LookupError::Matches {
            count: 2,
            candidates,
            ..
        }) => {
            assert!(candidates[0].contains("10.30.0.0/24") && candidates[0].contains("(id a)"));
            assert!(candidates[1].contains("10.31.0.0/24") && candidates[1].contains(w2));
        }
        other => panic!("{other:?}"),
    }
    let both = one(query(None, None, None, Some(w1))).unwrap_err();
    assert!(
        matches!(both, LookupError::Matches { count: 2, .. }),
        "{both:?}"
    );
    assert!(
        both.to_string().starts_with("2 subnets match wire_id = "),
        "{both}"
    );
    let none = one(query(None, Some("app"), Some("10.32.0.0/24"), None)).unwrap_err();
    assert_eq!(
        none.to_string(),
        r#"no subnet matches name = "app", cidr = "10.32.0.0/24""#
    );
    assert!(matches!(
        one(query(Some("a"), Some("db"), None, None)),
        Err(LookupError::Matches { count: 0, .. })
    ));
    assert!(matches!(
        one(query(Some("nope"), None, None, None)),
        Err(LookupError::Matches { count: 0, .. })
    ));
    assert!(matches!(
        one(query(None, None, Some("10.30.0/24"), None)),
        Err(LookupError::Store(StoreError::Refused(_)))
    ));
    assert!(matches!(
        one(SubnetQuery::default()),
        Err(LookupError::Store(StoreError::Refused(_)))
    ));

    // Address records, by address, with filters.
    let listed = |f: AddressFilter| -> Vec<String> {
        store
            .subnet_addresses("a", &f)
            .unwrap()
            .iter()
            .map(|r| format!("{} {}", r.ip, r.owner_id))
            .collect()
    };
    assert_eq!(
        listed(AddressFilter::default()),
        [
            "10.30.0.10 vm-1",
            "10.30.0.11 vm-2",
            "10.30.0.12 vip-1",
            "10.30.0.50 legacy",
            "10.30.0.105 appliance"
        ]
    );
    let all = store
        .subnet_addresses("a", &AddressFilter::default())
        .unwrap();
    assert_eq!(all[0].mac.as_deref(), Some("00:50:56:00:00:01"));
    assert_eq!(all[0].description.as_deref(), Some("web"));
    assert_eq!(all[0].vm_uuid.as_deref(), Some("vm-1"));
    assert_eq!(all[2].owner_kind, OwnerKind::Address);
    assert_eq!(
        listed(AddressFilter {
            owner_kind: Some(OwnerKind::Vm),
            vm_uuid: None
        }),
        ["10.30.0.10 vm-1", "10.30.0.11 vm-2"]
    );
    assert_eq!(
        listed(AddressFilter {
            owner_kind: None,
            vm_uuid: Some("VM-2".into())
        }),
        ["10.30.0.11 vm-2"]
    );
    assert_eq!(
        listed(AddressFilter {
            owner_kind: Some(OwnerKind::Observed),
            vm_uuid: Some("uuid-legacy".into())
        }),
        ["10.30.0.50 legacy"]
    );
    assert!(listed(AddressFilter {
        owner_kind: Some(OwnerKind::NicFix),
        vm_uuid: None
    })
    .is_empty());
    assert!(store
        .subnet_addresses("c", &AddressFilter::default())
        .unwrap()
        .is_empty());
    assert!(matches!(
        store.subnet_addresses("nope", &AddressFilter::default()),
        Err(StoreError::NotFound(_))
    ));
}

/// A vCenter's subnets with their wires in one read (ordered by range, each as the one-subnet
/// read sees it, another vCenter's left out), and the observed-address mirror built on it:
/// added, kept, replaced and removed per subnet, through its own and its additional wires.
fn views_and_observed(store: &Store) {
    let a = subnet("a", "10.30.0.0/24", |_| {});
    let b = SubnetRecord {
        wire_id: "vc-1/dvportgroup-2".into(),
        ..subnet("b", "10.20.0.0/24", |_| {})
    };
    let c = SubnetRecord {
        vcenter: "vc-2".into(),
        wire_id: "vc-2/dvportgroup-1".into(),
        ..subnet("c", "10.30.0.0/24", |_| {})
    };
    for s in [&a, &b, &c] {
        store.create_subnet(s, &[]).unwrap();
    }
    store.attach_wire("a", "vc-1/dvportgroup-8").unwrap();
    store.attach_wire("a", "vc-1/dvportgroup-7").unwrap();
    store.attach_wire("c", "vc-2/dvportgroup-7").unwrap();
    let views = store.subnet_views("vc-1").unwrap();
    let ids: Vec<&str> = views.iter().map(|v| v.subnet.id.as_str()).collect();
    assert_eq!(ids, ["b", "a"]);
    for view in &views {
        assert_eq!(Some(view), store.subnet(&view.subnet.id).unwrap().as_ref());
    }
    assert_eq!(
        views[1].additional_wire_ids(),
        ["vc-1/dvportgroup-7", "vc-1/dvportgroup-8"]
    );
    assert!(views[0].links.is_empty());
    let other = store.subnet_views("vc-2").unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].additional_wire_ids(), ["vc-2/dvportgroup-7"]);

    let seen = |ip_: &str, wire: &str, who: &str| Observation {
        ip: ip(ip_),
        wire_id: wire.into(),
        who: who.into(),
        vm_uuid: None,
        mac: None,
    };
    let observed = |id: &str| -> Vec<(String, String)> {
        store
            .addresses(id)
            .unwrap()
            .into_iter()
            .filter(|r| r.owner_kind == OwnerKind::Observed)
            .map(|r| (r.ip.to_string(), r.owner_id))
            .collect()
    };
    // Through a's additional wire: recorded in a; b's range seen on a's wire: in neither.
    let first = [
        seen("10.30.0.20", "vc-1/dvportgroup-8", "vm-x"),
        seen("10.20.0.5", "vc-1/dvportgroup-1", "vm-y"),
        seen("10.20.0.6", "vc-1/dvportgroup-2", "vm-z"),
    ];
    assert_eq!(store.sync_observed("vc-1", &first).unwrap(), (2, 0));
    assert_eq!(observed("a"), [("10.30.0.20".into(), "vm-x".into())]);
    assert_eq!(observed("b"), [("10.20.0.6".into(), "vm-z".into())]);
    assert_eq!(store.sync_observed("vc-1", &first).unwrap(), (0, 0));
    // Another VM reports a's address now; b's went away.
    let second = [seen("10.30.0.20", "vc-1/dvportgroup-7", "vm-w")];
    assert_eq!(store.sync_observed("vc-1", &second).unwrap(), (1, 2));
    assert_eq!(observed("a"), [("10.30.0.20".into(), "vm-w".into())]);
    assert!(observed("b").is_empty());
    assert!(observed("c").is_empty(), "another vCenter's subnet");
    assert_eq!(store.sync_observed("vc-1", &[]).unwrap(), (0, 1));
    assert!(observed("a").is_empty());
}

#[test]
fn sqlite_views_and_observed() {
    let dir = tempfile::tempdir().unwrap();
    views_and_observed(&sqlite_store(&dir));
}

#[test]
fn postgres_views_and_observed() {
    views_and_observed(&Store::open(&common::pg::fresh_database()).expect("open postgres store"));
}

/// `on_conflict` of `vsphereipam_ip_address`: a requested address already held is an error
/// naming its holder, or gets the next free one; one the subnet never hands out is refused
/// either way.
fn conflicts(store: &Store) {
    let s = subnet("e", "10.40.0.0/29", |i| set(i, "gateway", "10.40.0.1"));
    store.create_subnet(&s, &[]).unwrap();
    store
        .allocate(&req("e", "vm-1", Some("10.40.0.6")), &RangeSet::new())
        .unwrap();
    let observed = RangeSet::from_ranges([Range::single(ip("10.40.0.5"))]);
    let vip = |ip_: &str| AllocRequest {
        owner_kind: OwnerKind::Address,
        vm_uuid: None,
        ..req("e", &format!("vip-{ip_}"), Some(ip_))
    };

    // error: the holder is named, nothing is written.
    let taken = store
        .allocate_with(&vip("10.40.0.6"), &observed, OnConflict::Error)
        .unwrap_err();
    assert!(
        matches!(&taken, StoreError::AddressTaken { holder, .. } if holder.contains("vm-1")),
        "{taken:?}"
    );
    let reported = store
        .allocate_with(&vip("10.40.0.5"), &observed, OnConflict::Error)
        .unwrap_err();
    assert!(
        matches!(reported, StoreError::AddressTaken { .. }),
        "{reported:?}"
    );
    assert_eq!(store.addresses("e").unwrap().len(), 1);

    // next_free: the plan-time check names the address the apply then takes (stepdown: the
    // highest free one), then the next.
    assert_eq!(
        store
            .check_allocation(&vip("10.40.0.6"), &observed, OnConflict::NextFree)
            .unwrap(),
        ip("10.40.0.4")
    );
    assert_eq!(
        store.addresses("e").unwrap().len(),
        1,
        "a check writes nothing"
    );
    let first = store
        .allocate_with(&vip("10.40.0.6"), &observed, OnConflict::NextFree)
        .unwrap();
    assert_eq!(
        (first.ip, first.owner_kind),
        (ip("10.40.0.4"), OwnerKind::Address)
    );
    let second = store
        .allocate_with(&vip("10.40.0.5"), &observed, OnConflict::NextFree)
        .unwrap();
    assert_eq!(second.ip, ip("10.40.0.3"));
    // A free requested address is taken as asked.
    let asked = store
        .allocate_with(&vip("10.40.0.2"), &observed, OnConflict::NextFree)
        .unwrap();
    assert_eq!(asked.ip, ip("10.40.0.2"));
    // The gateway and addresses outside the range are refused, not replaced.
    for wrong in ["10.40.0.1", "10.40.0.7", "10.41.0.2"] {
        let refused = store
            .allocate_with(&vip(wrong), &observed, OnConflict::NextFree)
            .unwrap_err();
        assert!(
            matches!(refused, StoreError::Refused(_)),
            "{wrong}: {refused:?}"
        );
    }
    // Full: every address of .2-.6 is held, observed or the gateway's.
    let full = store
        .allocate_with(&vip("10.40.0.6"), &observed, OnConflict::NextFree)
        .unwrap_err();
    assert!(matches!(full, StoreError::SubnetFull { .. }), "{full:?}");
    assert!(matches!(
        store.check_allocation(&vip("10.40.0.6"), &observed, OnConflict::NextFree),
        Err(StoreError::SubnetFull { .. })
    ));
    assert_eq!(store.addresses("e").unwrap().len(), 4);
    assert_eq!("next_free".parse::<OnConflict>(), Ok(OnConflict::NextFree));
    assert_eq!("error".parse::<OnConflict>(), Ok(OnConflict::Error));
    assert!("nextfree".parse::<OnConflict>().is_err());
}

#[test]
fn sqlite_on_conflict() {
    let dir = tempfile::tempdir().unwrap();
    conflicts(&sqlite_store(&dir));
}

#[test]
fn postgres_on_conflict() {
    conflicts(&Store::open(&common::pg::fresh_database()).expect("open postgres store"));
}

#[test]
fn sqlite_lookups() {
    let dir = tempfile::tempdir().unwrap();
    lookups(&sqlite_store(&dir));
}

#[test]
fn postgres_lookups() {
    lookups(&Store::open(&common::pg::fresh_database()).expect("open postgres store"));
}

#[test]
fn sqlite_conformance() {
    let dir = tempfile::tempdir().unwrap();
    conformance(&sqlite_store(&dir));
}

#[test]
fn postgres_conformance() {
    let url = common::pg::fresh_database();
    conformance(&Store::open(&url).expect("open postgres store"));
    // Opening again finds the schema in place and the data kept.
    let again = Store::open(&url).unwrap();
    assert!(!again.subnets(None).unwrap().is_empty());
}

#[test]
fn postgres_errors_never_show_the_password() {
    let admin = common::pg::admin_url();
    let url = admin
        .replacen("postgres@", "postgres:s3cret-pw@", 1)
        .replace("/postgres", "/no_such_database_here");
    let err = Store::open(&url).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(text.contains("no_such_database_here"), "{text}");
    assert!(!text.contains("s3cret-pw"), "{text}");
    let unreachable = Store::open("postgres://ipam:s3cret-pw@127.0.0.1:1/ipam").unwrap_err();
    assert!(
        !unreachable.to_string().contains("s3cret-pw"),
        "{unreachable}"
    );
}

#[test]
fn postgres_migrations_are_safe_when_processes_start_at_once() {
    let url = common::pg::fresh_database();
    let opened: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || Store::open(&url).map(|_| ()))
        })
        .collect();
    for t in opened {
        t.join().unwrap().expect("concurrent open");
    }
}

#[test]
fn sqlite_file_is_private_and_reopens_with_its_data() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/ipam.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::open(&url).unwrap();
    store
        .create_subnet(&subnet("a", "10.20.0.0/24", |_| {}), &[])
        .unwrap();
    drop(store);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let again = Store::open(&url).unwrap();
    assert!(again.subnet("a").unwrap().is_some());
}

#[test]
fn unreadable_store_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = Store::open(&format!("sqlite://{}/ipam.db", file.display())).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![b'z'; 8192]).unwrap();
    let err = Store::open(&format!("sqlite://{}", garbage.display())).unwrap_err();
    assert!(err.to_string().contains("garbage.db"), "{err}");
}

const CHILD_ENV: &str = "VSPHEREIPAM_TEST_ALLOC_CHILD";
/// A directory where each child says it is ready and then waits for `go`, so that all of them
/// allocate at once (the first one started could otherwise fill the subnet alone).
const GATE_ENV: &str = "VSPHEREIPAM_TEST_ALLOC_GATE";
const GATE_POLL: std::time::Duration = std::time::Duration::from_millis(1);

/// One child process of [`processes_sharing_one_store_never_get_the_same_address`]: allocates
/// until the subnet is full, printing each address.
fn child_allocator(url: &str) {
    let store = Store::open(url).unwrap();
    let me = std::process::id().to_string();
    let gate = std::path::PathBuf::from(std::env::var(GATE_ENV).unwrap());
    std::fs::write(gate.join(format!("ready-{me}")), "").unwrap();
    wait_for("the go signal", GATE_POLL, || {
        gate.join("go").exists().then_some(())
    });
    loop {
        match store.allocate(&req("shared", &me, None), &RangeSet::new()) {
            Ok(a) => {
                println!("GOT {}", a.ip);
                // Between two allocations, a pause like a real caller's: SQLite's busy handler
                // sleeps while it waits, so a process allocating in a tight loop would keep
                // the lock and fill the subnet alone.
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(StoreError::SubnetFull { .. }) => break,
            Err(e) => panic!("allocation failed: {e}"),
        }
    }
}

/// Its children are this same test, run again by the test binary with the store in
/// [`CHILD_ENV`]: so the child entry is no test of its own, counted as passed on every run.
#[test]
fn processes_sharing_one_store_never_get_the_same_address() {
    if let Ok(url) = std::env::var(CHILD_ENV) {
        child_allocator(&url);
        return;
    }
    for (url, _dir) in fresh_stores() {
        processes_fill_one_subnet(&url);
    }
}

fn processes_fill_one_subnet(url: &str) {
    let store = Store::open(url).unwrap();
    // /23 minus network and broadcast: 510 addresses for 4 processes.
    store
        .create_subnet(
            &subnet("shared", "10.60.0.0/23", |i| {
                set(i, "alloc_policy", "random")
            }),
            &[],
        )
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    let gate = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "processes_sharing_one_store_never_get_the_same_address",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, url)
                .env(GATE_ENV, gate.path())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let ready = || std::fs::read_dir(gate.path()).unwrap().count();
    wait_for("4 children ready", GATE_POLL, || {
        (ready() == 4).then_some(())
    });
    std::fs::write(gate.path().join("go"), "").unwrap();
    let mut all = Vec::new();
    let mut per_child = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let got: Vec<IpAddr> = String::from_utf8_lossy(&out.stdout)
            .lines()
            // The harness's "test processes_sharing_... " has no newline: find the marker anywhere.
            .filter_map(|l| {
                l.split_once("GOT ")
                    .map(|(_, ip)| ip.trim().parse().unwrap())
            })
            .collect();
        per_child.push(got.len());
        all.extend(got);
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(
        all.len(),
        510,
        "{url}: every address handed out once: {per_child:?}"
    );
    assert_eq!(unique.len(), all.len(), "duplicates handed out");
    assert!(
        per_child.iter().filter(|&&n| n > 0).count() >= 2,
        "processes really competed: {per_child:?}"
    );
    assert_eq!(store.addresses("shared").unwrap().len(), 510);
}

#[test]
fn every_policy_fills_a_subnet_completely() {
    for (policy, (url, _dir)) in ["stepdown", "stepup", "random"]
        .into_iter()
        .flat_map(|p| fresh_stores().into_iter().map(move |s| (p, s)))
    {
        let store = Store::open(&url).unwrap();
        store
            .create_subnet(
                &subnet("s", "10.70.0.0/24", |i| {
                    set(i, "alloc_policy", policy);
                    set(i, "gateway", "10.70.0.1");
                }),
                &[],
            )
            .unwrap();
        let mut got = HashSet::new();
        loop {
            match store.allocate(&req("s", "o", None), &RangeSet::new()) {
                Ok(a) => assert!(got.insert(a.ip), "{url} {policy}: {} twice", a.ip),
                Err(StoreError::SubnetFull { .. }) => break,
                Err(e) => panic!("{policy}: {e}"),
            }
        }
        assert_eq!(got.len(), 253, "{policy}: 254 hosts minus the gateway");
    }
}

/// Releases in one subnet at once, from many connections, keep the held runs true: each
/// address comes back free exactly once. On PostgreSQL, releasing did not lock the subnet, and
/// two releases splitting one run failed on a duplicate run (seen as concurrent destroys
/// failing with `held_runs_pkey`).
#[test]
fn concurrent_releases_keep_the_held_runs_true() {
    for (url, _dir) in fresh_stores() {
        let store = Store::open(&url).unwrap();
        store
            .create_subnet(&subnet("rel", "10.61.0.0/26", |_| {}), &[])
            .unwrap();
        let none = RangeSet::new();
        for i in 0..48 {
            store
                .allocate(&req("rel", &format!("o{i}"), None), &none)
                .unwrap();
        }
        std::thread::scope(|s| {
            for t in 0..8 {
                let url = &url;
                s.spawn(move || {
                    let store = Store::open(url).unwrap();
                    for i in (t..48).step_by(8) {
                        store
                            .release_owner(OwnerKind::Vm, &format!("o{i}"))
                            .unwrap_or_else(|e| panic!("{url}: release o{i}: {e}"));
                    }
                });
            }
        });
        assert!(store.addresses("rel").unwrap().is_empty(), "{url}");
        // Every address of the /26 can be taken again, each once.
        let mut got: Vec<_> = (0..62)
            .map(|i| {
                store
                    .allocate(&req("rel", &format!("again{i}"), None), &none)
                    .unwrap_or_else(|e| panic!("{url}: {i}: {e}"))
                    .ip
            })
            .collect();
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 62, "{url}");
        assert!(store
            .allocate(&req("rel", "one-too-many", None), &none)
            .is_err());
    }
}
