//! The tfplugin6 `Provider` service: every RPC of protocol 6.10, routed to the provider's
//! resources, data sources and list resources. Around each resource call the server nulls
//! write-only attributes and attaches the identity it derives from the state (see
//! [`crate::identity`], [`crate::write_only`]). RPCs this provider has nothing for (functions,
//! ephemeral resources, state stores, actions) answer with a diagnostic.

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
use crate::identity::{self, Identity};
use crate::list::{DynamicListResource, ListSink};
use crate::moves::MoveSource;
use crate::proto::tfplugin6 as pb;
use crate::provider::DynamicProvider;
use crate::resource::DynamicResource;
use crate::schema::{AttributeConstraint, Block, IdentitySchema, NestedBlock, Replace, Schema};
use crate::write_only;

type Rpc<T> = Result<Response<T>, Status>;
type BoxStream<T> = Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send + 'static>>;

struct ResourceType {
    resource: Box<dyn DynamicResource>,
    schema: Schema,
    identity: Option<IdentitySchema>,
    /// The schema has a write-only attribute somewhere.
    write_only: bool,
}

impl ResourceType {
    /// What every state a resource returns goes through: write-only attributes nulled, and
    /// the identity derived from it (null for a null state or a resource without identity).
    fn finish(&self, value: &mut Option<pb::DynamicValue>) -> Tree {
        if self.identity.is_none() && !self.write_only {
            return Tree::Nil;
        }
        let Some(v) = value.as_mut() else {
            return Tree::Nil;
        };
        let Ok(mut state) = codec::read_msgpack(&v.msgpack) else {
            return Tree::Nil;
        };
        if self.write_only {
            write_only::nullify(&self.schema.block, &mut state);
            v.msgpack = codec::tree_to_msgpack(&state);
        }
        match &self.identity {
            Some(schema) => identity::of_state(schema, &state),
            None => Tree::Nil,
        }
    }
}

struct ListType {
    list: Box<dyn DynamicListResource>,
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
    list_resources: HashMap<String, ListType>,
    schema: pb::get_provider_schema::Response,
}

