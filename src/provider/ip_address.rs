//! Resource `vsphereipam_ip_address`: one address taken from a subnet for something that is not
//! a VM of this provider (a load balancer VIP, an appliance, a DNS record), the way NetBox's
//! "next available IP" is used. It shares the allocator and its guarantee with the VMs.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tfplugin::schema::{AttributeType, Block, Description, IdentitySchema, Schema};
use tfplugin::value::{Value, ValueEmpty, ValueString};
use tfplugin::{map, AttributePath, Diagnostics, Identity, Resource};

use super::schema::{computed, identity, optional, optional_computed, replaces, required};
use super::values::{self, known, opt_string, string};
use super::Shared;
use crate::ipam::ranges::parse_ip;
use crate::nics;
use crate::store::ops::{AllocRequest, SubnetView};
use crate::store::{AddressRecord, OwnerKind, Store, StoreError};

pub struct IpAddressResource {
    shared: Arc<Shared>,
}

impl IpAddressResource {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct IpAddressState<'a> {
    pub id: ValueString<'a>,
    pub subnet_id: ValueString<'a>,
    pub ip_address: ValueString<'a>,
    pub description: ValueString<'a>,
}

pub fn schema() -> Schema {
    Schema {
        version: 1,
        block: Block {
            version: 1,
            description: Description::markdown(
                "Takes one address from a subnet for something other than a VM of this provider \
                 (a load balancer VIP, an appliance): the next free one under the subnet's \
                 `alloc_policy`, or the one `ip_address` asks for. A requested address that a \
                 resource holds or that vCenter reports in use is not taken: the plan (or the \
                 apply, if it was taken in between) fails with a diagnostic on `ip_address` \
                 naming the holder. Addresses vCenter reports in use on the subnet's wires are \
                 skipped. Destroying the resource releases the address.",
            ),
            attributes: map! {
                "id" => computed(AttributeType::String, "Id of the allocation in the IPAM store."),
                "subnet_id" => replaces(required(AttributeType::String,
                    "The subnet (`vsphereipam_ipsubnet.x.id`). Changing it replaces the resource.")),
                "ip_address" => replaces(optional_computed(AttributeType::String,
                    "The address, of the subnet's family (IPv6 in canonical form, \
                     `2001:db8:0:1::50`): set it to ask for this one (it must be free), leave it \
                     unset to get the next free one. Changing it replaces the resource.")),
                "description" => optional(AttributeType::String,
                    "What the address is for (kept in the Terraform state).")
            },
            ..Default::default()
        },
    }
}

fn state_of<'a>(record: &AddressRecord) -> IpAddressState<'a> {
    IpAddressState {
        id: string(record.owner_id.clone()),
        subnet_id: string(record.subnet_id.clone()),
        ip_address: string(record.ip.to_string()),
        description: opt_string(record.description.clone()),
    }
}

fn requested_ip(
    diags: &mut Diagnostics,
    state: &IpAddressState<'_>,
) -> Option<Option<std::net::IpAddr>> {
    match known(&state.ip_address) {
        None => Some(None),
        Some(s) => match parse_ip(&s) {
            Ok(ip) => Some(Some(ip)),
            Err(why) => {
                diags.error(
                    "Invalid IP address",
                    format!(
                        "{why}. Write an address of the subnet's family, such as 10.20.0.50 \
                         or 2001:db8:0:1::50."
                    ),
                    AttributePath::new("ip_address"),
                );
                None
            }
        },
    }
}

/// The subnet `id`, or an error diagnostic on `subnet_id`.
async fn subnet_or_diag(diags: &mut Diagnostics, store: &Store, id: &str) -> Option<SubnetView> {
    let lookup = id.to_string();
    match store.blocking(move |s| s.subnet(&lookup)).await {
        Ok(Some(view)) => Some(view),
        Ok(None) => {
            diags.error(
                "Subnet not found",
                format!(
                    "No subnet {id:?} in the IPAM store {}. Use the id of a \
                     vsphereipam_ipsubnet.",
                    store.describe()
                ),
                AttributePath::new("subnet_id"),
            );
            None
        }
        Err(e) => {
            values::store_error(diags, &e, None);
            None
        }
    }
}

/// The attribute an allocation failure is about.
fn attribute_of(e: &StoreError) -> &'static str {
    match e {
        StoreError::AddressTaken { .. } | StoreError::Refused(_) => "ip_address",
        _ => "subnet_id",
    }
}

/// The allocation of `id`, if the store still holds it.
async fn record_of(store: &Store, id: String) -> Result<Option<AddressRecord>, StoreError> {
    store
        .blocking(move |s| {
            Ok(s.addresses_of_owner(OwnerKind::Address, &id)?
                .into_iter()
                .next())
        })
        .await
}

