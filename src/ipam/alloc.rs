//! Finding a free address, in either family (ranges are [`Key`]s). Free = `[start_ip, end_ip]` minus the subnet's static exclusions
//! (reserved ranges, gateway) minus held addresses (records of resources, observed addresses).
//!
//! Held addresses are looked up through [`Held::covering`], "the merged run of held addresses
//! that contains this address": each step jumps over a whole run, so the cost depends on how
//! fragmented the subnet is, not on how many addresses it holds. A store answers that with one
//! indexed query; tests answer it with a [`RangeSet`]. So a /64 with a million held addresses
//! allocates as fast as an empty one, and `random` draws once over the whole range and walks
//! from there (up, then down) instead of drawing again until it hits a free address, which
//! would loop when the range is nearly full.

use std::net::IpAddr;

use rand::Rng;

use super::ranges::{addr, Key, Range, RangeSet};
use super::subnet::Policy;

/// Where held addresses live.
pub trait Held {
    type Error;
    /// The maximal run of consecutive held addresses that contains `ip`, if `ip` is held.
    fn covering(&mut self, ip: Key) -> Result<Option<Range>, Self::Error>;
}

impl Held for &RangeSet {
    type Error = std::convert::Infallible;
    fn covering(&mut self, ip: Key) -> Result<Option<Range>, Self::Error> {
        Ok(RangeSet::covering(self, ip))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

/// The first free address from `from` towards `direction`, staying inside `range`.
fn scan<H: Held>(
    range: Range,
    exclusions: &RangeSet,
    held: &mut H,
    from: Key,
    direction: Direction,
) -> Result<Option<Key>, H::Error> {
    let mut candidate = Some(from);
    while let Some(ip) = candidate.filter(|&ip| range.contains(ip)) {
        let run = match exclusions.covering(ip) {
            Some(run) => Some(run),
            None => held.covering(ip)?,
        };
        match run {
            None => return Ok(Some(ip)),
            Some(run) => {
                candidate = match direction {
                    Direction::Up => run.end.checked_add(1),
                    Direction::Down => run.start.checked_sub(1),
                }
            }
        }
    }
    Ok(None)
}

/// The next free address under `policy`, or `None` when the subnet is full.
pub fn allocate<H: Held>(
    range: Range,
    exclusions: &RangeSet,
    held: &mut H,
    policy: Policy,
    rng: &mut impl Rng,
) -> Result<Option<IpAddr>, H::Error> {
    let found = match policy {
        Policy::StepUp => scan(range, exclusions, held, range.start, Direction::Up)?,
        Policy::StepDown => scan(range, exclusions, held, range.end, Direction::Down)?,
        Policy::Random => {
            let pick = rng.gen_range(range.start..=range.end);
            match scan(range, exclusions, held, pick, Direction::Up)? {
                Some(ip) => Some(ip),
                None => scan(range, exclusions, held, pick, Direction::Down)?,
            }
        }
    };
    Ok(found.map(addr))
}

/// Number of free addresses: the range minus the union of exclusions and held runs.
pub fn free_count(range: Range, exclusions: &RangeSet, held: &RangeSet) -> u128 {
    let mut taken = exclusions.clone();
    for r in held.iter() {
        taken.insert(r);
    }
    range.len() - taken.count_within(range)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn r(s: &str) -> Range {
        s.parse().unwrap()
    }
    fn alloc(range: &str, excl: &RangeSet, held: &RangeSet, policy: Policy) -> Option<String> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut h = held;
        allocate(r(range), excl, &mut h, policy, &mut rng)
            .unwrap()
            .map(|a| a.to_string())
    }

    #[test]
    fn stepdown_takes_the_highest_free() {
        let held = RangeSet::from_ranges([r("10.0.0.250-10.0.0.254")]);
        let excl = RangeSet::from_ranges([r("10.0.0.249")]);
        assert_eq!(
            alloc("10.0.0.1-10.0.0.254", &excl, &held, Policy::StepDown).as_deref(),
            Some("10.0.0.248")
        );
    }

    #[test]
    fn stepup_takes_the_lowest_free() {
        let held = RangeSet::from_ranges([r("10.0.0.1-10.0.0.5"), r("10.0.0.7")]);
        let excl = RangeSet::from_ranges([r("10.0.0.6")]);
        assert_eq!(
            alloc("10.0.0.1-10.0.0.254", &excl, &held, Policy::StepUp).as_deref(),
            Some("10.0.0.8")
        );
    }

    #[test]
    fn full_subnet_gives_none_for_every_policy() {
        let held = RangeSet::from_ranges([r("10.0.0.1"), r("10.0.0.2")]);
        let excl = RangeSet::new();
        for p in [Policy::StepUp, Policy::StepDown, Policy::Random] {
            assert_eq!(alloc("10.0.0.1-10.0.0.2", &excl, &held, p), None, "{p:?}");
        }
    }

    #[test]
    fn random_finds_the_only_free_address() {
        let held = RangeSet::from_ranges([r("10.0.0.1-10.0.0.99"), r("10.0.0.101-10.0.0.200")]);
        for seed in 0..50 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut h = &held;
            let got = allocate(
                r("10.0.0.1-10.0.0.200"),
                &RangeSet::new(),
                &mut h,
                Policy::Random,
                &mut rng,
            )
            .unwrap();
            assert_eq!(got, Some("10.0.0.100".parse().unwrap()));
        }
    }

