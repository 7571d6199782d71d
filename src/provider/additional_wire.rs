//! Resource `vsphereipam_subnet_additional_wire`: lets VMs on another port group take
//! addresses from a subnet (one IP segment spread over several port groups).

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tfplugin::schema::{AttributeType, Block, Description, IdentitySchema, Schema};
use tfplugin::value::{Value, ValueEmpty, ValueString};
use tfplugin::{map, AttributePath, Diagnostics, Identity, Resource};

use super::schema::{computed, identity, replaces, required};
use super::values::{self, known, string};
use super::Shared;
use crate::store::StoreError;
use crate::vsphere::wire;

pub struct AdditionalWireResource {
    shared: Arc<Shared>,
}

impl AdditionalWireResource {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct AdditionalWireState<'a> {
    pub id: ValueString<'a>,
    pub subnet_id: ValueString<'a>,
    pub wire_id: ValueString<'a>,
}

fn state<'a>(subnet_id: &str, wire_id: &str) -> AdditionalWireState<'a> {
    AdditionalWireState {
        id: string(format!("{subnet_id}/{wire_id}")),
        subnet_id: string(subnet_id),
        wire_id: string(wire_id),
    }
}

/// Two resources for one attachment would detach it for both when either is destroyed.
pub fn already_attached(wire_id: &str, subnet_name: &str, subnet_id: &str) -> String {
    format!(
        "{wire_id} is already attached to subnet {subnet_name:?} by another \
         vsphereipam_subnet_additional_wire. Keep one resource per attachment; to manage an \
         existing one, import it: terraform import <address> {subnet_id}/{wire_id}."
    )
}

fn store_diag(diags: &mut Diagnostics, e: &StoreError) {
    let attribute = match e {
        StoreError::Refused(_) => Some("wire_id"),
        StoreError::NotFound(_) => Some("subnet_id"),
        _ => None,
    };
    values::store_error(diags, e, attribute);
}

