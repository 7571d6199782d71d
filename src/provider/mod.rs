//! The Terraform edge: the provider block, its resources and data sources, one file each with
//! its schema next to its CRUD. `tfplugin` types stay in this module; everything below it
//! (`vmlife`, `vsphere`, `ipam`, `store`) is plain Rust.

pub mod additional_wire;
pub mod config;
pub mod customization;
pub mod docs;
pub mod ip_address;
pub mod ip_addresses;
pub mod ipsubnet;
pub mod ipsubnet_data;
pub mod list_ipsubnet;
pub mod list_vm;
mod schema;
mod values;
pub mod vm;
mod vm_adopt;
pub mod vm_nic_fix;
pub mod wire_data;

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tfplugin::schema::{AttributeType, Block, Description, Schema};
use tfplugin::value::{ValueBool, ValueEmpty, ValueString};
use tfplugin::{
    map, AttributePath, Diagnostics, DynamicDataSource, DynamicListResource, DynamicResource,
    Provider,
};

use crate::store::Store;
use crate::vsphere::cache::InventoryCache;
use crate::vsphere::client::{self, ConnectError};
use crate::vsphere::model::Inventory;
use config::{RawSettings, Settings};
use schema::optional;
use values::known;

pub const PROVIDER_NAME: &str = "vsphereipam";

/// What a configured provider holds: the vCenter connection, its inventory snapshot, and the
/// IPAM store.
pub struct Session {
    pub settings: Settings,
    pub inventory: InventoryCache,
    pub store: Store,
    /// The snapshot whose reported addresses the store's observed records last mirrored.
    observed_synced: tokio::sync::Mutex<Weak<Inventory>>,
    /// Per-process state of VM creation (placements, abandoned creates).
    pub creates: crate::vmlife::Creates,
    /// Per vCenter, its subnets with their wires as this process's plan-time work sees them
    /// (see [`SubnetSnapshot`]), dropped by this process's changes to subnets or their wires.
    plan_subnets: tokio::sync::Mutex<HashMap<String, Arc<SubnetSnapshot>>>,
}

/// A vCenter's subnets with their wires, read once per process in one rolled-back transaction
/// of a few queries: a plan of 500 subnets refreshes them from it instead of opening 500
/// transactions, and checks new ranges against it. A plan is no more atomic than that snapshot
/// anyway, and every check made from it is advisory: create and update check again in their
/// transaction, so a subnet another process adds meanwhile is still refused there.
pub struct SubnetSnapshot {
    views: Vec<crate::store::ops::SubnetView>,
    by_id: HashMap<String, usize>,
}

impl SubnetSnapshot {
    fn new(views: Vec<crate::store::ops::SubnetView>) -> Self {
        let by_id = views
            .iter()
            .enumerate()
            .map(|(i, v)| (v.subnet.id.clone(), i))
            .collect();
        SubnetSnapshot { views, by_id }
    }

    pub fn get(&self, id: &str) -> Option<&crate::store::ops::SubnetView> {
        self.by_id.get(id).map(|&i| &self.views[i])
    }

    pub fn records(&self) -> impl Iterator<Item = &crate::store::SubnetRecord> {
        self.views.iter().map(|v| &v.subnet)
    }
}

impl Session {
    /// The inventory snapshot with its reported addresses mirrored as observed records (the
    /// one write a plan may make), or an error diagnostic when vCenter cannot deliver it.
    pub async fn inventory_or_diag(&self, diags: &mut Diagnostics) -> Option<Arc<Inventory>> {
        let inventory = self.inventory_unsynced(diags).await?;
        self.sync_observed(&inventory, false).await;
        Some(inventory)
    }

    /// The inventory without the observed-address sync (a store write), for reads that write
    /// nothing at all (list resources), or an error diagnostic.
    pub async fn inventory_unsynced(&self, diags: &mut Diagnostics) -> Option<Arc<Inventory>> {
        match self.inventory.get().await {
            Ok(i) => Some(i),
            Err(e) => {
                diags.root_error(
                    "Cannot load the vCenter inventory",
                    format!("{e:#}. Retry; if it persists, check the vCenter service health."),
                );
                None
            }
        }
    }

