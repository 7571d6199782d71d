//! Which subnet a VM NIC's address belongs to, and who else vCenter says uses an address:
//! plain functions over an inventory snapshot and the store's subnets, shared by the
//! resources that record or assign VM addresses.
//!
//! A NIC reaches a subnet when its port group is the subnet's wire or one of its additional
//! wires; the address must lie in the subnet's allocatable range.

use std::net::IpAddr;

use crate::ipam::ranges::{Range, RangeSet};
use crate::store::ops::{NicClaim, Observation, SubnetView};
use crate::vsphere::model::{Inventory, Vm, VmNic};
use crate::vsphere::wire;

/// One `nic` block: which NIC (by MAC, or the next one in device order) and its address, of
/// either family (a NIC's second address, of the other family, is matched with
/// [`resolve_address`] on the NIC [`match_nics`] found).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicRequest {
    pub mac: Option<String>,
    pub ip: IpAddr,
}

/// A refused `nic` block (or the whole request when `index` is `None`), for a diagnostic on
/// `nic[index].attribute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicProblem {
    /// No subnet reachable from the NIC holds the address: at plan time that subnet may still
    /// be created by the same apply.
    pub no_subnet: bool,
    pub index: Option<usize>,
    pub attribute: &'static str,
    pub summary: String,
    pub detail: String,
}

/// `00:50:56:AA:bb:cc` and `00-50-56-aa-bb-cc` both become `00:50:56:aa:bb:cc`; anything
/// that is not six hex octets is `None`.
pub fn normalize_mac(mac: &str) -> Option<String> {
    let octets: Vec<&str> = mac.split([':', '-']).collect();
    let valid = octets.len() == 6
        && octets
            .iter()
            .all(|o| o.len() == 2 && o.chars().all(|c| c.is_ascii_hexdigit()));
    valid.then(|| octets.join(":").to_ascii_lowercase())
}

/// Whether two spellings name the same MAC; an invalid one matches nothing.
pub fn same_mac(a: &str, b: &str) -> bool {
    normalize_mac(a).is_some_and(|a| Some(a) == normalize_mac(b))
}

pub fn find_vm<'i>(inventory: &'i Inventory, uuid: &str) -> Option<&'i Vm> {
    inventory
        .vms
        .iter()
        .find(|vm| vm.uuid.eq_ignore_ascii_case(uuid))
}