    #[test]
    fn alternating_exclusions_and_held_runs() {
        // held and reserved interleave: the scan must keep alternating between both sources.
        let held = RangeSet::from_ranges([r("10.0.0.10"), r("10.0.0.12"), r("10.0.0.14")]);
        let excl = RangeSet::from_ranges([r("10.0.0.11"), r("10.0.0.13")]);
        assert_eq!(
            alloc("10.0.0.10-10.0.0.20", &excl, &held, Policy::StepUp).as_deref(),
            Some("10.0.0.15")
        );
        assert_eq!(
            alloc("10.0.0.5-10.0.0.14", &excl, &held, Policy::StepDown).as_deref(),
            Some("10.0.0.9")
        );
    }

    #[test]
    fn range_at_the_top_of_the_address_space() {
        let held = RangeSet::from_ranges([r("255.255.255.254")]);
        assert_eq!(
            alloc(
                "255.255.255.253-255.255.255.254",
                &RangeSet::new(),
                &held,
                Policy::StepUp
            )
            .as_deref(),
            Some("255.255.255.253")
        );
    }

    #[test]
    fn free_count_does_not_count_overlaps_twice() {
        let excl = RangeSet::from_ranges([r("10.0.0.1")]);
        let held = RangeSet::from_ranges([r("10.0.0.1-10.0.0.3")]);
        assert_eq!(free_count(r("10.0.0.1-10.0.0.10"), &excl, &held), 7);
    }

    #[test]
    fn ipv6_policies_and_a_full_range() {
        let range = "2001:db8::1-2001:db8::ffff:ffff:ffff:ffff";
        let held = RangeSet::from_ranges([r(
            "2001:db8::ffff:ffff:ffff:fff0-2001:db8::ffff:ffff:ffff:ffff",
        )]);
        let excl = RangeSet::from_ranges([r("2001:db8::1")]);
        assert_eq!(
            alloc(range, &excl, &held, Policy::StepDown).as_deref(),
            Some("2001:db8::ffff:ffff:ffff:ffef")
        );
        assert_eq!(
            alloc(range, &excl, &held, Policy::StepUp).as_deref(),
            Some("2001:db8::2")
        );
        let got = alloc(range, &excl, &held, Policy::Random).unwrap();
        assert!(r(range).contains_ip(got.parse::<IpAddr>().unwrap()));
        let full = RangeSet::from_ranges([r("2001:db8::1-2001:db8::ff")]);
        for p in [Policy::StepUp, Policy::StepDown, Policy::Random] {
            assert_eq!(
                alloc("2001:db8::1-2001:db8::ff", &excl, &full, p),
                None,
                "{p:?}"
            );
        }
    }

    #[test]
    fn random_in_a_nearly_full_v6_range_finds_the_one_hole_in_a_few_steps() {
        // One free address among 2^64: a draw-again loop would never end; the walk asks
        // `covering` at most a handful of times.
        struct Counting<'a>(&'a RangeSet, usize);
        impl Held for Counting<'_> {
            type Error = std::convert::Infallible;
            fn covering(&mut self, ip: Key) -> Result<Option<Range>, Self::Error> {
                self.1 += 1;
                Ok(self.0.covering(ip))
            }
        }
        let range = r("2001:db8::-2001:db8::ffff:ffff:ffff:ffff");
        let held = RangeSet::from_ranges([
            r("2001:db8::-2001:db8::1234:5677"),
            r("2001:db8::1234:5679-2001:db8::ffff:ffff:ffff:ffff"),
        ]);
        for seed in 0..20 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut h = Counting(&held, 0);
            let got = allocate(range, &RangeSet::new(), &mut h, Policy::Random, &mut rng).unwrap();
            assert_eq!(got, Some("2001:db8::1234:5678".parse().unwrap()));
            assert!(h.1 <= 4, "{} lookups", h.1);
        }
    }
}