#[async_trait]
impl Resource for IpAddressResource {
    type State<'a> = IpAddressState<'a>;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        requested_ip(diags, &config);
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
        match record_of(&session.store, id).await {
            Ok(Some(record)) => Some((state_of(&record), private_state)),
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
        if planned.ip_address.is_null() {
            planned.ip_address = Value::Unknown;
        }
        // A requested address in a known subnet gets the create's checks now, in a
        // transaction that is rolled back: inside the range, not reserved, not held.
        if let (Some(subnet_id), Some(Some(ip))) = (
            known(&config.subnet_id),
            config.ip_address.as_ref_option().map(|s| parse_ip(s).ok()),
        ) {
            let session = self.shared.session(diags)?;
            let inventory = session.inventory_or_diag(diags).await?;
            let view = subnet_or_diag(diags, &session.store, &subnet_id).await?;
            let observed = nics::observed_in(&inventory, &view);
            let request = AllocRequest {
                subnet_id,
                ip: Some(ip),
                owner_kind: OwnerKind::Address,
                owner_id: "plan".into(),
                vm_uuid: None,
                mac: None,
                wire_id: None,
                pending: false,
                description: None,
            };
            let checked = session
                .store
                .blocking(move |s| Ok(s.check_allocations(&[request], &[observed], &[])))
                .await;
            if let Err(e) = checked.unwrap_or_else(|e| Err(e.into())) {
                values::store_error(diags, &e.error, Some(attribute_of(&e.error)));
                return None;
            }
        }
        Some((planned, ValueEmpty))
    }

    async fn plan_update<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: Self::State<'a>,
        proposed: Self::State<'a>,
        _config: Self::State<'a>,
        prior_private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>, Vec<AttributePath>)> {
        // `subnet_id` and `ip_address` replace the resource (schema); an unset `ip_address`
        // keeps the prior address, which Terraform proposes.
        Some((proposed, prior_private, Vec::new()))
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
        let ip = requested_ip(diags, &config)?;
        let subnet_id = known(&planned.subnet_id)?;
        let session = self.shared.session(diags)?;
        let inventory = session.inventory_or_diag(diags).await?;
        let view = subnet_or_diag(diags, &session.store, &subnet_id).await?;
        let observed = nics::observed_in(&inventory, &view);
        let request = AllocRequest {
            subnet_id,
            ip,
            owner_kind: OwnerKind::Address,
            owner_id: Store::new_id(),
            vm_uuid: None,
            mac: None,
            wire_id: None,
            pending: false,
            description: known(&config.description),
        };
        match session
            .store
            .blocking(move |s| s.allocate(&request, &observed))
            .await
        {
            Ok(record) => {
                tracing::info!(ip = %record.ip, subnet = %record.subnet_id, "address allocated");
                Some((state_of(&record), private))
            }
            Err(e) => {
                values::store_error(diags, &e, Some(attribute_of(&e)));
                None
            }
        }
    }

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        _prior: Self::State<'a>,
        planned: Self::State<'a>,
        _config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        // Only the description changes in place.
        let session = self.shared.session(diags)?;
        let id = known(&planned.id)?;
        let description = known(&planned.description);
        match session
            .store
            .blocking(move |s| s.describe_owner(OwnerKind::Address, &id, description.as_deref()))
            .await
        {
            Ok(()) => Some((planned, private)),
            Err(e) => {
                values::store_error(diags, &e, Some("description"));
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
        values::or_diag(
            diags,
            session
                .store
                .blocking(move |s| s.release_owner(OwnerKind::Address, &id))
                .await,
        )
        .map(drop)
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(identity(&[
            (
                "subnet_id",
                "subnet_id",
                "The subnet's id in the IPAM store.",
            ),
            ("ip_address", "ip_address", "The address held."),
        ]))
    }

    async fn import_identity<'a>(
        &self,
        diags: &mut Diagnostics,
        identity: Identity,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let (Some(subnet_id), Some(ip)) =
            (identity.string("subnet_id"), identity.string("ip_address"))
        else {
            diags.root_error(
                "Incomplete identity",
                "Give both `subnet_id` and `ip_address`.",
            );
            return None;
        };
        let session = self.shared.session(diags)?;
        let lookup = subnet_id.clone();
        let held = match session.store.blocking(move |s| s.addresses(&lookup)).await {
            Ok(records) => records.into_iter().find(|r| {
                r.owner_kind == OwnerKind::Address && parse_ip(&ip).is_ok_and(|a| a == r.ip)
            }),
            Err(e) => {
                values::store_error(diags, &e, None);
                return None;
            }
        };
        match held {
            Some(record) => Some((state_of(&record), ValueEmpty)),
            None => {
                diags.root_error(
                    "Address not found",
                    format!(
                        "No vsphereipam_ip_address holds {ip} in subnet {subnet_id} of the IPAM \
                         store {}.",
                        session.store.describe()
                    ),
                );
                None
            }
        }
    }

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let session = self.shared.session(diags)?;
        match record_of(&session.store, id.clone()).await {
            Ok(Some(record)) => Some((state_of(&record), ValueEmpty)),
            Ok(None) => {
                diags.root_error(
                    "Address not found",
                    format!(
                        "No vsphereipam_ip_address {id:?} in the IPAM store {}.",
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
