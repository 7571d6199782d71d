//! Identity, write-only attributes, list resources and moves end to end: a small provider
//! served in this process over the same Unix socket and mutual TLS as a launch, called
//! through our own gRPC client ([`crate::client`]) the way Terraform calls it.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tonic::transport::Channel;

use crate::client::{self, ClientCert};
use crate::codec::{self, Tree};
use crate::proto::tfplugin6 as pb;
use crate::schema::{
    Attribute, AttributeConstraint, AttributeType, Block, IdentityAttribute, IdentitySchema, Schema,
};
use crate::{
    Diagnostics, DynamicListResource, DynamicResource, Identity, ListResource, MoveSource,
    Provider, ProviderService, Resource, Results, ValueEmpty, ValueString,
};

type Client = pb::provider_client::ProviderClient<Channel>;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Thing<'a> {
    id: ValueString<'a>,
    zone: ValueString<'a>,
    name: ValueString<'a>,
    secret: ValueString<'a>,
    secret_wo: ValueString<'a>,
}

fn thing<'a>(zone: &str, name: &str) -> Thing<'a> {
    Thing {
        id: format!("{zone}/{name}").into(),
        zone: zone.to_string().into(),
        name: name.to_string().into(),
        ..Default::default()
    }
}

struct ThingResource;

#[async_trait]
impl Resource for ThingResource {
    type State<'a> = Thing<'a>;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _: &mut Diagnostics) -> Option<Schema> {
        let attr = |constraint| Attribute {
            attr_type: AttributeType::String,
            constraint,
            ..Default::default()
        };
        Some(Schema {
            version: 0,
            block: Block {
                attributes: crate::map! {
                    "id" => attr(AttributeConstraint::Computed),
                    "zone" => attr(AttributeConstraint::Required),
                    "name" => attr(AttributeConstraint::Required),
                    "secret" => Attribute { sensitive: true, ..attr(AttributeConstraint::Optional) },
                    "secret_wo" => Attribute {
                        sensitive: true,
                        write_only: true,
                        use_instead: Some("secret".into()),
                        ..attr(AttributeConstraint::Optional)
                    },
                },
                ..Default::default()
            },
        })
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(IdentitySchema {
            version: 0,
            attributes: vec![
                IdentityAttribute::string("zone", "zone", "The zone."),
                IdentityAttribute::string("name", "name", "The name in the zone."),
            ],
        })
    }

    async fn read<'a>(
        &self,
        _: &mut Diagnostics,
        state: Thing<'a>,
        private: ValueEmpty,
        _: ValueEmpty,
    ) -> Option<(Thing<'a>, ValueEmpty)> {
        // A provider that wrongly renames on read: the server must notice.
        let mut state = state;
        if state.name.as_str() == "renamed-on-read" {
            state.name = "other".into();
        }
        Some((state, private))
    }

    async fn plan_create<'a>(
        &self,
        _: &mut Diagnostics,
        proposed: Thing<'a>,
        _: Thing<'a>,
        _: ValueEmpty,
    ) -> Option<(Thing<'a>, ValueEmpty)> {
        Some((
            Thing {
                id: crate::Value::Unknown,
                ..proposed
            },
            ValueEmpty,
        ))
    }

    async fn plan_update<'a>(
        &self,
        _: &mut Diagnostics,
        prior: Thing<'a>,
        proposed: Thing<'a>,
        _: Thing<'a>,
        private: ValueEmpty,
        _: ValueEmpty,
    ) -> Option<(Thing<'a>, ValueEmpty, Vec<crate::AttributePath>)> {
        // Compares the whole object, as a resource with a replace-on-any-change block does.
        let replace = if prior.secret_wo != proposed.secret_wo {
            vec![crate::AttributePath::new("secret_wo")]
        } else {
            Vec::new()
        };
        Some((proposed, private, replace))
    }

    async fn create<'a>(
        &self,
        _: &mut Diagnostics,
        planned: Thing<'a>,
        config: Thing<'a>,
        private: ValueEmpty,
        _: ValueEmpty,
    ) -> Option<(Thing<'a>, ValueEmpty)> {
        // The write-only value arrives in the configuration; this resource careless copies it
        // into the state, which the server must not pass on.
        let mut state = thing(planned.zone.as_str(), planned.name.as_str());
        state.secret_wo = config.secret_wo;
        Some((state, private))
    }

    async fn update<'a>(
        &self,
        _: &mut Diagnostics,
        _: Thing<'a>,
        planned: Thing<'a>,
        _: Thing<'a>,
        private: ValueEmpty,
        _: ValueEmpty,
    ) -> Option<(Thing<'a>, ValueEmpty)> {
        Some((planned, private))
    }

    async fn destroy<'a>(
        &self,
        _: &mut Diagnostics,
        _: Thing<'a>,
        _: ValueEmpty,
        _: ValueEmpty,
    ) -> Option<()> {
        Some(())
    }

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(Thing<'a>, ValueEmpty)> {
        match id.split_once('/') {
            Some((zone, name)) => Some((thing(zone, name), ValueEmpty)),
            None => {
                diags.root_error("Invalid import id", "Give `<zone>/<name>`.");
                None
            }
        }
    }

    async fn import_identity<'a>(
        &self,
        diags: &mut Diagnostics,
        identity: Identity,
    ) -> Option<(Thing<'a>, ValueEmpty)> {
        let (Some(zone), Some(name)) = (identity.string("zone"), identity.string("name")) else {
            diags.root_error("Identity incomplete", "Give `zone` and `name`.");
            return None;
        };
        let mut state = thing(&zone, &name);
        // Leaves the zone to the server, which takes it from the identity given.
        state.zone = crate::Value::Null;
        Some((state, ValueEmpty))
    }

    async fn move_state<'a>(
        &self,
        diags: &mut Diagnostics,
        source: MoveSource,
        target: &str,
    ) -> Option<(Thing<'a>, ValueEmpty)> {
        if !source.is("example/old", "old_thing") {
            source.refuse(diags, target, &["old_thing of example/old"]);
            return None;
        }
        let field = |k: &str| source.state[k].as_str().unwrap_or_default().to_string();
        Some((thing(&field("region"), &field("label")), ValueEmpty))
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ListConfig<'a> {
    zone: ValueString<'a>,
    fail_after: crate::ValueNumber,
}

