//! Adopting a VM that already runs into `vsphereipam_vm`: by import (UUID or identity), or by a
//! `moved` block from HashiCorp's `vsphere_virtual_machine` (Terraform 1.8+,
//! `MoveResourceState`). Either way the addresses VMware Tools report on the VM's NICs become the
//! VM's records in the subnets they fall in, and nothing in vCenter changes.
//!
//! How a move runs. Terraform calls `MoveResourceState` inside `terraform plan`, before it
//! configures the provider (checked on 1.15: the call arrives with no vCenter session and no
//! store), so the move itself only translates the source's state: UUID, moref, name, folder,
//! CPUs, memory, host and each NIC's MAC (`vm::moved_state`). The refresh that follows
//! (`ReadResource`, configured) finds each NIC's Tools-reported address and the subnet it falls
//! in, and checks in a transaction that is rolled back that the address can be recorded: a NIC
//! whose address is in no subnet, or is held by another record, fails the plan with an error
//! naming the VM, the NIC, the address and the subnet or holder.
//!
//! When an adoption records: in its first apply, never in the plan or the import. A plan
//! changes nothing in the store: one that is never applied (or fails on another resource) must
//! not leave records for a VM that `hashicorp/vsphere` still manages, or that an `import {}`
//! block (which Terraform 1.5+ imports inside `terraform plan`, by id or, on 1.12+, by
//! identity) names. So an import, like the refresh of a move, only checks the claims
//! (`vm::adopt`, a transaction that is rolled back) and returns the adopted state. Terraform
//! calls no provider for a resource whose plan is a no-op, so the adopted state leaves
//! `template` unset (the source names its template by UUID in `clone`, or not at all, while a
//! configuration names it as it likes, and a once-set input that differs would replace the VM):
//! the first plan is an in-place update that records `template`, and its apply records the
//! addresses in one store transaction, with no vCenter call (`vm::record_adopted`). The plan
//! after it is empty when the configuration matches. The legacy `terraform import` command
//! writes the state without an apply: its records are written by the next apply too. Until
//! then the VM's Tools-reported addresses are observed ones, which no allocation hands out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Deserialize;
use tfplugin::{Diagnostics, MoveSource};

use super::values;
use super::Session;
use crate::nics::{self, same_mac, NicRequest};
use crate::store::ops::{ClaimError, NicClaim, Observation, SubnetView};
use crate::store::{AddressRecord, OwnerKind, StoreError};
use crate::vsphere::model::{Inventory, Vm, VmNic};

/// The provider a `moved` block may come from (any registry host), and its resource type.
pub const SOURCE_PROVIDER: &str = "hashicorp/vsphere";
pub const SOURCE_TYPE: &str = "vsphere_virtual_machine";
/// The schema version of `vsphere_virtual_machine` state, written by the vSphere provider
/// from 1.x through 2.x (earlier versions wrote Terraform's legacy flatmap state).
pub const SOURCE_SCHEMA_VERSION: i64 = 3;
/// How a refusal names what can be moved.
pub const ACCEPTED: &str = "vsphere_virtual_machine of hashicorp/vsphere (provider 2.x state)";

/// What a move reads of a `vsphere_virtual_machine` state (its JSON attribute names).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SourceVm {
    /// The VM's BIOS UUID (`config.uuid`), as `id` and `uuid`.
    pub id: Option<String>,
    pub uuid: Option<String>,
    pub moid: Option<String>,
    pub name: Option<String>,
    /// Relative to the datacenter's VM folder, as our `folder`; empty for that folder itself.
    pub folder: Option<String>,
    pub num_cpus: Option<i64>,
    /// MiB.
    pub memory: Option<i64>,
    pub host_system_id: Option<String>,
    pub network_interface: Option<Vec<SourceNic>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SourceNic {
    pub mac_address: Option<String>,
    pub network_id: Option<String>,
}

impl SourceVm {
    /// The BIOS UUID the move looks the VM up by.
    pub fn vm_uuid(&self) -> Option<&str> {
        self.uuid
            .as_deref()
            .or(self.id.as_deref())
            .filter(|u| !u.is_empty())
    }

    /// `folder` as ours holds it: unset for the datacenter's VM folder itself.
    pub fn folder(&self) -> Option<String> {
        self.folder
            .as_deref()
            .map(|f| f.trim_matches('/'))
            .filter(|f| !f.is_empty())
            .map(str::to_string)
    }
}

