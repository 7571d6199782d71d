//! List resources `vsphereipam_vm` and `vsphereipam_vm_nic_fix` (`terraform query`, Terraform
//! 1.14+): the vCenter's VMs, and those whose Tools-reported addresses sit in a subnet of the
//! store without a record, for onboarding them with generated import blocks.
//!
//! Both read the one inventory snapshot of the process (a bulk PropertyCollector load, never
//! one call per VM) and the store's subnets and records, and write nothing: not even the
//! observed-address mirror a plan refreshes.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use regex::bytes::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use tfplugin::schema::{AttributeType, Block, Description, Schema};
use tfplugin::value::{Value, ValueString};
use tfplugin::{map, AttributePath, Diagnostics, ListResource, Results};

use super::schema::optional;
use super::values::{known, opt_string, string, strings};
use super::vm::{NicState, VmState};
use super::vm_adopt;
use super::vm_nic_fix::{self, NicFixState};
use super::{Session, Shared};
use crate::nics;
use crate::store::ops::{NicClaim, Observation, SubnetView};
use crate::store::{OwnerKind, StoreError};
use crate::vsphere::model::{Inventory, Vm};
use crate::vsphere::wire;

/// The `config` block of both VM list resources.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct VmFilter<'a> {
    pub datacenter: ValueString<'a>,
    pub subnet_id: ValueString<'a>,
    pub name_regex: ValueString<'a>,
}

fn filter_schema(what: &str, subnet: &str) -> Schema {
    Schema {
        version: 0,
        block: Block {
            version: 0,
            description: Description::markdown(what),
            attributes: map! {
                "datacenter" => optional(AttributeType::String,
                    "Only VMs of this datacenter (by name)."),
                "subnet_id" => optional(AttributeType::String, subnet),
                "name_regex" => optional(AttributeType::String,
                    "Only VMs whose name this regular expression matches (anywhere in the name; \
                     anchor it with `^...$` for the whole name). Classes such as `\\d`, `\\w` \
                     and `(?i)` are ASCII-only.")
            },
            ..Default::default()
        },
    }
}

/// A filter's path: Terraform reads a list block's diagnostics against the whole block, whose
/// `config` block holds the filters.
pub(super) fn filter_path(name: &'static str) -> AttributePath {
    AttributePath::new("config").attribute(name)
}

/// `name_regex` compiled, or an error diagnostic on it.
pub(super) fn name_pattern(
    diags: &mut Diagnostics,
    value: &ValueString<'_>,
) -> Option<Option<Regex>> {
    let Some(pattern) = known(value) else {
        return Some(None);
    };
    match RegexBuilder::new(&pattern)
        .unicode(false)
        .size_limit(1 << 20)
        .build()
    {
        Ok(re) => Some(Some(re)),
        Err(e) => {
            diags.error(
                "Invalid name_regex",
                format!("{pattern:?} is not a regular expression: {e}. Fix the pattern, e.g. \"^web-[0-9]+$\"."),
                filter_path("name_regex"),
            );
            None
        }
    }
}

/// The store side a listing needs, read once: the vCenter's subnets and every record in them
/// that a resource (or an operator) holds; the observed-address mirror is left out.
pub(super) struct Holdings {
    pub subnets: Vec<SubnetView>,
    held: HashSet<(String, IpAddr)>,
    /// Lower-case UUIDs of VMs some record names.
    vms: HashSet<String>,
}

impl Holdings {
    pub(super) async fn read(session: &Session, vcenter: &str) -> Result<Holdings, StoreError> {
        let vcenter = vcenter.to_string();
        let read = session
            .store
            .blocking(move |s| s.subnets_with_records(&vcenter))
            .await?;
        let mut subnets = Vec::with_capacity(read.len());
        let mut records = Vec::new();
        for (view, in_subnet) in read {
            subnets.push(view);
            records.extend(
                in_subnet
                    .into_iter()
                    .filter(|r| r.owner_kind != OwnerKind::Observed),
            );
        }
        let mut held = HashSet::new();
        let mut vms = HashSet::new();
        for r in records {
            if let Some(vm) = &r.vm_uuid {
                vms.insert(vm.to_ascii_lowercase());
            }
            if matches!(r.owner_kind, OwnerKind::Vm | OwnerKind::NicFix) {
                vms.insert(r.owner_id.to_ascii_lowercase());
            }
            held.insert((r.subnet_id, r.ip));
        }
        Ok(Holdings { subnets, held, vms })
    }
}

