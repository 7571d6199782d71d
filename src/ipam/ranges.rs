//! IPv4 ranges and a set of disjoint ranges, so that a /8 with millions of held addresses costs
//! a few merged intervals to search, not a scan of every address.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An inclusive range of IPv4 addresses, as `u32`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Range {
    pub start: u32,
    pub end: u32,
}

impl Range {
    pub fn new(start: Ipv4Addr, end: Ipv4Addr) -> Self {
        Range {
            start: u32::from(start),
            end: u32::from(end),
        }
    }

    pub fn single(ip: Ipv4Addr) -> Self {
        Range::new(ip, ip)
    }

    pub fn contains(&self, ip: u32) -> bool {
        self.start <= ip && ip <= self.end
    }

    pub fn contains_range(&self, other: &Range) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    pub fn overlaps(&self, other: &Range) -> bool {
        !self.is_empty() && !other.is_empty() && self.start <= other.end && other.start <= self.end
    }

    /// Number of addresses, 0 for an empty range (`u64`: a full /0 does not fit in `u32`).
    pub fn len(&self) -> u64 {
        if self.is_empty() {
            return 0;
        }
        u64::from(self.end) - u64::from(self.start) + 1
    }

    /// The fields are public, so `start` after `end` can be written: that range holds nothing.
    pub fn is_empty(&self) -> bool {
        self.start > self.end
    }

    pub fn first(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.start)
    }

    pub fn last(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.end)
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
    #[error("{0:?} is not an IPv4 address")]
    BadAddress(String),
    #[error("range {0:?} ends before it starts")]
    Reversed(String),
}

/// `"10.0.0.1"` or `"10.0.0.1-10.0.0.9"`.
impl FromStr for Range {
    type Err = RangeParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ip = |t: &str| {
            Ipv4Addr::from_str(t.trim()).map_err(|_| RangeParseError::BadAddress(t.trim().into()))
        };
        let range = match s.split_once('-') {
            Some((a, b)) => Range::new(ip(a)?, ip(b)?),
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
    by_start: BTreeMap<u32, u32>,
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
    pub fn covering(&self, ip: u32) -> Option<Range> {
        let (&start, &end) = self.by_start.range(..=ip).next_back()?;
        (end >= ip).then_some(Range { start, end })
    }

    pub fn contains(&self, ip: u32) -> bool {
        self.covering(ip).is_some()
    }

    /// Number of addresses of `within` that the set holds.
    pub fn count_within(&self, within: Range) -> u64 {
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
            if u64::from(e) + 1 >= u64::from(start) {
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
                .filter(|&(s, _)| u64::from(s) <= u64::from(end) + 1);
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
        let overlapping: Vec<(u32, u32)> = self
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
        assert_eq!(
            Range {
                start: 0,
                end: u32::MAX
            }
            .len(),
            1 << 32
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
        assert!(set.contains(u32::from(Ipv4Addr::new(10, 0, 0, 17))));
        assert!(!set.contains(u32::from(Ipv4Addr::new(10, 0, 0, 18))));
    }

    #[test]
    fn edges_of_the_address_space() {
        let mut set = RangeSet::new();
        set.insert(Range {
            start: u32::MAX - 1,
            end: u32::MAX,
        });
        set.insert(Range { start: 0, end: 0 });
        set.insert(Range { start: 1, end: 1 });
        assert_eq!(set.intervals(), 2);
        set.remove(Range {
            start: u32::MAX,
            end: u32::MAX,
        });
        assert_eq!(
            set.covering(u32::MAX - 1),
            Some(Range {
                start: u32::MAX - 1,
                end: u32::MAX - 1
            })
        );
        assert_eq!(set.count_within(Range { start: 0, end: 10 }), 2);
    }
}
