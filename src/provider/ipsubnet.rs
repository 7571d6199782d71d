//! Resource `vsphereipam_ipsubnet`: an IPv4 subnet on one wire, kept in the IPAM store.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tfplugin::schema::{AttributeType, Block, Description, IdentitySchema, Schema};
use tfplugin::value::{Value, ValueEmpty, ValueList, ValueNumber, ValueString};
use tfplugin::{map, AttributePath, Diagnostics, Resource};

use super::schema::{
    computed, identity, optional, optional_computed, replaces, required, string_list,
};
use super::values::{self, field_list, field_num, field_str, known, opt_string, string, strings};
use super::Shared;
use crate::ipam::ranges::Range;
use crate::ipam::subnet::{self, SubnetInput, SubnetSpec};
use crate::store::ops::SubnetView;
use crate::store::{Store, SubnetRecord};
use crate::vsphere::model::Inventory;
use crate::vsphere::wire;

pub struct IpSubnetResource {
    shared: Arc<Shared>,
}

impl IpSubnetResource {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct IpSubnetState<'a> {
    pub id: ValueString<'a>,
    pub name: ValueString<'a>,
    pub wire_id: ValueString<'a>,
    pub cidr: ValueString<'a>,
    pub start_ip: ValueString<'a>,
    pub end_ip: ValueString<'a>,
    pub gateway: ValueString<'a>,
    pub dns_servers: ValueList<ValueString<'a>>,
    pub domain: ValueString<'a>,
    pub vlan_id: ValueNumber,
    pub alloc_policy: ValueString<'a>,
    pub reserved_ranges: ValueList<ValueString<'a>>,
    pub netmask: ValueString<'a>,
    pub prefix_length: ValueNumber,
    pub additional_wire_ids: ValueList<ValueString<'a>>,
}

pub fn schema() -> Schema {
    Schema {
        version: 1,
        block: Block {
            version: 1,
            description: Description::markdown(
                "An IPv4 or IPv6 subnet on one wire (port group), kept in the IPAM store. A wire \
                 may carry subnets of both families (dual stack); ranges of one family must not \
                 overlap. Addresses that vCenter reports in use on the subnet's wires (VMware \
                 Tools guest IPs, host VMkernel adapter IPs) are never handed out. \
                 `vsphereipam_ip_address` takes addresses of either family; `vsphereipam_vm` NICs \
                 take them from IPv4 subnets.",
            ),
            attributes: map! {
                "id" => computed(AttributeType::String, "Subnet id in the IPAM store."),
                "name" => required(AttributeType::String, "Name of the subnet."),
                "wire_id" => replaces(required(AttributeType::String,
                    "Wire the subnet lives on (`data.vsphereipam_wire.x.id`). Changing it replaces the subnet.")),
                "cidr" => replaces(required(AttributeType::String,
                    "Network written as its network address: IPv4 with a prefix from /8 to /30 \
                     (`10.20.0.0/24`), or IPv6 in canonical form with a prefix from /48 to /127 \
                     (`2001:db8:0:1::/64`; not link-local, multicast or IPv4-mapped). Changing \
                     it replaces the subnet.")),
                "start_ip" => optional_computed(AttributeType::String,
                    "First allocatable address; default: the first host address (IPv6: the one \
                     after the subnet-router anycast address, which is never handed out)."),
                "end_ip" => optional_computed(AttributeType::String,
                    "Last allocatable address; default: the last host address (IPv6: the last \
                     address of the prefix)."),
                "gateway" => optional(AttributeType::String,
                    "Default gateway, inside `cidr` (so of its family); reserved automatically when it falls in the allocatable range."),
                "dns_servers" => optional(string_list(),
                    "DNS servers handed to guests, of either family (a VM NIC's customization \
                     carries both)."),
                "domain" => optional(AttributeType::String,
                    "DNS domain handed to guests, such as `corp.example` (RFC 1123 labels, no \
                     trailing dot)."),
                "vlan_id" => optional(AttributeType::Number, "VLAN id of the subnet, 1 to 4094 (informational)."),
                "alloc_policy" => optional_computed(AttributeType::String,
                    "`stepdown` (default: highest free address first), `stepup` or `random`."),
                "reserved_ranges" => optional(string_list(),
                    "Addresses (`10.20.0.200`, `2001:db8:0:1::200`) or ranges \
                     (`10.20.0.100-10.20.0.119`) inside `[start_ip, end_ip]` that are never \
                     handed out."),
                "netmask" => computed(AttributeType::String,
                    "Netmask of `cidr` (`255.255.255.0`; IPv6 `ffff:ffff:ffff:ffff::`)."),
                "prefix_length" => computed(AttributeType::Number, "Prefix length of `cidr`."),
                "additional_wire_ids" => computed(string_list(),
                    "Other wires whose VMs may take addresses from this subnet, sorted: those \
                     attached with `vsphereipam_subnet_additional_wire` and those detected on \
                     create (VMs on them reported addresses inside the range).")
            },
            ..Default::default()
        },
    }
}

