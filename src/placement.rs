//! Where a new VM may run: a host is a candidate when, for every NIC, it carries a port group
//! of the NIC's subnet wire or one of its additional wires (a dual-stack NIC: one port group
//! that is a wire of both its subnets). Among candidates the least loaded wins. Plain
//! functions over an inventory snapshot and the store's subnets.

use std::collections::HashMap;

use crate::store::ops::SubnetView;
use crate::vsphere::model::{Host, Inventory, PortGroup};
use crate::vsphere::wire;

/// The chosen host and, per NIC, the port group (moref) to connect it to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub host: String,
    pub portgroups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("no datacenter named {0:?}; vCenter has {1}")]
    NoDatacenter(String, String),
    #[error("no host named {0:?} in datacenter {1:?}")]
    NoHost(String, String),
    #[error(
        "host {host:?} cannot reach subnet(s) {}: it carries no port group of their wires ({})",
        subnets.join(", "),
        wires.join(", ")
    )]
    Unreachable {
        host: String,
        subnets: Vec<String>,
        wires: Vec<String>,
    },
    #[error(
        "no usable host in datacenter {datacenter:?} carries a port group for every NIC \
         (subnets {}); hosts carrying each: {}",
        subnets.join(", "),
        carriers.join("; ")
    )]
    NoCandidate {
        datacenter: String,
        subnets: Vec<String>,
        carriers: Vec<String>,
    },
}

/// Port groups of the subnet's wires in the datacenter: its own wire first, then the additional
/// wires in id order.
fn portgroups_of<'i>(
    inventory: &'i Inventory,
    datacenter: &str,
    subnet: &SubnetView,
) -> Vec<&'i PortGroup> {
    let mut wires = vec![subnet.subnet.wire_id.clone()];
    wires.extend(subnet.additional_wire_ids());
    wires
        .iter()
        .filter(|w| w.starts_with(&format!("{}/", inventory.instance_uuid)))
        .filter_map(|w| {
            let moref = wire::moref_of(w);
            inventory
                .portgroups
                .iter()
                .find(|pg| pg.moref == moref && pg.datacenter == datacenter && !pg.uplink)
        })
        .collect()
}

/// The datacenter exists, or an error listing those that do.
pub fn require_datacenter(inventory: &Inventory, datacenter: &str) -> Result<(), PlacementError> {
    if inventory.datacenters.iter().any(|d| d.name == datacenter) {
        return Ok(());
    }
    let mut names: Vec<String> = inventory
        .datacenters
        .iter()
        .map(|d| format!("{:?}", d.name))
        .collect();
    names.sort();
    Err(PlacementError::NoDatacenter(
        datacenter.to_string(),
        names.join(", "),
    ))
}

fn usable(host: &Host) -> bool {
    host.connection_state == "connected" && !host.in_maintenance
}

/// Chooses a host for a VM whose NICs take addresses from `subnets` (one per NIC, in order).
/// `wanted` is a host name or moref the user gave; `extra_load` counts VMs this process has
/// placed since the snapshot was taken, so parallel creates spread out.
pub fn place(
    inventory: &Inventory,
    datacenter: &str,
    subnets: &[&SubnetView],
    wanted: Option<&str>,
    extra_load: &HashMap<String, usize>,
) -> Result<Placement, PlacementError> {
    let nics: Vec<Vec<&SubnetView>> = subnets.iter().map(|s| vec![*s]).collect();
    place_nics(inventory, datacenter, &nics, wanted, extra_load)
}

