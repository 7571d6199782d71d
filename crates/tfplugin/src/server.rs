//! The tfplugin6 `Provider` service: every RPC of protocol 6.10, routed to the provider's
//! resources and data sources. RPCs this provider has nothing for (functions, ephemeral and
//! list resources, state stores, actions, identity, moves) answer with a diagnostic.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures::FutureExt;
use tonic::{Request, Response, Status, Streaming};

use crate::codec::{self, Tree};
use crate::data_source::DynamicDataSource;
use crate::diagnostics::{AttributePath, Diagnostics};
use crate::proto::tfplugin6 as pb;
use crate::provider::DynamicProvider;
use crate::resource::DynamicResource;
use crate::schema::{AttributeConstraint, Block, NestedBlock, Replace, Schema};

type Rpc<T> = Result<Response<T>, Status>;
type BoxStream<T> = Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send + 'static>>;

struct ResourceType {
    resource: Box<dyn DynamicResource>,
    schema: Schema,
}

struct DataSourceType {
    data_source: Box<dyn DynamicDataSource>,
}

/// The provider as the gRPC service sees it: its types looked up once, its schema encoded once.
pub struct ProviderService {
    provider: Box<dyn DynamicProvider>,
    resources: HashMap<String, ResourceType>,
    data_sources: HashMap<String, DataSourceType>,
    schema: pb::get_provider_schema::Response,
}

fn capabilities() -> pb::ServerCapabilities {
    pb::ServerCapabilities {
        plan_destroy: true,
        get_provider_schema_optional: true,
        move_resource_state: false,
        generate_resource_config: false,
    }
}

impl ProviderService {
    pub fn new(name: &str, provider: impl DynamicProvider) -> Self {
        let mut diags = Diagnostics::default();
        let prefix = format!("{name}_");
        let mut resources = HashMap::new();
        for (short, resource) in provider.get_resources(&mut diags).unwrap_or_default() {
            if let Some(schema) = resource.schema(&mut diags) {
                resources.insert(
                    format!("{prefix}{short}"),
                    ResourceType { resource, schema },
                );
            }
        }
        let mut data_sources = HashMap::new();
        let mut data_source_schemas = HashMap::new();
        for (short, data_source) in provider.get_data_sources(&mut diags).unwrap_or_default() {
            if let Some(schema) = data_source.schema(&mut diags) {
                let full = format!("{prefix}{short}");
                data_source_schemas.insert(full.clone(), (&schema).into());
                data_sources.insert(full, DataSourceType { data_source });
            }
        }
        let provider_schema = provider.schema(&mut diags);
        let meta = provider.meta_schema(&mut diags);
        let schema = pb::get_provider_schema::Response {
            provider: provider_schema.as_ref().map(Into::into),
            resource_schemas: resources
                .iter()
                .map(|(k, r)| (k.clone(), (&r.schema).into()))
                .collect(),
            data_source_schemas,
            provider_meta: meta.as_ref().map(Into::into),
            server_capabilities: Some(capabilities()),
            diagnostics: diags.into_proto(),
            ..Default::default()
        };
        Self {
            provider: Box::new(provider),
            resources,
            data_sources,
            schema,
        }
    }

    fn resource(&self, diags: &mut Diagnostics, type_name: &str) -> Option<&ResourceType> {
        let r = self.resources.get(type_name);
        if r.is_none() {
            unknown_type(diags, "resource", type_name);
        }
        r
    }

    fn data_source(&self, diags: &mut Diagnostics, type_name: &str) -> Option<&DataSourceType> {
        let d = self.data_sources.get(type_name);
        if d.is_none() {
            unknown_type(diags, "data source", type_name);
        }
        d
    }
}

fn unknown_type(diags: &mut Diagnostics, kind: &str, type_name: &str) {
    diags.root_error(
        format!("Unknown {kind} type {type_name:?}"),
        format!("This provider has no {kind} type {type_name:?}; check the spelling and the provider version."),
    );
}

fn unsupported(what: &str) -> Vec<pb::Diagnostic> {
    let mut diags = Diagnostics::default();
    diags.root_error(
        format!("{what} not supported"),
        format!("The vsphereipam provider does not offer {what}."),
    );
    diags.into_proto()
}

