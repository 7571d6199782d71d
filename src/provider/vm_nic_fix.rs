//! Resource `vsphereipam_vm_nic_fix`: records the addresses of an existing VM whose VMware
//! Tools cannot report them, and holds them in the IPAM store.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tfplugin::schema::{AttributeType, Block, Description, IdentitySchema, NestedBlock, Schema};
use tfplugin::value::{Value, ValueEmpty, ValueList, ValueString};
use tfplugin::{map, AttributePath, Diagnostics, Resource};

use super::list_vm::{observations_by_ip, unrecorded_nics, Holdings};
use super::schema::{computed, identity, optional, optional_computed, replaces, required};
use super::values::{self, known, string};
use super::{Session, Shared};
use crate::ipam::ranges::parse_ip;
use crate::ipam::subnet::special_v6_address;
use crate::nics::{self, NicProblem, NicRequest};
use crate::store::ops::{ClaimError, NicClaim, Observation, SubnetView};
use crate::store::{AddressRecord, OwnerKind, StoreError};
use crate::vsphere::model::{Inventory, Vm};
use crate::vsphere::wire;

pub struct NicFixResource {
    shared: Arc<Shared>,
}

impl NicFixResource {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

/// One `nic` block of `vsphereipam_vm_nic_fix` (`vsphereipam_vm`'s are `vm::NicState`).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixNicState<'a> {
    pub mac: ValueString<'a>,
    pub ip_address: ValueString<'a>,
    pub ipv6_address: ValueString<'a>,
    pub wire_id: ValueString<'a>,
    pub subnet_id: ValueString<'a>,
    pub ipv6_subnet_id: ValueString<'a>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct NicFixState<'a> {
    pub id: ValueString<'a>,
    pub vm_id: ValueString<'a>,
    pub nic: ValueList<Value<FixNicState<'a>>>,
}

pub fn schema() -> Schema {
    Schema {
        version: 1,
        block: Block {
            version: 1,
            description: Description::markdown(
                "Records the addresses of an existing VM whose VMware Tools cannot report them, \
                 and holds them in the IPAM store so they are never handed out again: per NIC an \
                 IPv4 or an IPv6 address, or both on a dual-stack NIC (`ip_address` and \
                 `ipv6_address`, recorded together in one store transaction). Each address must \
                 lie in a subnet whose wire (or additional wire) is the port group of its NIC. \
                 Destroying the resource releases the addresses. When the subnet is created in \
                 the same apply, add it to `depends_on`.\n\n\
                 A template is refused (it never runs), and so is an address that VMware Tools \
                 contradict: when Tools report addresses of its family on the NIC, the recorded \
                 one must be among them. A guest that changes its address later shows in `ipam audit` as \
                 `guest_ip_differs`.\n\n\
                 Importing a VM whose addresses no record holds yet takes the addresses VMware \
                 Tools report in subnets of its NICs' port groups (per NIC one of each family; \
                 link-local IPv6 addresses never count), and the apply after the import \
                 records them (an in-place update). The list resource of the same name finds \
                 such VMs for `terraform query -generate-config-out`.",
            ),
            attributes: map! {
                "id" => computed(AttributeType::String, "The VM UUID."),
                "vm_id" => replaces(required(AttributeType::String,
                    "UUID of the VM (`config.uuid`, the vSphere provider's `uuid`). Changing it \
                     replaces the resource."))
            },
            blocks: map! {
                "nic" => NestedBlock::List(Block {
                    version: 1,
                    description: Description::markdown(
                        "One block per NIC to record, at least one: by `mac`, or without it the \
                         next NIC in device order."),
                    attributes: map! {
                        "mac" => optional_computed(AttributeType::String,
                            "MAC address of the NIC (`00:50:56:aa:bb:cc`). Without it, the next \
                             NIC in device order that no other block names."),
                        "ip_address" => replaces(required(AttributeType::String,
                            "Address the NIC uses: IPv4, or IPv6 (canonical form, e.g. \
                             `2001:db8::50`) on a NIC that has IPv6 only. Changing it replaces \
                             the resource.")),
                        "ipv6_address" => replaces(optional(AttributeType::String,
                            "The IPv6 address of a dual-stack NIC, beside its IPv4 `ip_address`: \
                             a global address in canonical form (no zone id, not \
                             IPv4-mapped) in an IPv6 subnet whose wire (or additional wire) is \
                             the NIC's port group. Changing it replaces the resource.")),
                        "wire_id" => computed(AttributeType::String,
                            "Wire of the NIC's port group, as vCenter reports it now."),
                        "subnet_id" => computed(AttributeType::String,
                            "Subnet holding `ip_address`."),
                        "ipv6_subnet_id" => computed(AttributeType::String,
                            "Subnet holding `ipv6_address` (null without it): a dual-stack NIC \
                             has one subnet per family, as an interface has one IPv4 and one \
                             IPv6 prefix in NetBox or in vSphere's guest customization.")
                    },
                    ..Default::default()
                })
            },
            ..Default::default()
        },
    }
}

fn nic_path(index: usize, attribute: &'static str) -> AttributePath {
    AttributePath::new("nic")
        .index(index as i64)
        .attribute(attribute)
}

fn nic_list<'s, 'a>(state: &'s NicFixState<'a>) -> Vec<&'s FixNicState<'a>> {
    values::blocks(&state.nic)
}

fn nic_list_mut<'s, 'a>(state: &'s mut NicFixState<'a>) -> Vec<&'s mut FixNicState<'a>> {
    values::blocks_mut(&mut state.nic)
}

/// The state of a VM whose addresses no record holds yet, one `nic` per claim: what an import
/// of such a VM reads and what the list resource yields. `subnet_id` stays null until the apply
/// records the addresses (`plan_update` plans that as an update).
pub(super) fn unrecorded_state<'a>(vm_uuid: &str, claims: &[NicClaim]) -> NicFixState<'a> {
    let id = vm_uuid.to_ascii_lowercase();
    NicFixState {
        id: string(id.clone()),
        vm_id: string(id),
        nic: Value::Value(
            per_nic(claims.iter().map(|c| (c.mac.as_str(), c.ip)))
                .into_iter()
                .map(|(k, ip, ipv6)| {
                    let c = &claims[k];
                    Value::Value(FixNicState {
                        mac: string(c.mac.clone()),
                        ip_address: string(ip.to_string()),
                        ipv6_address: values::opt_string(ipv6),
                        wire_id: string(c.wire_id.clone()),
                        ..Default::default()
                    })
                })
                .collect(),
        ),
    }
}

/// Addresses grouped into `nic` blocks, in the order of each MAC's first address: `(index of
/// that first address, ip_address, ipv6_address)`. A NIC's IPv4 address is its `ip_address`
/// and its IPv6 one `ipv6_address`; a NIC with IPv6 only has it as `ip_address`. Further
/// addresses of a family a block has already are left out (a block records one per family).
fn per_nic<'m>(
    addresses: impl IntoIterator<Item = (&'m str, IpAddr)>,
) -> Vec<(usize, IpAddr, Option<IpAddr>)> {
    let mut blocks: Vec<(&str, usize, Option<IpAddr>, Option<IpAddr>)> = Vec::new();
    for (k, (mac, ip)) in addresses.into_iter().enumerate() {
        let i = match blocks.iter().position(|b| same_mac(b.0, mac)) {
            Some(i) => i,
            None => {
                blocks.push((mac, k, None, None));
                blocks.len() - 1
            }
        };
        let slot = if ip.is_ipv4() {
            &mut blocks[i].2
        } else {
            &mut blocks[i].3
        };
        slot.get_or_insert(ip);
    }
    blocks
        .into_iter()
        .filter_map(|(_, k, v4, v6)| match (v4, v6) {
            (Some(v4), v6) => Some((k, v4, v6)),
            (None, Some(v6)) => Some((k, v6, None)),
            (None, None) => None,
        })
        .collect()
}

/// Imported from a VM without records (`unrecorded_state`): no block has a subnet yet.
fn unrecorded(state: &NicFixState<'_>) -> bool {
    let nics = nic_list(state);
    !nics.is_empty() && nics.iter().all(|n| n.subnet_id.is_null())
}

/// One `nic` block: its NIC and `ip_address`, and the IPv6 `ipv6_address` of a dual-stack NIC.
#[derive(Debug, Clone)]
struct FixRequest {
    nic: NicRequest,
    ipv6: Option<IpAddr>,
}

/// The `nic` blocks as requests: `Ok(None)` while some input is unknown, `Err` with the
/// problems of invalid ones.
fn requests_of(state: &NicFixState<'_>) -> Result<Option<Vec<FixRequest>>, Vec<NicProblem>> {
    let list = match &state.nic {
        Value::Unknown => return Ok(None),
        Value::Null => Vec::new(),
        Value::Value(list) => list.clone(),
    };
    if list.is_empty() {
        return Err(vec![NicProblem {
            no_subnet: false,
            index: None,
            attribute: "nic",
            summary: "No nic block".into(),
            detail: "Add at least one nic block with the ip_address of a NIC of the VM.".into(),
        }]);
    }
    let mut requests = Some(Vec::new());
    let mut problems = Vec::new();
    // Every known address with its block and attribute: one address is one NIC's.
    let mut seen: Vec<(IpAddr, usize, &'static str)> = Vec::new();
    for (i, block) in list.iter().enumerate() {
        let Value::Value(nic) = block else {
            requests = None;
            continue;
        };
        let mac = match &nic.mac {
            Value::Unknown => {
                requests = None;
                None
            }
            Value::Null => None,
            Value::Value(m) => {
                if nics::normalize_mac(m).is_none() {
                    problems.push(NicProblem {
                        no_subnet: false,
                        index: Some(i),
                        attribute: "mac",
                        summary: "Invalid MAC address".into(),
                        detail: format!(
                            "{m:?} is not a MAC address; write six hex octets, e.g. \
                             00:50:56:aa:bb:cc."
                        ),
                    });
                }
                Some(m.to_string())
            }
        };
        let ip = match &nic.ip_address {
            Value::Value(s) => match parse_nic_ip(s) {
                Ok(ip) => Some(ip),
                Err(why) => {
                    problems.push(NicProblem {
                        no_subnet: false,
                        index: Some(i),
                        attribute: "ip_address",
                        summary: "Invalid IP address".into(),
                        detail: format!(
                            "{why}. Write the NIC's IPv4 address such as 10.20.0.50 (or, on a \
                             NIC with IPv6 only, its IPv6 address such as 2001:db8::50)."
                        ),
                    });
                    None
                }
            },
            _ => None,
        };
        let ipv6 = match &nic.ipv6_address {
            Value::Unknown => {
                requests = None;
                None
            }
            Value::Null => None,
            Value::Value(s) => {
                let problem = |summary: &str, detail: String| NicProblem {
                    no_subnet: false,
                    index: Some(i),
                    attribute: "ipv6_address",
                    summary: summary.into(),
                    detail,
                };
                match parse_nic_ip(s) {
                    Err(why) => {
                        problems.push(problem(
                            "Invalid IPv6 address",
                            format!("{why}. Write an IPv6 address such as 2001:db8::50."),
                        ));
                        None
                    }
                    Ok(IpAddr::V4(_)) => {
                        problems.push(problem(
                            "IPv4 address in ipv6_address",
                            format!(
                                "{s} is an IPv4 address; ipv6_address holds the NIC's IPv6 \
                                 address. Put the IPv4 address in ip_address."
                            ),
                        ));
                        None
                    }
                    Ok(v6) if ip.is_some_and(|ip| ip.is_ipv6()) => {
                        problems.push(problem(
                            "Two IPv6 addresses on one NIC",
                            format!(
                                "ip_address is an IPv6 address already, and a nic block records \
                                 one address per family. Put the NIC's IPv4 address in \
                                 ip_address and {v6} in ipv6_address, or leave ipv6_address out."
                            ),
                        ));
                        None
                    }
                    Ok(v6) => Some(v6),
                }
            }
        };
        let addresses = [(ip, "ip_address"), (ipv6, "ipv6_address")];
        for (address, attribute) in addresses {
            let Some(address) = address else { continue };
            match seen.iter().find(|(other, _, _)| *other == address) {
                Some(&(_, first, other)) => problems.push(NicProblem {
                    no_subnet: false,
                    index: Some(i),
                    attribute,
                    summary: "One address in two nic blocks".into(),
                    detail: format!(
                        "nic[{first}].{other} is {address} already; an address belongs to one \
                         NIC. Give this NIC the address its guest uses, or remove the block."
                    ),
                }),
                None => seen.push((address, i, attribute)),
            }
        }
        match (ip, requests.as_mut()) {
            (Some(ip), Some(r)) => r.push(FixRequest {
                nic: NicRequest { mac, ip },
                ipv6,
            }),
            _ => requests = None,
        }
    }
    if problems.is_empty() {
        Ok(requests)
    } else {
        Err(problems)
    }
}

/// A `nic` block's address: [`parse_ip`], and an IPv6 address no subnet can hold (link-local,
/// as `ip addr` lists first, multicast, loopback) is refused here, at plan time, rather than
/// as "in no subnet" at apply time.
fn parse_nic_ip(text: &str) -> Result<IpAddr, String> {
    match parse_ip(text)? {
        IpAddr::V6(v6) => match special_v6_address(v6) {
            Some(why) => Err(format!(
                "{text:?} {why}, so it is no address to record; give the NIC's global address \
                 (the one in an IPv6 subnet of its port group)"
            )),
            None => Ok(IpAddr::V6(v6)),
        },
        ip => Ok(ip),
    }
}

fn report(diags: &mut Diagnostics, problems: &[NicProblem]) {
    for p in problems {
        let path = match p.index {
            Some(i) => nic_path(i, p.attribute),
            None => AttributePath::new(p.attribute),
        };
        diags.error(p.summary.clone(), p.detail.clone(), path);
    }
}

/// Where a claim comes from: its `nic` block and attribute (`ip_address` or `ipv6_address`).
type Origin = (usize, &'static str);

/// `origins[k]` is where claim `k` comes from.
fn claim_error(diags: &mut Diagnostics, e: &ClaimError, origins: &[Origin]) {
    let path = e
        .index
        .and_then(|k| origins.get(k))
        .map(|&(i, attribute)| match e.error {
            StoreError::Refused(_) => AttributePath::new("nic").index(i as i64),
            _ => nic_path(i, attribute),
        });
    values::store_error_at(diags, &e.error, path);
}

/// What a create (or its plan) needs: the claims and who else reports addresses.
struct Resolved {
    vm_uuid: String,
    claims: Vec<NicClaim>,
    /// Per claim, where it comes from.
    origins: Vec<Origin>,
    subnets: Vec<SubnetView>,
    observations: Vec<Observation>,
}

fn vm_not_found(diags: &mut Diagnostics, vm_id: &str, inventory: &Inventory) {
    diags.error(
        "VM not found",
        format!(
            "No VM with UUID {vm_id:?} in vCenter (instance {}). Give the VM's `config.uuid` \
             (the vSphere provider's `uuid` attribute).",
            inventory.instance_uuid
        ),
        AttributePath::new("vm_id"),
    );
}

/// Blocks whose address VMware Tools contradict: Tools report addresses on that NIC and the
/// block's is not among them. The record would hold an address the guest does not use while
/// the one it uses stays unrecorded; the guest is right, so the block is refused. (A guest
/// that changes its address after the record was made is reported by `ipam audit`.)
///
/// Per family: an IPv4 address is checked against the NIC's Tools-reported IPv4 addresses, an
/// IPv6 one against its global IPv6 ones.
fn tools_contradictions(vm: &Vm, requests: &[FixRequest]) -> Vec<NicProblem> {
    let plain: Vec<NicRequest> = requests.iter().map(|r| r.nic.clone()).collect();
    let Ok(matched) = nics::match_nics(vm, &plain) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    for (i, (nic, request)) in matched.iter().zip(requests).enumerate() {
        let asked = std::iter::once((request.nic.ip, "ip_address"))
            .chain(request.ipv6.map(|ip| (ip, "ipv6_address")));
        for (ip, attribute) in asked {
            let reported: Vec<IpAddr> = wire::nic_ips_like(vm, &nic.mac, ip).collect();
            if reported.is_empty() || reported.contains(&ip) {
                continue;
            }
            let reported: Vec<String> = reported.iter().map(|ip| ip.to_string()).collect();
            problems.push(NicProblem {
                no_subnet: false,
                index: Some(i),
                attribute,
                summary: "VMware Tools report another address".into(),
                detail: format!(
                    "VMware Tools report {} on NIC {} of VM {:?}, not {ip}. Record the address \
                     the guest uses, or fix the guest's network configuration first.",
                    reported.join(", "),
                    nic.mac,
                    vm.name,
                ),
            });
        }
    }
    problems
}

/// At plan time an address may belong to a subnet the same apply creates first (through
/// `depends_on`): "no subnet" is then left to apply time, other problems are reported.
async fn resolve(
    session: &Session,
    diags: &mut Diagnostics,
    vm_id: &str,
    requests: &[FixRequest],
    planning: bool,
) -> Option<Option<Resolved>> {
    let inventory = session.inventory_or_diag(diags).await?;
    let Some(vm) = nics::find_vm(&inventory, vm_id) else {
        vm_not_found(diags, vm_id, &inventory);
        return None;
    };
    if vm.template {
        diags.error(
            "A template has no addresses to record",
            format!(
                "{:?} ({vm_id}) is a template: it never runs, so no address is in use by it. \
                 Give the UUID of a VM.",
                vm.name
            ),
            AttributePath::new("vm_id"),
        );
        return None;
    }
    let contradicted = tools_contradictions(vm, requests);
    if !contradicted.is_empty() {
        report(diags, &contradicted);
        return None;
    }
    let subnets = session.subnet_views_or_diag(diags, &inventory).await?;
    match claims_of(&inventory, vm, requests, &subnets) {
        Ok((claims, origins)) => Some(Some(Resolved {
            vm_uuid: vm.uuid.to_ascii_lowercase(),
            claims,
            origins,
            subnets,
            observations: nics::observations(&inventory),
        })),
        Err(problems) if planning && problems.iter().all(|p| p.no_subnet) => Some(None),
        Err(problems) => {
            let reported: Vec<NicProblem> = problems
                .into_iter()
                .filter(|p| !(planning && p.no_subnet))
                .collect();
            report(diags, &reported);
            None
        }
    }
}

/// Each block's claims: its `ip_address`'s (in block order), then the `ipv6_address`es, with
/// the block and attribute of each.
fn claims_of(
    inventory: &Inventory,
    vm: &Vm,
    requests: &[FixRequest],
    subnets: &[SubnetView],
) -> Result<(Vec<NicClaim>, Vec<Origin>), Vec<NicProblem>> {
    let plain: Vec<NicRequest> = requests.iter().map(|r| r.nic.clone()).collect();
    let matched = nics::match_nics(vm, &plain)?;
    let (mut claims, mut problems) = match nics::resolve(inventory, vm, &plain, subnets) {
        Ok(claims) => (claims, Vec::new()),
        Err(problems) => (Vec::new(), problems),
    };
    let mut origins: Vec<Origin> = (0..claims.len()).map(|i| (i, "ip_address")).collect();
    for (i, (request, nic)) in requests.iter().zip(matched).enumerate() {
        // A NIC without a port group has its problem on ip_address already.
        let Some(ip) = request.ipv6.filter(|_| nic.portgroup.is_some()) else {
            continue;
        };
        match nics::resolve_address(inventory, vm, nic, ip, subnets) {
            Ok(claim) => {
                claims.push(claim);
                origins.push((i, "ipv6_address"));
            }
            Err(problem) => problems.push(NicProblem {
                index: Some(i),
                attribute: "ipv6_address",
                ..problem
            }),
        }
    }
    if problems.is_empty() {
        Ok((claims, origins))
    } else {
        Err(problems)
    }
}

/// Records the claims for the VM (`write`), or only checks them (plan time), in one store
/// transaction.
async fn claim(
    session: &Session,
    resolved: Resolved,
    write: bool,
) -> Result<Result<Vec<AddressRecord>, ClaimError>, StoreError> {
    session
        .store
        .blocking(move |s| {
            let owner = (OwnerKind::NicFix, resolved.vm_uuid.as_str());
            let reported =
                nics::claim_reporter(&resolved.observations, &resolved.subnets, &resolved.vm_uuid);
            Ok(if write {
                s.claim_nics(owner, &resolved.vm_uuid, &resolved.claims, &reported)
            } else {
                s.check_claims(owner, &resolved.vm_uuid, &resolved.claims, &reported)
                    .map(|()| Vec::new())
            })
        })
        .await
}

/// Fills the computed values of each block from its claim; a MAC the user wrote stays as
/// written.
fn fill(state: &mut NicFixState<'_>, claims: &[NicClaim], origins: &[Origin]) {
    let mut nics = nic_list_mut(state);
    for (claim, &(i, attribute)) in claims.iter().zip(origins) {
        let Some(nic) = nics.get_mut(i) else { continue };
        if !nic.mac.is_value() {
            nic.mac = string(claim.mac.clone());
        }
        nic.wire_id = string(claim.wire_id.clone());
        if attribute == "ipv6_address" {
            nic.ipv6_subnet_id = string(claim.subnet_id.clone());
        } else {
            nic.subnet_id = string(claim.subnet_id.clone());
        }
    }
    for nic in nics {
        if nic.ipv6_address.is_null() {
            nic.ipv6_subnet_id = Value::Null;
        }
    }
}

/// `ipv6_subnet_id` as a plan leaves it to the apply: unknown, or null without `ipv6_address`.
fn ipv6_subnet_unknown(nic: &mut FixNicState<'_>) {
    nic.ipv6_subnet_id = if nic.ipv6_address.is_null() {
        Value::Null
    } else {
        Value::Unknown
    };
}

use nics::same_mac;

impl NicFixResource {
    /// The plan-time checks of recording `config`'s addresses (a create's, or the update of a
    /// resource imported without records); `None` with an error diagnostic.
    async fn check(&self, diags: &mut Diagnostics, config: &NicFixState<'_>) -> Option<()> {
        let (Some(vm_id), Ok(Some(requests))) = (known(&config.vm_id), requests_of(config)) else {
            return Some(());
        };
        let session = self.shared.session(diags)?;
        let Some(resolved) = resolve(&session, diags, &vm_id, &requests, true).await? else {
            return Some(());
        };
        let origins = resolved.origins.clone();
        match claim(&session, resolved, false).await {
            Ok(Ok(_)) => Some(()),
            Ok(Err(e)) => {
                claim_error(diags, &e, &origins);
                None
            }
            Err(e) => {
                values::store_error(diags, &e, None);
                None
            }
        }
    }
}

#[async_trait]
impl Resource for NicFixResource {
    type State<'a> = NicFixState<'a>;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        if let Err(problems) = requests_of(&config) {
            report(diags, &problems);
        }
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: Self::State<'a>,
        private_state: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let session = self.shared.session(diags)?;
        let vm_uuid = known(&state.id)?.to_ascii_lowercase();
        let inventory = session.inventory_or_diag(diags).await?;
        let lookup = vm_uuid.clone();
        let records = match session
            .store
            .blocking(move |s| s.addresses_of_owner(OwnerKind::NicFix, &lookup))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                values::store_error(diags, &e, None);
                return Some((state, private_state));
            }
        };
        let Some(vm) = nics::find_vm(&inventory, &vm_uuid) else {
            let ours = format!("{}/", inventory.instance_uuid);
            if records
                .iter()
                .any(|r| !r.wire_id.as_deref().unwrap_or_default().starts_with(&ours))
            {
                diags.root_warning(
                    "VM not found in this vCenter",
                    format!(
                        "VM {vm_uuid} is not in vCenter instance {}, but its addresses were \
                         recorded on another vCenter's wires; they are kept. Check \
                         `vsphere_server`.",
                        inventory.instance_uuid
                    ),
                );
                return Some((state, private_state));
            }
            // A read never writes: the records stay until the apply that removes (or
            // replaces) the resource releases them.
            tracing::info!(%vm_uuid, "VM gone from vCenter: planning the resource's replacement");
            diags.root_warning(
                "VM not found",
                format!(
                    "No VM with UUID {vm_uuid} was found in vCenter: it was deleted outside \
                     Terraform. Its recorded addresses stay held until an apply removes this \
                     resource; remove it from the configuration (or point `vm_id` at an \
                     existing VM)."
                ),
            );
            let mut gone = state.clone();
            // No port group: plan_update replaces the resource.
            for nic in nic_list_mut(&mut gone) {
                nic.wire_id = Value::Null;
            }
            return Some((gone, private_state));
        };
        if records.is_empty() && !unrecorded(&state) {
            // The store no longer holds them (a fresh store): plan records them again.
            return None;
        }
        let mut fresh = state.clone();
        for nic in nic_list_mut(&mut fresh) {
            let mac = known(&nic.mac).unwrap_or_default();
            let of_nic: Vec<&AddressRecord> = records
                .iter()
                .filter(|r| same_mac(r.mac.as_deref().unwrap_or_default(), &mac))
                .collect();
            // `ip_address` is the NIC's IPv4 record, or its IPv6 one when the block says so
            // (a NIC with IPv6 only); `ipv6_address` the IPv6 record beside an IPv4 one.
            let primary_v6 = known(&nic.ip_address)
                .and_then(|s| parse_ip(&s).ok())
                .is_some_and(|ip| ip.is_ipv6());
            let record = of_nic.iter().find(|r| r.ip.is_ipv6() == primary_v6);
            let second = of_nic.iter().find(|r| !primary_v6 && r.ip.is_ipv6());
            let current = vm.nics.iter().find(|n| same_mac(&n.mac, &mac));
            nic.wire_id = values::opt_string(
                current
                    .and_then(|n| n.portgroup.as_deref())
                    .map(|pg| wire::wire_id(&inventory, pg)),
            );
            nic.subnet_id = values::opt_string(record.map(|r| r.subnet_id.clone()));
            nic.ipv6_subnet_id = values::opt_string(second.map(|r| r.subnet_id.clone()));
            for (r, address) in [
                (record, &mut nic.ip_address),
                (second, &mut nic.ipv6_address),
            ] {
                if let Some(r) = r {
                    if known(address).and_then(|s| parse_ip(&s).ok()) != Some(r.ip) {
                        *address = string(r.ip.to_string());
                    }
                }
            }
        }
        Some((fresh, private_state))
    }

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        proposed: Self::State<'a>,
        config: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let mut planned = proposed;
        planned.id = planned.vm_id.clone();
        for nic in nic_list_mut(&mut planned) {
            if nic.mac.is_null() {
                nic.mac = Value::Unknown;
            }
            nic.wire_id = Value::Unknown;
            nic.subnet_id = Value::Unknown;
            ipv6_subnet_unknown(nic);
        }
        let (Some(vm_id), Ok(Some(requests))) = (known(&config.vm_id), requests_of(&config)) else {
            return Some((planned, ValueEmpty));
        };
        let session = self.shared.session(diags)?;
        let Some(resolved) = resolve(&session, diags, &vm_id, &requests, true).await? else {
            return Some((planned, ValueEmpty));
        };
        let (claims, origins) = (resolved.claims.clone(), resolved.origins.clone());
        match claim(&session, resolved, false).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                claim_error(diags, &e, &origins);
                return None;
            }
            Err(e) => {
                values::store_error(diags, &e, None);
                return None;
            }
        }
        fill(&mut planned, &claims, &origins);
        Some((planned, ValueEmpty))
    }

    async fn plan_update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        proposed: Self::State<'a>,
        config: Self::State<'a>,
        prior_private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>, Vec<AttributePath>)> {
        let mut planned = proposed;
        let mut replace = Vec::new();
        // `vm_id` and a NIC's `ip_address` replace the resource by their schema (`replaces`).
        let before = nic_list(&prior);
        let after = nic_list(&planned);
        let wanted_macs: Vec<Option<String>> =
            nic_list(&config).iter().map(|n| known(&n.mac)).collect();
        if before.len() != after.len() {
            replace.push(AttributePath::new("nic"));
        }
        // Imported from a VM without records: the apply records the addresses in place.
        let imported = unrecorded(&prior) && before.len() == after.len();
        // A NIC whose port group left the subnet's wires (or that is gone) no longer matches
        // its record: the plan replaces the resource so it is recorded again.
        let mut drifted = Vec::new();
        for (i, b) in before.iter().take(after.len()).enumerate() {
            if let (Some(Some(want)), Some(have)) = (wanted_macs.get(i), known(&b.mac)) {
                if !same_mac(want, &have) {
                    replace.push(nic_path(i, "mac"));
                }
            }
            match (known(&b.wire_id), known(&b.subnet_id)) {
                (Some(wire), Some(subnet)) => drifted.push((i, wire, subnet)),
                (Some(_), None) if imported => {}
                _ => replace.push(nic_path(i, "wire_id")),
            }
            // The IPv6 address of a dual-stack NIC, as its IPv4 one.
            match (known(&b.wire_id), known(&b.ipv6_subnet_id)) {
                (Some(wire), Some(subnet)) => drifted.push((i, wire, subnet)),
                (Some(_), None) if imported || b.ipv6_address.is_null() => {}
                _ => replace.push(nic_path(i, "wire_id")),
            }
        }
        if !drifted.is_empty() {
            let session = self.shared.session(diags)?;
            let (index, pairs): (Vec<usize>, Vec<(String, String)>) = drifted
                .into_iter()
                .map(|(i, wire, subnet)| (i, (wire, subnet)))
                .unzip();
            match session
                .store
                .blocking(move |s| s.off_their_subnet(&pairs))
                .await
            {
                Ok(off) => replace.extend(off.into_iter().map(|k| nic_path(index[k], "wire_id"))),
                Err(e) => values::store_error(diags, &e, None),
            }
        }
        if imported && replace.is_empty() {
            self.check(diags, &config).await?;
            for nic in nic_list_mut(&mut planned) {
                nic.wire_id = Value::Unknown;
                nic.subnet_id = Value::Unknown;
                ipv6_subnet_unknown(nic);
            }
        }
        replace.dedup();
        if !replace.is_empty() {
            for (i, nic) in nic_list_mut(&mut planned).into_iter().enumerate() {
                if !matches!(wanted_macs.get(i), Some(Some(_))) {
                    nic.mac = Value::Unknown;
                }
                nic.wire_id = Value::Unknown;
                nic.subnet_id = Value::Unknown;
                ipv6_subnet_unknown(nic);
            }
        }
        Some((planned, prior_private, replace))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: Self::State<'a>,
        prior_private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<Self::PrivateState<'a>> {
        Some(prior_private)
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned: Self::State<'a>,
        config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let vm_id = known(&planned.vm_id)?;
        let requests = match requests_of(&config) {
            Ok(Some(r)) => r,
            Ok(None) => {
                diags.root_error(
                    "Unknown nic values at apply time",
                    "Every nic block needs a known ip_address (and mac, when given).",
                );
                return None;
            }
            Err(problems) => {
                report(diags, &problems);
                return None;
            }
        };
        let session = self.shared.session(diags)?;
        let resolved = resolve(&session, diags, &vm_id, &requests, false).await??;
        let (claims, origins) = (resolved.claims.clone(), resolved.origins.clone());
        match claim(&session, resolved, true).await {
            Ok(Ok(records)) => {
                tracing::info!(vm = %vm_id, addresses = records.len(), "VM addresses recorded");
            }
            Ok(Err(e)) => {
                claim_error(diags, &e, &origins);
                return None;
            }
            Err(e) => {
                values::store_error(diags, &e, None);
                return None;
            }
        }
        let mut state = planned;
        state.id = string(vm_id);
        fill(&mut state, &claims, &origins);
        Some((state, private))
    }

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        planned: Self::State<'a>,
        config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        if unrecorded(&prior) {
            // Imported from a VM without records: record its addresses now, as a create does.
            return Resource::create(self, diags, planned, config, private, meta).await;
        }
        // Every meaningful change replaces the resource; what is left is the spelling of a MAC.
        Some((planned, private))
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        state: Self::State<'a>,
        _private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        let session = self.shared.session(diags)?;
        let owner = known(&state.id)?.to_ascii_lowercase();
        match session
            .store
            .blocking(move |s| s.release_owner(OwnerKind::NicFix, &owner))
            .await
        {
            Ok(released) => {
                tracing::info!(addresses = released.len(), "VM addresses released");
                Some(())
            }
            Err(e) => {
                values::store_error(diags, &e, None);
                None
            }
        }
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(identity(&[(
            "vm_uuid",
            "id",
            "The BIOS UUID (`config.uuid`) of the VM whose addresses are recorded.",
        )]))
    }

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let session = self.shared.session(diags)?;
        let vm_uuid = id.to_ascii_lowercase();
        let inventory = session.inventory_or_diag(diags).await?;
        let lookup = vm_uuid.clone();
        let mut records = match session
            .store
            .blocking(move |s| s.addresses_of_owner(OwnerKind::NicFix, &lookup))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                values::store_error(diags, &e, None);
                return None;
            }
        };
        if records.is_empty() {
            // A VM whose Tools-reported addresses no record holds yet (what the list resource
            // finds): the state that records them with the apply after the import.
            let holdings = values::or_diag(
                diags,
                Holdings::read(&session, &inventory.instance_uuid).await,
            )?;
            let claims = nics::find_vm(&inventory, &vm_uuid)
                .map(|vm| {
                    unrecorded_nics(&inventory, vm, &holdings, &observations_by_ip(&inventory))
                })
                .unwrap_or_default();
            if claims.is_empty() {
                diags.root_error(
                    "Nothing to import",
                    format!(
                        "The IPAM store {} holds no address recorded by vsphereipam_vm_nic_fix \
                         for VM {id:?}, and VMware Tools report no address of it that lies in a \
                         subnet of its port group and is free. Declare the resource with its \
                         addresses and apply instead of importing it.",
                        session.store.describe()
                    ),
                );
                return None;
            }
            return Some((unrecorded_state(&vm_uuid, &claims), ValueEmpty));
        }
        let vm = nics::find_vm(&inventory, &vm_uuid);
        let position = |mac: &str| {
            vm.and_then(|vm| vm.nics.iter().position(|n| n.mac == mac))
                .unwrap_or(usize::MAX)
        };
        records.sort_by_key(|r| (position(r.mac.as_deref().unwrap_or_default()), r.ip));
        let subnet_of = |ip: IpAddr| {
            records
                .iter()
                .find(|r| r.ip == ip)
                .map(|r| r.subnet_id.clone())
        };
        let nic = per_nic(
            records
                .iter()
                .map(|r| (r.mac.as_deref().unwrap_or_default(), r.ip)),
        )
        .into_iter()
        .map(|(k, ip, ipv6)| {
            let r = &records[k];
            Value::Value(FixNicState {
                mac: values::opt_string(r.mac.clone()),
                ip_address: string(ip.to_string()),
                ipv6_address: values::opt_string(ipv6),
                wire_id: values::opt_string(r.wire_id.clone()),
                subnet_id: values::opt_string(subnet_of(ip)),
                ipv6_subnet_id: values::opt_string(ipv6.and_then(subnet_of)),
            })
        })
        .collect();
        Some((
            NicFixState {
                id: string(id.clone()),
                vm_id: string(id),
                nic: Value::Value(nic),
            },
            ValueEmpty,
        ))
    }
}