struct ThingList;

#[async_trait]
impl ListResource for ThingList {
    type Config<'a> = ListConfig<'a>;
    type State<'a> = Thing<'a>;

    fn schema(&self, _: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 0,
            block: Block {
                attributes: crate::map! {
                    "zone" => Attribute { constraint: AttributeConstraint::Optional, ..Default::default() },
                    "fail_after" => Attribute {
                        attr_type: AttributeType::Number,
                        constraint: AttributeConstraint::Optional,
                        ..Default::default()
                    },
                },
                ..Default::default()
            },
        })
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: ListConfig<'a>) -> Option<()> {
        if config.zone.as_str() == "nowhere" {
            diags.error(
                "No such zone",
                "There is no zone nowhere.",
                crate::AttributePath::new("zone"),
            );
        }
        Some(())
    }

    async fn list<'a>(
        &self,
        diags: &mut Diagnostics,
        config: ListConfig<'a>,
        results: &mut Results<'_, Thing<'a>>,
    ) -> Option<()> {
        let zone = config.zone.as_option().map(|z| z.into_owned());
        let zone = zone.as_deref().unwrap_or("z1");
        for i in 0..5 {
            if config.fail_after.as_option() == Some(i) {
                diags.root_error("vCenter went away", "Listing stopped.");
                return None;
            }
            let mut t = thing(zone, &format!("t{i}"));
            t.secret_wo = "leak".into();
            if !results.push(format!("thing t{i}"), &t).await {
                break;
            }
        }
        Some(())
    }
}

struct Demo;

#[async_trait]
impl Provider for Demo {
    type Config<'a> = ValueEmpty;
    type MetaState<'a> = ValueEmpty;

