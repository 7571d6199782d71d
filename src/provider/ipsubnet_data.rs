//! Data source `vsphereipam_ipsubnet`: one subnet of the IPAM store, found by id or by name /
//! cidr / wire, with what it holds. Subnet, wires and counts come from one read transaction.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tfplugin::schema::{AttributeType, Block, Description, Schema};
use tfplugin::value::{Value, ValueEmpty, ValueList, ValueNumber, ValueString};
use tfplugin::{map, AttributePath, DataSource, Diagnostics};

use super::schema::{computed, optional_computed, string_list};
use super::values::{self, known, opt_string, string, strings};
use super::Shared;
use crate::store::ops::{LookupError, SubnetQuery, SubnetUsage};

pub struct IpSubnetDataSource {
    shared: Arc<Shared>,
}

impl IpSubnetDataSource {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct IpSubnetDataState<'a> {
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
    pub size: ValueString<'a>,
    pub held: ValueNumber,
    pub observed: ValueNumber,
    pub reserved: ValueString<'a>,
    pub free: ValueString<'a>,
}

pub fn schema() -> Schema {
    let string = AttributeType::String;
    let number = AttributeType::Number;
    Schema {
        version: 1,
        block: Block {
            version: 1,
            description: Description::markdown(
                "Looks up one subnet of the IPAM store, by `id` or by `name`, `cidr` and \
                 `wire_id` (every one given must match, and exactly one subnet of the \
                 provider's vCenter must), and tells what it holds. The subnet and its counts \
                 are read in one store transaction, so they agree with each other. Counts that \
                 can exceed 2^53 (`size`, `reserved`, `free`) are decimal strings: use \
                 `tonumber()` for arithmetic.",
            ),
            attributes: map! {
                "id" => optional_computed(string.clone(),
                    "Subnet id (`vsphereipam_ipsubnet.x.id`). Looks the subnet up by id; a \
                     `name`, `cidr` or `wire_id` given as well must match it."),
                "name" => optional_computed(string.clone(), "Look up by the subnet's name."),
                "cidr" => optional_computed(string.clone(),
                    "Look up by the subnet's network (`10.20.0.0/24`)."),
                "wire_id" => optional_computed(string.clone(),
                    "Look up by the wire the subnet lives on (`data.vsphereipam_wire.x.id`); \
                     additional wires do not count."),
                "start_ip" => computed(string.clone(), "First allocatable address."),
                "end_ip" => computed(string.clone(), "Last allocatable address."),
                "gateway" => computed(string.clone(), "Default gateway; null when none."),
                "dns_servers" => computed(string_list(), "DNS servers handed to guests."),
                "domain" => computed(string.clone(), "DNS domain handed to guests; null when none."),
                "vlan_id" => computed(number.clone(), "VLAN id of the subnet; null when none."),
                "alloc_policy" => computed(string.clone(), "`stepdown`, `stepup` or `random`."),
                "reserved_ranges" => computed(string_list(),
                    "Addresses and ranges that are never handed out."),
                "netmask" => computed(string.clone(), "Netmask of `cidr` (`255.255.255.0`)."),
                "prefix_length" => computed(number.clone(), "Prefix length of `cidr`."),
                "additional_wire_ids" => computed(string_list(),
                    "Other wires whose VMs may take addresses from this subnet, sorted."),
                "size" => computed(string.clone(),
                    "Number of addresses in `[start_ip, end_ip]`, as a decimal string."),
                "held" => computed(number.clone(),
                    "Addresses held by resources (`vsphereipam_vm`, `vsphereipam_vm_nic_fix`, \
                     `vsphereipam_ip_address`), VM creations in progress included."),
                "observed" => computed(number.clone(),
                    "Addresses that vCenter reports in use on the subnet's wires (VMware Tools \
                     guest IPs, VMkernel adapters) and no resource holds."),
                "reserved" => computed(string.clone(),
                    "The gateway and the addresses of `reserved_ranges` inside \
                     `[start_ip, end_ip]`, as a decimal string."),
                "free" => computed(string.clone(),
                    "Addresses that an allocation could hand out now (neither held, observed \
                     nor reserved), as a decimal string.")
            },
            ..Default::default()
        },
    }
}

