//! A subnet definition, IPv4 or IPv6, and every rule the contract sets on it, each broken rule
//! an error naming the attribute at fault. Rules run on what is known: at plan time some inputs may
//! still be unknown, and the rules that need them wait for apply.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv6Net};

use super::ranges::{key, parse_ip, Range, RangeSet};

/// An input as Terraform may give it: unset, not yet known (plan time), or a value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Field<T> {
    #[default]
    Null,
    Unknown,
    Value(T),
}

impl<T> Field<T> {
    pub fn value(&self) -> Option<&T> {
        match self {
            Field::Value(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Field::Unknown)
    }

    /// `None` while unknown, else the value or its absence.
    pub fn settled(self) -> Option<Option<T>> {
        match self {
            Field::Unknown => None,
            Field::Null => Some(None),
            Field::Value(v) => Some(Some(v)),
        }
    }
}

/// How the next free address is picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Highest free address first (the default: gateways usually sit at the bottom).
    #[default]
    StepDown,
    /// Lowest free address first.
    StepUp,
    /// A random free address.
    Random,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::StepDown => "stepdown",
            Policy::StepUp => "stepup",
            Policy::Random => "random",
        }
    }
}

impl FromStr for Policy {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "stepdown" => Ok(Policy::StepDown),
            "stepup" => Ok(Policy::StepUp),
            "random" => Ok(Policy::Random),
            _ => Err(()),
        }
    }
}

/// The subnet's attributes as written in the configuration.
#[derive(Debug, Clone, Default)]
pub struct SubnetInput {
    pub cidr: Field<String>,
    pub start_ip: Field<String>,
    pub end_ip: Field<String>,
    pub gateway: Field<String>,
    pub dns_servers: Field<Vec<Field<String>>>,
    pub vlan_id: Field<i64>,
    pub alloc_policy: Field<String>,
    pub reserved_ranges: Field<Vec<Field<String>>>,
}

/// A valid subnet, every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetSpec {
    pub cidr: IpNet,
    pub start: IpAddr,
    pub end: IpAddr,
    /// Of the subnet's family.
    pub gateway: Option<IpAddr>,
    /// Of either family.
    pub dns_servers: Vec<IpAddr>,
    pub vlan_id: Option<u16>,
    pub policy: Policy,
    pub reserved: Vec<Range>,
}

impl SubnetSpec {
    pub fn is_v4(&self) -> bool {
        matches!(self.cidr, IpNet::V4(_))
    }

    /// `[start_ip, end_ip]`.
    pub fn allocatable(&self) -> Range {
        Range::new(self.start, self.end)
    }

    /// Addresses of the range that are never handed out: reserved ranges and the gateway.
    pub fn static_exclusions(&self) -> RangeSet {
        let mut set = RangeSet::from_ranges(self.reserved.iter().copied());
        if let Some(gw) = self.gateway {
            if self.allocatable().contains_ip(gw) {
                set.insert(Range::single(gw));
            }
        }
        set
    }

    /// Why `ip` can never be handed out by this subnet, if it cannot.
    pub fn refusal(&self, ip: impl Into<IpAddr>) -> Option<String> {
        let ip = ip.into();
        if ip.is_ipv4() != self.is_v4() {
            return Some(format!(
                "{ip} is an {} address and the subnet {} is {}",
                family(ip.is_ipv4()),
                self.cidr,
                family(self.is_v4())
            ));
        }
        if !self.allocatable().contains_ip(ip) {
            return Some(format!(
                "{ip} is outside the allocatable range {}",
                self.allocatable()
            ));
        }
        if self.gateway == Some(ip) {
            return Some(format!("{ip} is the subnet's gateway"));
        }
        self.reserved
            .iter()
            .find(|r| r.contains(key(ip)))
            .map(|r| format!("{ip} is in the reserved range {r}"))
    }
}

fn family(v4: bool) -> &'static str {
    if v4 {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// One broken rule: the attribute (and list index) at fault, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub attribute: &'static str,
    pub index: Option<usize>,
    pub summary: String,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(
                f,
                "{}[{i}]: {}: {}",
                self.attribute, self.summary, self.detail
            ),
            None => write!(f, "{}: {}: {}", self.attribute, self.summary, self.detail),
        }
    }
}

