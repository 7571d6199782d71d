//! A provider that does no work, served by the bench binary itself when Terraform starts it.
//!
//! It measures the floor any plugin served by `crates/tfplugin` sets for `plan_overhead_ratio` and
//! `handshake_ms`: `noop_subnet`
//! has exactly the schema and state type of `vsphereipam_ipsubnet` but reads and plans without
//! touching a store or vCenter (its resource identity included: Terraform 1.12+ stores and
//! compares an identity per resource of a type that declares one, work that belongs to the
//! schema, not to the provider), and the data source `noop_wire` has the schema of
//! `vsphereipam_wire` and answers a fixed port group, so the bench's no-op configuration has the
//! same shape as ours (a data source every subnet refers to); `noop_data` has the three
//! attributes of a minimal resource. The
//! gap between `terraform_data` and these two is Terraform's cost of a plugin resource of that
//! shape (gRPC, msgpack, per-attribute schema handling), which no provider code can remove.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::path::Path;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tfplugin::schema::{
    Attribute, AttributeConstraint, AttributeType, Block, Description, IdentitySchema, Schema,
};
use tfplugin::value::{Value, ValueEmpty, ValueString};
use tfplugin::{
    map, AttributePath, DataSource, Diagnostics, DynamicDataSource, DynamicResource, Provider,
    Resource,
};
use vsphereipam::provider::ipsubnet::{self, IpSubnetState};
use vsphereipam::provider::wire_data::{self, WireState};

/// Provider source the bench's working directories point at the bench binary.
pub const SOURCE: &str = "registry.terraform.io/bench/noop";

/// True when Terraform, not a person or Cargo, started this process.
pub fn started_as_plugin() -> bool {
    std::env::var_os("TF_PLUGIN_MAGIC_COOKIE").is_some()
}

/// Serves the no-op provider until Terraform stops it.
pub fn serve() {
    // As in the provider's main: two rustls crypto providers are compiled in, so pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Err(e) = tfplugin::serve("noop", NoopProvider) {
        eprintln!("{e}");
        std::process::exit(1);
    }
}

/// A directory holding this binary under the plugin name Terraform looks for.
pub fn plugin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = std::env::current_exe().expect("bench binary path");
    std::os::unix::fs::symlink(&exe, dir.path().join("terraform-provider-noop"))
        .expect("link the bench binary as a plugin");
    dir
}

/// CLI config with the no-op provider's `dev_overrides`.
pub fn cli_config(plugin_dir: &Path) -> String {
    format!(
        "provider_installation {{\n  dev_overrides {{\n    \"{SOURCE}\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
        plugin_dir.display()
    )
}

struct NoopProvider;

#[async_trait]
impl Provider for NoopProvider {
    type Config<'a> = ValueEmpty;
    type MetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 1,
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
        Some(map! { "subnet" => Noop::<Subnet>::new(), "data" => Noop::<Data>::new() })
    }

    fn get_data_sources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicDataSource>>> {
        Some(map! { "wire" => NoopWire })
    }
}

/// `vsphereipam_wire`'s schema, answering one port group of the simulator's size without
/// looking it up.
struct NoopWire;

#[async_trait]
impl DataSource for NoopWire {
    type State<'a> = WireState<'a>;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(wire_data::schema())
    }

    async fn read<'a>(
        &self,
        _diags: &mut Diagnostics,
        config: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<Self::State<'a>> {
        let s = |v: &str| Value::Value(v.to_string().into());
        let list = |vs: &[&str]| Value::Value(vs.iter().map(|v| s(v)).collect());
        Some(WireState {
            id: s("00000000-0000-0000-0000-000000000000/dvportgroup-54"),
            moref: s("dvportgroup-54"),
            datacenter: s("DC0"),
            kind: s("distributed"),
            vlan_id: Value::Value(130),
            switch_name: s("DSwitch0"),
            switch_uuid: s("00000000-0000-0000-0000-000000000000"),
            host_ids: list(&["host-15", "host-27", "host-34", "host-41"]),
            vm_ips: list(&["10.30.0.41"]),
            vmkernel_ips: list(&[]),
            ..config
        })
    }
}

