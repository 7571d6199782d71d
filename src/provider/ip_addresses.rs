//! Data source `vsphereipam_ip_addresses`: the address records of one subnet (who holds each
//! address, on which VM and NIC, what for), read in one store transaction, with filters.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tfplugin::schema::{AttributeType, Block, Description, Schema};
use tfplugin::value::{Value, ValueEmpty, ValueList, ValueString};
use tfplugin::{map, AttributePath, DataSource, Diagnostics};

use super::schema::{computed, optional, required};
use super::values::{self, known, opt_string, string};
use super::Shared;
use crate::store::ops::AddressFilter;
use crate::store::{AddressRecord, OwnerKind, StoreError};
use crate::vsphere::model::Inventory;

pub struct IpAddressesDataSource {
    shared: Arc<Shared>,
}

impl IpAddressesDataSource {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct IpAddressesState<'a> {
    pub subnet_id: ValueString<'a>,
    pub owner_kind: ValueString<'a>,
    pub vm_id: ValueString<'a>,
    pub addresses: ValueList<Value<AddressItem<'a>>>,
}

/// One element of `addresses`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct AddressItem<'a> {
    pub ip_address: ValueString<'a>,
    pub owner_kind: ValueString<'a>,
    pub owner_id: ValueString<'a>,
    pub vm_id: ValueString<'a>,
    pub vm_name: ValueString<'a>,
    pub mac: ValueString<'a>,
    pub description: ValueString<'a>,
}

/// The owner kinds a filter may name, as `owner_kind` shows them.
const OWNER_KINDS: [OwnerKind; 5] = [
    OwnerKind::Vm,
    OwnerKind::NicFix,
    OwnerKind::Address,
    OwnerKind::Observed,
    OwnerKind::Manual,
];

fn kinds_text() -> String {
    OWNER_KINDS
        .iter()
        .map(|k| format!("`{}`", k.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn schema() -> Schema {
    let string = AttributeType::String;
    let item: HashMap<String, AttributeType> = [
        "ip_address",
        "owner_kind",
        "owner_id",
        "vm_id",
        "vm_name",
        "mac",
        "description",
    ]
    .into_iter()
    .map(|k| (k.to_string(), AttributeType::String))
    .collect();
    Schema {
        version: 1,
        block: Block {
            version: 1,
            description: Description::markdown(
                "Lists the addresses of one subnet that the IPAM store holds, sorted by \
                 address: those of resources and those vCenter reports in use (`observed`), \
                 read in one store transaction. Filter by `owner_kind` and `vm_id`.",
            ),
            attributes: map! {
                "subnet_id" => required(string.clone(),
                    "The subnet (`vsphereipam_ipsubnet.x.id` or `data.vsphereipam_ipsubnet.x.id`)."),
                "owner_kind" => optional(string.clone(), &format!(
                    "Only addresses whose holder is of this kind: {}.", kinds_text())),
                "vm_id" => optional(string.clone(),
                    "Only addresses of the VM with this UUID (`config.uuid`)."),
                "addresses" => computed(AttributeType::List(Box::new(AttributeType::Object(item))), &format!(
                    "The addresses, sorted. Each has `ip_address`; `owner_kind` ({}); \
                     `owner_id` (the VM UUID for VMs and NIC records, the resource id for \
                     `vsphereipam_ip_address`, who reports it for `observed`); `vm_id` and \
                     `vm_name` (null when no VM, `vm_name` null when the VM is not in \
                     vCenter); `mac` (null when no NIC); `description` (null when none).",
                    kinds_text()))
            },
            ..Default::default()
        },
    }
}

fn owner_kind(diags: &mut Diagnostics, config: &IpAddressesState<'_>) -> Option<Option<OwnerKind>> {
    let Some(text) = known(&config.owner_kind) else {
        return Some(None);
    };
    match OWNER_KINDS.iter().find(|k| k.as_str() == text) {
        Some(kind) => Some(Some(*kind)),
        None => {
            diags.error(
                "Unknown owner_kind",
                format!(
                    "{text:?} is not an owner kind. Use one of {}.",
                    kinds_text()
                ),
                AttributePath::new("owner_kind"),
            );
            None
        }
    }
}

fn item_of<'a>(inventory: &Inventory, a: &AddressRecord) -> Value<AddressItem<'a>> {
    let vm_name = a.vm_uuid.as_deref().and_then(|uuid| {
        inventory
            .vms
            .iter()
            .find(|vm| vm.uuid.eq_ignore_ascii_case(uuid))
            .map(|vm| vm.name.clone())
    });
    Value::Value(AddressItem {
        ip_address: string(a.ip.to_string()),
        owner_kind: string(a.owner_kind.as_str()),
        owner_id: string(a.owner_id.clone()),
        vm_id: opt_string(a.vm_uuid.clone()),
        vm_name: opt_string(vm_name),
        mac: opt_string(a.mac.clone()),
        description: opt_string(a.description.clone()),
    })
}

#[async_trait]
impl DataSource for IpAddressesDataSource {
    type State<'a> = IpAddressesState<'a>;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        owner_kind(diags, &config);
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        config: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<Self::State<'a>> {
        let kind = owner_kind(diags, &config)?;
        let subnet_id = known(&config.subnet_id)?;
        let session = self.shared.session(diags)?;
        // Loading the inventory brings the observed records up to date first.
        let inventory = session.inventory_or_diag(diags).await?;
        let filter = AddressFilter {
            owner_kind: kind,
            vm_uuid: known(&config.vm_id),
        };
        let id = subnet_id.clone();
        match session
            .store
            .blocking(move |s| s.subnet_addresses(&id, &filter))
            .await
        {
            Ok(records) => Some(IpAddressesState {
                addresses: Value::Value(records.iter().map(|a| item_of(&inventory, a)).collect()),
                ..config
            }),
            Err(StoreError::NotFound(_)) => {
                diags.error(
                    "Subnet not found",
                    format!(
                        "No subnet {subnet_id:?} in the IPAM store {}. Use the id of a \
                         vsphereipam_ipsubnet.",
                        session.store.describe()
                    ),
                    AttributePath::new("subnet_id"),
                );
                None
            }
            Err(e) => {
                values::store_error(diags, &e, Some("subnet_id"));
                None
            }
        }
    }
}
