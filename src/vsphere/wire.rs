//! Wires: port groups seen as Layer 2 networks. Lookup by name or moref with filters, the
//! stable wire id, and the addresses vCenter reports on a wire.

use std::fmt;
use std::net::IpAddr;

use super::model::{Inventory, PortGroup, Vm, VmkNic};

/// `"<vCenter instance UUID>/<moref>"`: stable across renames, unique across vCenters.
pub fn wire_id(inventory: &Inventory, moref: &str) -> String {
    format!("{}/{}", inventory.instance_uuid, moref)
}

/// The moref part of a wire id; a bare moref is accepted too.
pub fn moref_of(wire_id: &str) -> &str {
    wire_id.rsplit_once('/').map_or(wire_id, |(_, moref)| moref)
}

/// What the user asked for; `None` means "no filter".
#[derive(Debug, Default, Clone)]
pub struct WireQuery<'a> {
    pub name: Option<&'a str>,
    pub datacenter: Option<&'a str>,
    pub switch: Option<&'a str>,
    pub moref: Option<&'a str>,
}

impl fmt::Display for WireQuery<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [
            ("name", self.name),
            ("moref", self.moref),
            ("datacenter", self.datacenter),
            ("switch", self.switch),
        ]
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k} = {v:?}")))
        .collect();
        f.write_str(&parts.join(", "))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireLookupError {
    #[error("no port group matches {query}")]
    NotFound { query: String },
    #[error("{count} port groups match {query}")]
    Ambiguous {
        query: String,
        count: usize,
        /// One line per candidate: name, moref, type, switch and datacenter.
        candidates: Vec<String>,
    },
    /// Only a distributed switch's uplink port group matches: it carries the hosts' physical
    /// NICs, never a VM.
    #[error("{name} ({moref}) is the uplink port group of distributed switch {switch:?}")]
    Uplink {
        name: String,
        moref: String,
        switch: String,
    },
    /// Both `moref` and `name` were given and name different port groups.
    #[error("{moref} is port group {actual:?}, not {name:?}")]
    NameMismatch {
        moref: String,
        name: String,
        actual: String,
    },
}

/// Finds exactly one port group a VM can use: by moref (a `name` given as well must be its
/// name), else by name; filters narrow either. Uplink port groups are never offered.
pub fn find_portgroup<'i>(
    inventory: &'i Inventory,
    query: &WireQuery<'_>,
) -> Result<&'i PortGroup, WireLookupError> {
    let wanted_moref = query.moref.map(moref_of);
    let (matches, uplinks): (Vec<&PortGroup>, Vec<&PortGroup>) = inventory
        .portgroups
        .iter()
        .filter(|pg| wanted_moref.is_none_or(|m| pg.moref == m))
        .filter(|pg| wanted_moref.is_some() || query.name.is_none_or(|n| pg.name == n))
        .filter(|pg| query.datacenter.is_none_or(|dc| pg.datacenter == dc))
        .filter(|pg| {
            query
                .switch
                .is_none_or(|sw| pg.switch_name.split(',').any(|s| s == sw))
        })
        .partition(|pg| !pg.uplink);
    if let (Some(_), Some(name), [pg]) = (wanted_moref, query.name, &matches[..]) {
        if pg.name != name {
            return Err(WireLookupError::NameMismatch {
                moref: pg.moref.clone(),
                name: name.to_string(),
                actual: pg.name.clone(),
            });
        }
    }
    match matches.as_slice() {
        [] => Err(match uplinks.first() {
            Some(pg) => WireLookupError::Uplink {
                name: pg.name.clone(),
                moref: pg.moref.clone(),
                switch: pg.switch_name.clone(),
            },
            None => WireLookupError::NotFound {
                query: query.to_string(),
            },
        }),
        [one] => Ok(one),
        many => Err(WireLookupError::Ambiguous {
            query: query.to_string(),
            count: many.len(),
            candidates: many
                .iter()
                .map(|pg| {
                    format!(
                        "{} ({}, {} switch {:?}, datacenter {:?})",
                        pg.name,
                        pg.moref,
                        pg.kind.as_str(),
                        pg.switch_name,
                        pg.datacenter
                    )
                })
                .collect(),
        }),
    }
}