/// The attribute a failed lookup is about: the most specific criterion given.
fn lookup_attribute(query: &SubnetQuery) -> &'static str {
    if query.id.is_some() {
        "id"
    } else if query.name.is_some() {
        "name"
    } else if query.cidr.is_some() {
        "cidr"
    } else {
        "wire_id"
    }
}

fn lookup_error(diags: &mut Diagnostics, query: &SubnetQuery, store: &str, e: LookupError) {
    let path = AttributePath::new(lookup_attribute(query));
    match e {
        LookupError::Matches { count: 0, .. } => diags.error(
            "Subnet not found",
            format!(
                "{e} in the IPAM store {store}. Check the criteria; a name, cidr or wire \
                 is searched among the subnets of the provider's vCenter."
            ),
            path,
        ),
        LookupError::Matches {
            count, candidates, ..
        } => diags.error(
            "Several subnets match",
            format!(
                "{count} subnets match {}:\n  - {}\nAdd `cidr` or `wire_id` to pick one, or \
                 look it up by `id`.",
                query.describe(),
                candidates.join("\n  - ")
            ),
            path,
        ),
        LookupError::Store(e) => values::store_error(diags, &e, Some(lookup_attribute(query))),
    }
}

fn state_of<'a>(found: &SubnetUsage) -> IpSubnetDataState<'a> {
    let s = &found.view.subnet;
    let spec = &s.spec;
    let counts = &found.counts;
    IpSubnetDataState {
        id: string(s.id.clone()),
        name: string(s.name.clone()),
        wire_id: string(s.wire_id.clone()),
        cidr: string(spec.cidr.to_string()),
        start_ip: string(spec.start.to_string()),
        end_ip: string(spec.end.to_string()),
        gateway: opt_string(spec.gateway),
        dns_servers: strings(&spec.dns_servers),
        domain: opt_string(s.domain.clone()),
        vlan_id: spec.vlan_id.map(i64::from).into(),
        alloc_policy: string(spec.policy.as_str()),
        reserved_ranges: strings(&spec.reserved),
        netmask: string(spec.cidr.netmask().to_string()),
        prefix_length: Value::Value(i64::from(spec.cidr.prefix_len())),
        additional_wire_ids: strings(found.view.additional_wire_ids()),
        size: string(counts.size.to_string()),
        held: Value::Value(counts.held as i64),
        observed: Value::Value(counts.observed as i64),
        reserved: string(counts.reserved.to_string()),
        free: string(counts.free.to_string()),
    }
}

fn query_of(config: &IpSubnetDataState<'_>) -> SubnetQuery {
    SubnetQuery {
        id: known(&config.id),
        name: known(&config.name),
        cidr: known(&config.cidr),
        wire_id: known(&config.wire_id),
    }
}

#[async_trait]
impl DataSource for IpSubnetDataSource {
    type State<'a> = IpSubnetDataState<'a>;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        let criteria = [&config.id, &config.name, &config.cidr, &config.wire_id];
        if criteria.iter().all(|v| v.is_null()) {
            diags.error(
                "No subnet named",
                "Set `id`, or one or more of `name`, `cidr` and `wire_id`.",
                AttributePath::new("id"),
            );
        }
        if let Some(cidr) = known(&config.cidr) {
            if cidr.parse::<ipnet::IpNet>().is_err() {
                diags.error(
                    "Invalid cidr",
                    format!("{cidr:?} is not a network such as 10.20.0.0/24 or 2001:db8:0:1::/64."),
                    AttributePath::new("cidr"),
                );
            }
        }
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        config: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<Self::State<'a>> {
        let session = self.shared.session(diags)?;
        // Loading the inventory brings the observed records up to date first.
        let inventory = session.inventory_or_diag(diags).await?;
        let query = query_of(&config);
        let vcenter = inventory.instance_uuid.clone();
        let lookup = query.clone();
        let found = session
            .store
            .blocking(move |s| Ok(s.find_subnet(Some(&vcenter), &lookup)))
            .await
            .unwrap_or_else(|e| Err(e.into()));
        match found {
            Ok(found) => Some(state_of(&found)),
            Err(e) => {
                lookup_error(diags, &query, &session.store.describe(), e);
                None
            }
        }
    }
}