/// Who vCenter reports using each address, for finding addresses another VM or host uses too.
pub(super) fn observations_by_ip(inventory: &Inventory) -> HashMap<IpAddr, Vec<Observation>> {
    let mut by_ip: HashMap<IpAddr, Vec<Observation>> = HashMap::new();
    for o in nics::observations(inventory) {
        by_ip.entry(o.ip).or_default().push(o);
    }
    by_ip
}

/// The NICs of `vm` a `vsphereipam_vm_nic_fix` would record: per NIC in device order and per
/// family, the first Tools-reported address (IPv4, global IPv6) that lies in a subnet
/// reachable from its port group, that no record holds and that nobody else reports. Empty for templates and for VMs some record
/// already names (they are managed by a resource already).
pub(super) fn unrecorded_nics(
    inventory: &Inventory,
    vm: &Vm,
    holdings: &Holdings,
    observed: &HashMap<IpAddr, Vec<Observation>>,
) -> Vec<NicClaim> {
    let uuid = vm.uuid.to_ascii_lowercase();
    if vm.template || holdings.vms.contains(&uuid) {
        return Vec::new();
    }
    let mut claims = Vec::new();
    for nic in &vm.nics {
        let unrecorded = |ip: IpAddr| {
            let claim = nics::resolve_address(inventory, vm, nic, ip, &holdings.subnets).ok()?;
            if holdings.held.contains(&(claim.subnet_id.clone(), claim.ip)) {
                return None;
            }
            let subnet = holdings
                .subnets
                .iter()
                .find(|s| s.subnet.id == claim.subnet_id)?;
            let others = observed
                .get(&claim.ip)
                .map(Vec::as_slice)
                .unwrap_or_default();
            nics::reported_by_others(others, subnet, &uuid, claim.ip)
                .is_none()
                .then_some(claim)
        };
        // One address per family: a dual-stack NIC's IPv4 and global IPv6 address.
        let mut v4 = vm.guest_ips.get(&nic.mac).into_iter().flatten();
        claims.extend(v4.find_map(|&ip| unrecorded(ip.into())));
        let mut v6 = vm.guest_ipv6.get(&nic.mac).into_iter().flatten();
        claims.extend(v6.find_map(|&ip| unrecorded(ip.into())));
    }
    claims
}

/// The filters resolved against the inventory and the store.
struct Selection {
    datacenter: Option<String>,
    subnet: Option<SubnetView>,
    name: Option<Regex>,
}

impl Selection {
    fn of(
        diags: &mut Diagnostics,
        config: &VmFilter<'_>,
        inventory: &Inventory,
        subnets: &[SubnetView],
    ) -> Option<Selection> {
        let name = name_pattern(diags, &config.name_regex)?;
        let datacenter = known(&config.datacenter);
        if let Some(dc) = &datacenter {
            if !inventory.datacenters.iter().any(|d| d.name == *dc) {
                let names: Vec<&str> = inventory
                    .datacenters
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect();
                diags.error(
                    "Datacenter not found",
                    format!(
                        "vCenter {} has no datacenter {dc:?}; it has: {}. Give one of those names.",
                        inventory.instance_uuid,
                        names.join(", ")
                    ),
                    filter_path("datacenter"),
                );
                return None;
            }
        }
        let subnet = match known(&config.subnet_id) {
            None => None,
            Some(id) => match subnets.iter().find(|s| s.subnet.id == id) {
                Some(s) => Some(s.clone()),
                None => {
                    diags.error(
                        "Subnet not found",
                        format!(
                            "The IPAM store has no subnet {id:?} on vCenter {}. Give the id of \
                             a vsphereipam_ipsubnet (list them with `terraform query` on \
                             vsphereipam_ipsubnet or `ipam subnets`).",
                            inventory.instance_uuid
                        ),
                        filter_path("subnet_id"),
                    );
                    return None;
                }
            },
        };
        Some(Selection {
            datacenter,
            subnet,
            name,
        })
    }