/// Decodes a `DynamicValue` (absent or empty is null); a malformed one becomes a diagnostic.
fn tree(diags: &mut Diagnostics, value: &Option<pb::DynamicValue>, what: &str) -> Option<Tree> {
    let Some(v) = value else {
        return Some(Tree::Nil);
    };
    let decoded = if !v.msgpack.is_empty() {
        codec::read_msgpack(&v.msgpack)
    } else if !v.json.is_empty() {
        codec::read_json(&v.json)
    } else {
        Ok(Tree::Nil)
    };
    match decoded {
        Ok(t) => Some(t),
        Err(e) => {
            diags.root_error(
                format!("Malformed {what}"),
                format!("{e}. Terraform sent a value this provider cannot read; check that Terraform and the provider are compatible versions."),
            );
            None
        }
    }
}

/// Private state is ours alone: bytes we cannot read (from another provider version) count as
/// none rather than blocking every plan of the resource.
fn private(_diags: &mut Diagnostics, bytes: &[u8]) -> Option<Tree> {
    Some(codec::read_msgpack(bytes).unwrap_or_else(|e| {
        tracing::debug!("private state ignored: {e}");
        Tree::Nil
    }))
}

fn dynamic(msgpack: Vec<u8>) -> Option<pb::DynamicValue> {
    Some(pb::DynamicValue {
        msgpack,
        json: Vec::new(),
    })
}

fn null() -> Option<pb::DynamicValue> {
    dynamic(vec![0xc0])
}

/// Runs a provider call; a panic in it becomes an error diagnostic instead of a dead stream.
async fn guarded<T>(diags: &mut Diagnostics, f: impl Future<Output = Option<T>>) -> Option<T> {
    match AssertUnwindSafe(f).catch_unwind().await {
        Ok(v) => v,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!("provider call panicked: {msg}");
            diags.root_error(
                "Provider error",
                format!(
                    "The provider failed unexpectedly ({msg}). This is a bug; please report it."
                ),
            );
            None
        }
    }
}

/// Fills the schema's defaults into `proposed` where the configuration leaves an attribute out
/// (top level and inside nested blocks, element by element).
pub(crate) fn fill_defaults(block: &Block, proposed: &mut Tree, config: &Tree) {
    let Tree::Map(entries) = proposed else {
        return;
    };
    for (key, value) in entries.iter_mut() {
        let Some(name) = key.as_str() else { continue };
        let c = codec::get(config, name).unwrap_or(&Tree::Nil);
        if let Some(attribute) = block.attributes.get(name) {
            if let (Some(default), Tree::Nil, Tree::Nil) = (&attribute.default, &*value, c) {
                *value = codec::from_json(default.clone());
            }
        } else if let Some(nested) = block.blocks.get(name) {
            let inner = nested.block();
            match (value, c) {
                (Tree::Array(items), Tree::Array(cs)) => {
                    for (item, c) in items.iter_mut().zip(cs) {
                        fill_defaults(inner, item, c);
                    }
                }
                (item @ Tree::Map(_), c) => fill_defaults(inner, item, c),
                _ => {}
            }
        }
    }
}

/// Paths of attributes marked `requires_replace` whose planned value differs from the prior one
/// (top level and inside nested blocks, element by element), by a change of the configuration.
pub(crate) fn replaced_paths(
    block: &Block,
    prior: &Tree,
    planned: &Tree,
    config: &Tree,
    base: &AttributePath,
    out: &mut Vec<AttributePath>,
) {
    for (name, attribute) in &block.attributes {
        let before = codec::get(prior, name).unwrap_or(&Tree::Nil);
        let after = codec::get(planned, name).unwrap_or(&Tree::Nil);
        let left_to_provider = matches!(
            attribute.constraint,
            AttributeConstraint::Computed | AttributeConstraint::OptionalComputed
        ) && matches!(codec::get(config, name), None | Some(Tree::Nil));
        let replaces = match attribute.requires_replace {
            Replace::Never => false,
            Replace::Always => true,
            Replace::OnceSet => !matches!(before, Tree::Nil),
        };
        if replaces && !left_to_provider && before != after {
            out.push(base.clone().attribute(name));
        }
    }
    for (name, nested) in &block.blocks {
        let inner = nested.block();
        let (Some(p), Some(q)) = (codec::get(prior, name), codec::get(planned, name)) else {
            continue;
        };
        let c = codec::get(config, name).unwrap_or(&Tree::Nil);
        match (nested, p, q) {
            (NestedBlock::Single(_) | NestedBlock::Group(_), _, _) => {
                replaced_paths(inner, p, q, c, &base.clone().attribute(name), out)
            }
            (NestedBlock::List(_) | NestedBlock::Optional(_), Tree::Array(ps), Tree::Array(qs)) => {
                let cs: &[Tree] = match c {
                    Tree::Array(cs) => cs,
                    _ => &[],
                };
                for (i, (p, q)) in ps.iter().zip(qs).enumerate() {
                    replaced_paths(
                        inner,
                        p,
                        q,
                        cs.get(i).unwrap_or(&Tree::Nil),
                        &base.clone().attribute(name).index(i as i64),
                        out,
                    );
                }
            }
            _ => {}
        }
    }
}