fn capabilities() -> pb::ServerCapabilities {
    pb::ServerCapabilities {
        plan_destroy: true,
        get_provider_schema_optional: true,
        move_resource_state: true,
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
                    ResourceType {
                        identity: resource.identity_schema(),
                        write_only: write_only::any(&schema.block),
                        resource,
                        schema,
                    },
                );
            }
        }
        let mut list_resources = HashMap::new();
        for (short, list) in provider.get_list_resources(&mut diags).unwrap_or_default() {
            let full = format!("{prefix}{short}");
            if resources.get(&full).is_none_or(|r| r.identity.is_none()) {
                diags.root_error(
                    format!("Provider error: list resource {full} lists nothing"),
                    format!("Terraform lists objects of a managed resource type with an identity, and this provider has no resource {full} with one. This is a bug in the provider; please report it."),
                );
                continue;
            }
            if let Some(schema) = list.schema(&mut diags) {
                list_resources.insert(full, ListType { list, schema });
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
            list_resource_schemas: list_resources
                .iter()
                .map(|(k, l)| (k.clone(), (&l.schema).into()))
                .collect(),
            provider_meta: meta.as_ref().map(Into::into),
            server_capabilities: Some(capabilities()),
            diagnostics: diags.into_proto(),
            ..Default::default()
        };
        Self {
            provider: Box::new(provider),
            resources,
            data_sources,
            list_resources,
            schema,
        }
    }

    fn list_type(&self, diags: &mut Diagnostics, type_name: &str) -> Option<&ListType> {
        let l = self.list_resources.get(type_name);
        if l.is_none() {
            unknown_type(diags, "list resource", type_name);
        }
        l
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
        let mut list_resources: Vec<_> = self.list_resources.keys().cloned().collect();
        list_resources.sort();
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
            list_resources: list_resources
                .into_iter()
                .map(|type_name| pb::get_metadata::ListResourceMetadata { type_name })
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
            let write_only_allowed = r
                .client_capabilities
                .as_ref()
                .is_some_and(|c| c.write_only_attributes_allowed);
            if t.write_only && !write_only_allowed {
                write_only::refuse(&t.schema.block, &config, &AttributePath::root(), &mut diags);
            }
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
        Ok(Response::new(pb::get_resource_identity_schemas::Response {
            identity_schemas: self
                .resources
                .iter()
                .filter_map(|(k, r)| Some((k.clone(), r.identity.as_ref()?.into())))
                .collect(),
            diagnostics: Vec::new(),
        }))
    }

    /// Terraform asks only when the stored identity's version differs from the schema's.
    /// Every identity so far is at its first version, so an older one is read by name.
    async fn upgrade_resource_identity(
        &self,
        request: Request<pb::upgrade_resource_identity::Request>,
    ) -> Rpc<pb::upgrade_resource_identity::Response> {
        let r = request.into_inner();
        let mut diags = Diagnostics::default();
        let mut upgraded = None;
        if let Some(t) = self.resource(&mut diags, &r.type_name) {
            let raw = r.raw_identity.unwrap_or_default();
            match &t.identity {
                None => diags.root_error(
                    "Resource identity not supported",
                    format!("{} has no identity in this provider version; remove the resource from the state and import it again.", r.type_name),
                ),
                Some(schema) if r.version > schema.version => diags.root_error(
                    "Identity written by a newer provider",
                    format!("The stored identity has version {}, this provider knows up to {}. Use the provider version that wrote it.", r.version, schema.version),
                ),
                Some(schema) => match codec::read_json(&raw.json) {
                    Ok(json) => upgraded = identity::data(&identity::conform(schema, &json)),
                    Err(e) => diags.root_error("Malformed stored identity", format!("{e}.")),
                },
            }
        }
        Ok(Response::new(pb::upgrade_resource_identity::Response {
            upgraded_identity: upgraded,
            diagnostics: diags.into_proto(),
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
            let new_identity = t.finish(&mut out.new_state);
            if let (Some(schema), Some(current)) =
                (&t.identity, identity::read(&mut diags, &r.current_identity))
            {
                if !identity::is_null(&current)
                    && !identity::is_null(&new_identity)
                    && !identity::same(schema, &current, &new_identity)
                {
                    identity_changed(&mut diags, &current, &new_identity);
                }
            }
            out.new_identity = identity::data(&new_identity);
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
            // Terraform proposes the configuration's write-only values; the plan never holds
            // them, so a resource comparing its plan with the prior state sees no change.
            if t.write_only {
                write_only::nullify(&t.schema.block, &mut proposed);
            }
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
            let planned = t.finish(&mut out.planned_state);
            let prior = identity::read(&mut diags, &r.prior_identity).unwrap_or(Tree::Nil);
            let planned = match (&t.identity, identity::is_null(&planned)) {
                // A destroy (or a state without its identity yet) keeps the stored identity.
                (Some(_), true) => prior,
                // Not known before apply (a create, a replacement): none is planned, as
                // Terraform cannot write a plan holding an unknown identity.
                (Some(_), false) if identity::has_unknown(&planned) => Tree::Nil,
                (Some(schema), false) => {
                    let in_place = out.requires_replace.is_empty();
                    if in_place
                        && !identity::is_null(&prior)
                        && !identity::same(schema, &prior, &planned)
                    {
                        identity_changed(&mut diags, &prior, &planned);
                    }
                    planned
                }
                (None, _) => Tree::Nil,
            };
            out.planned_identity = identity::data(&planned);
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
            out.new_identity = identity::data(&t.finish(&mut out.new_state));
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
        let given = identity::read(&mut diags, &r.identity);
        if let (Some(t), Some(given)) = (self.resource(&mut diags, &r.type_name), given) {
            let given = match &t.identity {
                Some(schema) => identity::conform(schema, &given),
                None => Tree::Nil,
            };
            let mut inner = Diagnostics::default();
            // Terraform sends an id, or (1.12+, `import { identity = ... }`) an identity.
            let imported = if !r.id.is_empty() || identity::is_null(&given) {
                guarded(&mut diags, t.resource.import(&mut inner, r.id)).await
            } else {
                let named = Identity::new(given.clone());
                guarded(&mut diags, t.resource.import_identity(&mut inner, named)).await
            };
            if let Some((s, p)) = imported {
                let mut state = dynamic(s);
                let derived = t.finish(&mut state);
                out.imported_resources
                    .push(pb::import_resource_state::ImportedResource {
                        type_name: r.type_name,
                        state,
                        private: p,
                        identity: identity::data(&fill_from(derived, &given)),
                    });
            }
            merge(&mut diags, inner);
        }
        out.diagnostics = diags.into_proto();
        Ok(Response::new(out))
    }

    async fn move_resource_state(
        &self,
        request: Request<pb::move_resource_state::Request>,
    ) -> Rpc<pb::move_resource_state::Response> {
        let r = request.into_inner();
        let mut diags = Diagnostics::default();
        let mut out = pb::move_resource_state::Response::default();
        let json = |raw: Option<pb::RawState>| -> Result<Option<serde_json::Value>, String> {
            match raw {
                Some(raw) if !raw.json.is_empty() => serde_json::from_slice(&raw.json)
                    .map(Some)
                    .map_err(|e| e.to_string()),
                _ => Ok(None),
            }
        };
        if let Some(t) = self.resource(&mut diags, &r.target_type_name) {
            match (json(r.source_state), json(r.source_identity)) {
                (Ok(Some(state)), Ok(source_identity)) => {
                    let source = MoveSource {
                        provider: r.source_provider_address,
                        type_name: r.source_type_name,
                        schema_version: r.source_schema_version,
                        state,
                        private: r.source_private,
                        identity: source_identity,
                        identity_version: r.source_identity_schema_version,
                    };
                    let mut inner = Diagnostics::default();
                    if let Some((s, p)) = guarded(
                        &mut diags,
                        t.resource
                            .move_state(&mut inner, source, &r.target_type_name),
                    )
                    .await
                    {
                        out.target_state = dynamic(s);
                        out.target_private = p;
                        out.target_identity = identity::data(&t.finish(&mut out.target_state));
                    }
                    merge(&mut diags, inner);
                }
                (Ok(None), _) => diags.root_error(
                    "Nothing to move",
                    format!("Terraform sent no state for the {} being moved; run `terraform refresh` on the source first.", r.source_type_name),
                ),
                (Err(e), _) | (_, Err(e)) => diags.root_error(
                    "Malformed state of the moved resource",
                    format!("The state of {} cannot be read ({e}); check that it was written by a released version of its provider.", r.source_type_name),
                ),
            }
        }
        out.diagnostics = diags.into_proto();
        Ok(Response::new(out))
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

    /// The provider lists in a task of its own; each result goes out as soon as it is found.
    /// Terraform closing the stream (its limit reached) stops the provider at its next push.
    async fn list_resource(
        &self,
        request: Request<pb::list_resource::Request>,
    ) -> Rpc<Self::ListResourceStream> {
        let r = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(LIST_BUFFER);
        let service = Arc::clone(self);
        tokio::spawn(async move {
            let mut diags = Diagnostics::default();
            let inputs = (
                service.list_type(&mut diags, &r.type_name),
                service.resources.get(&r.type_name),
                tree(&mut diags, &r.config, "list configuration"),
            );
            let mut sink = None;
            if let (Some(l), Some(t), Some(config)) = inputs {
                if let Some(schema) = &t.identity {
                    let mut s = ListSink::new(
                        tx.clone(),
                        schema.clone(),
                        t.schema.block.clone(),
                        r.include_resource_object,
                        r.limit,
                    );
                    let config = list_config(&l.schema, config);
                    let mut inner = Diagnostics::default();
                    guarded(&mut diags, l.list.list(&mut inner, config, &mut s)).await;
                    merge(&mut diags, inner);
                    sink = Some(s);
                }
            }
            match sink {
                Some(mut s) => {
                    s.diagnostics(diags).await;
                }
                None => {
                    let event = pb::list_resource::Event {
                        diagnostic: diags.into_proto(),
                        ..Default::default()
                    };
                    let _ = tx.send(Ok(event)).await;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn validate_list_resource_config(
        &self,
        request: Request<pb::validate_list_resource_config::Request>,
    ) -> Rpc<pb::validate_list_resource_config::Response> {
        let r = request.into_inner();
        let mut diags = Diagnostics::default();
        if let (Some(l), Some(config)) = (
            self.list_type(&mut diags, &r.type_name),
            tree(&mut diags, &r.config, "list configuration"),
        ) {
            let config = list_config(&l.schema, config);
            let mut inner = Diagnostics::default();
            guarded(&mut diags, l.list.validate(&mut inner, config)).await;
            merge(&mut diags, inner);
        }
        Ok(Response::new(pb::validate_list_resource_config::Response {
            diagnostics: diags.into_proto(),
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

/// Results a list may run ahead of Terraform's reading.
const LIST_BUFFER: usize = 64;

/// A `list` block without a `config` block sends null: every filter unset.
fn list_config(schema: &Schema, config: Tree) -> Tree {
    match config {
        Tree::Nil => crate::upgrade::conform(&Tree::Map(Vec::new()), &schema.block),
        c => c,
    }
}

/// `derived`, with each attribute it lacks taken from `given` (the identity an import named).
fn fill_from(derived: Tree, given: &Tree) -> Tree {
    match derived {
        Tree::Map(entries) => Tree::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let v = match (v, k.as_str().and_then(|name| codec::get(given, name))) {
                        (Tree::Nil, Some(g)) => g.clone(),
                        (v, _) => v,
                    };
                    (k, v)
                })
                .collect(),
        ),
        Tree::Nil => given.clone(),
        other => other,
    }
}

fn identity_changed(diags: &mut Diagnostics, stored: &Tree, new: &Tree) {
    diags.root_error(
        "Provider error: resource identity changed",
        format!(
            "Terraform stored the identity {} for this resource, and its state now gives {}. An identity never changes; this is a bug in the provider, please report it.",
            Identity::new(stored.clone()).describe(),
            Identity::new(new.clone()).describe()
        ),
    );
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