    /// Datacenter and name; templates are never listed.
    fn takes(&self, inventory: &Inventory, vm: &Vm) -> bool {
        !vm.template
            && self
                .name
                .as_ref()
                .is_none_or(|re| re.is_match(vm.name.as_bytes()))
            && self
                .datacenter
                .as_deref()
                .is_none_or(|dc| crate::vmlife::vm_datacenter(inventory, vm) == Some(dc))
    }
}

/// VMs in name order (stable output for people and for generated configuration).
fn sorted(inventory: &Inventory) -> Vec<&Vm> {
    let mut vms: Vec<&Vm> = inventory.vms.iter().collect();
    vms.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.uuid.cmp(&b.uuid)));
    vms
}

pub struct NicFixList {
    shared: Arc<Shared>,
}

impl NicFixList {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[async_trait]
impl ListResource for NicFixList {
    type Config<'a> = VmFilter<'a>;
    type State<'a> = NicFixState<'a>;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(filter_schema(
            "VMs whose VMware Tools report addresses in a subnet of the IPAM store that no record \
             holds yet: each result is the `vsphereipam_vm_nic_fix` that records them (one `nic` \
             per NIC with such an address, by MAC: its IPv4 address as `ip_address` and its \
             global IPv6 one as `ipv6_address`, or the IPv6 one as `ip_address` on a NIC with \
             no IPv4 address in a known subnet), identified by `vm_uuid`. `terraform query \
             -generate-config-out=onboard.tf` writes its import block and configuration; the \
             apply that imports it records the addresses. Templates, VMs some record already \
             names, and addresses another VM or host also reports are left out. Listing changes \
             nothing in the store or in vCenter.",
            "Only VMs with such an address in this subnet (the id of a `vsphereipam_ipsubnet`).",
        ))
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: VmFilter<'a>) -> Option<()> {
        name_pattern(diags, &config.name_regex).map(drop)
    }

    async fn list<'a>(
        &self,
        diags: &mut Diagnostics,
        config: VmFilter<'a>,
        results: &mut Results<'_, NicFixState<'a>>,
    ) -> Option<()> {
        let session = self.shared.session(diags)?;
        let inventory = session.inventory_unsynced(diags).await?;
        let holdings = super::values::or_diag(
            diags,
            Holdings::read(&session, &inventory.instance_uuid).await,
        )?;
        let selection = Selection::of(diags, &config, &inventory, &holdings.subnets)?;
        let observed = observations_by_ip(&inventory);
        let mut listed = 0usize;
        for vm in sorted(&inventory) {
            if !selection.takes(&inventory, vm) {
                continue;
            }
            let claims = unrecorded_nics(&inventory, vm, &holdings, &observed);
            if claims.is_empty()
                || selection
                    .subnet
                    .as_ref()
                    .is_some_and(|s| !claims.iter().any(|c| c.subnet_id == s.subnet.id))
            {
                continue;
            }
            let state = vm_nic_fix::unrecorded_state(&vm.uuid, &claims);
            listed += 1;
            if !results.push(vm.name.clone(), &state).await {
                break;
            }
        }
        tracing::info!(
            listed,
            vms = inventory.vms.len(),
            "listed VMs with unrecorded addresses"
        );
        Some(())
    }
}

pub struct VmList {
    shared: Arc<Shared>,
}