/// The source's state, or an error diagnostic when it is not one this move reads.
pub fn read_source(diags: &mut Diagnostics, source: &MoveSource) -> Option<SourceVm> {
    if source.schema_version != SOURCE_SCHEMA_VERSION {
        diags.root_error(
            "Unsupported vsphere_virtual_machine state",
            format!(
                "The state of {SOURCE_TYPE} has schema version {}; vsphereipam_vm moves state \
                 of schema version {SOURCE_SCHEMA_VERSION}, as the vSphere provider 2.x writes \
                 it. Run `terraform apply -refresh-only` with hashicorp/vsphere 2.x first, then \
                 the move.",
                source.schema_version
            ),
        );
        return None;
    }
    let vm: SourceVm = match serde_json::from_value(source.state.clone()) {
        Ok(vm) => vm,
        Err(e) => {
            diags.root_error(
                "Unsupported vsphere_virtual_machine state",
                format!(
                    "The state of {SOURCE_TYPE} cannot be read ({e}); it should be as the \
                     vSphere provider 2.x writes it."
                ),
            );
            return None;
        }
    };
    if vm.vm_uuid().is_none() {
        diags.root_error(
            "Unsupported vsphere_virtual_machine state",
            format!("The state of {SOURCE_TYPE} has no `uuid` (nor `id`) naming the VM."),
        );
        return None;
    }
    Some(vm)
}

/// The VM's NICs matched to their subnets, and what the store checks them against.
pub struct Adoption {
    /// One claim per address, a NIC's first address before its second.
    pub claims: Vec<NicClaim>,
    /// Per claim: whether it is its NIC's second address (a dual-stack NIC's IPv6 one).
    pub second: Vec<bool>,
    views: Vec<SubnetView>,
    observations: Vec<Observation>,
}