fn violation(
    attribute: &'static str,
    summary: impl Into<String>,
    detail: impl Into<String>,
) -> Violation {
    Violation {
        attribute,
        index: None,
        summary: summary.into(),
        detail: detail.into(),
    }
}

/// The subnet's `domain`: a DNS name as RFC 1123 writes host names (letters, digits and inner
/// hyphens in dot-separated labels of at most 63, at most 253 in all), as guests take it.
pub fn check_domain(domain: &str) -> Option<Violation> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if domain.len() <= 253 && domain.split('.').all(label_ok) {
        return None;
    }
    Some(violation(
        "domain",
        "Invalid domain",
        format!(
            "{domain:?} is not a DNS domain: write dot-separated labels of letters, digits and \
             inner hyphens (each at most 63 characters, 253 in all, no trailing dot), such as \
             \"corp.example\"."
        ),
    ))
}

/// Checks every rule whose inputs are known. `Ok(Some(spec))` when everything is known and
/// valid, `Ok(None)` when valid so far but some input is still unknown.
pub fn validate(input: &SubnetInput) -> Result<Option<SubnetSpec>, Vec<Violation>> {
    let mut errors = Vec::new();
    let cidr = input.cidr.value().and_then(|c| match parse_cidr(c) {
        Ok(net) => Some(net),
        Err(v) => {
            errors.push(v);
            None
        }
    });

    let mut host_address = |attribute: &'static str, field: &Field<String>| -> Option<IpAddr> {
        let text = field.value()?;
        let ip = match parse_ip(text) {
            Ok(ip) => ip,
            Err(why) => {
                errors.push(violation(
                    attribute,
                    format!("Invalid {attribute}"),
                    format!("{why}."),
                ));
                return None;
            }
        };
        if let Some(net) = cidr {
            let v4 = matches!(net, IpNet::V4(_));
            if ip.is_ipv4() != v4 {
                errors.push(violation(
                    attribute,
                    format!("{attribute} of the wrong family"),
                    format!(
                        "{ip} is an {} address and {net} an {} subnet; use an {} address.",
                        family(ip.is_ipv4()),
                        family(v4),
                        family(v4)
                    ),
                ));
                return None;
            }
            if !net.contains(&ip) {
                errors.push(violation(
                    attribute,
                    format!("{attribute} outside cidr"),
                    format!("{ip} is not inside {net}."),
                ));
                return None;
            }
            let which = if ip == net.network() {
                Some(if v4 {
                    "network address"
                } else {
                    "subnet-router anycast address"
                })
            } else if v4 && ip == net.broadcast() {
                Some("broadcast address")
            } else {
                None
            };
            if let Some(which) = which {
                errors.push(violation(
                    attribute,
                    format!("{attribute} is the {which}"),
                    format!("{ip} is the {which} of {net}; use a host address."),
                ));
                return None;
            }
        }
        Some(ip)
    };
    let start = host_address("start_ip", &input.start_ip);
    let end = host_address("end_ip", &input.end_ip);
    let gateway = host_address("gateway", &input.gateway);

    // Unset start/end default to the first and last host address of the network.
    let start = match input.start_ip {
        Field::Null => cidr.map(first_host),
        _ => start,
    };
    let end = match input.end_ip {
        Field::Null => cidr.map(last_host),
        _ => end,
    };
    if let (Some(s), Some(e)) = (start, end) {
        if s.is_ipv4() != e.is_ipv4() {
            errors.push(violation(
                "end_ip",
                "end_ip of another family than start_ip",
                format!("{s} and {e} are of different families; write both of the subnet's."),
            ));
        } else if s > e {
            errors.push(violation(
                "end_ip",
                "end_ip before start_ip",
                format!("The range must not be empty: end_ip {e} is lower than start_ip {s}."),
            ));
        }
    }

    let dns_servers = list(
        "dns_servers",
        &input.dns_servers,
        |i, text| {
            parse_ip(text).map_err(|why| Violation {
                index: Some(i),
                ..violation("dns_servers", "Invalid DNS server", format!("{why}."))
            })
        },
        &mut errors,
    );

    let vlan_id = match input.vlan_id.value() {
        Some(&v) if (1..=4094).contains(&v) => Some(v as u16),
        Some(&v) => {
            errors.push(violation(
                "vlan_id",
                "Invalid vlan_id",
                format!("{v} is not a VLAN id; use 1 to 4094."),
            ));
            None
        }
        None => None,
    };

    let policy = match input.alloc_policy.value() {
        None => Policy::default(),
        Some(p) => p.parse().unwrap_or_else(|_| {
            errors.push(violation(
                "alloc_policy",
                "Invalid alloc_policy",
                format!(
                    "{p:?} is not a policy; use \"stepdown\" (default), \"stepup\" or \"random\"."
                ),
            ));
            Policy::default()
        }),
    };

    let range = match (start, end) {
        (Some(s), Some(e)) if s <= e && s.is_ipv4() == e.is_ipv4() => Some(Range::new(s, e)),
        _ => None,
    };
    let reserved = list(
        "reserved_ranges",
        &input.reserved_ranges,
        |i, text| {
            let r: Range = text.parse().map_err(|e| Violation {
                index: Some(i),
                ..violation(
                    "reserved_ranges",
                    "Invalid reserved range",
                    format!(
                        "{e}; write \"a.b.c.d\" or \"a.b.c.d-e.f.g.h\" (IPv6: \"2001:db8::10\" or \
                         \"2001:db8::10-2001:db8::1f\")."
                    ),
                )
            })?;
            match range {
                Some(allocatable) if allocatable.is_v4() != r.is_v4() => Err(Violation {
                    index: Some(i),
                    ..violation(
                        "reserved_ranges",
                        "Reserved range of the wrong family",
                        format!(
                            "{r} is {} and the subnet is {}; write a range of the subnet's family.",
                            family(r.is_v4()),
                            family(allocatable.is_v4())
                        ),
                    )
                }),
                Some(allocatable) if !allocatable.contains_range(&r) => Err(Violation {
                    index: Some(i),
                    ..violation(
                        "reserved_ranges",
                        "Reserved range outside the allocatable range",
                        format!("{r} is not inside [start_ip, end_ip] = {allocatable}."),
                    )
                }),
                _ => Ok(r),
            }
        },
        &mut errors,
    );

    if !errors.is_empty() {
        return Err(errors);
    }
    let (Some(cidr), Some(range), Some(dns_servers), Some(reserved)) =
        (cidr, range, dns_servers, reserved)
    else {
        return Ok(None);
    };
    if input.gateway.is_unknown() || input.vlan_id.is_unknown() || input.alloc_policy.is_unknown() {
        return Ok(None);
    }
    Ok(Some(SubnetSpec {
        cidr,
        start: range.first(),
        end: range.last(),
        gateway,
        dns_servers,
        vlan_id,
        policy,
        reserved,
    }))
}