    /// The vCenter's subnets for plan-time work (see [`SubnetSnapshot`]). The lock is held
    /// while they load: concurrent first callers share one read, and a change's
    /// `forget_plan_subnets` waits for a load that may predate it and then drops it.
    pub async fn subnets_for_plan(
        &self,
        vcenter: &str,
    ) -> Result<Arc<SubnetSnapshot>, crate::store::StoreError> {
        let mut cached = self.plan_subnets.lock().await;
        if let Some(snapshot) = cached.get(vcenter) {
            return Ok(snapshot.clone());
        }
        let owned = vcenter.to_string();
        let views = self.store.blocking(move |s| s.subnet_views(&owned)).await?;
        let snapshot = Arc::new(SubnetSnapshot::new(views));
        cached.insert(vcenter.to_string(), snapshot.clone());
        Ok(snapshot)
    }

    /// A subnet as a plan's refresh reads it: from the snapshot of the vCenter its wire id
    /// names, else (a bare moref, a subnet the snapshot lacks) from the store itself.
    pub async fn subnet_for_plan(
        &self,
        id: &str,
        wire_id: Option<&str>,
    ) -> Result<Option<crate::store::ops::SubnetView>, crate::store::StoreError> {
        if let Some((vcenter, _)) = wire_id.and_then(|w| w.rsplit_once('/')) {
            if let Some(view) = self.subnets_for_plan(vcenter).await?.get(id) {
                return Ok(Some(view.clone()));
            }
        }
        let id = id.to_string();
        self.store.blocking(move |s| s.subnet(&id)).await
    }

    /// After this process changed a subnet or its wires: the next plan-time read loads them
    /// again.
    pub async fn forget_plan_subnets(&self) {
        self.plan_subnets.lock().await.clear();
    }

    /// Every subnet of the inventory's vCenter with its wire links, or an error diagnostic.
    pub async fn subnet_views_or_diag(
        &self,
        diags: &mut Diagnostics,
        inventory: &Inventory,
    ) -> Option<Vec<crate::store::ops::SubnetView>> {
        let vcenter = inventory.instance_uuid.clone();
        values::or_diag(
            diags,
            self.store.blocking(move |s| s.subnet_views(&vcenter)).await,
        )
    }

    /// Once per snapshot (or again when `force`, after a subnet was created): records the
    /// addresses vCenter reports inside subnets as observed, so conflicts name the VM or host
    /// using them. A failure only costs those names: allocation excludes reported addresses
    /// from the snapshot itself.
    pub async fn sync_observed(&self, inventory: &Arc<Inventory>, force: bool) {
        let mut last = self.observed_synced.lock().await;
        if !force && last.upgrade().is_some_and(|l| Arc::ptr_eq(&l, inventory)) {
            return;
        }
        let vcenter = inventory.instance_uuid.clone();
        let observations = crate::nics::observations(inventory);
        match self
            .store
            .blocking(move |s| s.sync_observed(&vcenter, &observations))
            .await
        {
            Ok((added, removed)) => {
                tracing::debug!(added, removed, "observed addresses synchronized");
                *last = Arc::downgrade(inventory);
            }
            Err(e) => tracing::warn!("cannot record observed addresses: {e}"),
        }
    }
}

/// Filled by `configure`, read by every resource and data source.
#[derive(Default)]
pub struct Shared {
    session: RwLock<Option<Arc<Session>>>,
}

impl Shared {
    /// The configured session, or an error diagnostic when `configure` did not succeed.
    pub fn session(&self, diags: &mut Diagnostics) -> Option<Arc<Session>> {
        let session = self.session.read().ok().and_then(|s| s.clone());
        if session.is_none() {
            diags.root_error(
                "Provider not configured",
                "The vsphereipam provider has no vCenter session; see the earlier configuration error.",
            );
        }
        session
    }
}

#[derive(Default, Clone)]
pub struct VsphereIpamProvider {
    shared: Arc<Shared>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ProviderConfig<'a> {
    pub vsphere_server: ValueString<'a>,
    pub user: ValueString<'a>,
    pub password: ValueString<'a>,
    pub allow_unverified_ssl: ValueBool,
    pub api_transport: ValueString<'a>,
    pub store: ValueString<'a>,
}