#[tonic::async_trait]
impl pb::provider_server::Provider for Arc<ProviderService> {
    async fn get_metadata(
        &self,
        _: Request<pb::get_metadata::Request>,
    ) -> Rpc<pb::get_metadata::Response> {
        let mut resources: Vec<_> = self.resources.keys().cloned().collect();
        resources.sort();
        let mut data_sources: Vec<_> = self.data_sources.keys().cloned().collect();
        data_sources.sort();
        Ok(Response::new(pb::get_metadata::Response {
            server_capabilities: Some(capabilities()),
            resources: resources
                .into_iter()
                .map(|type_name| pb::get_metadata::ResourceMetadata { type_name })
                .collect(),
            data_sources: data_sources
                .into_iter()
                .map(|type_name| pb::get_metadata::DataSourceMetadata { type_name })
                .collect(),
            ..Default::default()
        }))
    }

    async fn get_provider_schema(
        &self,
        _: Request<pb::get_provider_schema::Request>,
    ) -> Rpc<pb::get_provider_schema::Response> {
        Ok(Response::new(self.schema.clone()))
    }

    async fn validate_provider_config(
        &self,
        request: Request<pb::validate_provider_config::Request>,
    ) -> Rpc<pb::validate_provider_config::Response> {
        let r = request.into_inner();
        let mut diags = Diagnostics::default();
        if let Some(config) = tree(&mut diags, &r.config, "provider configuration") {
            let mut inner = Diagnostics::default();
            guarded(&mut diags, self.provider.validate(&mut inner, config)).await;
            merge(&mut diags, inner);
        }
        Ok(Response::new(pb::validate_provider_config::Response {
            diagnostics: diags.into_proto(),
        }))
    }

    async fn validate_resource_config(
        &self,
        request: Request<pb::validate_resource_config::Request>,
    ) -> Rpc<pb::validate_resource_config::Response> {
        let r = request.into_inner();
        let mut diags = Diagnostics::default();
        if let (Some(t), Some(config)) = (
            self.resource(&mut diags, &r.type_name),
            tree(&mut diags, &r.config, "configuration"),
        ) {
            let mut inner = Diagnostics::default();
            guarded(&mut diags, t.resource.validate(&mut inner, config)).await;
            merge(&mut diags, inner);
        }
        Ok(Response::new(pb::validate_resource_config::Response {
            diagnostics: diags.into_proto(),
        }))
    }