/// The resource identity: the subnet's id.
pub fn identity_schema() -> IdentitySchema {
    identity(&[("id", "id", "The subnet's id in the IPAM store.")])
}

fn input_of(state: &IpSubnetState<'_>) -> SubnetInput {
    SubnetInput {
        cidr: field_str(&state.cidr),
        start_ip: field_str(&state.start_ip),
        end_ip: field_str(&state.end_ip),
        gateway: field_str(&state.gateway),
        dns_servers: field_list(&state.dns_servers),
        vlan_id: field_num(&state.vlan_id),
        alloc_policy: field_str(&state.alloc_policy),
        reserved_ranges: field_list(&state.reserved_ranges),
    }
}

/// Validates `state`; `Some(spec)` once every input is known and valid.
fn checked_spec(diags: &mut Diagnostics, state: &IpSubnetState<'_>) -> Option<SubnetSpec> {
    let domain = known(&state.domain).and_then(|d| subnet::check_domain(&d));
    if let Some(v) = &domain {
        values::violation(diags, v);
    }
    let input = input_of(state);
    match subnet::validate(&input) {
        Ok(spec) => spec.filter(|_| domain.is_none()),
        Err(violations) => {
            for v in &violations {
                values::violation(diags, v);
            }
            None
        }
    }
}

/// Fills what the plan can know from a valid spec.
fn fill_from_spec(state: &mut IpSubnetState<'_>, spec: &SubnetSpec) {
    state.start_ip = string(spec.start.to_string());
    state.end_ip = string(spec.end.to_string());
    state.alloc_policy = string(spec.policy.as_str());
    state.netmask = string(spec.cidr.netmask().to_string());
    state.prefix_length = Value::Value(i64::from(spec.cidr.prefix_len()));
}

/// The wire must be a port group of this vCenter.
fn check_wire(diags: &mut Diagnostics, inventory: &Inventory, wire_id: &str) -> bool {
    let moref = wire::moref_of(wire_id);
    let ours = wire_id == moref || wire_id.starts_with(&format!("{}/", inventory.instance_uuid));
    match inventory.portgroups.iter().find(|pg| pg.moref == moref) {
        Some(pg) if ours && pg.uplink => {
            diags.error(
                "Uplink port groups are not wires",
                format!(
                    "{wire_id:?} is the uplink port group of distributed switch {:?}: it carries \
                     the hosts' physical NICs, not VM traffic. Use a VM port group.",
                    pg.switch_name
                ),
                AttributePath::new("wire_id"),
            );
            return false;
        }
        Some(_) if ours => return true,
        _ => {}
    }
    diags.error(
        "Wire not found",
        format!(
            "{wire_id:?} is not a port group of this vCenter (instance {}). Use the `id` of a \
             `vsphereipam_wire` data source.",
            inventory.instance_uuid
        ),
        AttributePath::new("wire_id"),
    );
    false
}

fn record_of(
    state: &IpSubnetState<'_>,
    spec: SubnetSpec,
    id: String,
    vcenter: String,
) -> SubnetRecord {
    SubnetRecord {
        id,
        vcenter,
        name: known(&state.name).unwrap_or_default(),
        wire_id: known(&state.wire_id).unwrap_or_default(),
        domain: known(&state.domain),
        spec,
    }
}

/// Which attribute an overlap is blamed on: the range bounds when the user set them.
fn range_attribute(config: &IpSubnetState<'_>) -> &'static str {
    if config.start_ip.is_null() && config.end_ip.is_null() {
        "cidr"
    } else {
        "start_ip"
    }
}

/// The first of the range attributes that differs between two states.
fn changed_range_attribute(prior: &IpSubnetState<'_>, next: &IpSubnetState<'_>) -> &'static str {
    if prior.start_ip != next.start_ip {
        "start_ip"
    } else if prior.end_ip != next.end_ip {
        "end_ip"
    } else if prior.reserved_ranges != next.reserved_ranges {
        "reserved_ranges"
    } else {
        "gateway"
    }
}

