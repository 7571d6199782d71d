//! Address ranges of either family and a set of disjoint ranges, so that a /8 or a /64 with
//! millions of held addresses costs a few merged intervals to search, not a scan of every
//! address.
//!
//! Both families live in one 128-bit number space ([`key`]): an IPv6 address is its own number,
//! an IPv4 address the number of its IPv4-mapped form (`::ffff:a.b.c.d`). So ranges of both
//! families sort and compare with one rule, never overlap each other, and the store indexes
//! one column type. The mapping is one-to-one because IPv4-mapped IPv6 addresses are refused
//! as input ([`parse_ip`]).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

/// An address as a number in the one space both families share.
pub type Key = u128;

/// The number of `ip` (IPv4 as `::ffff:a.b.c.d`).
pub fn key(ip: impl Into<IpAddr>) -> Key {
    match ip.into() {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address numbered `k`: inside `::ffff:0:0/96` an IPv4 address, else IPv6.
pub fn addr(k: Key) -> IpAddr {
    let v6 = Ipv6Addr::from(k);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// An address as configurations write it, with the reason when it is not one this provider
/// takes: a zone id (`%eth0`) belongs to one host's interface, not to a subnet, and an
/// IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is an IPv4 address in disguise: write it as
/// IPv4.
///
/// IPv6 text must be in its canonical form (RFC 5952: lower case, `::` for the longest run of
/// zeros, no leading zeros), the form the provider writes back into the state: another spelling
/// of the same address would read back different from the configuration.
pub fn parse_ip(text: &str) -> Result<IpAddr, String> {
    if let Some((ip, zone)) = text.split_once('%') {
        return Err(format!(
            "{text:?} carries a zone id (%{zone}); zone ids name one host's interface, write \
             the address alone ({ip})"
        ));
    }
    match IpAddr::from_str(text) {
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some() => Err(format!(
            "{text:?} is an IPv4-mapped IPv6 address; write the IPv4 address {} instead",
            v6.to_ipv4_mapped()
                .map(|a| a.to_string())
                .unwrap_or_default()
        )),
        Ok(ip) if ip.to_string() != text => Err(format!(
            "{text:?} is not written in canonical form; write it as {ip}"
        )),
        Ok(ip) => Ok(ip),
        Err(_) => Err(format!("{text:?} is not an IP address")),
    }
}

/// An inclusive range of addresses of one family, as [`Key`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Range {
    pub start: Key,
    pub end: Key,
}

impl Range {
    pub fn new(start: impl Into<IpAddr>, end: impl Into<IpAddr>) -> Self {
        Range {
            start: key(start),
            end: key(end),
        }
    }

    pub fn single(ip: impl Into<IpAddr>) -> Self {
        let k = key(ip);
        Range { start: k, end: k }
    }

    pub fn contains(&self, ip: Key) -> bool {
        self.start <= ip && ip <= self.end
    }

    /// Whether the address `ip` is inside.
    pub fn contains_ip(&self, ip: impl Into<IpAddr>) -> bool {
        self.contains(key(ip))
    }

    pub fn contains_range(&self, other: &Range) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    pub fn overlaps(&self, other: &Range) -> bool {
        !self.is_empty() && !other.is_empty() && self.start <= other.end && other.start <= self.end
    }

    /// Number of addresses, 0 for an empty range (saturates at `u128::MAX` for the one range
    /// of 2^128 addresses, which no subnet has).
    pub fn len(&self) -> u128 {
        if self.is_empty() {
            return 0;
        }
        (self.end - self.start).saturating_add(1)
    }

    /// The fields are public, so `start` after `end` can be written: that range holds nothing.
    pub fn is_empty(&self) -> bool {
        self.start > self.end
    }

    /// Whether the range holds IPv4 addresses.
    pub fn is_v4(&self) -> bool {
        addr(self.start).is_ipv4()
    }

    pub fn first(&self) -> IpAddr {
        addr(self.start)
    }

    pub fn last(&self) -> IpAddr {
        addr(self.end)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.first())
        } else {
            write!(f, "{}-{}", self.first(), self.last())
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeParseError {
    #[error("{0}")]
    BadAddress(String),
    #[error("range {0:?} ends before it starts")]
    Reversed(String),
    #[error("range {0:?} mixes IPv4 and IPv6")]
    MixedFamilies(String),
}

/// `"10.0.0.1"`, `"10.0.0.1-10.0.0.9"`, `"2001:db8::10"` or `"2001:db8::10-2001:db8::1f"`.
impl FromStr for Range {
    type Err = RangeParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ip = |t: &str| parse_ip(t.trim()).map_err(RangeParseError::BadAddress);
        let range = match s.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (ip(a)?, ip(b)?);
                if a.is_ipv4() != b.is_ipv4() {
                    return Err(RangeParseError::MixedFamilies(s.into()));
                }
                Range::new(a, b)
            }
            None => Range::single(ip(s)?),
        };
        if range.start > range.end {
            return Err(RangeParseError::Reversed(s.into()));
        }
        Ok(range)
    }
}