    async fn validate_data_resource_config(
        &self,
        request: Request<pb::validate_data_resource_config::Request>,
    ) -> Rpc<pb::validate_data_resource_config::Response> {
        let r = request.into_inner();
        let mut diags = Diagnostics::default();
        if let (Some(t), Some(config)) = (
            self.data_source(&mut diags, &r.type_name),
            tree(&mut diags, &r.config, "configuration"),
        ) {
            let mut inner = Diagnostics::default();
            guarded(&mut diags, t.data_source.validate(&mut inner, config)).await;
            merge(&mut diags, inner);
        }
        Ok(Response::new(pb::validate_data_resource_config::Response {
            diagnostics: diags.into_proto(),
        }))
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<pb::upgrade_resource_state::Request>,
    ) -> Rpc<pb::upgrade_resource_state::Response> {
        let r = request.into_inner();
        let mut diags = Diagnostics::default();
        let mut upgraded = None;
        if let Some(t) = self.resource(&mut diags, &r.type_name) {
            let raw = r.raw_state.unwrap_or_default();
            if raw.json.is_empty() {
                diags.root_error(
                    "Cannot upgrade this state",
                    "The state was written in Terraform's legacy flatmap format, which this provider does not read. Remove the resource from the state and import it again.",
                );
            } else if r.version > t.schema.version {
                diags.root_error(
                    "State written by a newer provider",
                    format!("The state has schema version {}, this provider knows up to {}. Use the provider version that wrote it.", r.version, t.schema.version),
                );
            } else {
                match codec::read_json(&raw.json) {
                    Ok(json) => {
                        upgraded = dynamic(codec::tree_to_msgpack(&crate::upgrade::conform(
                            &json,
                            &t.schema.block,
                        )))
                    }
                    Err(e) => diags.root_error("Malformed state", format!("{e}.")),
                }
            }
        }
        Ok(Response::new(pb::upgrade_resource_state::Response {
            upgraded_state: upgraded,
            diagnostics: diags.into_proto(),
        }))
    }

    async fn get_resource_identity_schemas(
        &self,
        _: Request<pb::get_resource_identity_schemas::Request>,
    ) -> Rpc<pb::get_resource_identity_schemas::Response> {
        Ok(Response::new(
            pb::get_resource_identity_schemas::Response::default(),
        ))
    }

    async fn upgrade_resource_identity(
        &self,
        _: Request<pb::upgrade_resource_identity::Request>,
    ) -> Rpc<pb::upgrade_resource_identity::Response> {
        Ok(Response::new(pb::upgrade_resource_identity::Response {
            upgraded_identity: None,
            diagnostics: unsupported("resource identity"),
        }))
    }

    async fn configure_provider(
        &self,
        request: Request<pb::configure_provider::Request>,
    ) -> Rpc<pb::configure_provider::Response> {
        let r = request.into_inner();
        let mut diags = Diagnostics::default();
        if let Some(config) = tree(&mut diags, &r.config, "provider configuration") {
            let mut inner = Diagnostics::default();
            guarded(
                &mut diags,
                self.provider
                    .configure(&mut inner, r.terraform_version, config),
            )
            .await;
            merge(&mut diags, inner);
        }
        Ok(Response::new(pb::configure_provider::Response {
            diagnostics: diags.into_proto(),
        }))
    }

    async fn read_resource(
        &self,
        request: Request<pb::read_resource::Request>,
    ) -> Rpc<pb::read_resource::Response> {
        let r = request.into_inner();
        let mut diags = Diagnostics::default();
        let mut out = pb::read_resource::Response::default();
        let inputs = (
            self.resource(&mut diags, &r.type_name),
            tree(&mut diags, &r.current_state, "current state"),
            private(&mut diags, &r.private),
            tree(&mut diags, &r.provider_meta, "provider_meta"),
        );
        if let (Some(t), Some(state), Some(private), Some(meta)) = inputs {
            if matches!(state, Tree::Nil) {
                out.new_state = null();
            } else {
                let mut inner = Diagnostics::default();
                match guarded(
                    &mut diags,
                    t.resource.read(&mut inner, state, private, meta),
                )
                .await
                {
                    Some((state, private)) => {
                        out.new_state = dynamic(state);
                        out.private = private;
                    }
                    None if inner.has_errors() => {}
                    None => out.new_state = null(),
                }
                merge(&mut diags, inner);
            }
        }
        out.diagnostics = diags.into_proto();
        Ok(Response::new(out))
    }