    fn schema(&self, _: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 0,
            block: Block::default(),
        })
    }

    fn get_resources(
        &self,
        _: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicResource>>> {
        Some(crate::map! { "thing" => ThingResource })
    }

    fn get_list_resources(
        &self,
        _: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicListResource>>> {
        Some(crate::map! { "thing" => ThingList })
    }
}

/// The socket file goes when the test ends.
struct Served {
    client: Client,
    socket: std::path::PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}

async fn serve() -> Served {
    // Both of rustls's providers are linked in; the client side needs one chosen.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = ClientCert::generate();
    let service = Arc::new(ProviderService::new("demo", Demo));
    let handshake = crate::handshake::serve_in_process(service, &cert.cert_pem).await;
    let channel = client::connect(&handshake, Some(&cert))
        .await
        .expect("connect");
    Served {
        client: Client::new(channel),
        socket: handshake.address.into(),
    }
}

fn mp(v: serde_json::Value) -> Option<pb::DynamicValue> {
    Some(pb::DynamicValue {
        msgpack: codec::to_msgpack(&v).unwrap(),
        json: Vec::new(),
    })
}

fn mp_tree(t: &Tree) -> Option<pb::DynamicValue> {
    Some(pb::DynamicValue {
        msgpack: codec::tree_to_msgpack(t),
        json: Vec::new(),
    })
}

fn value(v: &Option<pb::DynamicValue>) -> serde_json::Value {
    let tree = codec::read_msgpack(&v.as_ref().expect("a value").msgpack).expect("msgpack");
    to_json(&tree)
}

fn to_json(t: &Tree) -> serde_json::Value {
    match t {
        Tree::Nil => serde_json::Value::Null,
        Tree::Boolean(b) => json!(b),
        Tree::Integer(i) => json!(i.as_i64()),
        Tree::F64(f) => json!(f),
        Tree::String(s) => json!(s.as_str()),
        Tree::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        Tree::Map(m) => serde_json::Value::Object(
            m.iter()
                .map(|(k, v)| (k.as_str().unwrap_or("?").to_string(), to_json(v)))
                .collect(),
        ),
        Tree::Ext(..) => json!("(unknown)"),
        other => json!(other.to_string()),
    }
}

fn identity(v: &Option<pb::ResourceIdentityData>) -> serde_json::Value {
    match v {
        Some(d) => value(&d.identity_data),
        None => serde_json::Value::Null,
    }
}

fn identity_data(v: serde_json::Value) -> Option<pb::ResourceIdentityData> {
    Some(pb::ResourceIdentityData {
        identity_data: mp(v),
    })
}

fn errors(diags: &[pb::Diagnostic]) -> Vec<String> {
    diags
        .iter()
        .filter(|d| d.severity == pb::diagnostic::Severity::Error as i32)
        .map(|d| format!("{}: {}", d.summary, d.detail))
        .collect()
}

fn config(secret_wo: serde_json::Value) -> serde_json::Value {
    json!({"id": null, "zone": "z1", "name": "a", "secret": null, "secret_wo": secret_wo})
}

#[tokio::test]
async fn identity_and_list_schemas_are_announced() {
    let mut s = serve().await;
    let ids = s
        .client
        .get_resource_identity_schemas(pb::get_resource_identity_schemas::Request {})
        .await
        .unwrap()
        .into_inner();
    let thing = &ids.identity_schemas["demo_thing"];
    let names: Vec<_> = thing
        .identity_attributes
        .iter()
        .map(|a| (a.name.as_str(), a.required_for_import, a.r#type.as_slice()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("zone", true, &b"\"string\""[..]),
            ("name", true, &b"\"string\""[..])
        ]
    );
    let schema = s
        .client
        .get_provider_schema(pb::get_provider_schema::Request {})
        .await
        .unwrap()
        .into_inner();
    assert!(schema.diagnostics.is_empty(), "{:?}", schema.diagnostics);
    let list = &schema.list_resource_schemas["demo_thing"];
    let attrs: Vec<_> = list
        .block
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(attrs, vec!["fail_after", "zone"]);
    let wo = schema.resource_schemas["demo_thing"]
        .block
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .find(|a| a.name == "secret_wo")
        .cloned()
        .unwrap();
    assert!(wo.write_only && wo.sensitive);
    let caps = schema.server_capabilities.unwrap();
    assert!(caps.move_resource_state);
    let meta = s
        .client
        .get_metadata(pb::get_metadata::Request {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.list_resources[0].type_name, "demo_thing");
}

#[tokio::test]
async fn plan_apply_and_read_carry_the_identity_and_never_a_write_only_value() {
    let mut s = serve().await;
    let wo = |allowed| {
        Some(pb::ClientCapabilities {
            deferral_allowed: false,
            write_only_attributes_allowed: allowed,
        })
    };
    let plan = s
        .client
        .plan_resource_change(pb::plan_resource_change::Request {
            type_name: "demo_thing".into(),
            prior_state: mp(json!(null)),
            proposed_new_state: mp(config(json!("hunter2"))),
            config: mp(config(json!("hunter2"))),
            client_capabilities: wo(true),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        errors(&plan.diagnostics).is_empty(),
        "{:?}",
        plan.diagnostics
    );
    let planned = value(&plan.planned_state);
    assert_eq!(planned["secret_wo"], json!(null));
    assert_eq!(planned["id"], json!("(unknown)"));
    assert_eq!(
        identity(&plan.planned_identity),
        json!({"zone": "z1", "name": "a"})
    );
    // An identity not known before apply is not planned at all (Terraform cannot write a
    // plan holding one).
    let mut proposed =
        codec::from_json(json!({"id": null, "zone": "z1", "secret": null, "secret_wo": null}));
    if let Tree::Map(entries) = &mut proposed {
        entries.push((Tree::from("name"), Tree::Ext(0, vec![0])));
    }
    let unknown_name = s
        .client
        .plan_resource_change(pb::plan_resource_change::Request {
            type_name: "demo_thing".into(),
            prior_state: mp(json!(null)),
            proposed_new_state: mp_tree(&proposed),
            config: mp_tree(&proposed),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        errors(&unknown_name.diagnostics).is_empty(),
        "{:?}",
        unknown_name.diagnostics
    );
    assert_eq!(
        value(&unknown_name.planned_state)["name"],
        json!("(unknown)")
    );
    assert!(unknown_name.planned_identity.is_none());

    let apply = s
        .client
        .apply_resource_change(pb::apply_resource_change::Request {
            type_name: "demo_thing".into(),
            prior_state: mp(json!(null)),
            planned_state: plan.planned_state.clone(),
            config: mp(config(json!("hunter2"))),
            planned_identity: plan.planned_identity.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        errors(&apply.diagnostics).is_empty(),
        "{:?}",
        apply.diagnostics
    );
    let state = value(&apply.new_state);
    assert_eq!(state["id"], json!("z1/a"));
    assert_eq!(
        state["secret_wo"],
        json!(null),
        "the write-only value leaked"
    );
    assert!(!format!("{:?}", apply.new_state).contains("hunter2"));
    let id = identity(&apply.new_identity);
    assert_eq!(id, json!({"zone": "z1", "name": "a"}));

    // A refresh gives the same identity; a destroy plan keeps it.
    let read = s
        .client
        .read_resource(pb::read_resource::Request {
            type_name: "demo_thing".into(),
            current_state: apply.new_state.clone(),
            current_identity: apply.new_identity.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        errors(&read.diagnostics).is_empty(),
        "{:?}",
        read.diagnostics
    );
    assert_eq!(identity(&read.new_identity), id);
    // Terraform proposes the configured write-only value again at every plan; the resource
    // sees the plan without it, so nothing changes.
    let mut proposed = state.clone();
    proposed["secret_wo"] = json!("hunter2");
    let update = s
        .client
        .plan_resource_change(pb::plan_resource_change::Request {
            type_name: "demo_thing".into(),
            prior_state: apply.new_state.clone(),
            proposed_new_state: mp(proposed.clone()),
            config: mp(proposed),
            prior_identity: apply.new_identity.clone(),
            client_capabilities: wo(true),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        update.requires_replace.is_empty(),
        "{:?}",
        update.requires_replace
    );
    assert_eq!(value(&update.planned_state), state);
    assert_eq!(identity(&update.planned_identity), id);
    let destroy = s
        .client
        .plan_resource_change(pb::plan_resource_change::Request {
            type_name: "demo_thing".into(),
            prior_state: apply.new_state.clone(),
            proposed_new_state: mp(json!(null)),
            config: mp(json!(null)),
            prior_identity: apply.new_identity.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(identity(&destroy.planned_identity), id);

    // A provider whose read changes the identity is caught, not believed.
    let mut renamed = state.clone();
    renamed["name"] = json!("renamed-on-read");
    let read = s
        .client
        .read_resource(pb::read_resource::Request {
            type_name: "demo_thing".into(),
            current_state: mp(renamed),
            current_identity: identity_data(json!({"zone": "z1", "name": "renamed-on-read"})),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let errs = errors(&read.diagnostics);
    assert!(
        errs.iter()
            .any(|e| e.contains("identity changed") && e.contains("name = \"other\"")),
        "{errs:?}"
    );
}

#[tokio::test]
async fn a_terraform_without_write_only_support_is_told_what_to_set_instead() {
    let mut s = serve().await;
    let validate = |caps: Option<pb::ClientCapabilities>, secret_wo: serde_json::Value| {
        pb::validate_resource_config::Request {
            type_name: "demo_thing".into(),
            config: mp(config(secret_wo)),
            client_capabilities: caps,
        }
    };
    // Terraform 1.0.3 sends no capabilities at all.
    let old = s
        .client
        .validate_resource_config(validate(None, json!("hunter2")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(old.diagnostics.len(), 1, "{:?}", old.diagnostics);
    let d = &old.diagnostics[0];
    assert_eq!(d.severity, pb::diagnostic::Severity::Error as i32);
    assert!(d.detail.contains("Set `secret` instead"), "{}", d.detail);
    assert!(!d.detail.contains("hunter2"));
    let path = d.attribute.as_ref().expect("a path");
    assert_eq!(
        path.steps[0].selector,
        Some(pb::attribute_path::step::Selector::AttributeName(
            "secret_wo".into()
        ))
    );
    // Unset, or a Terraform that supports it: nothing to say.
    let unset = s
        .client
        .validate_resource_config(validate(None, json!(null)))
        .await
        .unwrap()
        .into_inner();
    assert!(unset.diagnostics.is_empty(), "{:?}", unset.diagnostics);
    let caps = Some(pb::ClientCapabilities {
        deferral_allowed: true,
        write_only_attributes_allowed: true,
    });
    let new = s
        .client
        .validate_resource_config(validate(caps, json!("hunter2")))
        .await
        .unwrap()
        .into_inner();
    assert!(new.diagnostics.is_empty(), "{:?}", new.diagnostics);
}

#[tokio::test]
async fn import_by_id_and_by_identity_answer_with_state_and_identity() {
    let mut s = serve().await;
    let by_id = s
        .client
        .import_resource_state(pb::import_resource_state::Request {
            type_name: "demo_thing".into(),
            id: "z2/b".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(by_id.diagnostics.is_empty(), "{:?}", by_id.diagnostics);
    let imported = &by_id.imported_resources[0];
    assert_eq!(value(&imported.state)["id"], json!("z2/b"));
    assert_eq!(
        identity(&imported.identity),
        json!({"zone": "z2", "name": "b"})
    );

    // Terraform 1.12+ with `import { identity = { ... } }`: no id, an identity (in its own
    // key order, with an attribute the schema does not have).
    let by_identity = s
        .client
        .import_resource_state(pb::import_resource_state::Request {
            type_name: "demo_thing".into(),
            id: String::new(),
            identity: identity_data(json!({"name": "c", "zone": "z3", "stale": 1})),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        by_identity.diagnostics.is_empty(),
        "{:?}",
        by_identity.diagnostics
    );
    let imported = &by_identity.imported_resources[0];
    assert_eq!(value(&imported.state)["name"], json!("c"));
    // The state left `zone` out; the identity keeps what the import named.
    assert_eq!(
        identity(&imported.identity),
        json!({"zone": "z3", "name": "c"})
    );

    let incomplete = s
        .client
        .import_resource_state(pb::import_resource_state::Request {
            type_name: "demo_thing".into(),
            identity: identity_data(json!({"name": "c"})),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(errors(&incomplete.diagnostics)[0].contains("Give `zone` and `name`"));
}

#[tokio::test]
async fn a_stored_identity_is_upgraded_to_the_schema() {
    let mut s = serve().await;
    let upgrade = |version, raw: &str| pb::upgrade_resource_identity::Request {
        type_name: "demo_thing".into(),
        version,
        raw_identity: Some(pb::RawState {
            json: raw.as_bytes().to_vec(),
            flatmap: Default::default(),
        }),
    };
    let ok = s
        .client
        .upgrade_resource_identity(upgrade(-1, r#"{"zone":"z1","name":"a","gone":true}"#))
        .await
        .unwrap()
        .into_inner();
    assert!(ok.diagnostics.is_empty(), "{:?}", ok.diagnostics);
    assert_eq!(
        identity(&ok.upgraded_identity),
        json!({"zone": "z1", "name": "a"})
    );
    let newer = s
        .client
        .upgrade_resource_identity(upgrade(3, r#"{"zone":"z1"}"#))
        .await
        .unwrap()
        .into_inner();
    assert!(errors(&newer.diagnostics)[0].contains("newer provider"));
}

async fn list(
    client: &mut Client,
    type_name: &str,
    config: serde_json::Value,
    include: bool,
    limit: i64,
) -> Vec<pb::list_resource::Event> {
    let mut stream = client
        .list_resource(pb::list_resource::Request {
            type_name: type_name.into(),
            config: mp(config),
            include_resource_object: include,
            limit,
        })
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    while let Some(event) = stream.message().await.unwrap() {
        events.push(event);
    }
    events
}

#[tokio::test]
async fn a_list_streams_identities_up_to_the_limit() {
    let mut s = serve().await;
    let events = list(
        &mut s.client,
        "demo_thing",
        json!({"zone": "z9", "fail_after": null}),
        false,
        3,
    )
    .await;
    assert_eq!(events.len(), 3, "{events:?}");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.display_name, format!("thing t{i}"));
        assert_eq!(
            identity(&e.identity),
            json!({"zone": "z9", "name": format!("t{i}")})
        );
        assert!(e.resource_object.is_none());
        assert!(e.diagnostic.is_empty());
    }
    // With the objects asked for (and no `config` block: every filter unset).
    let events = list(&mut s.client, "demo_thing", json!(null), true, 100).await;
    assert_eq!(events.len(), 5);
    let object = value(&events[4].resource_object);
    assert_eq!(object["id"], json!("z1/t4"));
    assert_eq!(
        object["secret_wo"],
        json!(null),
        "a write-only value in a listed object"
    );
}

#[tokio::test]
async fn a_list_that_fails_ends_with_its_error() {
    let mut s = serve().await;
    let events = list(
        &mut s.client,
        "demo_thing",
        json!({"zone": null, "fail_after": 2}),
        false,
        100,
    )
    .await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events[..2].iter().all(|e| e.identity.is_some()));
    assert!(errors(&events[2].diagnostic)[0].contains("vCenter went away"));
    let unknown = list(&mut s.client, "demo_nothing", json!(null), false, 10).await;
    assert!(errors(&unknown[0].diagnostic)[0].contains("no list resource type \"demo_nothing\""));

    let validate = |zone: &str| pb::validate_list_resource_config::Request {
        type_name: "demo_thing".into(),
        config: mp(json!({"zone": zone, "fail_after": null})),
        ..Default::default()
    };
    let bad = s
        .client
        .validate_list_resource_config(validate("nowhere"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        errors(&bad.diagnostics),
        vec!["No such zone: There is no zone nowhere."]
    );
    let good = s
        .client
        .validate_list_resource_config(validate("z1"))
        .await
        .unwrap()
        .into_inner();
    assert!(good.diagnostics.is_empty());
}

#[tokio::test]
async fn a_move_adopts_known_sources_and_names_unknown_ones() {
    let mut s = serve().await;
    let mv = |provider: &str, type_name: &str| pb::move_resource_state::Request {
        source_provider_address: provider.into(),
        source_type_name: type_name.into(),
        source_schema_version: 1,
        source_state: Some(pb::RawState {
            json: br#"{"label":"moved","region":"z5","extra":[1,2]}"#.to_vec(),
            flatmap: Default::default(),
        }),
        target_type_name: "demo_thing".into(),
        ..Default::default()
    };
    let ok = s
        .client
        .move_resource_state(mv("registry.terraform.io/example/old", "old_thing"))
        .await
        .unwrap()
        .into_inner();
    assert!(ok.diagnostics.is_empty(), "{:?}", ok.diagnostics);
    assert_eq!(value(&ok.target_state)["id"], json!("z5/moved"));
    assert_eq!(
        identity(&ok.target_identity),
        json!({"zone": "z5", "name": "moved"})
    );

    let refused = s
        .client
        .move_resource_state(mv("registry.terraform.io/hashicorp/aws", "aws_instance"))
        .await
        .unwrap()
        .into_inner();
    let errs = errors(&refused.diagnostics);
    assert!(
        errs[0].contains("Cannot move aws_instance to demo_thing"),
        "{errs:?}"
    );
    assert!(
        errs[0].contains("adopts only old_thing of example/old"),
        "{errs:?}"
    );
    assert!(refused.target_state.is_none());
}

#[test]
fn unknown_identity_values_survive_the_wire_encoding() {
    // The planned identity of a create may hold unknowns; they encode as cty's unknown.
    let t = Tree::Map(vec![(Tree::from("zone"), Tree::Ext(0, vec![0]))]);
    let back = codec::read_msgpack(&mp_tree(&t).unwrap().msgpack).unwrap();
    assert!(crate::identity::has_unknown(&back));
}
