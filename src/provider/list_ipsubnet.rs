//! List resource `vsphereipam_ipsubnet` (`terraform query`, Terraform 1.14+): the store's
//! subnets of the provider's vCenter, read in one read-only store transaction.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tfplugin::schema::{AttributeType, Block, Description, Schema};
use tfplugin::value::ValueString;
use tfplugin::{map, Diagnostics, ListResource, Results};

use super::ipsubnet::{state_of, IpSubnetState};
use super::list_vm::name_pattern;
use super::schema::optional;
use super::values::{self, known};
use super::Shared;

/// The `config` block of the subnet list.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SubnetFilter<'a> {
    pub wire_id: ValueString<'a>,
    pub name_regex: ValueString<'a>,
}

pub struct IpSubnetList {
    shared: Arc<Shared>,
}

impl IpSubnetList {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[async_trait]
impl ListResource for IpSubnetList {
    type Config<'a> = SubnetFilter<'a>;
    type State<'a> = IpSubnetState<'a>;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 0,
            block: Block {
                version: 0,
                description: Description::markdown(
                    "The subnets of the IPAM store on the provider's vCenter, identified by `id`, \
                     each with the state a `vsphereipam_ipsubnet` import reads. Listing changes \
                     nothing in the store.",
                ),
                attributes: map! {
                    "wire_id" => optional(AttributeType::String,
                        "Only subnets on this wire, as their wire or an additional wire (the id \
                         of a `vsphereipam_wire`)."),
                    "name_regex" => optional(AttributeType::String,
                        "Only subnets whose name this regular expression matches (anywhere in \
                         the name; anchor it with `^...$` for the whole name). Classes such as \
                         `\\d`, `\\w` and `(?i)` are ASCII-only.")
                },
                ..Default::default()
            },
        })
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: SubnetFilter<'a>) -> Option<()> {
        name_pattern(diags, &config.name_regex).map(drop)
    }

    async fn list<'a>(
        &self,
        diags: &mut Diagnostics,
        config: SubnetFilter<'a>,
        results: &mut Results<'_, IpSubnetState<'a>>,
    ) -> Option<()> {
        let name = name_pattern(diags, &config.name_regex)?;
        let wire = known(&config.wire_id);
        let session = self.shared.session(diags)?;
        let inventory = match session.inventory.get().await {
            Ok(i) => i,
            Err(e) => {
                diags.root_error(
                    "Cannot load the vCenter inventory",
                    format!("{e:#}. Retry; if it persists, check the vCenter service health."),
                );
                return None;
            }
        };
        let vcenter = inventory.instance_uuid.clone();
        let mut usages = values::or_diag(
            diags,
            session
                .store
                .blocking(move |s| s.subnet_usages(Some(&vcenter)))
                .await,
        )?;
        usages.sort_by(|a, b| a.view.subnet.name.cmp(&b.view.subnet.name));
        for usage in usages {
            let view = &usage.view;
            if wire.as_deref().is_some_and(|w| !view.reaches(w))
                || name
                    .as_ref()
                    .is_some_and(|re| !re.is_match(view.subnet.name.as_bytes()))
            {
                continue;
            }
            let state = state_of(view, &IpSubnetState::default());
            let display = format!("{} ({})", view.subnet.name, view.subnet.spec.cidr);
            if !results.push(display, &state).await {
                break;
            }
        }
        Some(())
    }
}