/// [`place`] for NICs that may take addresses from several subnets (a dual-stack NIC: an IPv4
/// and an IPv6 one): a NIC's port group must be a wire (own or additional) of each of them.
pub fn place_nics(
    inventory: &Inventory,
    datacenter: &str,
    nics: &[Vec<&SubnetView>],
    wanted: Option<&str>,
    extra_load: &HashMap<String, usize>,
) -> Result<Placement, PlacementError> {
    require_datacenter(inventory, datacenter)?;
    let per_nic: Vec<Vec<&PortGroup>> = nics
        .iter()
        .map(|subnets| {
            let mut each = subnets
                .iter()
                .map(|s| portgroups_of(inventory, datacenter, s));
            let first = each.next().unwrap_or_default();
            let rest: Vec<Vec<&PortGroup>> = each.collect();
            first
                .into_iter()
                .filter(|pg| rest.iter().all(|r| r.iter().any(|o| o.moref == pg.moref)))
                .collect()
        })
        .collect();
    let labels: Vec<String> = nics.iter().map(|s| nic_label(s)).collect();
    // Per NIC, the first port group of its subnet the host carries.
    let fit = |host: &Host| -> Vec<Option<String>> {
        per_nic
            .iter()
            .map(|pgs| {
                pgs.iter()
                    .find(|pg| pg.host_ids.contains(&host.moref))
                    .map(|pg| pg.moref.clone())
            })
            .collect()
    };
    let hosts: Vec<&Host> = inventory
        .hosts
        .iter()
        .filter(|h| h.datacenter == datacenter)
        .collect();
    if let Some(wanted) = wanted {
        let host = hosts
            .iter()
            .find(|h| h.name == wanted || h.moref == wanted)
            .ok_or_else(|| PlacementError::NoHost(wanted.to_string(), datacenter.to_string()))?;
        let fits = fit(host);
        let missing: Vec<usize> = (0..nics.len()).filter(|i| fits[*i].is_none()).collect();
        if !missing.is_empty() {
            return Err(PlacementError::Unreachable {
                host: host.name.clone(),
                subnets: missing.iter().map(|i| labels[*i].clone()).collect(),
                wires: missing
                    .iter()
                    .flat_map(|i| wire_labels(&per_nic[*i], &nics[*i]))
                    .collect(),
            });
        }
        return Ok(Placement {
            host: host.moref.clone(),
            portgroups: fits.into_iter().flatten().collect(),
        });
    }
    let load = |host: &Host| {
        inventory
            .vms
            .iter()
            .filter(|vm| !vm.template && vm.host.as_deref() == Some(host.moref.as_str()))
            .count()
            + extra_load.get(&host.moref).copied().unwrap_or(0)
    };
    let best = hosts
        .iter()
        .filter(|h| usable(h))
        .filter_map(|h| {
            let fits: Option<Vec<String>> = fit(h).into_iter().collect();
            fits.map(|pgs| (load(h), &h.name, h, pgs))
        })
        .min_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    match best {
        Some((_, _, host, portgroups)) => Ok(Placement {
            host: host.moref.clone(),
            portgroups,
        }),
        None => Err(PlacementError::NoCandidate {
            datacenter: datacenter.to_string(),
            subnets: labels.clone(),
            carriers: labels
                .iter()
                .zip(&per_nic)
                .map(|(label, pgs)| {
                    let mut names: Vec<String> = hosts
                        .iter()
                        .filter(|h| pgs.iter().any(|pg| pg.host_ids.contains(&h.moref)))
                        .map(|h| {
                            if usable(h) {
                                h.name.clone()
                            } else {
                                format!("{} ({})", h.name, unusable_reason(h))
                            }
                        })
                        .collect();
                    names.sort();
                    let names = if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    };
                    format!("{label}: {names}")
                })
                .collect(),
        }),
    }
}

fn unusable_reason(host: &Host) -> &'static str {
    if host.in_maintenance {
        "in maintenance"
    } else {
        "not connected"
    }
}

fn subnet_label(s: &SubnetView) -> String {
    format!("{:?} ({})", s.subnet.name, s.subnet.spec.cidr)
}

/// A NIC's subnets: "\"app\" (10.20.0.0/24)", or both of a dual-stack NIC joined by "and".
fn nic_label(subnets: &[&SubnetView]) -> String {
    subnets
        .iter()
        .map(|s| subnet_label(s))
        .collect::<Vec<_>>()
        .join(" and ")
}