impl VmList {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

/// What vCenter says of `vm` as `vsphereipam_vm` state: each NIC with its port group, and its
/// address and subnet where a record holds it or Tools report one in a reachable subnet.
fn vm_state<'a>(inventory: &Inventory, vm: &Vm, subnets: &[SubnetView]) -> VmState<'a> {
    let network_interface = vm
        .nics
        .iter()
        .map(|nic| {
            let pg = nic
                .portgroup
                .as_deref()
                .and_then(|m| inventory.portgroups.iter().find(|p| p.moref == m));
            // What an import adopts from Tools: the NIC's one IPv4 address, with the IPv6 one
            // beside it as ipv6_address; without a single IPv4 address, the IPv6 one as
            // ip_address. An IPv4 address in no known subnet lists none (the import refuses it).
            let resolve = |ip: IpAddr| nics::resolve_address(inventory, vm, nic, ip, subnets).ok();
            let v6 = vm_adopt::reported_ipv6(inventory, vm, nic, subnets).map(IpAddr::V6);
            let (claim, claim6) = match vm_adopt::sole_reported_ipv4(vm, nic) {
                Some(v4) => match resolve(IpAddr::V4(v4)) {
                    Some(claim) => (Some(claim), v6.and_then(resolve)),
                    None => (None, None),
                },
                None => (v6.and_then(resolve), None),
            };
            Value::Value(NicState {
                subnet_id: opt_string(claim.as_ref().map(|c| c.subnet_id.clone())),
                ip_address: opt_string(claim.as_ref().map(|c| c.ip)),
                ipv6_subnet_id: opt_string(claim6.as_ref().map(|c| c.subnet_id.clone())),
                ipv6_address: opt_string(claim6.as_ref().map(|c| c.ip)),
                mac: string(nic.mac.clone()),
                wire_id: opt_string(pg.map(|p| wire::wire_id(inventory, &p.moref))),
                port_group: opt_string(pg.map(|p| p.name.clone())),
            })
        })
        .collect();
    VmState {
        id: string(vm.uuid.to_ascii_lowercase()),
        moref: string(vm.moref.clone()),
        name: string(vm.name.clone()),
        datacenter: opt_string(crate::vmlife::vm_datacenter(inventory, vm)),
        num_cpus: vm.num_cpus.map(i64::from).into(),
        memory_mb: vm.memory_mb.into(),
        host_id: opt_string(vm.host.clone()),
        power_state: string(vm.power_state.clone()),
        guest_ip_addresses: strings(vm.all_guest_ips()),
        network_interface: Value::Value(network_interface),
        ..Default::default()
    }
}

#[async_trait]
impl ListResource for VmList {
    type Config<'a> = VmFilter<'a>;
    type State<'a> = VmState<'a>;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(filter_schema(
            "The VMs of the vCenter (templates left out), identified by `vm_uuid`, with what \
             vCenter reports of them: name, datacenter, host, power state, and each NIC's port \
             group, and its address and subnet where VMware Tools report one in a subnet of the \
             IPAM store. Listing changes nothing in the store or in vCenter. To record the \
             addresses of VMs made outside Terraform, list `vsphereipam_vm_nic_fix` instead.",
            "Only VMs with a NIC on a wire (or additional wire) of this subnet (the id of a \
             `vsphereipam_ipsubnet`).",
        ))
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: VmFilter<'a>) -> Option<()> {
        name_pattern(diags, &config.name_regex).map(drop)
    }

    async fn list<'a>(
        &self,
        diags: &mut Diagnostics,
        config: VmFilter<'a>,
        results: &mut Results<'_, VmState<'a>>,
    ) -> Option<()> {
        let session = self.shared.session(diags)?;
        let inventory = session.inventory_unsynced(diags).await?;
        let holdings = super::values::or_diag(
            diags,
            Holdings::read(&session, &inventory.instance_uuid).await,
        )?;
        let selection = Selection::of(diags, &config, &inventory, &holdings.subnets)?;
        let wires: Option<Vec<&str>> = selection.subnet.as_ref().map(|s| {
            std::iter::once(s.subnet.wire_id.as_str())
                .chain(s.links.iter().map(|l| l.wire_id.as_str()))
                .map(wire::moref_of)
                .collect()
        });
        for vm in sorted(&inventory) {
            if !selection.takes(&inventory, vm) {
                continue;
            }
            if let Some(wires) = &wires {
                let on_subnet = vm
                    .nics
                    .iter()
                    .filter_map(|n| n.portgroup.as_deref())
                    .any(|pg| wires.contains(&pg));
                if !on_subnet {
                    continue;
                }
            }
            // Without include_resource, Terraform needs the identity only.
            let state = if results.include_resource() {
                vm_state(&inventory, vm, &holdings.subnets)
            } else {
                VmState {
                    id: string(vm.uuid.to_ascii_lowercase()),
                    ..Default::default()
                }
            };
            if !results.push(vm.name.clone(), &state).await {
                break;
            }
        }
        Some(())
    }
}
