//! The addresses VMware Tools reports in a VM's `guest.net`, read one way for the inventory
//! snapshot and for waiting on a new VM's addresses.
//!
//! A MAC is listed only with at least one usable IPv4 address: a NIC that Tools reports with
//! IPv6 or link-local addresses only has no IPv4 address we manage, and "Tools report an
//! address on this NIC" is then simply whether its MAC is in the map. Global IPv6 addresses
//! are read into a map of their own ([`guest_ipv6s`]): they count as used, and waiting for a
//! new VM looks for each assigned IPv6 address among them.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vim_rs::types::structs::GuestNicInfo;

/// IPv4 addresses per lower-case MAC from `(mac, addresses)` pairs, one per reported NIC:
/// addresses sorted and unique, unusable ones ([`usable_ipv4`]) left out, and MACs that are
/// empty or left without an address left out.
pub fn guest_ips<'a, N, A>(nics: N) -> BTreeMap<String, Vec<Ipv4Addr>>
where
    N: IntoIterator<Item = (&'a str, A)>,
    A: IntoIterator<Item = &'a str>,
{
    let mut out: BTreeMap<String, Vec<Ipv4Addr>> = BTreeMap::new();
    for (mac, addresses) in nics {
        let mac = mac.trim();
        if mac.is_empty() {
            continue;
        }
        let ips: Vec<Ipv4Addr> = addresses.into_iter().filter_map(usable_ipv4).collect();
        if ips.is_empty() {
            continue;
        }
        let entry = out.entry(mac.to_ascii_lowercase()).or_default();
        entry.extend(ips);
        entry.sort();
        entry.dedup();
    }
    out
}

/// Global IPv6 addresses per lower-case MAC, as [`guest_ips`] reads IPv4 ones: usable ones
/// only ([`usable_ipv6`]), sorted and unique, MACs without one left out.
pub fn guest_ipv6s<'a, N, A>(nics: N) -> BTreeMap<String, Vec<Ipv6Addr>>
where
    N: IntoIterator<Item = (&'a str, A)>,
    A: IntoIterator<Item = &'a str>,
{
    let mut out: BTreeMap<String, Vec<Ipv6Addr>> = BTreeMap::new();
    for (mac, addresses) in nics {
        let mac = mac.trim();
        let ips: Vec<Ipv6Addr> = addresses.into_iter().filter_map(usable_ipv6).collect();
        if mac.is_empty() || ips.is_empty() {
            continue;
        }
        let entry = out.entry(mac.to_ascii_lowercase()).or_default();
        entry.extend(ips);
        entry.sort();
        entry.dedup();
    }
    out
}

/// [`guest_ips`] of `guest.net`: each NIC's `ipConfig` addresses and its flat `ipAddress` list.
pub(crate) fn from_guest_net(net: &[GuestNicInfo]) -> BTreeMap<String, Vec<Ipv4Addr>> {
    guest_ips(guest_net_addresses(net))
}

/// [`guest_ipv6s`] of `guest.net`.
pub(crate) fn ipv6_from_guest_net(net: &[GuestNicInfo]) -> BTreeMap<String, Vec<Ipv6Addr>> {
    guest_ipv6s(guest_net_addresses(net))
}

/// Addresses the guest reports in state `duplicate` (per lower-case MAC): duplicate address
/// detection found another host on the network holding them, so the guest does not use them.
pub(crate) fn duplicates_from_guest_net(net: &[GuestNicInfo]) -> BTreeMap<String, Vec<IpAddr>> {
    let mut out: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    for nic in net {
        let Some(mac) = nic.mac_address.as_deref().map(str::trim) else {
            continue;
        };
        let config = nic.ip_config.as_ref().and_then(|c| c.ip_address.as_ref());
        for a in config.into_iter().flatten() {
            if a.state.as_deref() != Some("duplicate") {
                continue;
            }
            let ip = usable_ipv4(&a.ip_address)
                .map(IpAddr::V4)
                .or_else(|| usable_ipv6(&a.ip_address).map(IpAddr::V6));
            if let Some(ip) = ip {
                out.entry(mac.to_ascii_lowercase()).or_default().push(ip);
            }
        }
    }
    out
}

/// `(mac, addresses)` of each reported NIC: its `ipConfig` addresses and its flat list.
fn guest_net_addresses(
    net: &[GuestNicInfo],
) -> impl Iterator<Item = (&str, impl Iterator<Item = &str>)> {
    net.iter().filter_map(|nic| {
        let mac = nic.mac_address.as_deref()?;
        let from_config = nic
            .ip_config
            .as_ref()
            .and_then(|c| c.ip_address.as_ref())
            .into_iter()
            .flatten()
            .map(|a| a.ip_address.as_str());
        let flat = nic.ip_address.iter().flatten().map(String::as_str);
        Some((mac, from_config.chain(flat)))
    })
}

/// An IPv6 address another VM could be handed: not link-local (fe80::/10, every interface has
/// one), multicast, unspecified, loopback or IPv4-mapped.
pub fn usable_ipv6(text: &str) -> Option<Ipv6Addr> {
    let addr = text.trim().split(['/', '%']).next()?;
    let ip: Ipv6Addr = addr.parse().ok()?;
    let link_local = ip.segments()[0] & 0xffc0 == 0xfe80;
    let usable = !link_local
        && !ip.is_multicast()
        && !ip.is_unspecified()
        && !ip.is_loopback()
        && ip.to_ipv4_mapped().is_none();
    usable.then_some(ip)
}

/// An IPv4 address worth recording: not IPv6, unspecified or link-local (APIPA, which a guest
/// without DHCP answer assigns itself and which belongs to no subnet we manage).
pub fn usable_ipv4(text: &str) -> Option<Ipv4Addr> {
    // Some Tools versions append the prefix ("10.0.0.5/24").
    let addr = text.trim().split('/').next()?;
    let ip: Ipv4Addr = addr.parse().ok()?;
    (!ip.is_unspecified() && !ip.is_link_local()).then_some(ip)
}