/// Disjoint, non-adjacent ranges keyed by start: adjacent inserts merge, so a run of held
/// addresses is one entry whatever its length.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    by_start: BTreeMap<Key, Key>,
}

impl RangeSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_ranges(ranges: impl IntoIterator<Item = Range>) -> Self {
        let mut set = Self::new();
        for r in ranges {
            set.insert(r);
        }
        set
    }

    /// Number of merged intervals.
    pub fn intervals(&self) -> usize {
        self.by_start.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_start.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Range> + '_ {
        self.by_start
            .iter()
            .map(|(&start, &end)| Range { start, end })
    }

    /// The merged interval that holds `ip`, if any.
    pub fn covering(&self, ip: Key) -> Option<Range> {
        let (&start, &end) = self.by_start.range(..=ip).next_back()?;
        (end >= ip).then_some(Range { start, end })
    }

    pub fn contains(&self, ip: Key) -> bool {
        self.covering(ip).is_some()
    }

    /// Whether the address `ip` is in the set.
    pub fn contains_ip(&self, ip: impl Into<IpAddr>) -> bool {
        self.contains(key(ip))
    }

    /// Number of addresses of `within` that the set holds.
    pub fn count_within(&self, within: Range) -> u128 {
        self.iter()
            .filter(|r| r.overlaps(&within))
            .map(|r| {
                Range {
                    start: r.start.max(within.start),
                    end: r.end.min(within.end),
                }
                .len()
            })
            .sum()
    }

    pub fn insert(&mut self, r: Range) {
        let mut start = r.start;
        let mut end = r.end;
        // Absorb an interval that overlaps or touches on the left.
        if let Some((&s, &e)) = self.by_start.range(..=start).next_back() {
            if e.checked_add(1).is_none_or(|after| after >= start) {
                start = s;
                end = end.max(e);
                self.by_start.remove(&s);
            }
        }
        // Absorb every interval that starts inside or right after the new one.
        loop {
            let next = self
                .by_start
                .range(start..)
                .next()
                .map(|(&s, &e)| (s, e))
                .filter(|&(s, _)| end.checked_add(1).is_none_or(|after| s <= after));
            match next {
                Some((s, e)) => {
                    end = end.max(e);
                    self.by_start.remove(&s);
                }
                None => break,
            }
        }
        self.by_start.insert(start, end);
    }

    pub fn remove(&mut self, r: Range) {
        let overlapping: Vec<(Key, Key)> = self
            .by_start
            .range(..=r.end)
            .rev()
            .take_while(|&(_, &e)| e >= r.start)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in overlapping {
            self.by_start.remove(&s);
            if s < r.start {
                self.by_start.insert(s, r.start - 1);
            }
            if e > r.end {
                self.by_start.insert(r.end + 1, e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn r(s: &str) -> Range {
        s.parse().unwrap()
    }

    #[test]
    fn a_range_that_ends_before_it_starts_is_empty() {
        let backwards = Range { start: 10, end: 3 };
        assert!(backwards.is_empty());
        assert_eq!(backwards.len(), 0);
        assert!(!backwards.contains(5));
        assert!(!backwards.overlaps(&Range { start: 1, end: 20 }));
        assert!(!Range { start: 1, end: 20 }.overlaps(&backwards));
        let one = Range { start: 7, end: 7 };
        assert!(!one.is_empty());
        assert_eq!(one.len(), 1);
        assert_eq!(r("0.0.0.0-255.255.255.255").len(), 1 << 32);
        // The one range of 2^128 addresses saturates instead of overflowing.
        assert_eq!(
            Range {
                start: 0,
                end: u128::MAX
            }
            .len(),
            u128::MAX
        );
    }

    #[test]
    fn parses_single_and_spans() {
        assert_eq!(r("10.0.0.5").len(), 1);
        assert_eq!(r("10.0.0.100-10.0.0.119").len(), 20);
        assert_eq!(r("10.0.0.9 - 10.0.0.10").to_string(), "10.0.0.9-10.0.0.10");
        assert!(matches!(
            "10.0.0.9-10.0.0.1".parse::<Range>(),
            Err(RangeParseError::Reversed(_))
        ));
        assert!(matches!(
            "10.0.0".parse::<Range>(),
            Err(RangeParseError::BadAddress(_))
        ));
        assert!(matches!(
            "a-10.0.0.1".parse::<Range>(),
            Err(RangeParseError::BadAddress(_))
        ));
    }

    #[test]
    fn adjacent_and_overlapping_inserts_merge() {
        let mut set = RangeSet::new();
        set.insert(r("10.0.0.1"));
        set.insert(r("10.0.0.3"));
        assert_eq!(set.intervals(), 2);
        set.insert(r("10.0.0.2"));
        assert_eq!(set.iter().collect::<Vec<_>>(), [r("10.0.0.1-10.0.0.3")]);
        set.insert(r("10.0.0.10-10.0.0.20"));
        set.insert(r("10.0.0.4-10.0.0.12"));
        assert_eq!(set.iter().collect::<Vec<_>>(), [r("10.0.0.1-10.0.0.20")]);
    }

    #[test]
    fn remove_splits_intervals() {
        let mut set = RangeSet::from_ranges([r("10.0.0.1-10.0.0.20"), r("10.0.0.30-10.0.0.40")]);
        set.remove(r("10.0.0.5"));
        set.remove(r("10.0.0.18-10.0.0.35"));
        assert_eq!(
            set.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
            [
                "10.0.0.1-10.0.0.4",
                "10.0.0.6-10.0.0.17",
                "10.0.0.36-10.0.0.40"
            ]
        );
        assert!(set.contains_ip(Ipv4Addr::new(10, 0, 0, 17)));
        assert!(!set.contains_ip(Ipv4Addr::new(10, 0, 0, 18)));
    }

    #[test]
    fn edges_of_the_address_space() {
        let mut set = RangeSet::new();
        set.insert(Range {
            start: u128::MAX - 1,
            end: u128::MAX,
        });
        set.insert(Range { start: 0, end: 0 });
        set.insert(Range { start: 1, end: 1 });
        assert_eq!(set.intervals(), 2);
        set.remove(Range {
            start: u128::MAX,
            end: u128::MAX,
        });
        assert_eq!(
            set.covering(u128::MAX - 1),
            Some(Range {
                start: u128::MAX - 1,
                end: u128::MAX - 1
            })
        );
        assert_eq!(set.count_within(Range { start: 0, end: 10 }), 2);
    }

    #[test]
    fn both_families_share_one_number_space() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(addr(key(v4)), v4);
        assert_eq!(addr(key(v6)), v6);
        assert_eq!(key(v4), 0xffff_0a00_0001);
        // The IPv4 space sits inside ::ffff:0:0/96 and never meets a range of IPv6 subnets.
        assert!(!r("0.0.0.0-255.255.255.255").overlaps(&r("2001:db8::-2001:db8::ffff")));
        assert!(r("10.0.0.1-10.0.0.9").is_v4() && !r("2001:db8::1").is_v4());
        assert_eq!(r("2001:db8::-2001:db8::ffff:ffff:ffff:ffff").len(), 1 << 64);
        assert_eq!(
            r("2001:db8::10 - 2001:db8::1f").to_string(),
            "2001:db8::10-2001:db8::1f"
        );
        assert!(matches!(
            "10.0.0.1-2001:db8::1".parse::<Range>(),
            Err(RangeParseError::MixedFamilies(_))
        ));
    }

    #[test]
    fn zone_ids_and_mapped_addresses_are_refused_with_the_fix() {
        let zone = parse_ip("fe80::1%eth0").unwrap_err();
        assert!(
            zone.contains("zone id") && zone.contains("write the address alone (fe80::1)"),
            "{zone}"
        );
        let mapped = parse_ip("::ffff:10.0.0.1").unwrap_err();
        assert!(
            mapped.contains("IPv4-mapped") && mapped.contains("10.0.0.1"),
            "{mapped}"
        );
        assert!(parse_ip("::ffff:a00:1").is_err());
        assert!(parse_ip("x").unwrap_err().contains("not an IP address"));
        assert_eq!(parse_ip("2001:db8::1").unwrap().to_string(), "2001:db8::1");
        for other_spelling in ["2001:DB8::1", "2001:db8:0:0:0:0:0:1", "2001:0db8::1"] {
            let err = parse_ip(other_spelling).unwrap_err();
            assert!(err.contains("write it as 2001:db8::1"), "{err}");
        }
        assert!(parse_ip(" 10.0.0.1").is_err());
    }

    #[test]
    fn sets_of_ipv6_runs_merge_and_split_at_the_top_of_the_space() {
        let mut set = RangeSet::new();
        set.insert(r(
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ));
        set.insert(r("2001:db8::1-2001:db8::5"));
        set.insert(r("2001:db8::6"));
        assert_eq!(set.intervals(), 2);
        set.remove(r("2001:db8::3"));
        assert_eq!(
            set.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
            [
                "2001:db8::1-2001:db8::2",
                "2001:db8::4-2001:db8::6",
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
            ]
        );
    }
}