/// The NIC's IPv4 address as an adoption takes it from VMware Tools: the one IPv4 address they
/// report (none when they report several: which one is the NIC's is unknown).
pub fn sole_reported_ipv4(vm: &Vm, nic: &VmNic) -> Option<Ipv4Addr> {
    match vm.guest_ips.get(&nic.mac)?.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// The NIC's IPv6 address as an adoption takes it from VMware Tools: the first global IPv6
/// address they report that lies in a subnet of its port group (guests add SLAAC and privacy
/// addresses beside the assigned one).
pub fn reported_ipv6(
    inventory: &Inventory,
    vm: &Vm,
    nic: &VmNic,
    views: &[SubnetView],
) -> Option<Ipv6Addr> {
    vm.guest_ipv6
        .get(&nic.mac)?
        .iter()
        .copied()
        .find(|ip| nics::resolve_address(inventory, vm, nic, IpAddr::V6(*ip), views).is_ok())
}

/// Which addresses each NIC of `vm` is recorded with: `wanted` (by MAC: first addresses, then
/// dual-stack IPv6 ones) when given, else the VM's own records (a re-import), else what VMware
/// Tools report: the one IPv4 address of the NIC (an IPv6 one in a subnet of its port group
/// when it has no IPv4 address), and beside an IPv4 address the first global IPv6 address in
/// an IPv6 subnet of its port group; and the subnet each falls in. Errors name the VM, the NIC
/// and the address, under `summary`.
pub async fn claims(
    diags: &mut Diagnostics,
    session: &Session,
    inventory: &Inventory,
    vm: &Vm,
    wanted: Option<(Vec<NicRequest>, Vec<NicRequest>)>,
    summary: &str,
) -> Option<Adoption> {
    let views = session.subnet_views_or_diag(diags, inventory).await?;
    let existing = match &wanted {
        Some(_) => Vec::new(),
        None => values::or_diag(diags, records_of(session, &vm.uuid).await)?,
    };
    let own = |mac: &str, v6: bool| {
        existing
            .iter()
            .filter(|r| same_mac(r.mac.as_deref().unwrap_or_default(), mac))
            .find(|r| r.ip.is_ipv6() == v6)
            .map(|r| r.ip)
    };
    let reported_v6 = |nic: &VmNic| reported_ipv6(inventory, vm, nic, &views);
    let (requests, seconds) = match wanted {
        Some(w) => w,
        None => {
            let mut requests = Vec::new();
            let mut seconds = Vec::new();
            for nic in &vm.nics {
                let first = own(&nic.mac, false)
                    .or_else(|| sole_reported_ipv4(vm, nic).map(IpAddr::V4))
                    .or_else(|| own(&nic.mac, true))
                    .or_else(|| reported_v6(nic).map(IpAddr::V6));
                let Some(ip) = first else {
                    diags.root_error(
                        summary,
                        format!(
                            "NIC {} of VM {:?} ({}) has no single IPv4 address reported by \
                             VMware Tools (nor a global IPv6 address in a subnet of its port \
                             group), so its address is unknown. Power the VM on with Tools \
                             running, or record it with vsphereipam_vm_nic_fix instead.",
                            nic.mac, vm.name, vm.uuid
                        ),
                    );
                    return None;
                };
                requests.push(NicRequest {
                    mac: Some(nic.mac.clone()),
                    ip,
                });
                if ip.is_ipv4() {
                    let second = own(&nic.mac, true).or_else(|| reported_v6(nic).map(IpAddr::V6));
                    if let Some(ip) = second {
                        seconds.push(NicRequest {
                            mac: Some(nic.mac.clone()),
                            ip,
                        });
                    }
                }
            }
            (requests, seconds)
        }
    };
    let firsts = match nics::resolve(inventory, vm, &requests, &views) {
        Ok(claims) => claims,
        Err(problems) => {
            for p in problems {
                diags.root_error(p.summary, p.detail);
            }
            return None;
        }
    };
    let mut claims = Vec::new();
    let mut second = Vec::new();
    for claim in firsts {
        let mac = claim.mac.clone();
        claims.push(claim);
        second.push(false);
        let Some(request) = seconds
            .iter()
            .find(|r| r.mac.as_deref().is_some_and(|m| same_mac(m, &mac)))
        else {
            continue;
        };
        let Some(nic) = vm.nics.iter().find(|n| same_mac(&n.mac, &mac)) else {
            continue;
        };
        match nics::resolve_address(inventory, vm, nic, request.ip, &views) {
            Ok(claim) => {
                claims.push(claim);
                second.push(true);
            }
            Err(p) => {
                diags.root_error(p.summary, p.detail);
                return None;
            }
        }
    }
    Some(Adoption {
        claims,
        second,
        views,
        observations: nics::observations(inventory),
    })
}

/// Records the adoption's addresses as the VM's own (`write`), replacing what the VM held, or
/// only checks that they could be recorded (a transaction that is rolled back).
pub async fn record(
    diags: &mut Diagnostics,
    session: &Session,
    vm: &Vm,
    adoption: &Adoption,
    write: bool,
) -> Option<Vec<AddressRecord>> {
    let uuid = vm.uuid.to_ascii_lowercase();
    let claims = adoption.claims.clone();
    let views = adoption.views.clone();
    let observations = adoption.observations.clone();
    let result = session
        .store
        .blocking(move |s| {
            let reported = nics::claim_reporter(&observations, &views, &uuid);
            let owner = (OwnerKind::Vm, uuid.as_str());
            Ok(if write {
                s.reclaim_nics(owner, &uuid, &claims, &reported)
            } else {
                s.check_claims(owner, &uuid, &claims, &reported)
                    .map(|()| Vec::new())
            })
        })
        .await;
    match result {
        Ok(Ok(records)) => Some(records),
        Ok(Err(e)) => {
            claim_error(diags, vm, adoption, &e);
            None
        }
        Err(e) => {
            values::store_error(diags, &e, None);
            None
        }
    }
}

/// A refused claim, naming the VM, the NIC, the address, its subnet and who holds it.
fn claim_error(diags: &mut Diagnostics, vm: &Vm, adoption: &Adoption, e: &ClaimError) {
    let claim = e.index.and_then(|i| adoption.claims.get(i));
    match (claim, &e.error) {
        (Some(claim), StoreError::AddressTaken { .. } | StoreError::Refused(_)) => {
            let subnet = adoption
                .views
                .iter()
                .find(|v| v.subnet.id == claim.subnet_id)
                .map_or(claim.subnet_id.clone(), |v| {
                    format!("{:?} ({})", v.subnet.name, v.subnet.id)
                });
            let summary = match e.error {
                StoreError::AddressTaken { .. } => "Address already taken",
                _ => "Refused by the IPAM",
            };
            diags.root_error(
                summary,
                crate::redact::redact(&format!(
                    "NIC {} of VM {:?} ({}) uses {} in subnet {subnet}: {}. Release the address \
                     from its holder, or change the guest's address, then try again.",
                    claim.mac, vm.name, vm.uuid, claim.ip, e.error
                )),
            );
        }
        _ => values::store_error(diags, &e.error, None),
    }
}

/// The VM's records (owned by its lower-case UUID).
pub async fn records_of(
    session: &Session,
    vm_uuid: &str,
) -> Result<Vec<AddressRecord>, StoreError> {
    let owner = vm_uuid.to_ascii_lowercase();
    session
        .store
        .blocking(move |s| s.addresses_of_owner(OwnerKind::Vm, &owner))
        .await
}

/// Whether every `(mac, address)` is recorded for the VM already.
pub fn all_recorded(records: &[AddressRecord], nics: &[NicRequest]) -> bool {
    nics.iter().all(|n| {
        records.iter().any(|r| {
            r.ip == n.ip
                && n.mac
                    .as_deref()
                    .is_some_and(|m| same_mac(r.mac.as_deref().unwrap_or_default(), m))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn source(version: i64, state: serde_json::Value) -> MoveSource {
        MoveSource {
            provider: "registry.terraform.io/hashicorp/vsphere".into(),
            type_name: SOURCE_TYPE.into(),
            schema_version: version,
            state,
            private: Vec::new(),
            identity: None,
            identity_version: 0,
        }
    }

    #[test]
    fn reads_what_the_vsphere_provider_writes() {
        let mut diags = Diagnostics::default();
        let vm = read_source(
            &mut diags,
            &source(
                3,
                json!({
                    "id": "4216aa4e-0000-0000-0000-000000000001",
                    "uuid": "4216AA4E-0000-0000-0000-000000000001",
                    "name": "web", "folder": "", "num_cpus": 2, "memory": 1024,
                    "network_interface": [{"mac_address": "00:50:56:aa:bb:cc",
                                           "network_id": "network-12", "key": 4000}],
                    "clone": [{"template_uuid": "4216aa4e-0000-0000-0000-00000000000f"}]
                }),
            ),
        )
        .expect("read");
        assert!(diags.errors.is_empty());
        assert_eq!(vm.vm_uuid(), Some("4216AA4E-0000-0000-0000-000000000001"));
        assert_eq!(vm.folder(), None);
        assert_eq!(vm.network_interface.unwrap().len(), 1);
        let with_folder = SourceVm {
            folder: Some("prod/web".into()),
            ..Default::default()
        };
        assert_eq!(with_folder.folder().as_deref(), Some("prod/web"));
    }

    #[test]
    fn refuses_other_schema_versions_and_states_without_a_uuid() {
        let mut diags = Diagnostics::default();
        assert!(read_source(&mut diags, &source(2, json!({"id": "x"}))).is_none());
        assert!(diags.errors[0].detail.contains("schema version 2"));
        let mut diags = Diagnostics::default();
        assert!(read_source(&mut diags, &source(3, json!({"name": "x", "id": ""}))).is_none());
        assert!(diags.errors[0].detail.contains("no `uuid`"));
        let mut diags = Diagnostics::default();
        assert!(read_source(&mut diags, &source(3, json!({"name": 5}))).is_none());
        assert!(diags.errors[0].detail.contains("cannot be read"));
    }

    #[test]
    fn recorded_means_every_nic_by_mac_and_address() {
        let record = |mac: &str, ip: &str| AddressRecord {
            subnet_id: "s".into(),
            ip: ip.parse().unwrap(),
            owner_kind: OwnerKind::Vm,
            owner_id: "u".into(),
            vm_uuid: Some("u".into()),
            mac: Some(mac.into()),
            wire_id: None,
            pending: false,
            description: None,
            created_at: 0,
        };
        let nic = |mac: &str, ip: &str| NicRequest {
            mac: Some(mac.into()),
            ip: ip.parse().unwrap(),
        };
        let records = [record("00:50:56:aa:bb:cc", "10.0.0.5")];
        assert!(all_recorded(
            &records,
            &[nic("00:50:56:AA:BB:CC", "10.0.0.5")]
        ));
        assert!(!all_recorded(
            &records,
            &[nic("00:50:56:aa:bb:cc", "10.0.0.6")]
        ));
        assert!(!all_recorded(
            &records,
            &[
                nic("00:50:56:aa:bb:cc", "10.0.0.5"),
                nic("00:50:56:aa:bb:cd", "10.0.0.7")
            ]
        ));
    }
}