pub(crate) fn provider_schema() -> Schema {
    Schema {
        version: 1,
        block: Block {
            version: 1,
            description: Description::markdown(
                "IP address management for VMware vSphere: port groups become wires, IPv4 subnets \
                 live on wires in an IPAM store, and VMs get free addresses on hosts that reach them. \
                 VMs that HashiCorp's vSphere provider manages move over with a `moved` block, \
                 without a change to the VM: see \
                 [Moving from the vSphere provider](guides/migrating-from-vsphere.md).",
            ),
            attributes: map! {
                "vsphere_server" => optional(AttributeType::String,
                    "vCenter server name, optionally with `:port` and an `https://` prefix. \
                     Credentials written into it (`https://user:password@vc`) stand in for \
                     `user` and `password` when those are unset, and are never logged. \
                     Environment: `VSPHERE_SERVER`."),
                "user" => optional(AttributeType::String,
                    "vCenter user name. Environment: `VSPHERE_USER`."),
                "password" => tfplugin::schema::Attribute {
                    sensitive: true,
                    ..optional(AttributeType::String,
                        "vCenter password. Environment: `VSPHERE_PASSWORD`. Never logged.")
                },
                "allow_unverified_ssl" => optional(AttributeType::Bool,
                    "Accept a vCenter certificate that is not trusted by this machine. The \
                     certificate is verified unless this is `true`. Environment: \
                     `VSPHERE_ALLOW_UNVERIFIED_SSL`."),
                "api_transport" => optional(AttributeType::String,
                    "`auto` (default: VI/JSON on vCenter 8.0U1 and later, SOAP elsewhere), \
                     `soap` or `json`."),
                "store" => tfplugin::schema::Attribute {
                    sensitive: true,
                    ..optional(AttributeType::String,
                        "IPAM store URL: `sqlite:///path/ipam.db` (embedded, the default is a \
                         per-user file, created in a directory of mode 0700) or \
                         `postgres://user@host/db` for a store shared by many machines. \
                         Sensitive: a password in it (`user:password@`, `?password=`) is never \
                         logged or shown. Environment: `VSPHEREIPAM_STORE`.")
                }
            },
            ..Default::default()
        },
    }
}

#[async_trait]
impl Provider for VsphereIpamProvider {
    type Config<'a> = ProviderConfig<'a>;
    type MetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(provider_schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::Config<'a>) -> Option<()> {
        if let Some(t) = known(&config.api_transport) {
            if client::Transport::parse(&t).is_none() {
                diags.error(
                    format!("Invalid api_transport {t:?}"),
                    "api_transport must be \"auto\", \"soap\" or \"json\".",
                    AttributePath::new("api_transport"),
                );
            }
        }
        Some(())
    }

