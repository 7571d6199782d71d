//! The addresses VMware Tools reports in a VM's `guest.net`, read one way for the inventory
//! snapshot and for waiting on a new VM's addresses.
//!
//! A MAC is listed only with at least one usable IPv4 address: a NIC that Tools reports with
//! IPv6 or link-local addresses only has no address we manage, and "Tools report an address on
//! this NIC" is then simply whether its MAC is in the map.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

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

/// [`guest_ips`] of `guest.net`: each NIC's `ipConfig` addresses and its flat `ipAddress` list.
pub(crate) fn from_guest_net(net: &[GuestNicInfo]) -> BTreeMap<String, Vec<Ipv4Addr>> {
    guest_ips(net.iter().filter_map(|nic| {
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
    }))
}

/// An IPv4 address worth recording: not IPv6, unspecified or link-local (APIPA, which a guest
/// without DHCP answer assigns itself and which belongs to no subnet we manage).
pub fn usable_ipv4(text: &str) -> Option<Ipv4Addr> {
    // Some Tools versions append the prefix ("10.0.0.5/24").
    let addr = text.trim().split('/').next()?;
    let ip: Ipv4Addr = addr.parse().ok()?;
    (!ip.is_unspecified() && !ip.is_link_local()).then_some(ip)
}