    async fn plan_resource_change(
        &self,
        request: Request<pb::plan_resource_change::Request>,
    ) -> Rpc<pb::plan_resource_change::Response> {
        let r = request.into_inner();
        let mut diags = Diagnostics::default();
        let mut out = pb::plan_resource_change::Response::default();
        let inputs = (
            self.resource(&mut diags, &r.type_name),
            tree(&mut diags, &r.prior_state, "prior state"),
            tree(&mut diags, &r.proposed_new_state, "proposed state"),
            tree(&mut diags, &r.config, "configuration"),
            private(&mut diags, &r.prior_private),
            tree(&mut diags, &r.provider_meta, "provider_meta"),
        );
        if let (Some(t), Some(prior), Some(proposed), Some(config), Some(private), Some(meta)) =
            inputs
        {
            let mut inner = Diagnostics::default();
            let res = &t.resource;
            let mut proposed = proposed;
            fill_defaults(&t.schema.block, &mut proposed, &config);
            match (matches!(prior, Tree::Nil), matches!(proposed, Tree::Nil)) {
                // Nothing before, nothing after: nothing to plan.
                (true, true) => out.planned_state = null(),
                (true, false) => {
                    if let Some((s, p)) = guarded(
                        &mut diags,
                        res.plan_create(&mut inner, proposed, config, meta),
                    )
                    .await
                    {
                        out.planned_state = dynamic(s);
                        out.planned_private = p;
                    }
                }
                // plan_destroy capability: Terraform asks before a destroy, proposing null.
                (false, true) => {
                    if let Some(p) = guarded(
                        &mut diags,
                        res.plan_destroy(&mut inner, prior, private, meta),
                    )
                    .await
                    {
                        out.planned_state = null();
                        out.planned_private = p;
                    }
                }
                (false, false) => {
                    let prior_copy = prior.clone();
                    let config_copy = config.clone();
                    if let Some((s, p, mut replace)) = guarded(
                        &mut diags,
                        res.plan_update(&mut inner, prior, proposed, config, private, meta),
                    )
                    .await
                    {
                        if let Ok(planned) = codec::read_msgpack(&s) {
                            replaced_paths(
                                &t.schema.block,
                                &prior_copy,
                                &planned,
                                &config_copy,
                                &AttributePath::root(),
                                &mut replace,
                            );
                        }
                        let mut seen = std::collections::HashSet::new();
                        replace.retain(|p| seen.insert(p.clone()));
                        out.requires_replace = replace.iter().map(Into::into).collect();
                        out.planned_state = dynamic(s);
                        out.planned_private = p;
                    }
                }
            }
            merge(&mut diags, inner);
        }
        out.diagnostics = diags.into_proto();
        Ok(Response::new(out))
    }

    async fn apply_resource_change(
        &self,
        request: Request<pb::apply_resource_change::Request>,
    ) -> Rpc<pb::apply_resource_change::Response> {
        let r = request.into_inner();
        let mut diags = Diagnostics::default();
        let mut out = pb::apply_resource_change::Response::default();
        let inputs = (
            self.resource(&mut diags, &r.type_name),
            tree(&mut diags, &r.prior_state, "prior state"),
            tree(&mut diags, &r.planned_state, "planned state"),
            tree(&mut diags, &r.config, "configuration"),
            private(&mut diags, &r.planned_private),
            tree(&mut diags, &r.provider_meta, "provider_meta"),
        );
        if let (Some(t), Some(prior), Some(planned), Some(config), Some(private), Some(meta)) =
            inputs
        {
            let mut inner = Diagnostics::default();
            let res = &t.resource;
            match (matches!(prior, Tree::Nil), matches!(planned, Tree::Nil)) {
                (true, true) => out.new_state = null(),
                (true, false) => {
                    if let Some((s, p)) = guarded(
                        &mut diags,
                        res.create(&mut inner, planned, config, private, meta),
                    )
                    .await
                    {
                        out.new_state = dynamic(s);
                        out.private = p;
                    }
                }
                (false, true) => {
                    let prior_bytes = codec::tree_to_msgpack(&prior);
                    if guarded(&mut diags, res.destroy(&mut inner, prior, private, meta))
                        .await
                        .is_some()
                    {
                        out.new_state = null();
                    } else {
                        // Still there: Terraform keeps the prior state.
                        out.new_state = dynamic(prior_bytes);
                        out.private = r.planned_private.clone();
                    }
                }
                (false, false) => {
                    if let Some((s, p)) = guarded(
                        &mut diags,
                        res.update(&mut inner, prior, planned, config, private, meta),
                    )
                    .await
                    {
                        out.new_state = dynamic(s);
                        out.private = p;
                    }
                }
            }
            merge(&mut diags, inner);
        }
        out.diagnostics = diags.into_proto();
        Ok(Response::new(out))
    }