/// Matches `nic` blocks to the VM's NICs: by MAC when given, otherwise the next NIC in device
/// order that no block names.
pub fn match_nics<'v>(
    vm: &'v Vm,
    requests: &[NicRequest],
) -> Result<Vec<&'v VmNic>, Vec<NicProblem>> {
    let macs = || {
        vm.nics
            .iter()
            .map(|n| n.mac.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if requests.len() > vm.nics.len() {
        return Err(vec![NicProblem {
            no_subnet: false,
            index: None,
            attribute: "nic",
            summary: "More nic blocks than the VM has NICs".into(),
            detail: format!(
                "VM {:?} ({}) has {} network adapter(s) ({}), the configuration has {} nic \
                 blocks. Remove the extra blocks.",
                vm.name,
                vm.uuid,
                vm.nics.len(),
                macs(),
                requests.len()
            ),
        }]);
    }
    let mut problems = Vec::new();
    let mut taken: Vec<Option<&VmNic>> = vec![None; requests.len()];
    for (i, request) in requests.iter().enumerate() {
        let Some(mac) = &request.mac else { continue };
        let wanted = normalize_mac(mac).unwrap_or_else(|| mac.to_ascii_lowercase());
        match vm.nics.iter().find(|n| n.mac == wanted) {
            Some(nic) if taken.iter().flatten().any(|t| t.key == nic.key) => {
                problems.push(NicProblem {
                    no_subnet: false,
                    index: Some(i),
                    attribute: "mac",
                    summary: "NIC named twice".into(),
                    detail: format!("Another nic block already names MAC {wanted}."),
                })
            }
            Some(nic) => taken[i] = Some(nic),
            None => problems.push(NicProblem {
                no_subnet: false,
                index: Some(i),
                attribute: "mac",
                summary: "Unknown MAC address".into(),
                detail: format!(
                    "VM {:?} ({}) has no NIC with MAC {wanted}; its NICs are: {}.",
                    vm.name,
                    vm.uuid,
                    macs()
                ),
            }),
        }
    }
    for i in 0..requests.len() {
        if requests[i].mac.is_some() {
            continue;
        }
        let next = vm
            .nics
            .iter()
            .find(|n| !taken.iter().flatten().any(|t| t.key == n.key));
        taken[i] = next;
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(taken.into_iter().flatten().collect())
}

/// Morefs of the subnet's wire and additional wires.
fn subnet_morefs(view: &SubnetView) -> Vec<&str> {
    std::iter::once(view.subnet.wire_id.as_str())
        .chain(view.links.iter().map(|l| l.wire_id.as_str()))
        .map(wire::moref_of)
        .collect()
}

/// Matches each `nic` block to a NIC of the VM and to the subnet its address belongs to.
pub fn resolve(
    inventory: &Inventory,
    vm: &Vm,
    requests: &[NicRequest],
    subnets: &[SubnetView],
) -> Result<Vec<NicClaim>, Vec<NicProblem>> {
    let nics = match_nics(vm, requests)?;
    let mut problems = Vec::new();
    let mut claims = Vec::new();
    for (i, (request, nic)) in requests.iter().zip(nics).enumerate() {
        match resolve_address(inventory, vm, nic, request.ip, subnets) {
            Ok(claim) => claims.push(claim),
            Err(problem) => problems.push(NicProblem {
                index: Some(i),
                ..problem
            }),
        }
    }
    if problems.is_empty() {
        Ok(claims)
    } else {
        Err(problems)
    }
}

/// The subnet holding `ip` among those reachable from `nic`'s port group, as the claim that
/// records it; the problem (on `ip_address`, no index) names the subnets that were tried.
pub fn resolve_address(
    inventory: &Inventory,
    vm: &Vm,
    nic: &VmNic,
    ip: IpAddr,
    subnets: &[SubnetView],
) -> Result<NicClaim, NicProblem> {
    let Some(moref) = nic.portgroup.as_deref() else {
        return Err(NicProblem {
            no_subnet: false,
            index: None,
            attribute: "ip_address",
            summary: "NIC is not on a port group".into(),
            detail: format!(
                "NIC {} of VM {:?} has no port group backing; connect it to a port group first.",
                nic.mac, vm.name
            ),
        });
    };
    let pg_name = inventory
        .portgroups
        .iter()
        .find(|pg| pg.moref == moref)
        .map_or(moref, |pg| pg.name.as_str());
    let reachable: Vec<&SubnetView> = subnets
        .iter()
        .filter(|s| subnet_morefs(s).contains(&moref))
        .collect();
    if let Some(view) = reachable
        .iter()
        .find(|s| s.subnet.spec.allocatable().contains_ip(ip))
    {
        return Ok(NicClaim {
            subnet_id: view.subnet.id.clone(),
            ip,
            mac: nic.mac.clone(),
            wire_id: wire::wire_id(inventory, moref),
        });
    }
    let tried: Vec<String> = reachable
        .iter()
        .map(|s| {
            format!(
                "{:?} ({}, range {})",
                s.subnet.name,
                s.subnet.id,
                s.subnet.spec.allocatable()
            )
        })
        .collect();
    let tried = if tried.is_empty() {
        "none: no subnet has this port group as its wire or an additional wire".into()
    } else {
        tried.join(", ")
    };
    Err(NicProblem {
        no_subnet: true,
        index: None,
        attribute: "ip_address",
        summary: "Address in no subnet of the NIC's port group".into(),
        detail: format!(
            "{ip} (NIC {} of VM {:?}) is not in the range of any subnet reachable from port \
             group {pg_name:?} ({moref}). Subnets tried: {tried}. Create a subnet on that wire, \
             attach the wire to a subnet, or fix the address.",
            nic.mac, vm.name
        ),
    })
}

/// Every address vCenter reports in use, per wire: VM guest IPs (per NIC) and VMkernel IPs.
pub fn observations(inventory: &Inventory) -> Vec<Observation> {
    let mut out = Vec::new();
    for vm in &inventory.vms {
        for nic in &vm.nics {
            let Some(moref) = &nic.portgroup else {
                continue;
            };
            out.extend(wire::nic_ips(vm, &nic.mac).map(|ip| Observation {
                ip,
                wire_id: wire::wire_id(inventory, moref),
                who: format!("VM {:?} ({})", vm.name, vm.uuid),
                vm_uuid: Some(vm.uuid.clone()),
                mac: Some(nic.mac.clone()),
            }));
        }
    }
    for host in &inventory.hosts {
        for vmk in &host.vmknics {
            let Some(moref) = &vmk.portgroup else {
                continue;
            };
            out.extend(wire::vmknic_ips(vmk).map(|ip| Observation {
                ip,
                wire_id: wire::wire_id(inventory, moref),
                who: format!("host {:?} {}", host.name, vmk.device),
                vm_uuid: None,
                mac: None,
            }));
        }
    }
    out
}

/// Every address vCenter reports in use on the subnet's wire and additional wires: what an
/// allocation in the subnet must skip.
pub fn observed_in(inventory: &Inventory, subnet: &SubnetView) -> RangeSet {
    let mut set = RangeSet::new();
    for ip in wire::observed_on(inventory, subnet_morefs(subnet)) {
        set.insert(Range::new(ip, ip));
    }
    set
}

/// [`reported_by_others`] for claims: who, other than the VM, uses a claim's address.
pub fn claim_reporter<'a>(
    observations: &'a [Observation],
    subnets: &'a [SubnetView],
    vm_uuid: &'a str,
) -> impl Fn(&NicClaim) -> Option<String> + 'a {
    move |claim| {
        subnets
            .iter()
            .find(|s| s.subnet.id == claim.subnet_id)
            .and_then(|s| reported_by_others(observations, s, vm_uuid, claim.ip))
    }
}