/// The state as the store has it, keeping the user's spelling where it means the same.
pub(super) fn state_of<'a>(view: &SubnetView, prior: &IpSubnetState<'a>) -> IpSubnetState<'a> {
    let s = &view.subnet;
    let spec = &s.spec;
    let same_ranges = |prior: &ValueList<ValueString<'a>>, stored: &[Range]| {
        let parsed: Option<Vec<Range>> = prior.as_ref_option().map(|items| {
            items
                .iter()
                .filter_map(|i| i.as_ref_option()?.parse().ok())
                .collect()
        });
        parsed.as_deref().unwrap_or_default() == stored
    };
    let reserved_ranges = if same_ranges(&prior.reserved_ranges, &spec.reserved) {
        prior.reserved_ranges.clone()
    } else {
        strings(&spec.reserved)
    };
    let dns_servers = if spec.dns_servers.is_empty() && prior.dns_servers.is_null() {
        Value::Null
    } else {
        strings(&spec.dns_servers)
    };
    let mut state = IpSubnetState {
        id: string(s.id.clone()),
        name: string(s.name.clone()),
        wire_id: string(s.wire_id.clone()),
        cidr: string(spec.cidr.to_string()),
        gateway: opt_string(spec.gateway),
        dns_servers,
        domain: opt_string(s.domain.clone()),
        vlan_id: spec.vlan_id.map(i64::from).into(),
        reserved_ranges,
        additional_wire_ids: strings(view.additional_wire_ids()),
        ..Default::default()
    };
    fill_from_spec(&mut state, spec);
    state
}