    async fn import_resource_state(
        &self,
        request: Request<pb::import_resource_state::Request>,
    ) -> Rpc<pb::import_resource_state::Response> {
        let r = request.into_inner();
        let mut diags = Diagnostics::default();
        let mut out = pb::import_resource_state::Response::default();
        if let Some(t) = self.resource(&mut diags, &r.type_name) {
            let mut inner = Diagnostics::default();
            if let Some((s, p)) = guarded(&mut diags, t.resource.import(&mut inner, r.id)).await {
                out.imported_resources
                    .push(pb::import_resource_state::ImportedResource {
                        type_name: r.type_name,
                        state: dynamic(s),
                        private: p,
                        identity: None,
                    });
            }
            merge(&mut diags, inner);
        }
        out.diagnostics = diags.into_proto();
        Ok(Response::new(out))
    }

    async fn move_resource_state(
        &self,
        _: Request<pb::move_resource_state::Request>,
    ) -> Rpc<pb::move_resource_state::Response> {
        Ok(Response::new(pb::move_resource_state::Response {
            diagnostics: unsupported("moving resources between types"),
            ..Default::default()
        }))
    }

    async fn read_data_source(
        &self,
        request: Request<pb::read_data_source::Request>,
    ) -> Rpc<pb::read_data_source::Response> {
        let r = request.into_inner();
        let mut diags = Diagnostics::default();
        let mut out = pb::read_data_source::Response::default();
        let inputs = (
            self.data_source(&mut diags, &r.type_name),
            tree(&mut diags, &r.config, "configuration"),
            tree(&mut diags, &r.provider_meta, "provider_meta"),
        );
        if let (Some(t), Some(config), Some(meta)) = inputs {
            let mut inner = Diagnostics::default();
            if let Some(s) = guarded(&mut diags, t.data_source.read(&mut inner, config, meta)).await
            {
                out.state = dynamic(s);
            }
            merge(&mut diags, inner);
        }
        out.diagnostics = diags.into_proto();
        Ok(Response::new(out))
    }

    async fn generate_resource_config(
        &self,
        _: Request<pb::generate_resource_config::Request>,
    ) -> Rpc<pb::generate_resource_config::Response> {
        Ok(Response::new(pb::generate_resource_config::Response {
            config: None,
            diagnostics: unsupported("configuration generation"),
        }))
    }

    async fn validate_ephemeral_resource_config(
        &self,
        _: Request<pb::validate_ephemeral_resource_config::Request>,
    ) -> Rpc<pb::validate_ephemeral_resource_config::Response> {
        Ok(Response::new(
            pb::validate_ephemeral_resource_config::Response {
                diagnostics: unsupported("ephemeral resources"),
            },
        ))
    }

    async fn open_ephemeral_resource(
        &self,
        _: Request<pb::open_ephemeral_resource::Request>,
    ) -> Rpc<pb::open_ephemeral_resource::Response> {
        Ok(Response::new(pb::open_ephemeral_resource::Response {
            diagnostics: unsupported("ephemeral resources"),
            ..Default::default()
        }))
    }

    async fn renew_ephemeral_resource(
        &self,
        _: Request<pb::renew_ephemeral_resource::Request>,
    ) -> Rpc<pb::renew_ephemeral_resource::Response> {
        Ok(Response::new(pb::renew_ephemeral_resource::Response {
            diagnostics: unsupported("ephemeral resources"),
            ..Default::default()
        }))
    }

    async fn close_ephemeral_resource(
        &self,
        _: Request<pb::close_ephemeral_resource::Request>,
    ) -> Rpc<pb::close_ephemeral_resource::Response> {
        Ok(Response::new(pb::close_ephemeral_resource::Response {
            diagnostics: unsupported("ephemeral resources"),
        }))
    }

    type ListResourceStream = BoxStream<pb::list_resource::Event>;