/// Who, other than the VM `vm_uuid`, vCenter reports using the claim's address on a wire of
/// its subnet.
pub fn reported_by_others(
    observations: &[Observation],
    subnet: &SubnetView,
    vm_uuid: &str,
    ip: IpAddr,
) -> Option<String> {
    let morefs = subnet_morefs(subnet);
    observations
        .iter()
        .filter(|o| o.ip == ip && morefs.contains(&wire::moref_of(&o.wire_id)))
        .find(|o| {
            o.vm_uuid
                .as_deref()
                .is_none_or(|u| !u.eq_ignore_ascii_case(vm_uuid))
        })
        .map(|o| format!("{}, whose address VMware Tools or the host report", o.who))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::subnet::{validate, Field, SubnetInput};
    use crate::store::{SubnetRecord, WireLink};
    use std::collections::BTreeMap;

    fn nic(key: i32, mac: &str, pg: &str) -> VmNic {
        VmNic {
            key,
            mac: mac.into(),
            portgroup: Some(pg.into()),
        }
    }

    fn vm() -> Vm {
        Vm {
            moref: "vm-1".into(),
            name: "db".into(),
            uuid: "u-1".into(),
            instance_uuid: None,
            template: false,
            power_state: "poweredOn".into(),
            host: None,
            guest_family: None,
            guest_hostname: None,
            nics: vec![
                nic(4000, "00:50:56:00:00:01", "pg-a"),
                nic(4001, "00:50:56:00:00:02", "pg-b"),
            ],
            guest_ips: BTreeMap::new(),
            guest_ipv6: BTreeMap::new(),
            num_cpus: None,
            memory_mb: None,
        }
    }

    fn inventory() -> Inventory {
        let mut other = vm();
        other.uuid = "u-2".into();
        other.name = "other".into();
        other.guest_ips = BTreeMap::from([(
            "00:50:56:00:00:01".to_string(),
            vec!["10.0.0.7".parse().unwrap()],
        )]);
        Inventory {
            instance_uuid: "vc".into(),
            vms: vec![vm(), other],
            ..Default::default()
        }
    }

    fn subnet(id: &str, cidr: &str, wire: &str, links: &[&str]) -> SubnetView {
        let spec = validate(&SubnetInput {
            cidr: Field::Value(cidr.into()),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
        SubnetView {
            subnet: SubnetRecord {
                id: id.into(),
                vcenter: "vc".into(),
                name: id.into(),
                wire_id: format!("vc/{wire}"),
                domain: None,
                spec,
            },
            links: links
                .iter()
                .map(|w| WireLink {
                    wire_id: format!("vc/{w}"),
                    detected: false,
                    attached: true,
                })
                .collect(),
        }
    }

    fn req(mac: Option<&str>, ip: &str) -> NicRequest {
        NicRequest {
            mac: mac.map(Into::into),
            ip: ip.parse().unwrap(),
        }
    }

    #[test]
    fn macs_are_normalized() {
        assert_eq!(
            normalize_mac("00-50-56-AA-bb-CC").as_deref(),
            Some("00:50:56:aa:bb:cc")
        );
        assert_eq!(normalize_mac("00:50:56:aa:bb"), None);
        assert_eq!(normalize_mac("00:50:56:aa:bb:zz"), None);
    }

    #[test]
    fn blocks_without_mac_take_the_next_unnamed_nic() {
        let vm = vm();
        let got = match_nics(
            &vm,
            &[
                req(Some("00:50:56:00:00:01"), "1.1.1.1"),
                req(None, "1.1.1.2"),
            ],
        )
        .unwrap();
        assert_eq!(got[0].key, 4000);
        assert_eq!(got[1].key, 4001);
        let got = match_nics(
            &vm,
            &[
                req(None, "1.1.1.1"),
                req(Some("00:50:56:00:00:01"), "1.1.1.2"),
            ],
        )
        .unwrap();
        assert_eq!(
            got[0].key, 4001,
            "the first block skips the NIC the second names"
        );
        assert_eq!(got[1].key, 4000);
    }

    #[test]
    fn too_many_blocks_and_unknown_macs_are_refused() {
        let vm = vm();
        let many = [
            req(None, "1.1.1.1"),
            req(None, "1.1.1.2"),
            req(None, "1.1.1.3"),
        ];
        let err = match_nics(&vm, &many).unwrap_err();
        assert_eq!(err[0].attribute, "nic");
        assert!(err[0].detail.contains("2 network adapter(s)"), "{err:?}");
        let err = match_nics(&vm, &[req(Some("00:50:56:00:00:09"), "1.1.1.1")]).unwrap_err();
        assert_eq!((err[0].index, err[0].attribute), (Some(0), "mac"));
        assert!(err[0].detail.contains("00:50:56:00:00:02"), "{err:?}");
    }

    #[test]
    fn each_nic_gets_the_subnet_of_its_own_port_group() {
        let inv = inventory();
        let subnets = [
            subnet("a", "10.0.0.0/24", "pg-a", &[]),
            subnet("b", "10.1.0.0/24", "pg-b", &[]),
            subnet("c", "10.2.0.0/24", "pg-c", &["pg-b"]),
        ];
        let claims = resolve(
            &inv,
            &inv.vms[0],
            &[req(None, "10.0.0.5"), req(None, "10.2.0.5")],
            &subnets,
        )
        .unwrap();
        assert_eq!(claims[0].subnet_id, "a");
        assert_eq!(claims[0].wire_id, "vc/pg-a");
        assert_eq!(claims[1].subnet_id, "c", "through the additional wire");
        assert_eq!(claims[1].mac, "00:50:56:00:00:02");
    }

    #[test]
    fn an_address_no_reachable_subnet_holds_names_what_was_tried() {
        let inv = inventory();
        let subnets = [
            subnet("a", "10.0.0.0/24", "pg-a", &[]),
            subnet("b", "10.1.0.0/24", "pg-b", &[]),
        ];
        // 10.1.0.5 is in subnet b, but b is not on the first NIC's port group.
        let err = resolve(&inv, &inv.vms[0], &[req(None, "10.1.0.5")], &subnets).unwrap_err();
        assert_eq!((err[0].index, err[0].attribute), (Some(0), "ip_address"));
        assert!(err[0].detail.contains("10.1.0.5"), "{err:?}");
        assert!(err[0].detail.contains("pg-a"), "{err:?}");
        assert!(
            err[0]
                .detail
                .contains("\"a\" (a, range 10.0.0.1-10.0.0.254)"),
            "{err:?}"
        );
    }

    #[test]
    fn a_nics_ipv6_address_resolves_on_its_own_beside_the_ipv4_one() {
        let inv = inventory();
        let vm = &inv.vms[0];
        let subnets = [
            subnet("a", "10.0.0.0/24", "pg-a", &[]),
            subnet("a6", "2001:db8:0:a::/64", "pg-a", &[]),
            subnet("b6", "2001:db8:0:b::/64", "pg-b", &[]),
        ];
        let v4 = resolve(&inv, vm, &[req(None, "10.0.0.5")], &subnets).unwrap();
        let v6 = resolve_address(
            &inv,
            vm,
            &vm.nics[0],
            "2001:db8:0:a::5".parse().unwrap(),
            &subnets,
        )
        .unwrap();
        assert_eq!(
            (v4[0].subnet_id.as_str(), v6.subnet_id.as_str()),
            ("a", "a6")
        );
        assert_eq!(v6.mac, v4[0].mac);
        let err = resolve_address(
            &inv,
            vm,
            &vm.nics[0],
            "2001:db8:0:b::5".parse().unwrap(),
            &subnets,
        )
        .unwrap_err();
        assert!(err.no_subnet && err.index.is_none(), "{err:?}");
        assert!(
            err.detail.contains("\"a6\" (a6, range 2001:db8:0:a::1-"),
            "{err:?}"
        );
        let ipv6_only = resolve(&inv, vm, &[req(None, "2001:db8:0:a::7")], &subnets).unwrap();
        assert_eq!(ipv6_only[0].subnet_id, "a6");
    }

    #[test]
    fn other_vms_reporting_an_address_are_named_but_not_the_vm_itself() {
        let inv = inventory();
        let obs = observations(&inv);
        let a = subnet("a", "10.0.0.0/24", "pg-a", &[]);
        let ip = "10.0.0.7".parse().unwrap();
        let holder = reported_by_others(&obs, &a, "u-1", ip).unwrap();
        assert!(holder.contains("\"other\" (u-2)"), "{holder}");
        assert_eq!(reported_by_others(&obs, &a, "u-2", ip), None);
        let elsewhere = subnet("x", "10.0.0.0/24", "pg-x", &[]);
        assert_eq!(reported_by_others(&obs, &elsewhere, "u-1", ip), None);
    }
}
