//! `ipam audit`: what an operator must fix, found by comparing the store with vCenter.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

use crate::nics;
use crate::store::{OwnerKind, Result, Store};
use crate::vsphere::model::Inventory;

/// Pending records older than this belong to an operation that did not finish.
const PENDING_MAX_AGE_SECS: i64 = crate::pending::PENDING_TTL.as_secs() as i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// VMware Tools report the same address on two VMs.
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

    let mut reporters: BTreeMap<Ipv4Addr, Vec<&str>> = BTreeMap::new();
    for vm in inventory.vms.iter().filter(|vm| !vm.template) {
        for ip in vm.all_guest_ips() {
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
                let reported = nics::find_vm(inventory, uuid)
                    .filter(|vm| vm.power_state == "poweredOn")
                    .and_then(|vm| vm.guest_ips.get(&mac.to_ascii_lowercase()))
                    // Tools' IPv4 addresses say nothing about an IPv6 record (the inventory
                    // reads no IPv6 guest addresses yet).
                    .filter(|ips| {
                        a.ip.is_ipv4()
                            && !ips.is_empty()
                            && !ips.iter().any(|ip| IpAddr::V4(*ip) == a.ip)
                    });
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