/// The addresses VMware Tools reports on one NIC of a VM: IPv4, then global IPv6.
pub fn nic_ips<'v>(vm: &'v Vm, mac: &str) -> impl Iterator<Item = IpAddr> + 'v {
    let v4 = vm.guest_ips.get(mac).into_iter().flatten();
    let v6 = vm.guest_ipv6.get(mac).into_iter().flatten();
    v4.map(|ip| IpAddr::V4(*ip))
        .chain(v6.map(|ip| IpAddr::V6(*ip)))
}

/// The NIC's [`nic_ips`] of `like`'s family: what Tools say about an address of that family
/// (their IPv4 addresses say nothing about an IPv6 one, nor their global IPv6 ones about an
/// IPv4 one).
pub fn nic_ips_like<'v>(vm: &'v Vm, mac: &str, like: IpAddr) -> impl Iterator<Item = IpAddr> + 'v {
    nic_ips(vm, mac).filter(move |ip| ip.is_ipv4() == like.is_ipv4())
}

/// Addresses of both families VMware Tools reports for VM NICs backed by the port group,
/// sorted (IPv4 first), unique.
pub fn vm_ips_on(inventory: &Inventory, moref: &str) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = inventory
        .vms
        .iter()
        .flat_map(|vm| {
            vm.nics
                .iter()
                .filter(|nic| nic.portgroup.as_deref() == Some(moref))
                .flat_map(move |nic| nic_ips(vm, &nic.mac))
        })
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// The addresses of a VMkernel adapter: IPv4, then global IPv6.
pub fn vmknic_ips(nic: &VmkNic) -> impl Iterator<Item = IpAddr> + '_ {
    nic.ip
        .map(IpAddr::V4)
        .into_iter()
        .chain(nic.ipv6.iter().map(|ip| IpAddr::V6(*ip)))
}

/// Addresses of both families of host VMkernel adapters on the port group, sorted (IPv4
/// first), unique.
pub fn vmkernel_ips_on(inventory: &Inventory, moref: &str) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = inventory
        .hosts
        .iter()
        .flat_map(|h| &h.vmknics)
        .filter(|n| n.portgroup.as_deref() == Some(moref))
        .flat_map(vmknic_ips)
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// Morefs of port groups whose VMs report an address inside `[first, last]`, sorted.
pub fn wires_reporting_in(inventory: &Inventory, first: IpAddr, last: IpAddr) -> Vec<String> {
    let mut morefs: Vec<String> = inventory
        .vms
        .iter()
        .flat_map(|vm| {
            vm.nics.iter().filter_map(move |nic| {
                let inside = nic_ips(vm, &nic.mac).any(|ip| first <= ip && ip <= last);
                inside.then(|| nic.portgroup.clone()).flatten()
            })
        })
        .collect();
    morefs.sort();
    morefs.dedup();
    morefs
}