/// What the no-op resources differ in: their schema and state, and their computed values.
trait Shape: Send + Sync + 'static {
    type State<'a>: Serialize + DeserializeOwned + Send;
    fn schema() -> Schema;
    /// The resource identity, if the shape has one.
    fn identity() -> Option<IdentitySchema> {
        None
    }
    /// Computed attributes of a create plan: unknown until applied.
    fn plan(state: &mut Self::State<'_>);
    /// Computed attributes once created.
    fn create(state: &mut Self::State<'_>);
}

/// A resource that keeps what Terraform sends it: reads return the state, plans the proposal.
struct Noop<T>(PhantomData<T>);

impl<T> Noop<T> {
    fn new() -> Self {
        Noop(PhantomData)
    }
}

#[async_trait]
impl<T: Shape> Resource for Noop<T> {
    type State<'a> = T::State<'a>;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(T::schema())
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        T::identity()
    }

    async fn validate<'a>(&self, _diags: &mut Diagnostics, _config: Self::State<'a>) -> Option<()> {
        Some(())
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
        _diags: &mut Diagnostics,
        proposed: Self::State<'a>,
        _config: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let mut planned = proposed;
        T::plan(&mut planned);
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
        _diags: &mut Diagnostics,
        planned: Self::State<'a>,
        _config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let mut state = planned;
        T::create(&mut state);
        Some((state, private))
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
        _diags: &mut Diagnostics,
        _state: Self::State<'a>,
        _private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        Some(())
    }
}

/// `vsphereipam_ipsubnet`'s schema and state type.
struct Subnet;

impl Shape for Subnet {
    type State<'a> = IpSubnetState<'a>;

    fn schema() -> Schema {
        ipsubnet::schema()
    }

    fn identity() -> Option<IdentitySchema> {
        Some(ipsubnet::identity_schema())
    }

    fn plan(s: &mut IpSubnetState<'_>) {
        for v in [
            &mut s.id,
            &mut s.netmask,
            &mut s.start_ip,
            &mut s.end_ip,
            &mut s.alloc_policy,
        ] {
            if v.is_null() {
                *v = Value::Unknown;
            }
        }
        s.prefix_length = Value::Unknown;
        s.additional_wire_ids = Value::Unknown;
    }

    fn create(s: &mut IpSubnetState<'_>) {
        for (v, default) in [
            (&mut s.id, "noop"),
            (&mut s.netmask, "255.255.255.0"),
            (&mut s.start_ip, "10.0.0.1"),
            (&mut s.end_ip, "10.0.0.254"),
            (&mut s.alloc_policy, "stepdown"),
        ] {
            if !v.is_value() {
                *v = Value::Value(default.into());
            }
        }
        s.prefix_length = Value::Value(24);
        s.additional_wire_ids = Value::Value(Vec::new());
    }
}

/// Three attributes, the shape of `terraform_data` without its `triggers_replace`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct DataState<'a> {
    id: ValueString<'a>,
    input: ValueString<'a>,
    output: ValueString<'a>,
}

struct Data;

impl Shape for Data {
    type State<'a> = DataState<'a>;

    fn schema() -> Schema {
        let attribute = |constraint| Attribute {
            attr_type: AttributeType::String,
            description: Description::plain(""),
            constraint,
            ..Default::default()
        };
        Schema {
            version: 0,
            block: Block {
                attributes: map! {
                    "id" => attribute(AttributeConstraint::Computed),
                    "input" => attribute(AttributeConstraint::Optional),
                    "output" => attribute(AttributeConstraint::Computed),
                },
                ..Default::default()
            },
        }
    }

    fn plan(s: &mut DataState<'_>) {
        s.id = Value::Unknown;
        s.output = s.input.clone();
    }

    fn create(s: &mut DataState<'_>) {
        s.id = Value::Value("noop".into());
    }
}
