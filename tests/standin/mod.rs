//! A stand-in for HashiCorp's vSphere provider (`registry.terraform.io/hashicorp/vsphere`),
//! served by the `e2e_move` test binary itself when Terraform starts it as a plugin.
//!
//! Terraform refuses to plan with a state whose resources name a provider that is not installed
//! ("This state requires provider registry.terraform.io/hashicorp/vsphere, but that provider
//! isn't available"), also when a `moved` block hands those resources to another provider, and
//! the real provider cannot be fetched here. This one does nothing: it offers
//! `vsphere_virtual_machine` with the part of the vSphere provider 2.x schema that the tests'
//! state files carry (as that provider writes them), so Terraform can decode them. The move
//! itself is `vsphereipam_vm`'s `MoveResourceState`.

use std::collections::HashMap;
use std::path::Path;

use async_trait::async_trait;
use tfplugin::schema::{
    Attribute, AttributeConstraint, AttributeType, Block, Description, NestedBlock, Schema,
};
use tfplugin::value::ValueEmpty;
use tfplugin::{map, AttributePath, Diagnostics, DynamicResource, Provider, Resource};

/// The provider source the stand-in is served as.
pub const SOURCE: &str = "registry.terraform.io/hashicorp/vsphere";

/// True when Terraform, not Cargo, started this process.
pub fn started_as_plugin() -> bool {
    std::env::var_os("TF_PLUGIN_MAGIC_COOKIE").is_some()
}

/// Serves the stand-in until Terraform stops it.
pub fn serve() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Err(e) = tfplugin::serve("vsphere", StandIn) {
        eprintln!("{e}");
        std::process::exit(1);
    }
}

/// A directory holding this binary under the name Terraform looks for.
pub fn plugin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = std::env::current_exe().expect("test binary path");
    std::os::unix::fs::symlink(&exe, dir.path().join("terraform-provider-vsphere"))
        .expect("link the test binary as a plugin");
    dir
}

/// The `dev_overrides` line for the stand-in.
pub fn dev_override(plugin_dir: &Path) -> String {
    format!("    \"{SOURCE}\" = \"{}\"\n", plugin_dir.display())
}

struct StandIn;

#[async_trait]
impl Provider for StandIn {
    type Config<'a> = ValueEmpty;
    type MetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 0,
            block: Block::default(),
        })
    }

    async fn validate<'a>(
        &self,
        _diags: &mut Diagnostics,
        _config: Self::Config<'a>,
    ) -> Option<()> {
        Some(())
    }

    fn get_resources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicResource>>> {
        Some(map! {
            "virtual_machine" => Kept(schema),
            "folder" => Kept(folder_schema)
        })
    }
}

fn attr(attr_type: AttributeType, constraint: AttributeConstraint) -> Attribute {
    Attribute {
        attr_type,
        description: Description::plain(""),
        constraint,
        ..Default::default()
    }
}

fn attrs(list: &[(&str, AttributeType, AttributeConstraint)]) -> HashMap<String, Attribute> {
    list.iter()
        .map(|(name, t, c)| (name.to_string(), attr(t.clone(), *c)))
        .collect()
}