/// Every address vCenter reports in use on the given port groups: VM guest IPs and VMkernel
/// adapter IPs, sorted and unique.
pub fn observed_on<'m>(
    inventory: &Inventory,
    morefs: impl IntoIterator<Item = &'m str>,
) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = morefs
        .into_iter()
        .flat_map(|m| {
            vm_ips_on(inventory, m)
                .into_iter()
                .chain(vmkernel_ips_on(inventory, m))
        })
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vsphere::model::*;
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;

    fn pg(moref: &str, name: &str, dc: &str, switch: &str) -> PortGroup {
        PortGroup {
            moref: moref.into(),
            name: name.into(),
            kind: PortGroupKind::Distributed,
            datacenter: dc.into(),
            switch_name: switch.into(),
            switch_uuid: Some("uuid".into()),
            key: Some(moref.into()),
            vlan: Vlan::Id { id: 10 },
            host_ids: vec![],
            uplink: false,
        }
    }

    fn inventory() -> Inventory {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        Inventory {
            instance_uuid: "vc-1".into(),
            portgroups: vec![
                pg("dvportgroup-1", "pg-dup", "DC0", "DSwitch0"),
                pg("dvportgroup-2", "pg-dup", "DC0", "DSwitch1"),
                pg("network-3", "pg-std", "DC1", "vSwitch0,vSwitch1"),
            ],
            hosts: vec![Host {
                moref: "host-1".into(),
                name: "h1".into(),
                datacenter: "DC0".into(),
                compute_resource: None,
                connection_state: "connected".into(),
                in_maintenance: false,
                vmknics: vec![
                    VmkNic {
                        device: "vmk0".into(),
                        portgroup: Some("dvportgroup-1".into()),
                        ip: Some(ip("10.0.0.9")),
                        ipv6: vec!["2001:db8::9".parse().unwrap()],
                    },
                    VmkNic {
                        device: "vmk1".into(),
                        portgroup: Some("network-3".into()),
                        ip: None,
                        ipv6: Vec::new(),
                    },
                ],
            }],
            vms: vec![Vm {
                moref: "vm-1".into(),
                name: "a".into(),
                uuid: "u1".into(),
                instance_uuid: None,
                template: false,
                power_state: "poweredOn".into(),
                host: Some("host-1".into()),
                guest_family: None,
                guest_hostname: None,
                nics: vec![
                    VmNic {
                        key: 4000,
                        mac: "00:50:56:00:00:01".into(),
                        portgroup: Some("dvportgroup-1".into()),
                    },
                    VmNic {
                        key: 4001,
                        mac: "00:50:56:00:00:02".into(),
                        portgroup: Some("network-3".into()),
                    },
                ],
                guest_ips: BTreeMap::from([
                    (
                        "00:50:56:00:00:01".into(),
                        vec![ip("10.0.0.20"), ip("10.0.0.3")],
                    ),
                    ("00:50:56:00:00:02".into(), vec![ip("10.9.0.1")]),
                ]),
                guest_ipv6: BTreeMap::from([(
                    "00:50:56:00:00:01".into(),
                    vec!["2001:db8::20".parse().unwrap()],
                )]),
                num_cpus: None,
                memory_mb: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn ambiguous_name_lists_every_candidate() {
        let inv = inventory();
        let err = find_portgroup(
            &inv,
            &WireQuery {
                name: Some("pg-dup"),
                ..Default::default()
            },
        )
        .unwrap_err();
        match err {
            WireLookupError::Ambiguous {
                count, candidates, ..
            } => {
                assert_eq!(count, 2);
                assert!(candidates[0].contains("DSwitch0") && candidates[0].contains("DC0"));
                assert!(candidates[1].contains("DSwitch1"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn switch_filter_resolves_ambiguity() {
        let inv = inventory();
        let q = WireQuery {
            name: Some("pg-dup"),
            switch: Some("DSwitch1"),
            ..Default::default()
        };
        assert_eq!(find_portgroup(&inv, &q).unwrap().moref, "dvportgroup-2");
    }

    #[test]
    fn standard_switch_filter_matches_any_vswitch() {
        let inv = inventory();
        let q = WireQuery {
            name: Some("pg-std"),
            switch: Some("vSwitch1"),
            ..Default::default()
        };
        assert_eq!(find_portgroup(&inv, &q).unwrap().moref, "network-3");
    }

    #[test]
    fn moref_and_wire_id_lookup() {
        let inv = inventory();
        for m in ["network-3", "vc-1/network-3"] {
            let q = WireQuery {
                moref: Some(m),
                ..Default::default()
            };
            assert_eq!(find_portgroup(&inv, &q).unwrap().name, "pg-std");
        }
    }

    #[test]
    fn uplinks_are_not_wires() {
        let mut inv = inventory();
        let mut uplink = pg("dvportgroup-9", "DSwitch0-DVUplinks", "DC0", "DSwitch0");
        uplink.uplink = true;
        inv.portgroups.push(uplink);
        for q in [
            WireQuery {
                name: Some("DSwitch0-DVUplinks"),
                ..Default::default()
            },
            WireQuery {
                moref: Some("vc-1/dvportgroup-9"),
                ..Default::default()
            },
        ] {
            let err = find_portgroup(&inv, &q).unwrap_err();
            assert!(matches!(err, WireLookupError::Uplink { .. }), "{err:?}");
            assert!(err.to_string().contains("uplink"), "{err}");
        }
        // A VM port group of the same name is still found.
        let mut same = pg("dvportgroup-10", "DSwitch0-DVUplinks", "DC0", "DSwitch1");
        same.uplink = false;
        inv.portgroups.push(same);
        let q = WireQuery {
            name: Some("DSwitch0-DVUplinks"),
            ..Default::default()
        };
        assert_eq!(find_portgroup(&inv, &q).unwrap().moref, "dvportgroup-10");
    }

    #[test]
    fn moref_and_a_different_name_conflict() {
        let inv = inventory();
        let q = WireQuery {
            moref: Some("network-3"),
            name: Some("pg-dup"),
            ..Default::default()
        };
        assert_eq!(
            find_portgroup(&inv, &q).unwrap_err(),
            WireLookupError::NameMismatch {
                moref: "network-3".into(),
                name: "pg-dup".into(),
                actual: "pg-std".into(),
            }
        );
        let q = WireQuery {
            moref: Some("network-3"),
            name: Some("pg-std"),
            ..Default::default()
        };
        assert_eq!(find_portgroup(&inv, &q).unwrap().moref, "network-3");
    }

    #[test]
    fn no_match_names_the_filters() {
        let inv = inventory();
        let q = WireQuery {
            name: Some("pg-dup"),
            datacenter: Some("DC9"),
            ..Default::default()
        };
        let err = find_portgroup(&inv, &q).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no port group matches name = \"pg-dup\", datacenter = \"DC9\""
        );
    }

    #[test]
    fn addresses_on_a_wire() {
        let inv = inventory();
        let s = |v: Vec<IpAddr>| v.iter().map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(
            s(vm_ips_on(&inv, "dvportgroup-1")),
            ["10.0.0.3", "10.0.0.20", "2001:db8::20"]
        );
        assert_eq!(s(vm_ips_on(&inv, "network-3")), ["10.9.0.1"]);
        assert_eq!(
            s(vmkernel_ips_on(&inv, "dvportgroup-1")),
            ["10.0.0.9", "2001:db8::9"]
        );
        assert!(vmkernel_ips_on(&inv, "network-3").is_empty());
        assert_eq!(wire_id(&inv, "network-3"), "vc-1/network-3");
        let all = observed_on(&inv, ["dvportgroup-1", "network-3"]);
        assert_eq!(
            s(all),
            [
                "10.0.0.3",
                "10.0.0.9",
                "10.0.0.20",
                "10.9.0.1",
                "2001:db8::9",
                "2001:db8::20"
            ]
        );
    }

    #[test]
    fn wires_with_addresses_in_a_range() {
        let inv = inventory();
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            wires_reporting_in(&inv, ip("10.0.0.1").into(), ip("10.0.0.10").into()),
            ["dvportgroup-1"]
        );
        assert_eq!(
            wires_reporting_in(&inv, ip("10.0.0.0").into(), ip("10.255.0.0").into()),
            ["dvportgroup-1", "network-3"]
        );
        assert!(wires_reporting_in(&inv, ip("10.0.0.4").into(), ip("10.0.0.19").into()).is_empty());
    }
}
