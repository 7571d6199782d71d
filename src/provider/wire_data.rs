//! Data source `vsphereipam_wire`: one port group described as a wire.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tfplugin::schema::{AttributeType, Block, Description, Schema};
use tfplugin::value::{Value, ValueEmpty, ValueList, ValueNumber, ValueString};
use tfplugin::{map, AttributePath, DataSource, Diagnostics};

use super::schema::{computed, optional, optional_computed, string_list};
use super::values::{known, strings};
use super::Shared;
use crate::vsphere::model::{Inventory, PortGroup};
use crate::vsphere::wire::{self, WireLookupError, WireQuery};

pub struct WireDataSource {
    shared: Arc<Shared>,
}

impl WireDataSource {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct WireState<'a> {
    pub id: ValueString<'a>,
    pub name: ValueString<'a>,
    pub datacenter: ValueString<'a>,
    pub switch: ValueString<'a>,
    pub moref: ValueString<'a>,
    #[serde(rename = "type")]
    pub kind: ValueString<'a>,
    pub vlan_id: ValueNumber,
    pub switch_name: ValueString<'a>,
    pub switch_uuid: ValueString<'a>,
    pub host_ids: ValueList<ValueString<'a>>,
    pub vm_ips: ValueList<ValueString<'a>>,
    pub vmkernel_ips: ValueList<ValueString<'a>>,
}

fn lookup_error(diags: &mut Diagnostics, query: &WireQuery<'_>, error: WireLookupError) {
    let attribute = if query.moref.is_some() {
        "moref"
    } else {
        "name"
    };
    match error {
        WireLookupError::NotFound { query } => diags.error(
            "Port group not found",
            format!(
                "No standard or distributed port group matches {query}. Check the name and the \
                 `datacenter` and `switch` filters."
            ),
            AttributePath::new(attribute),
        ),
        WireLookupError::Ambiguous {
            query,
            count,
            candidates,
        } => diags.error(
            "Port group name is ambiguous",
            format!(
                "{count} port groups match {query}:\n  - {}\nAdd a `datacenter` or `switch` filter, or look it up by `moref`.",
                candidates.join("\n  - ")
            ),
            AttributePath::new(attribute),
        ),
        e @ WireLookupError::Uplink { .. } => diags.error(
            "Uplink port groups are not wires",
            format!(
                "{e}: it carries the hosts' physical NICs, not VM traffic. Look up a VM port \
                 group of that switch instead."
            ),
            AttributePath::new(attribute),
        ),
        e @ WireLookupError::NameMismatch { .. } => diags.error(
            "`moref` and `name` name different port groups",
            format!("{e}. Give only one of `moref` and `name`, or make them agree."),
            AttributePath::new("name"),
        ),
    }
}

fn fill<'a>(inventory: &Inventory, pg: &PortGroup, config: WireState<'a>) -> WireState<'a> {
    WireState {
        id: Value::Value(wire::wire_id(inventory, &pg.moref).into()),
        moref: Value::Value(pg.moref.clone().into()),
        name: Value::Value(pg.name.clone().into()),
        kind: Value::Value(pg.kind.as_str().into()),
        vlan_id: Value::Value(pg.vlan.as_number()),
        switch_name: Value::Value(pg.switch_name.clone().into()),
        switch_uuid: pg.switch_uuid.clone().map(Into::into).into(),
        host_ids: strings(&pg.host_ids),
        vm_ips: strings(wire::vm_ips_on(inventory, &pg.moref)),
        vmkernel_ips: strings(wire::vmkernel_ips_on(inventory, &pg.moref)),
        datacenter: Value::Value(pg.datacenter.clone().into()),
        switch: config.switch,
    }
}

/// The data source's schema (also served by the bench's no-op provider).
pub fn schema() -> Schema {
    Schema {
        version: 1,
        block: Block {
            version: 1,
            description: Description::markdown(
                "Looks up one standard or distributed port group and describes it as a wire: \
                 the Layer 2 network that subnets are placed on.",
            ),
            attributes: map! {
                "name" => optional_computed(AttributeType::String,
                    "Port group name. Required unless `moref` is given."),
                "datacenter" => optional_computed(AttributeType::String,
                    "Only consider port groups in this datacenter (by name)."),
                "switch" => optional(AttributeType::String,
                    "Only consider port groups on this vSwitch or distributed switch (by name)."),
                "moref" => optional_computed(AttributeType::String,
                    "Look the port group up by managed object id instead (`dvportgroup-13`, \
                     `network-7`); a wire id is accepted too. A `name` given as well must be \
                     the port group's name. Uplink port groups of distributed switches are \
                     not wires and are refused."),
                "id" => computed(AttributeType::String,
                    "Stable wire id: `<vCenter instance UUID>/<moref>`."),
                "type" => computed(AttributeType::String,
                    "`standard` or `distributed`."),
                "vlan_id" => computed(AttributeType::Number,
                    "VLAN id; `0` for none, `-1` for a trunk, the secondary id for a private VLAN."),
                "switch_name" => computed(AttributeType::String,
                    "Name of the distributed switch, or of the standard vSwitch(es) that carry \
                     the port group (comma separated when hosts differ)."),
                "switch_uuid" => computed(AttributeType::String,
                    "UUID of the distributed switch; null for standard port groups."),
                "host_ids" => computed(string_list(),
                    "Managed object ids of the hosts that carry the port group, sorted."),
                "vm_ips" => computed(string_list(),
                    "Addresses that VMware Tools reports for VM NICs on the port group, sorted: \
                     IPv4, then global IPv6 (link-local ones left out)."),
                "vmkernel_ips" => computed(string_list(),
                    "Addresses of host VMkernel adapters (management, vMotion, storage) on the \
                     port group, sorted: IPv4, then global IPv6.")
            },
            ..Default::default()
        },
    }
}

#[async_trait]
impl DataSource for WireDataSource {
    type State<'a> = WireState<'a>;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        let unknown = |v: &ValueString| matches!(v, Value::Unknown);
        if unknown(&config.name) || unknown(&config.moref) {
            return Some(());
        }
        if config.name.is_null() && config.moref.is_null() {
            diags.error(
                "Missing port group name",
                "Set `name` (optionally with `datacenter` and `switch`) or `moref`.",
                AttributePath::new("name"),
            );
        }
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        config: Self::State<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<Self::State<'a>> {
        let session = self.shared.session(diags)?;
        let inventory = session.inventory_or_diag(diags).await?;
        let (name, datacenter, switch, moref) = (
            known(&config.name),
            known(&config.datacenter),
            known(&config.switch),
            known(&config.moref),
        );
        let query = WireQuery {
            name: name.as_deref(),
            datacenter: datacenter.as_deref(),
            switch: switch.as_deref(),
            moref: moref.as_deref(),
        };
        match wire::find_portgroup(&inventory, &query) {
            Ok(pg) => Some(fill(&inventory, pg, config)),
            Err(e) => {
                lookup_error(diags, &query, e);
                None
            }
        }
    }
}