/// `vsphere_virtual_machine` of the vSphere provider 2.x (schema version 3), in part.
pub fn schema() -> Schema {
    use AttributeConstraint::{Computed, Optional, OptionalComputed, Required};
    use AttributeType::{Bool, Number, String as Str};
    let strings = || AttributeType::List(Box::new(Str));
    let nic = attrs(&[
        ("network_id", Str, Required),
        ("adapter_type", Str, Optional),
        ("use_static_mac", Bool, Optional),
        ("mac_address", Str, OptionalComputed),
        ("bandwidth_limit", Number, Optional),
        ("bandwidth_reservation", Number, Optional),
        ("bandwidth_share_level", Str, Optional),
        ("bandwidth_share_count", Number, OptionalComputed),
        ("ovf_mapping", Str, Optional),
        ("physical_function", Str, Optional),
        ("key", Number, Computed),
        ("device_address", Str, Computed),
    ]);
    let disk = attrs(&[
        ("label", Str, Optional),
        ("size", Number, Optional),
        ("unit_number", Number, Optional),
        ("thin_provisioned", Bool, Optional),
        ("eagerly_scrub", Bool, Optional),
        ("datastore_id", Str, OptionalComputed),
        ("path", Str, OptionalComputed),
        ("uuid", Str, Computed),
        ("key", Number, Computed),
        ("device_address", Str, Computed),
    ]);
    let clone = attrs(&[
        ("template_uuid", Str, Required),
        ("linked_clone", Bool, Optional),
        ("timeout", Number, Optional),
    ]);
    let mut top = attrs(&[
        ("id", Str, Computed),
        ("name", Str, Required),
        ("resource_pool_id", Str, Required),
        ("datastore_id", Str, OptionalComputed),
        ("folder", Str, Optional),
        ("host_system_id", Str, OptionalComputed),
        ("num_cpus", Number, Optional),
        ("memory", Number, Optional),
        ("guest_id", Str, Optional),
        ("firmware", Str, Optional),
        ("annotation", Str, Optional),
        ("scsi_type", Str, Optional),
        ("scsi_controller_count", Number, Optional),
        ("wait_for_guest_net_timeout", Number, Optional),
        ("wait_for_guest_ip_timeout", Number, Optional),
        ("wait_for_guest_net_routable", Bool, Optional),
        ("shutdown_wait_timeout", Number, Optional),
        ("migrate_wait_timeout", Number, Optional),
        ("force_power_off", Bool, Optional),
        ("uuid", Str, Computed),
        ("moid", Str, Computed),
        ("change_version", Str, Computed),
        ("power_state", Str, Computed),
        ("default_ip_address", Str, Computed),
        ("vmware_tools_status", Str, Computed),
        ("vmx_path", Str, Computed),
        ("imported", Bool, Computed),
        ("reboot_required", Bool, Computed),
    ]);
    top.insert("guest_ip_addresses".into(), attr(strings(), Computed));
    top.insert(
        "tags".into(),
        attr(AttributeType::Set(Box::new(Str)), Optional),
    );
    top.insert(
        "custom_attributes".into(),
        attr(AttributeType::Map(Box::new(Str)), Optional),
    );
    let list = |attributes| {
        NestedBlock::List(Block {
            attributes,
            ..Default::default()
        })
    };
    Schema {
        version: 3,
        block: Block {
            version: 3,
            attributes: top,
            blocks: map! {
                "network_interface" => list(nic),
                "disk" => list(disk),
                "clone" => list(clone)
            },
            ..Default::default()
        },
    }
}

/// `vsphere_folder` (schema version 1), in part: a source of another type.
pub fn folder_schema() -> Schema {
    use AttributeConstraint::{Computed, Optional, Required};
    use AttributeType::String as Str;
    Schema {
        version: 1,
        block: Block {
            version: 1,
            attributes: attrs(&[
                ("id", Str, Computed),
                ("path", Str, Required),
                ("type", Str, Required),
                ("datacenter_id", Str, Optional),
            ]),
            ..Default::default()
        },
    }
}

/// A resource of the given schema that keeps what Terraform sends it and makes nothing.
struct Kept(fn() -> Schema);

#[async_trait]
impl Resource for Kept {
    type State<'a> = serde_json::Value;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some((self.0)())
    }

    async fn read<'a>(
        &self,
        _diags: &mut Diagnostics,
        state: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        Some((state, private))
    }

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        _proposed: Self::State<'a>,
        _config: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        diags.root_error(
            "Stand-in",
            "The hashicorp/vsphere stand-in creates nothing.",
        );
        None
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
        _planned: Self::State<'a>,
        _config: Self::State<'a>,
        _private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        diags.root_error(
            "Stand-in",
            "The hashicorp/vsphere stand-in creates nothing.",
        );
        None
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
        _state: Self::State<'a>,
        _private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        diags.root_error(
            "Stand-in",
            "The hashicorp/vsphere stand-in destroys nothing: the VM stays.",
        );
        None
    }
}