    async fn list_resource(
        &self,
        _: Request<pb::list_resource::Request>,
    ) -> Rpc<Self::ListResourceStream> {
        let event = pb::list_resource::Event {
            diagnostic: unsupported("list resources"),
            ..Default::default()
        };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(event)]))))
    }

    async fn validate_list_resource_config(
        &self,
        _: Request<pb::validate_list_resource_config::Request>,
    ) -> Rpc<pb::validate_list_resource_config::Response> {
        Ok(Response::new(pb::validate_list_resource_config::Response {
            diagnostics: unsupported("list resources"),
        }))
    }

    async fn get_functions(
        &self,
        _: Request<pb::get_functions::Request>,
    ) -> Rpc<pb::get_functions::Response> {
        Ok(Response::new(pb::get_functions::Response::default()))
    }

    async fn call_function(
        &self,
        request: Request<pb::call_function::Request>,
    ) -> Rpc<pb::call_function::Response> {
        let name = request.into_inner().name;
        Ok(Response::new(pb::call_function::Response {
            result: None,
            error: Some(pb::FunctionError {
                text: format!("The vsphereipam provider has no function {name:?}."),
                function_argument: None,
            }),
        }))
    }

    async fn validate_state_store_config(
        &self,
        _: Request<pb::validate_state_store::Request>,
    ) -> Rpc<pb::validate_state_store::Response> {
        Ok(Response::new(pb::validate_state_store::Response {
            diagnostics: unsupported("state stores"),
        }))
    }

    async fn configure_state_store(
        &self,
        _: Request<pb::configure_state_store::Request>,
    ) -> Rpc<pb::configure_state_store::Response> {
        Ok(Response::new(pb::configure_state_store::Response {
            diagnostics: unsupported("state stores"),
            capabilities: None,
        }))
    }

    type ReadStateBytesStream = BoxStream<pb::read_state_bytes::Response>;

    async fn read_state_bytes(
        &self,
        _: Request<pb::read_state_bytes::Request>,
    ) -> Rpc<Self::ReadStateBytesStream> {
        let answer = pb::read_state_bytes::Response {
            diagnostics: unsupported("state stores"),
            ..Default::default()
        };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(answer)]))))
    }

    async fn write_state_bytes(
        &self,
        _: Request<Streaming<pb::write_state_bytes::RequestChunk>>,
    ) -> Rpc<pb::write_state_bytes::Response> {
        Ok(Response::new(pb::write_state_bytes::Response {
            diagnostics: unsupported("state stores"),
        }))
    }

    async fn lock_state(
        &self,
        _: Request<pb::lock_state::Request>,
    ) -> Rpc<pb::lock_state::Response> {
        Ok(Response::new(pb::lock_state::Response {
            lock_id: String::new(),
            diagnostics: unsupported("state stores"),
        }))
    }

    async fn unlock_state(
        &self,
        _: Request<pb::unlock_state::Request>,
    ) -> Rpc<pb::unlock_state::Response> {
        Ok(Response::new(pb::unlock_state::Response {
            diagnostics: unsupported("state stores"),
        }))
    }

    async fn get_states(
        &self,
        _: Request<pb::get_states::Request>,
    ) -> Rpc<pb::get_states::Response> {
        Ok(Response::new(pb::get_states::Response {
            state_id: Vec::new(),
            diagnostics: unsupported("state stores"),
        }))
    }

    async fn delete_state(
        &self,
        _: Request<pb::delete_state::Request>,
    ) -> Rpc<pb::delete_state::Response> {
        Ok(Response::new(pb::delete_state::Response {
            diagnostics: unsupported("state stores"),
        }))
    }

    async fn plan_action(
        &self,
        _: Request<pb::plan_action::Request>,
    ) -> Rpc<pb::plan_action::Response> {
        Ok(Response::new(pb::plan_action::Response {
            diagnostics: unsupported("actions"),
            deferred: None,
        }))
    }

    type InvokeActionStream = BoxStream<pb::invoke_action::Event>;

    async fn invoke_action(
        &self,
        _: Request<pb::invoke_action::Request>,
    ) -> Rpc<Self::InvokeActionStream> {
        let event = pb::invoke_action::Event {
            r#type: Some(pb::invoke_action::event::Type::Completed(
                pb::invoke_action::event::Completed {
                    diagnostics: unsupported("actions"),
                },
            )),
        };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(event)]))))
    }

    async fn validate_action_config(
        &self,
        _: Request<pb::validate_action_config::Request>,
    ) -> Rpc<pb::validate_action_config::Response> {
        Ok(Response::new(pb::validate_action_config::Response {
            diagnostics: unsupported("actions"),
        }))
    }

    async fn stop_provider(
        &self,
        _: Request<pb::stop_provider::Request>,
    ) -> Rpc<pb::stop_provider::Response> {
        Ok(Response::new(pb::stop_provider::Response::default()))
    }
}