#[async_trait]
impl Resource for IpSubnetResource {
    type State<'a> = IpSubnetState<'a>;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        checked_spec(diags, &config);
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
        let id = known(&state.id)?;
        match session
            .subnet_for_plan(&id, known(&state.wire_id).as_deref())
            .await
        {
            Ok(Some(view)) => Some((state_of(&view, &state), private_state)),
            Ok(None) => None,
            Err(e) => {
                values::store_error(diags, &e, None);
                Some((state, private_state))
            }
        }
    }

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        proposed: Self::State<'a>,
        config: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let mut planned = proposed;
        planned.id = Value::Unknown;
        planned.additional_wire_ids = Value::Unknown;
        planned.netmask = Value::Unknown;
        planned.prefix_length = Value::Unknown;
        if planned.alloc_policy.is_null() {
            planned.alloc_policy = string("stepdown");
        }
        let Some(spec) = checked_spec(diags, &planned) else {
            return Some((planned, ValueEmpty));
        };
        fill_from_spec(&mut planned, &spec);
        let session = self.shared.session(diags)?;
        let inventory = session.inventory_or_diag(diags).await?;
        if let Some(wire_id) = known(&planned.wire_id) {
            if !check_wire(diags, &inventory, &wire_id) {
                return None;
            }
        }
        let probe = record_of(
            &planned,
            spec,
            String::new(),
            inventory.instance_uuid.clone(),
        );
        let subnets = session.subnets_for_plan(&probe.vcenter).await;
        match subnets
            .as_ref()
            .map(|all| probe.first_overlap(all.records()))
        {
            Ok(None) => {}
            // A replacement is planned as a create while the old object still exists: a subnet
            // of the same name on the same wire is that object. Create checks again, in the
            // transaction, after the old one is gone.
            Ok(Some(other)) if other.name == probe.name && other.wire_id == probe.wire_id => {}
            Ok(Some(other)) => {
                diags.error(
                    "Subnet range overlaps another subnet",
                    format!(
                        "The allocatable range overlaps subnet {:?} ({}), range {}. Choose a range \
                         that no other subnet of this vCenter uses.",
                        other.name,
                        other.id,
                        other.spec.allocatable()
                    ),
                    AttributePath::new(range_attribute(&config)),
                );
                return None;
            }
            Err(e) => {
                values::store_error(diags, e, None);
                return None;
            }
        }
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
        // `cidr` and `wire_id` replace the subnet (schema); a replacement is planned again as
        // a create, so the range checks below would be about the wrong subnet.
        let replacing = prior.cidr != planned.cidr || prior.wire_id != planned.wire_id;
        let replace = Vec::new();
        // Unset optional+computed inputs fall back to their defaults, not the prior values.
        if config.start_ip.is_null() {
            planned.start_ip = Value::Null;
        }
        if config.end_ip.is_null() {
            planned.end_ip = Value::Null;
        }
        if config.alloc_policy.is_null() {
            planned.alloc_policy = string("stepdown");
        }
        let Some(spec) = checked_spec(diags, &planned) else {
            if planned.start_ip.is_null() {
                planned.start_ip = Value::Unknown;
            }
            if planned.end_ip.is_null() {
                planned.end_ip = Value::Unknown;
            }
            return Some((planned, prior_private, replace));
        };
        fill_from_spec(&mut planned, &spec);
        if replacing {
            planned.id = Value::Unknown;
            planned.additional_wire_ids = Value::Unknown;
            return Some((planned, prior_private, replace));
        }
        // The store checks below are about the range; a plan that keeps it (every refresh of an
        // unchanged subnet) needs none of them.
        let same_range = prior.start_ip == planned.start_ip
            && prior.end_ip == planned.end_ip
            && prior.gateway == planned.gateway
            && prior.reserved_ranges == planned.reserved_ranges;
        if same_range {
            return Some((planned, prior_private, replace));
        }
        let session = self.shared.session(diags)?;
        let id = known(&prior.id)?;
        let record = record_of(&planned, spec, id, String::new());
        let checks = session
            .store
            .blocking(move |s| {
                let Some(current) = s.subnet(&record.id)? else {
                    return Ok(None);
                };
                let record = SubnetRecord {
                    vcenter: current.subnet.vcenter,
                    ..record
                };
                Ok(Some((
                    s.find_overlap(&record)?,
                    s.addresses_in_the_way(&record)?,
                )))
            })
            .await;
        match checks {
            Ok(Some((overlap, in_the_way))) => {
                if let Some(other) = overlap {
                    diags.error(
                        "Subnet range overlaps another subnet",
                        format!(
                            "The new allocatable range overlaps subnet {:?} ({}), range {}.",
                            other.name,
                            other.id,
                            other.spec.allocatable()
                        ),
                        AttributePath::new(changed_range_attribute(&prior, &planned)),
                    );
                }
                if !in_the_way.is_empty() {
                    let list: Vec<String> = in_the_way
                        .iter()
                        .map(|a| format!("{} ({})", a.ip, a.holder()))
                        .collect();
                    diags.error(
                        "Held addresses would leave the allocatable range",
                        format!(
                            "These addresses are held in the subnet and would no longer be \
                             allocatable: {}. Release them first or keep them inside the range.",
                            list.join(", ")
                        ),
                        AttributePath::new(changed_range_attribute(&prior, &planned)),
                    );
                }
            }
            Ok(None) => {}
            Err(e) => values::store_error(diags, &e, None),
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
        let spec = checked_spec(diags, &planned)?;
        let session = self.shared.session(diags)?;
        let inventory = session.inventory_or_diag(diags).await?;
        let wire_id = known(&planned.wire_id)?;
        if !check_wire(diags, &inventory, &wire_id) {
            return None;
        }
        let own = wire::moref_of(&wire_id).to_string();
        let detected: Vec<String> = wire::wires_reporting_in(&inventory, spec.start, spec.end)
            .into_iter()
            .filter(|m| *m != own)
            .map(|m| wire::wire_id(&inventory, &m))
            .collect();
        let record = record_of(
            &planned,
            spec,
            Store::new_id(),
            inventory.instance_uuid.clone(),
        );
        let created = session
            .store
            .blocking(move |s| s.create_subnet(&record, &detected))
            .await;
        session.forget_plan_subnets().await;
        match created {
            Ok(view) => {
                tracing::info!(id = %view.subnet.id, name = %view.subnet.name, "subnet created");
                session.sync_observed(&inventory, true).await;
                Some((state_of(&view, &planned), private))
            }
            Err(e) => {
                values::store_error(diags, &e, Some(range_attribute(&config)));
                None
            }
        }
    }

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        planned: Self::State<'a>,
        _config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let spec = checked_spec(diags, &planned)?;
        let session = self.shared.session(diags)?;
        let id = known(&prior.id)?;
        let attribute = changed_range_attribute(&prior, &planned);
        // The vCenter comes from the stored subnet: it never changes.
        let record = record_of(&planned, spec, id, String::new());
        let result = session
            .store
            .blocking(move |s| s.update_subnet(&record))
            .await;
        session.forget_plan_subnets().await;
        match result {
            Ok(view) => Some((state_of(&view, &planned), private)),
            Err(e) => {
                values::store_error(diags, &e, Some(attribute));
                None
            }
        }
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        state: Self::State<'a>,
        _private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        let session = self.shared.session(diags)?;
        let id = known(&state.id)?;
        let deleted = session.store.blocking(move |s| s.delete_subnet(&id)).await;
        session.forget_plan_subnets().await;
        values::or_diag(diags, deleted).map(drop)
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(identity_schema())
    }

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let session = self.shared.session(diags)?;
        let lookup = id.clone();
        match session.store.blocking(move |s| s.subnet(&lookup)).await {
            Ok(Some(view)) => Some((state_of(&view, &IpSubnetState::default()), ValueEmpty)),
            Ok(None) => {
                diags.root_error(
                    "Subnet not found",
                    format!(
                        "No subnet with id {id:?} in the IPAM store {}.",
                        session.store.describe()
                    ),
                );
                None
            }
            Err(e) => {
                values::store_error(diags, &e, None);
                None
            }
        }
    }
}
