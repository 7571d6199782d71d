//! Finding a free address. Free = `[start_ip, end_ip]` minus the subnet's static exclusions
//! (reserved ranges, gateway) minus held addresses (records of resources, observed addresses).
//!
//! Held addresses are looked up through [`Held::covering`], "the merged run of held addresses
//! that contains this address": each step jumps over a whole run, so the cost depends on how
//! fragmented the subnet is, not on how many addresses it holds. A store answers that with one
//! indexed query; tests answer it with a [`RangeSet`].

use std::net::Ipv4Addr;

use rand::Rng;

use super::ranges::{Range, RangeSet};
use super::subnet::Policy;

/// Where held addresses live.
pub trait Held {
    type Error;
    /// The maximal run of consecutive held addresses that contains `ip`, if `ip` is held.
    fn covering(&mut self, ip: u32) -> Result<Option<Range>, Self::Error>;
}

impl Held for &RangeSet {
    type Error = std::convert::Infallible;
    fn covering(&mut self, ip: u32) -> Result<Option<Range>, Self::Error> {
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
    from: u32,
    direction: Direction,
) -> Result<Option<u32>, H::Error> {
    let mut candidate = i64::from(from);
    while candidate >= i64::from(range.start) && candidate <= i64::from(range.end) {
        let ip = candidate as u32;
        let run = match exclusions.covering(ip) {
            Some(run) => Some(run),
            None => held.covering(ip)?,
        };
        match run {
            None => return Ok(Some(ip)),
            Some(run) => {
                candidate = match direction {
                    Direction::Up => i64::from(run.end) + 1,
                    Direction::Down => i64::from(run.start) - 1,
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
) -> Result<Option<Ipv4Addr>, H::Error> {
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
    Ok(found.map(Ipv4Addr::from))
}

/// Number of free addresses: the range minus the union of exclusions and held runs.
pub fn free_count(range: Range, exclusions: &RangeSet, held: &RangeSet) -> u64 {
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
}