fn wire_labels(pgs: &[&PortGroup], subnets: &[&SubnetView]) -> Vec<String> {
    if pgs.is_empty() && subnets.len() > 1 {
        vec![format!(
            "no port group is a wire of all of {}",
            nic_label(subnets)
        )]
    } else if pgs.is_empty() {
        subnets
            .iter()
            .map(|s| format!("{} (not in this datacenter)", s.subnet.wire_id))
            .collect()
    } else {
        pgs.iter().map(|pg| format!("{:?}", pg.name)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::subnet::{validate, SubnetInput};
    use crate::store::{SubnetRecord, WireLink};
    use crate::vsphere::model::{Datacenter, PortGroupKind, Vlan, Vm};

    fn host(moref: &str) -> Host {
        Host {
            moref: moref.into(),
            name: format!("esx-{moref}"),
            datacenter: "DC0".into(),
            compute_resource: None,
            connection_state: "connected".into(),
            in_maintenance: false,
            vmknics: vec![],
        }
    }

    fn pg(moref: &str, hosts: &[&str]) -> PortGroup {
        PortGroup {
            moref: moref.into(),
            name: format!("pg-{moref}"),
            kind: PortGroupKind::Distributed,
            datacenter: "DC0".into(),
            switch_name: "dvs".into(),
            switch_uuid: Some("uuid".into()),
            key: Some(moref.into()),
            vlan: Vlan::None,
            host_ids: hosts.iter().map(|h| h.to_string()).collect(),
            uplink: false,
        }
    }

    fn vm_on(host: &str) -> Vm {
        Vm {
            moref: format!("vm-on-{host}"),
            name: "x".into(),
            uuid: "u".into(),
            instance_uuid: None,
            template: false,
            power_state: "poweredOn".into(),
            host: Some(host.into()),
            guest_family: None,
            guest_hostname: None,
            nics: vec![],
            guest_ips: Default::default(),
            guest_ipv6: Default::default(),
            num_cpus: None,
            memory_mb: None,
        }
    }

    fn inventory() -> Inventory {
        Inventory {
            instance_uuid: "vc".into(),
            datacenters: vec![Datacenter {
                moref: "datacenter-1".into(),
                name: "DC0".into(),
            }],
            hosts: vec![host("h1"), host("h2"), host("h3")],
            portgroups: vec![
                pg("app", &["h1", "h2", "h3"]),
                pg("db", &["h2", "h3"]),
                pg("legacy", &["h1"]),
            ],
            vms: vec![vm_on("h2"), vm_on("h2"), vm_on("h3")],
        }
    }

    fn subnet(name: &str, cidr: &str, wire: &str, extra: &[&str]) -> SubnetView {
        let input = SubnetInput {
            cidr: crate::ipam::subnet::Field::Value(cidr.to_string()),
            ..Default::default()
        };
        SubnetView {
            subnet: SubnetRecord {
                id: name.into(),
                vcenter: "vc".into(),
                name: name.into(),
                wire_id: format!("vc/{wire}"),
                domain: None,
                spec: validate(&input).unwrap().unwrap(),
            },
            links: extra
                .iter()
                .map(|w| WireLink {
                    wire_id: format!("vc/{w}"),
                    detected: false,
                    attached: true,
                })
                .collect(),
        }
    }

    #[test]
    fn least_loaded_candidate_wins() {
        let inv = inventory();
        let app = subnet("app", "10.0.0.0/24", "app", &[]);
        let db = subnet("db", "10.1.0.0/24", "db", &[]);
        let none = HashMap::new();
        // h1 has no VM but does not carry db; h3 has one VM, h2 two.
        let p = place(&inv, "DC0", &[&app, &db], None, &none).unwrap();
        assert_eq!(p.host, "h3");
        assert_eq!(p.portgroups, vec!["app", "db"]);
        let p = place(&inv, "DC0", &[&app], None, &none).unwrap();
        assert_eq!(p.host, "h1");
        // What this process placed counts too.
        let extra = HashMap::from([("h1".to_string(), 2)]);
        assert_eq!(
            place(&inv, "DC0", &[&app], None, &extra).unwrap().host,
            "h3"
        );
    }

    #[test]
    fn a_dual_stack_nic_needs_a_port_group_of_both_subnets() {
        let inv = inventory();
        let none = HashMap::new();
        // app (h1-h3) with an IPv6 subnet on app too: any host; the least loaded is h1.
        let v4 = subnet("app4", "10.0.0.0/24", "app", &[]);
        let v6 = subnet("app6", "2001:db8::/64", "app", &[]);
        let p = place_nics(&inv, "DC0", &[vec![&v4, &v6]], None, &none).unwrap();
        assert_eq!(
            (p.host.as_str(), p.portgroups.as_slice()),
            ("h1", &["app".to_string()][..])
        );
        // The IPv6 subnet on db (h2, h3) and legacy: the port group must carry both subnets,
        // app does not, so no port group fits.
        let db6 = subnet("db6", "2001:db8:1::/64", "db", &["legacy"]);
        let err = place_nics(&inv, "DC0", &[vec![&v4, &db6]], None, &none).unwrap_err();
        assert!(
            matches!(&err, PlacementError::NoCandidate { subnets, .. }
            if subnets[0].contains("\"app4\"") && subnets[0].contains("\"db6\"")),
            "{err}"
        );
        // An IPv4 subnet reaching legacy as an additional wire: legacy carries both (h1 only).
        let v4_legacy = subnet("app4", "10.0.0.0/24", "app", &["legacy"]);
        let p = place_nics(&inv, "DC0", &[vec![&v4_legacy, &db6]], None, &none).unwrap();
        assert_eq!(
            (p.host.as_str(), p.portgroups[0].as_str()),
            ("h1", "legacy")
        );
        let err = place_nics(
            &inv,
            "DC0",
            &[vec![&v4_legacy, &db6]],
            Some("esx-h2"),
            &none,
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"pg-legacy\""), "{err}");
        let err = place_nics(&inv, "DC0", &[vec![&v4, &db6]], Some("esx-h2"), &none).unwrap_err();
        assert!(
            err.to_string()
                .contains("no port group is a wire of all of"),
            "{err}"
        );
    }

    #[test]
    fn additional_wire_makes_a_host_a_candidate() {
        let inv = inventory();
        let db_only = subnet("db", "10.1.0.0/24", "db", &[]);
        let spread = subnet("db", "10.1.0.0/24", "db", &["legacy"]);
        let extra = HashMap::from([("h2".to_string(), 5), ("h3".to_string(), 6)]);
        assert_eq!(
            place(&inv, "DC0", &[&db_only], None, &extra).unwrap().host,
            "h2"
        );
        let p = place(&inv, "DC0", &[&spread], None, &extra).unwrap();
        assert_eq!(
            (p.host.as_str(), p.portgroups[0].as_str()),
            ("h1", "legacy")
        );
    }

    #[test]
    fn a_given_host_is_validated() {
        let inv = inventory();
        let app = subnet("app", "10.0.0.0/24", "app", &[]);
        let db = subnet("db", "10.1.0.0/24", "db", &[]);
        let none = HashMap::new();
        let p = place(&inv, "DC0", &[&app], Some("esx-h2"), &none).unwrap();
        assert_eq!(p.host, "h2");
        let err = place(&inv, "DC0", &[&app, &db], Some("esx-h1"), &none).unwrap_err();
        assert!(matches!(&err, PlacementError::Unreachable { subnets, .. }
            if subnets.len() == 1 && subnets[0].contains("\"db\"")));
        assert!(err.to_string().contains("pg-db"), "{err}");
        assert!(matches!(
            place(&inv, "DC0", &[&app], Some("nope"), &none),
            Err(PlacementError::NoHost(..))
        ));
    }

    #[test]
    fn no_candidate_and_unusable_hosts_are_errors() {
        let mut inv = inventory();
        let legacy = subnet("legacy", "10.2.0.0/24", "legacy", &[]);
        let db = subnet("db", "10.1.0.0/24", "db", &[]);
        let none = HashMap::new();
        let err = place(&inv, "DC0", &[&legacy, &db], None, &none).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\"legacy\" (10.2.0.0/24): esx-h1"), "{text}");
        assert!(text.contains("esx-h2, esx-h3"), "{text}");
        inv.hosts[0].in_maintenance = true;
        let err = place(&inv, "DC0", &[&legacy], None, &none).unwrap_err();
        assert!(err.to_string().contains("esx-h1 (in maintenance)"), "{err}");
        let unknown = subnet("x", "10.3.0.0/24", "gone", &[]);
        assert!(place(&inv, "DC0", &[&unknown], None, &none).is_err());
        assert!(matches!(
            place(&inv, "DC9", &[&db], None, &none),
            Err(PlacementError::NoDatacenter(..))
        ));
    }
}