/// Parses each known element; `None` while the list or an element is unknown.
fn list<T>(
    attribute: &'static str,
    field: &Field<Vec<Field<String>>>,
    parse: impl Fn(usize, &str) -> Result<T, Violation>,
    errors: &mut Vec<Violation>,
) -> Option<Vec<T>> {
    let items = match field {
        Field::Null => return Some(Vec::new()),
        Field::Unknown => return None,
        Field::Value(items) => items,
    };
    let mut out = Vec::with_capacity(items.len());
    let mut complete = true;
    for (i, item) in items.iter().enumerate() {
        match item {
            Field::Value(text) => match parse(i, text) {
                Ok(v) => out.push(v),
                Err(v) => errors.push(v),
            },
            Field::Unknown => complete = false,
            Field::Null => errors.push(Violation {
                index: Some(i),
                ..violation(attribute, "Null list element", "Remove the null element.")
            }),
        }
    }
    complete.then_some(out)
}

fn parse_cidr(text: &str) -> Result<IpNet, Violation> {
    if text.contains('%') {
        return Err(violation(
            "cidr",
            "Invalid cidr",
            format!("{text:?} carries a zone id; write the network alone, such as \"2001:db8:0:1::/64\"."),
        ));
    }
    let net = IpNet::from_str(text).map_err(|_| {
        violation(
            "cidr",
            "Invalid cidr",
            format!("{text:?} is not a network such as \"10.20.0.0/24\" or \"2001:db8:0:1::/64\"."),
        )
    })?;
    if net.to_string() != text {
        // What the state will hold; another spelling would read back different.
        return Err(violation(
            "cidr",
            "cidr is not in canonical form",
            format!("Write the network as {net}, not {text}."),
        ));
    }
    let (shortest, longest) = match net {
        IpNet::V4(_) => (8, 30),
        IpNet::V6(v6) => {
            if let Some(v4) = v6.addr().to_ipv4_mapped() {
                return Err(violation(
                    "cidr",
                    "IPv4-mapped cidr",
                    format!(
                        "{text} is an IPv4-mapped IPv6 network; write the IPv4 network ({v4}/{}) instead.",
                        v6.prefix_len().saturating_sub(96)
                    ),
                ));
            }
            (48, 127)
        }
    };
    if !(shortest..=longest).contains(&net.prefix_len()) {
        return Err(violation(
            "cidr",
            "Unsupported prefix length",
            format!(
                "{net} has a /{} prefix; use a prefix from /{shortest} to /{longest}.",
                net.prefix_len()
            ),
        ));
    }
    if net.addr() != net.network() {
        return Err(violation(
            "cidr",
            "cidr is not a network address",
            format!(
                "Write the network as {}/{} (its network address), not {text}.",
                net.network(),
                net.prefix_len()
            ),
        ));
    }
    if let IpNet::V6(v6) = net {
        if let Some(why) = special_v6(v6) {
            return Err(violation(
                "cidr",
                "cidr cannot hand out addresses",
                format!("{net} {why}; use a global or unique local prefix such as 2001:db8:0:1::/64 or fd00:0:0:1::/64."),
            ));
        }
    }
    Ok(net)
}

