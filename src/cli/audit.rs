//! `ipam audit`: what an operator must fix, found by comparing the store with vCenter.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use crate::nics;
use crate::store::{OwnerKind, Result, Store};
use crate::vsphere::model::Inventory;
use crate::vsphere::wire;

/// Pending records older than this belong to an operation that did not finish.
const PENDING_MAX_AGE_SECS: i64 = crate::pending::PENDING_TTL.as_secs() as i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// VMware Tools report the same address (IPv4 or global IPv6) on two VMs.
    DuplicateGuestIp,
    /// Tools report an address that a record holds for someone else.
    HeldByAnother,
    /// A record names a VM that no longer exists.
    VmGone,
    /// A pending record older than an hour.
    StalePending,
    /// VMware Tools report other addresses on the NIC a record holds its address for: the
    /// guest's network was changed after the record was made (a `vsphereipam_vm_nic_fix` or a
    /// VM of the provider).
    GuestIpDiffers,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProblemKind::DuplicateGuestIp => "duplicate_guest_ip",
            ProblemKind::HeldByAnother => "held_by_another",
            ProblemKind::VmGone => "vm_gone",
            ProblemKind::StalePending => "stale_pending",
            ProblemKind::GuestIpDiffers => "guest_ip_differs",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub ip: String,
    pub detail: String,
}

pub fn audit(store: &Store, inventory: &Inventory) -> Result<Vec<Problem>> {
    audit_at(store, inventory, now())
}

fn now() -> i64 {
    crate::store::unix_now()
}

pub fn audit_at(store: &Store, inventory: &Inventory, now: i64) -> Result<Vec<Problem>> {
    let mut problems = Vec::new();

    let mut reporters: BTreeMap<IpAddr, Vec<&str>> = BTreeMap::new();
    for vm in inventory.vms.iter().filter(|vm| !vm.template) {
        let v4 = vm.all_guest_ips().into_iter().map(IpAddr::V4);
        let mut v6: Vec<IpAddr> = vm
            .guest_ipv6
            .values()
            .flatten()
            .map(|ip| IpAddr::V6(*ip))
            .collect();
        v6.sort();
        v6.dedup();
        for ip in v4.chain(v6) {
            reporters.entry(ip).or_default().push(&vm.name);
        }
    }
    for (ip, vms) in &reporters {
        if vms.len() > 1 {
            problems.push(Problem {
                kind: ProblemKind::DuplicateGuestIp,
                ip: ip.to_string(),
                detail: format!("VMware Tools report it on VMs {}", vms.join(", ")),
            });
        }
    }

    let observations = nics::observations(inventory);
    let ours = format!("{}/", inventory.instance_uuid);
    for view in store.subnet_views(&inventory.instance_uuid)? {
        for a in store.addresses(&view.subnet.id)? {
            if a.owner_kind == OwnerKind::Observed {
                continue;
            }
            if let Some(who) = nics::reported_by_others(
                &observations,
                &view,
                a.vm_uuid.as_deref().unwrap_or(""),
                a.ip,
            ) {
                problems.push(Problem {
                    kind: ProblemKind::HeldByAnother,
                    ip: a.ip.to_string(),
                    detail: format!("held by {} but in use by {who}", a.holder()),
                });
            }
            let on_this_vcenter = a.wire_id.as_deref().is_some_and(|w| w.starts_with(&ours));
            if let (Some(uuid), Some(mac)) = (&a.vm_uuid, &a.mac) {
                let mac = mac.to_ascii_lowercase();
                let reported: Option<Vec<IpAddr>> = nics::find_vm(inventory, uuid)
                    .filter(|vm| vm.power_state == "poweredOn")
                    .map(|vm| wire::nic_ips_like(vm, &mac, a.ip).collect())
                    .filter(|ips: &Vec<IpAddr>| !ips.is_empty() && !ips.contains(&a.ip));
                if let Some(ips) = reported {
                    let ips: Vec<String> = ips.iter().map(|ip| ip.to_string()).collect();
                    problems.push(Problem {
                        kind: ProblemKind::GuestIpDiffers,
                        ip: a.ip.to_string(),
                        detail: format!(
                            "held by {} but VMware Tools report {} on that NIC",
                            a.holder(),
                            ips.join(", ")
                        ),
                    });
                }
            }
            if let Some(uuid) = &a.vm_uuid {
                if on_this_vcenter && nics::find_vm(inventory, uuid).is_none() {
                    problems.push(Problem {
                        kind: ProblemKind::VmGone,
                        ip: a.ip.to_string(),
                        detail: format!(
                            "held by {} for VM {uuid}, which no longer exists",
                            a.holder()
                        ),
                    });
                }
            }
            if a.pending && now - a.created_at > PENDING_MAX_AGE_SECS {
                problems.push(Problem {
                    kind: ProblemKind::StalePending,
                    ip: a.ip.to_string(),
                    detail: format!(
                        "pending since {}s ago, held by {}",
                        now - a.created_at,
                        a.holder()
                    ),
                });
            }
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::vsphere::model::{Vm, VmNic};

    fn vm(name: &str, uuid: &str, mac: &str, v4: &str, v6: &str) -> Vm {
        Vm {
            moref: format!("vm-{name}"),
            name: name.into(),
            uuid: uuid.into(),
            instance_uuid: None,
            template: false,
            power_state: "poweredOn".into(),
            host: None,
            guest_family: None,
            guest_hostname: None,
            nics: vec![VmNic {
                key: 4000,
                mac: mac.into(),
                portgroup: Some("dvportgroup-1".into()),
            }],
            guest_ips: BTreeMap::from([(mac.to_string(), vec![v4.parse().unwrap()])]),
            guest_ipv6: BTreeMap::from([(mac.to_string(), vec![v6.parse().unwrap()])]),
            num_cpus: None,
            memory_mb: None,
        }
    }

    #[test]
    fn the_same_ipv6_address_on_two_vms_is_a_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!(
            "sqlite://{}",
            dir.path().join("ipam.db").display()
        ))
        .unwrap();
        let inventory = Inventory {
            instance_uuid: "vc-1".into(),
            vms: vec![
                vm("a", "u-a", "00:50:56:00:00:01", "10.0.0.1", "2001:db8::7"),
                vm("b", "u-b", "00:50:56:00:00:02", "10.0.0.2", "2001:db8::7"),
            ],
            ..Default::default()
        };
        let problems = audit_at(&store, &inventory, 0).unwrap();
        let found: Vec<(ProblemKind, &str)> =
            problems.iter().map(|p| (p.kind, p.ip.as_str())).collect();
        assert_eq!(found, [(ProblemKind::DuplicateGuestIp, "2001:db8::7")]);
        assert!(
            problems[0].detail.contains("a, b"),
            "{}",
            problems[0].detail
        );
    }
}