    async fn configure<'a>(
        &self,
        diags: &mut Diagnostics,
        terraform_version: String,
        config: Self::Config<'a>,
    ) -> Option<()> {
        let raw = RawSettings {
            vsphere_server: known(&config.vsphere_server),
            user: known(&config.user),
            password: known(&config.password),
            allow_unverified_ssl: config.allow_unverified_ssl.as_option(),
            api_transport: known(&config.api_transport),
            store: known(&config.store),
        };
        let settings = match config::resolve(raw, |name| std::env::var(name).ok()) {
            Ok(s) => s,
            Err(errors) => {
                for e in errors {
                    diags.error(e.summary, e.detail, AttributePath::new(e.attribute));
                }
                return None;
            }
        };
        tracing::info!(
            terraform_version,
            server = %settings.connect.server,
            user = %settings.connect.user,
            "configuring provider"
        );
        // Both are checked, so one run reports every setting to fix; neither waits for the
        // other.
        let store_url = settings.store.clone();
        let (store, client) = tokio::join!(
            tokio::task::spawn_blocking(move || Store::open(&store_url)),
            client::connect(&settings.connect)
        );
        let store = match store {
            Ok(Ok(store)) => Some(store),
            Ok(Err(e)) => {
                diags.error(
                    "Cannot open the IPAM store",
                    crate::redact::redact(&format!(
                        "{e}. Check `store` (VSPHEREIPAM_STORE): {}.",
                        settings.store
                    )),
                    AttributePath::new("store"),
                );
                None
            }
            Err(e) => {
                diags.root_error("Cannot open the IPAM store", e.to_string());
                None
            }
        };
        let client = match client {
            Ok(c) => {
                if let Some(budget) = find_out_budget(diags) {
                    c.set_find_out_budget(budget);
                }
                Some(c)
            }
            Err(e) => {
                connect_error(diags, &settings, e);
                None
            }
        };
        let (Some(store), Some(client)) = (store, client) else {
            return None;
        };
        tracing::info!(store = %store.describe(), "provider configured");
        let session = Arc::new(Session {
            settings,
            inventory: InventoryCache::new(client),
            store,
            observed_synced: Default::default(),
            creates: Default::default(),
            plan_subnets: Default::default(),
        });
        if let Ok(mut slot) = self.shared.session.write() {
            *slot = Some(session);
        }
        Some(())
    }

    fn get_resources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicResource>>> {
        Some(map! {
            "ipsubnet" => ipsubnet::IpSubnetResource::new(self.shared.clone()),
            "ip_address" => ip_address::IpAddressResource::new(self.shared.clone()),
            "subnet_additional_wire" => additional_wire::AdditionalWireResource::new(self.shared.clone()),
            "vm" => vm::VmResource::new(self.shared.clone()),
            "vm_nic_fix" => vm_nic_fix::NicFixResource::new(self.shared.clone()),
        })
    }

    fn get_data_sources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicDataSource>>> {
        Some(map! {
            "wire" => wire_data::WireDataSource::new(self.shared.clone()),
            "ipsubnet" => ipsubnet_data::IpSubnetDataSource::new(self.shared.clone()),
            "ip_addresses" => ip_addresses::IpAddressesDataSource::new(self.shared.clone()),
        })
    }

    fn get_list_resources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicListResource>>> {
        Some(map! {
            "vm_nic_fix" => list_vm::NicFixList::new(self.shared.clone()),
            "vm" => list_vm::VmList::new(self.shared.clone()),
            "ipsubnet" => list_ipsubnet::IpSubnetList::new(self.shared.clone()),
        })
    }
}

/// `VSPHEREIPAM_FIND_OUT_TIMEOUT`: how long to keep asking vCenter what a call whose answer
/// was lost did (default: the client's, a minute). A bad value is a warning and is ignored.
fn find_out_budget(diags: &mut Diagnostics) -> Option<std::time::Duration> {
    let raw = std::env::var("VSPHEREIPAM_FIND_OUT_TIMEOUT").ok()?;
    match humantime::parse_duration(raw.trim()) {
        Ok(d) => Some(d),
        Err(e) => {
            diags.root_warning(
                "Invalid VSPHEREIPAM_FIND_OUT_TIMEOUT",
                format!("{raw:?} is not a duration ({e}); write e.g. \"30s\" or \"2m\". The default applies."),
            );
            None
        }
    }
}

/// One diagnostic per connection failure, on the setting the user has to change.
fn connect_error(diags: &mut Diagnostics, settings: &Settings, error: ConnectError) {
    let server = &settings.connect.server;
    let (attribute, summary, detail) = match &error {
        ConnectError::Unreachable { reason, .. } => (
            "vsphere_server",
            format!("Cannot reach vCenter server {server:?}"),
            format!(
                "{reason}. Check `vsphere_server` (VSPHERE_SERVER): the host name, the port, and \
                 that this machine can reach it over HTTPS."
            ),
        ),
        ConnectError::UntrustedCertificate { reason, .. } => (
            "allow_unverified_ssl",
            format!("The TLS certificate of vCenter server {server:?} is not trusted"),
            format!(
                "{reason}. Install a certificate signed by a CA this machine trusts, or for a lab \
                 set `allow_unverified_ssl = true` (VSPHERE_ALLOW_UNVERIFIED_SSL=true)."
            ),
        ),
        ConnectError::InvalidLogin { user } => (
            "password",
            format!("vCenter rejected the login of user {user:?}"),
            "Check `user` (VSPHERE_USER) and `password` (VSPHERE_PASSWORD).".to_string(),
        ),
        ConnectError::Other(reason) => (
            "vsphere_server",
            format!("Cannot connect to vCenter server {server:?}"),
            format!("{reason}. Check `vsphere_server` and `api_transport`."),
        ),
    };
    tracing::warn!(%server, "{summary}");
    diags.error(summary, detail, AttributePath::new(attribute));
}