/// Why addresses of an IPv6 network (of /48 or longer) can never be handed out to a VM.
fn special_v6(net: Ipv6Net) -> Option<&'static str> {
    let inside = |prefix: &str| Ipv6Net::from_str(prefix).is_ok_and(|p| p.contains(&net));
    if inside("fe80::/10") {
        Some("is link-local (fe80::/10): every interface makes its own")
    } else if inside("ff00::/8") {
        Some("is multicast (ff00::/8)")
    } else if u128::from(net.network()) < 1 << 48 {
        // ::/80 holds the unspecified and loopback addresses and the IPv4-compatible and
        // IPv4-mapped forms; a /48 or longer network either lies inside it or starts at ::.
        Some("lies in ::/80 (unspecified, loopback, IPv4-compatible and IPv4-mapped addresses)")
    } else {
        None
    }
}

/// Why an IPv6 address can never be a VM's recorded address ([`special_v6`] of it alone): no
/// subnet can hold it.
pub fn special_v6_address(ip: Ipv6Addr) -> Option<&'static str> {
    special_v6(Ipv6Net::from(ip))
}

/// The first address a subnet hands out by default: the one after the network address (IPv4)
/// or after the subnet-router anycast address (IPv6).
pub fn first_host(net: IpNet) -> IpAddr {
    super::ranges::addr(key(net.network()) + 1)
}