fn merge(into: &mut Diagnostics, from: Diagnostics) {
    into.errors.extend(from.errors);
    into.warnings.extend(from.warnings);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::from_json;
    use crate::schema::{Attribute, AttributeType};
    use serde_json::json;

    #[test]
    fn defaults_fill_what_the_configuration_leaves_out() {
        let wait = Attribute {
            attr_type: AttributeType::Bool,
            constraint: AttributeConstraint::OptionalComputed,
            default: Some(json!(true)),
            ..Default::default()
        };
        let nic = Block {
            attributes: crate::map! { "wait" => wait.clone() },
            ..Default::default()
        };
        let block = Block {
            attributes: crate::map! { "wait" => wait },
            blocks: crate::map! { "nic" => NestedBlock::List(nic) },
            ..Default::default()
        };
        let config = from_json(json!({"wait": null, "nic": [{"wait": false}, {"wait": null}]}));
        let mut proposed = config.clone();
        fill_defaults(&block, &mut proposed, &config);
        assert_eq!(
            proposed,
            from_json(json!({"wait": true, "nic": [{"wait": false}, {"wait": true}]}))
        );
        // A value the state already holds for a left-out attribute stays.
        let mut proposed = from_json(json!({"wait": false, "nic": []}));
        fill_defaults(&block, &mut proposed, &config);
        assert_eq!(proposed, from_json(json!({"wait": false, "nic": []})));
    }

    #[test]
    fn requires_replace_paths_come_from_the_schema() {
        let attr = |replace| Attribute {
            attr_type: AttributeType::String,
            constraint: AttributeConstraint::Optional,
            requires_replace: replace,
            ..Default::default()
        };
        let computed = |replace| Attribute {
            constraint: AttributeConstraint::OptionalComputed,
            ..attr(replace)
        };
        let nic = Block {
            attributes: crate::map! { "ip" => attr(Replace::Always), "note" => attr(Replace::Never) },
            ..Default::default()
        };
        let block = Block {
            attributes: crate::map! {
                "cidr" => attr(Replace::Always),
                "name" => attr(Replace::Never),
                "folder" => attr(Replace::OnceSet),
                "template" => attr(Replace::OnceSet),
                "host" => computed(Replace::Always)
            },
            blocks: crate::map! { "nic" => NestedBlock::List(nic) },
            ..Default::default()
        };
        let prior = from_json(json!({
            "cidr": "a", "name": "x", "folder": null, "template": "t", "host": "h1",
            "nic": [{"ip": "1", "note": "n"}, {"ip": "2", "note": "n"}]
        }));
        let same = prior.clone();
        let mut out = Vec::new();
        replaced_paths(
            &block,
            &prior,
            &same,
            &same,
            &AttributePath::root(),
            &mut out,
        );
        assert!(out.is_empty());
        let planned = json!({
            "cidr": "b", "name": "y", "folder": "f", "template": "u", "host": "h2",
            "nic": [{"ip": "1", "note": "m"}, {"ip": "3", "note": "n"}]
        });
        let mut config = planned.clone();
        config["host"] = json!(null);
        let (planned, config) = (from_json(planned), from_json(config));
        replaced_paths(
            &block,
            &prior,
            &planned,
            &config,
            &AttributePath::root(),
            &mut out,
        );
        // `folder` goes from null (recorded now), `host` is the provider's to fill.
        out.sort_by_key(|p| format!("{p:?}"));
        let mut want = vec![
            AttributePath::new("cidr"),
            AttributePath::new("nic").index(1).attribute("ip"),
            AttributePath::new("template"),
        ];
        want.sort_by_key(|p| format!("{p:?}"));
        assert_eq!(out, want);
        // A configured `host` that changes does replace.
        let mut out = Vec::new();
        replaced_paths(
            &block,
            &prior,
            &planned,
            &planned,
            &AttributePath::root(),
            &mut out,
        );
        assert!(out.contains(&AttributePath::new("host")));
    }
}