#[async_trait]
impl Resource for AdditionalWireResource {
    type State<'a> = AdditionalWireState<'a>;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 1,
            block: Block {
                version: 1,
                description: Description::markdown(
                    "Attaches another wire to a subnet, so VMs on that port group take addresses \
                     from it too (one IP segment spread over several port groups). Wires detected \
                     automatically on the subnet's creation can be attached explicitly as well; \
                     destroying the explicit attachment keeps the automatic one.",
                ),
                attributes: map! {
                    "id" => computed(AttributeType::String, "`<subnet_id>/<wire_id>`."),
                    "subnet_id" => replaces(required(AttributeType::String,
                        "The subnet (`vsphereipam_ipsubnet.x.id`). Changing it replaces the attachment.")),
                    "wire_id" => replaces(required(AttributeType::String,
                        "The wire to attach (`data.vsphereipam_wire.x.id`); not the subnet's own wire. \
                         Changing it replaces the attachment."))
                },
                ..Default::default()
            },
        })
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let session = self.shared.session(diags)?;
        let (subnet_id, wire_id) = (known(&state.subnet_id)?, known(&state.wire_id)?);
        let lookup = subnet_id.clone();
        match session.store.blocking(move |s| s.subnet(&lookup)).await {
            Ok(Some(view))
                if view
                    .links
                    .iter()
                    .any(|l| l.wire_id == wire_id && l.attached) =>
            {
                Some((state, private))
            }
            Ok(_) => None,
            Err(e) => {
                store_diag(diags, &e);
                Some((state, private))
            }
        }
    }

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        proposed: Self::State<'a>,
        _config: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let mut planned = proposed;
        planned.id = match (known(&planned.subnet_id), known(&planned.wire_id)) {
            (Some(s), Some(w)) => string(format!("{s}/{w}")),
            _ => Value::Unknown,
        };
        let session = self.shared.session(diags)?;
        if let Some(wire_id) = known(&planned.wire_id) {
            let inventory = session.inventory_or_diag(diags).await?;
            let moref = wire::moref_of(&wire_id);
            match inventory.portgroups.iter().find(|pg| pg.moref == moref) {
                None => {
                    diags.error(
                        "Wire not found",
                        format!("{wire_id:?} is not a port group of this vCenter; use the `id` of a `vsphereipam_wire` data source."),
                        AttributePath::new("wire_id"),
                    );
                    return None;
                }
                Some(pg) if pg.uplink => {
                    diags.error(
                        "Uplink port groups are not wires",
                        format!(
                            "{wire_id:?} is the uplink port group of distributed switch {:?}: it \
                             carries the hosts' physical NICs, not VM traffic. Attach a VM port group.",
                            pg.switch_name
                        ),
                        AttributePath::new("wire_id"),
                    );
                    return None;
                }
                Some(_) => {}
            }
        }
        if let (Some(subnet_id), Some(wire_id)) =
            (known(&planned.subnet_id), known(&planned.wire_id))
        {
            match session.store.blocking(move |s| s.subnet(&subnet_id)).await {
                Ok(Some(view))
                    if view
                        .links
                        .iter()
                        .any(|l| l.wire_id == wire_id && l.attached) =>
                {
                    diags.error(
                        "Wire already attached",
                        already_attached(&wire_id, &view.subnet.name, &view.subnet.id),
                        AttributePath::new("wire_id"),
                    );
                    return None;
                }
                Ok(Some(view)) if view.subnet.wire_id == wire_id => {
                    diags.error(
                        "Cannot attach a subnet's own wire",
                        format!(
                            "{wire_id} is the wire of subnet {:?} already; attach another port group.",
                            view.subnet.name
                        ),
                        AttributePath::new("wire_id"),
                    );
                    return None;
                }
                Ok(_) => {}
                Err(e) => {
                    store_diag(diags, &e);
                    return None;
                }
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
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>, Vec<AttributePath>)> {
        // Both attributes replace the attachment (schema): nothing changes in place.
        Some((proposed, private, Vec::new()))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<Self::PrivateState<'a>> {
        Some(private)
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned: Self::State<'a>,
        _config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let session = self.shared.session(diags)?;
        let (subnet_id, wire_id) = (known(&planned.subnet_id)?, known(&planned.wire_id)?);
        let (s, w) = (subnet_id.clone(), wire_id.clone());
        let attached = session
            .store
            .blocking(move |st| st.attach_wire(&s, &w))
            .await;
        session.forget_plan_subnets().await;
        match attached {
            Ok(_) => Some((state(&subnet_id, &wire_id), private)),
            Err(e) => {
                store_diag(diags, &e);
                None
            }
        }
    }

    async fn update<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: Self::State<'a>,
        planned: Self::State<'a>,
        _config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
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
        let (subnet_id, wire_id) = (known(&state.subnet_id)?, known(&state.wire_id)?);
        let detached = session
            .store
            .blocking(move |s| s.detach_wire(&subnet_id, &wire_id))
            .await;
        session.forget_plan_subnets().await;
        match detached {
            Ok(()) => Some(()),
            Err(e) => {
                store_diag(diags, &e);
                None
            }
        }
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(identity(&[
            (
                "subnet_id",
                "subnet_id",
                "The subnet's id in the IPAM store.",
            ),
            (
                "wire_id",
                "wire_id",
                "The id of the wire (port group) attached to it.",
            ),
        ]))
    }

    async fn import_identity<'a>(
        &self,
        diags: &mut Diagnostics,
        identity: Identity,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let (Some(subnet_id), Some(wire_id)) =
            (identity.string("subnet_id"), identity.string("wire_id"))
        else {
            diags.root_error(
                "Incomplete identity",
                "Give both `subnet_id` and `wire_id`.",
            );
            return None;
        };
        self.import(diags, format!("{subnet_id}/{wire_id}")).await
    }

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        // Subnet ids hold no '/', wire ids do: split at the first one.
        let Some((subnet_id, wire_id)) = id.split_once('/') else {
            diags.root_error(
                "Invalid import id",
                format!("{id:?} is not `<subnet_id>/<wire_id>`."),
            );
            return None;
        };
        let session = self.shared.session(diags)?;
        let lookup = subnet_id.to_string();
        match session.store.blocking(move |s| s.subnet(&lookup)).await {
            Ok(Some(view))
                if view
                    .links
                    .iter()
                    .any(|l| l.wire_id == wire_id && l.attached) =>
            {
                Some((state(subnet_id, wire_id), ValueEmpty))
            }
            Ok(_) => {
                diags.root_error(
                    "Attachment not found",
                    format!("Wire {wire_id} is not attached to subnet {subnet_id}."),
                );
                None
            }
            Err(e) => {
                store_diag(diags, &e);
                None
            }
        }
    }
}