/// The last address a subnet hands out by default: the one before the broadcast address
/// (IPv4), or the last of the prefix (IPv6, which has no broadcast).
pub fn last_host(net: IpNet) -> IpAddr {
    match net {
        IpNet::V4(v4) => super::ranges::addr(key(v4.broadcast()) - 1),
        IpNet::V6(v6) => IpAddr::V6(v6.broadcast()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn domains_follow_rfc_1123() {
        for ok in [
            "corp.example",
            "localdomain",
            "a-b.c1.example",
            "1lab.example",
        ] {
            assert_eq!(check_domain(ok), None, "{ok}");
        }
        let long_label = format!("{}.example", "a".repeat(64));
        let long_name = ["abcdefghij"; 26].join(".");
        for bad in [
            "",
            "corp..example",
            "corp.example.",
            ".corp",
            "-corp.example",
            "corp-.example",
            "my_corp.example",
            "corp example",
            "exämple.com",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            let v = check_domain(bad).unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert_eq!(v.attribute, "domain");
        }
    }

    fn v(s: &str) -> Field<String> {
        Field::Value(s.to_string())
    }
    fn vs(items: &[&str]) -> Field<Vec<Field<String>>> {
        Field::Value(items.iter().map(|s| v(s)).collect())
    }
    fn base() -> SubnetInput {
        SubnetInput {
            cidr: v("10.20.0.0/24"),
            ..Default::default()
        }
    }
    fn spec(input: SubnetInput) -> SubnetSpec {
        validate(&input).expect("valid").expect("complete")
    }
    fn fails(input: SubnetInput) -> Vec<(&'static str, Option<usize>)> {
        validate(&input)
            .expect_err("should be invalid")
            .into_iter()
            .map(|e| (e.attribute, e.index))
            .collect()
    }

    #[test]
    fn defaults_are_first_and_last_host() {
        let s = spec(base());
        assert_eq!(s.start.to_string(), "10.20.0.1");
        assert_eq!(s.end.to_string(), "10.20.0.254");
        assert_eq!(s.policy, Policy::StepDown);
        assert!(s.reserved.is_empty() && s.dns_servers.is_empty() && s.gateway.is_none());
    }

    #[test]
    fn cidr_rules() {
        for bad in ["10.20.0.0", "10.20.0.0/33", "fe80::/64", "x"] {
            assert_eq!(
                fails(SubnetInput {
                    cidr: v(bad),
                    ..base()
                }),
                [("cidr", None)],
                "{bad}"
            );
        }
        for (bad, why) in [
            ("10.0.0.0/7", "/7"),
            ("10.0.0.0/31", "/31"),
            ("10.20.0.5/24", "network address"),
        ] {
            let err = validate(&SubnetInput {
                cidr: v(bad),
                ..base()
            })
            .unwrap_err();
            assert_eq!(err[0].attribute, "cidr");
            assert!(format!("{}", err[0]).contains(why), "{bad}: {}", err[0]);
        }
        let s = spec(SubnetInput {
            cidr: v("10.0.0.0/8"),
            ..base()
        });
        assert_eq!(s.allocatable().len(), (1 << 24) - 2);
        let s = spec(SubnetInput {
            cidr: v("10.0.0.0/30"),
            ..base()
        });
        assert_eq!(
            (s.start.to_string(), s.end.to_string()),
            ("10.0.0.1".into(), "10.0.0.2".into())
        );
    }

    #[test]
    fn start_and_end_rules() {
        assert_eq!(
            fails(SubnetInput {
                start_ip: v("10.20.1.5"),
                ..base()
            }),
            [("start_ip", None)]
        );
        assert_eq!(
            fails(SubnetInput {
                start_ip: v("10.20.0.0"),
                ..base()
            }),
            [("start_ip", None)]
        );
        assert_eq!(
            fails(SubnetInput {
                end_ip: v("10.20.0.255"),
                ..base()
            }),
            [("end_ip", None)]
        );
        assert_eq!(
            fails(SubnetInput {
                end_ip: v("nope"),
                ..base()
            }),
            [("end_ip", None)]
        );
        assert_eq!(
            fails(SubnetInput {
                start_ip: v("10.20.0.50"),
                end_ip: v("10.20.0.40"),
                ..base()
            }),
            [("end_ip", None)]
        );
        let s = spec(SubnetInput {
            start_ip: v("10.20.0.40"),
            end_ip: v("10.20.0.40"),
            ..base()
        });
        assert_eq!(s.allocatable().len(), 1);
    }

    #[test]
    fn gateway_rules() {
        assert_eq!(
            fails(SubnetInput {
                gateway: v("10.21.0.1"),
                ..base()
            }),
            [("gateway", None)]
        );
        assert_eq!(
            fails(SubnetInput {
                gateway: v("10.20.0.255"),
                ..base()
            }),
            [("gateway", None)]
        );
        assert_eq!(
            fails(SubnetInput {
                gateway: v("10.20.0.0"),
                ..base()
            }),
            [("gateway", None)]
        );
        // Inside the range: reserved automatically.
        let s = spec(SubnetInput {
            gateway: v("10.20.0.1"),
            ..base()
        });
        assert!(s
            .static_exclusions()
            .contains_ip(Ipv4Addr::new(10, 20, 0, 1)));
        assert!(s
            .refusal(Ipv4Addr::new(10, 20, 0, 1))
            .unwrap()
            .contains("gateway"));
        // Outside the range (but inside cidr): allowed and not an exclusion.
        let s = spec(SubnetInput {
            gateway: v("10.20.0.1"),
            start_ip: v("10.20.0.10"),
            ..base()
        });
        assert!(s.static_exclusions().is_empty());
    }

    #[test]
    fn reserved_range_rules() {
        let s = spec(SubnetInput {
            start_ip: v("10.20.0.10"),
            end_ip: v("10.20.0.250"),
            reserved_ranges: vs(&[
                "10.20.0.100-10.20.0.119",
                "10.20.0.200",
                "10.20.0.10",
                "10.20.0.250",
            ]),
            ..base()
        });
        assert_eq!(s.static_exclusions().count_within(s.allocatable()), 23);
        assert!(s
            .refusal(Ipv4Addr::new(10, 20, 0, 105))
            .unwrap()
            .contains("reserved"));
        assert_eq!(s.refusal(Ipv4Addr::new(10, 20, 0, 99)), None);
        assert!(s
            .refusal(Ipv4Addr::new(10, 20, 0, 9))
            .unwrap()
            .contains("outside"));
        assert_eq!(
            fails(SubnetInput {
                start_ip: v("10.20.0.10"),
                reserved_ranges: vs(&[
                    "10.20.0.20",
                    "10.20.0.5-10.20.0.12",
                    "10.20.0.9-10.20.0.1",
                    "bad"
                ]),
                ..base()
            }),
            [
                ("reserved_ranges", Some(1)),
                ("reserved_ranges", Some(2)),
                ("reserved_ranges", Some(3))
            ]
        );
    }

    #[test]
    fn other_attribute_rules() {
        assert_eq!(
            fails(SubnetInput {
                vlan_id: Field::Value(0),
                ..base()
            }),
            [("vlan_id", None)]
        );
        assert_eq!(
            fails(SubnetInput {
                vlan_id: Field::Value(4095),
                ..base()
            }),
            [("vlan_id", None)]
        );
        assert_eq!(
            spec(SubnetInput {
                vlan_id: Field::Value(4094),
                ..base()
            })
            .vlan_id,
            Some(4094)
        );
        assert_eq!(
            fails(SubnetInput {
                alloc_policy: v("first"),
                ..base()
            }),
            [("alloc_policy", None)]
        );
        assert_eq!(
            spec(SubnetInput {
                alloc_policy: v("random"),
                ..base()
            })
            .policy,
            Policy::Random
        );
        assert_eq!(
            fails(SubnetInput {
                dns_servers: vs(&["10.0.0.2", "dns.example"]),
                ..base()
            }),
            [("dns_servers", Some(1))]
        );
    }

    #[test]
    fn unknown_inputs_defer_the_rules_that_need_them() {
        // cidr unknown: nothing can be checked against it, and the spec is incomplete.
        let input = SubnetInput {
            cidr: Field::Unknown,
            start_ip: v("10.20.0.5"),
            ..base()
        };
        assert_eq!(validate(&input), Ok(None));
        // Known parts are still checked.
        let input = SubnetInput {
            cidr: Field::Unknown,
            vlan_id: Field::Value(9999),
            ..base()
        };
        assert_eq!(fails(input), [("vlan_id", None)]);
        let input = SubnetInput {
            reserved_ranges: Field::Value(vec![Field::Unknown]),
            ..base()
        };
        assert_eq!(validate(&input), Ok(None));
    }

    #[test]
    fn several_broken_rules_are_all_reported() {
        let errs = fails(SubnetInput {
            start_ip: v("10.99.0.1"),
            gateway: v("x"),
            vlan_id: Field::Value(-1),
            ..base()
        });
        assert_eq!(
            errs,
            [("start_ip", None), ("gateway", None), ("vlan_id", None)]
        );
    }

    fn v6() -> SubnetInput {
        SubnetInput {
            cidr: v("2001:db8:0:1::/64"),
            ..Default::default()
        }
    }

    #[test]
    fn ipv6_defaults_skip_the_subnet_router_anycast_address() {
        let s = spec(v6());
        assert!(!s.is_v4());
        assert_eq!(s.start.to_string(), "2001:db8:0:1::1");
        assert_eq!(s.end.to_string(), "2001:db8:0:1:ffff:ffff:ffff:ffff");
        assert_eq!(s.allocatable().len(), (1 << 64) - 1);
        let s = spec(SubnetInput {
            cidr: v("2001:db8::/127"),
            ..v6()
        });
        assert_eq!((s.start, s.end), (s.end, "2001:db8::1".parse().unwrap()));
        let s = spec(SubnetInput {
            cidr: v("2001:db8::/48"),
            ..v6()
        });
        assert_eq!(s.allocatable().len(), (1 << 80) - 1);
    }

    #[test]
    fn ipv6_cidr_rules() {
        for (bad, why) in [
            ("2001:db8::/47", "/48 to /127"),
            ("2001:db8::/128", "/48 to /127"),
            ("2001:db8::1/64", "network address"),
            ("fe80::/64", "link-local"),
            ("ff05::/64", "multicast"),
            ("::ffff:10.0.0.0/120", "IPv4-mapped"),
            ("::/64", "::/80"),
            ("2001:db8:0:1::/64%eth0", "zone id"),
            ("2001:db8:0:1::", "not a network"),
            (
                "2001:DB8:0:1::/64",
                "Write the network as 2001:db8:0:1::/64",
            ),
        ] {
            let err = validate(&SubnetInput {
                cidr: v(bad),
                ..v6()
            })
            .unwrap_err();
            assert_eq!(err[0].attribute, "cidr", "{bad}");
            assert!(format!("{}", err[0]).contains(why), "{bad}: {}", err[0]);
        }
        spec(SubnetInput {
            cidr: v("fd00:0:0:1::/64"),
            ..v6()
        });
    }

    #[test]
    fn ipv6_attribute_rules() {
        let s = spec(SubnetInput {
            start_ip: v("2001:db8:0:1::100"),
            end_ip: v("2001:db8:0:1::1ff"),
            gateway: v("2001:db8:0:1::1"),
            dns_servers: vs(&["2001:db8::53", "10.0.0.2"]),
            reserved_ranges: vs(&["2001:db8:0:1::100-2001:db8:0:1::10f", "2001:db8:0:1::1ff"]),
            alloc_policy: v("random"),
            ..v6()
        });
        assert_eq!(s.static_exclusions().count_within(s.allocatable()), 17);
        assert_eq!(s.dns_servers.len(), 2);
        assert!(s
            .refusal("10.0.0.5".parse::<IpAddr>().unwrap())
            .unwrap()
            .contains("IPv4 address and the subnet"));
        assert!(s
            .refusal("2001:db8:0:1::105".parse::<IpAddr>().unwrap())
            .unwrap()
            .contains("reserved"));
        for (attr, bad, why) in [
            ("gateway", "2001:db8:0:1::", "anycast"),
            ("gateway", "10.0.0.1", "wrong family"),
            ("gateway", "2001:db8:0:1::1%eth0", "zone id"),
            ("start_ip", "::ffff:10.0.0.1", "IPv4-mapped"),
            ("end_ip", "2001:db8:0:2::1", "outside"),
        ] {
            let mut input = v6();
            match attr {
                "gateway" => input.gateway = v(bad),
                "start_ip" => input.start_ip = v(bad),
                _ => input.end_ip = v(bad),
            }
            let err = validate(&input).unwrap_err();
            assert_eq!(err[0].attribute, attr, "{bad}");
            assert!(format!("{}", err[0]).contains(why), "{bad}: {}", err[0]);
        }
        let err = validate(&SubnetInput {
            reserved_ranges: vs(&["10.0.0.1"]),
            dns_servers: vs(&["fe80::1%eth0"]),
            ..v6()
        })
        .unwrap_err();
        assert_eq!(
            err.iter()
                .map(|e| (e.attribute, e.index))
                .collect::<Vec<_>>(),
            [("dns_servers", Some(0)), ("reserved_ranges", Some(0))]
        );
        // An IPv4 subnet refuses IPv6 inputs by family, too.
        assert_eq!(
            fails(SubnetInput {
                gateway: v("2001:db8::1"),
                ..base()
            }),
            [("gateway", None)]
        );
    }
}
