//! Property tests of the IPAM domain: random sequences of allocate / request / release /
//! reserve against a plain set model, checking the allocator's invariants after every step.
//! Ranges sit anywhere in the 128-bit space both families share (`ranges::key`), from the
//! IPv4 block to the top of IPv6.

use std::collections::BTreeSet;

use proptest::prelude::*;
use rand::SeedableRng;
use vsphereipam::ipam::alloc::{allocate, free_count};
use vsphereipam::ipam::ranges::{key, Range, RangeSet};
use vsphereipam::ipam::subnet::Policy;

#[derive(Debug, Clone)]
enum Op {
    Allocate(Policy),
    /// Offset into the range (may fall outside it).
    Request(u128),
    /// Index into the held addresses.
    Release(usize),
    /// Offset and length of a reserved span.
    Reserve(u128, u128),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop_oneof![Just(Policy::StepDown), Just(Policy::StepUp), Just(Policy::Random)].prop_map(Op::Allocate),
        2 => (0u128..80).prop_map(Op::Request),
        2 => any::<usize>().prop_map(Op::Release),
        1 => (0u128..64, 0u128..4).prop_map(|(o, l)| Op::Reserve(o, l)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn allocator_keeps_its_invariants(
        base in 0u128..(u128::MAX - 100),
        len in 1u128..64,
        observed in proptest::collection::vec(0u128..64, 0..8),
        ops in proptest::collection::vec(op(), 1..120),
        seed in any::<u64>(),
    ) {
        let range = Range { start: base, end: base + len - 1 };
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut exclusions = RangeSet::from_ranges(
            observed.iter().map(|o| base + o).map(|ip| Range { start: ip, end: ip }),
        );
        let mut held = RangeSet::new();
        // The model: plain sets of addresses.
        let mut model_held: BTreeSet<u128> = BTreeSet::new();
        let mut model_excluded: BTreeSet<u128> = observed.iter().map(|o| base + o).collect();
        let free_in_model = |held: &BTreeSet<u128>, excl: &BTreeSet<u128>| {
            (range.start..=range.end).filter(|ip| !held.contains(ip) && !excl.contains(ip)).collect::<Vec<_>>()
        };

        for op in ops {
            match op {
                Op::Allocate(policy) => {
                    let mut h = &held;
                    let got = allocate(range, &exclusions, &mut h, policy, &mut rng).unwrap();
                    let free = free_in_model(&model_held, &model_excluded);
                    match got {
                        None => prop_assert!(free.is_empty(), "full reported with {} free", free.len()),
                        Some(ip) => {
                            let ip = key(ip);
                            prop_assert!(range.contains(ip), "outside the range");
                            prop_assert!(!model_held.contains(&ip), "handed out a held address");
                            prop_assert!(!model_excluded.contains(&ip), "handed out an excluded address");
                            match policy {
                                Policy::StepUp => prop_assert_eq!(Some(&ip), free.first()),
                                Policy::StepDown => prop_assert_eq!(Some(&ip), free.last()),
                                Policy::Random => {}
                            }
                            held.insert(Range { start: ip, end: ip });
                            model_held.insert(ip);
                        }
                    }
                }
                Op::Request(offset) => {
                    let ip = base + offset;
                    let grantable = range.contains(ip) && !held.contains(ip) && !exclusions.contains(ip);
                    let model_grantable = range.contains(ip) && !model_held.contains(&ip) && !model_excluded.contains(&ip);
                    prop_assert_eq!(grantable, model_grantable);
                    if grantable {
                        held.insert(Range { start: ip, end: ip });
                        model_held.insert(ip);
                    }
                }
                Op::Release(i) => {
                    if let Some(&ip) = model_held.iter().nth(i % model_held.len().max(1)) {
                        held.remove(Range { start: ip, end: ip });
                        model_held.remove(&ip);
                        // Released means free again: a request for it must succeed.
                        prop_assert!(!held.contains(ip));
                        prop_assert!(exclusions.contains(ip) || free_in_model(&model_held, &model_excluded).contains(&ip));
                    }
                }
                Op::Reserve(offset, l) => {
                    let r = Range { start: base + offset, end: base + offset + l };
                    exclusions.insert(r);
                    model_excluded.extend(r.start..=r.end);
                }
            }
            prop_assert_eq!(
                free_count(range, &exclusions, &held),
                free_in_model(&model_held, &model_excluded).len() as u128
            );
        }
    }

    #[test]
    fn range_set_matches_a_plain_set(
        ops in proptest::collection::vec((any::<bool>(), 0u128..200, 0u128..10), 1..200),
    ) {
        let mut set = RangeSet::new();
        let mut model = BTreeSet::new();
        for (insert, start, len) in ops {
            let r = Range { start, end: start + len };
            if insert {
                set.insert(r);
                model.extend(r.start..=r.end);
            } else {
                set.remove(r);
                for ip in r.start..=r.end {
                    model.remove(&ip);
                }
            }
            // Disjoint, non-adjacent, sorted, and the same members as the model.
            let runs: Vec<Range> = set.iter().collect();
            for w in runs.windows(2) {
                prop_assert!(w[0].end + 1 < w[1].start);
            }
            let members: BTreeSet<u128> = runs.iter().flat_map(|r| r.start..=r.end).collect();
            prop_assert_eq!(&members, &model);
        }
    }
}
