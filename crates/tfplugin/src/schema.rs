//! Schemas as resources declare them, and their protocol form.
//!
//! Besides what Terraform needs, an attribute says whether changing it replaces the resource
//! (`requires_replace`, a [`Replace`]): the server adds those paths to every plan itself.

use std::collections::HashMap;

use crate::proto::tfplugin6 as pb;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StringKind {
    #[default]
    Plain,
    Markdown,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Description {
    pub kind: StringKind,
    pub content: String,
}

impl Description {
    pub fn plain(content: impl Into<String>) -> Self {
        Self {
            kind: StringKind::Plain,
            content: content.into(),
        }
    }
    pub fn markdown(content: impl Into<String>) -> Self {
        Self {
            kind: StringKind::Markdown,
            content: content.into(),
        }
    }
}

impl<T: Into<String>> From<T> for Description {
    fn from(value: T) -> Self {
        Description::plain(value)
    }
}

/// The type of an attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttributeType {
    String,
    Number,
    Bool,
    List(Box<AttributeType>),
    Set(Box<AttributeType>),
    Map(Box<AttributeType>),
    Object(HashMap<String, AttributeType>),
    Tuple(Vec<AttributeType>),
    /// Nested attributes (protocol 6): one object, or a list/set/map of them.
    AttributeSingle(HashMap<String, Attribute>),
    AttributeList(HashMap<String, Attribute>),
    AttributeSet(HashMap<String, Attribute>),
    AttributeMap(HashMap<String, Attribute>),
    /// Terraform's dynamic pseudo-type.
    Any,
}

impl AttributeType {
    /// cty's JSON type notation: `"string"`, `["list","number"]`, `["object",{...}]`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{json, Value as J};
        let object = |attrs: &HashMap<String, Attribute>| {
            J::Object(
                attrs
                    .iter()
                    .map(|(k, a)| (k.clone(), a.attr_type.to_json()))
                    .collect(),
            )
        };
        match self {
            AttributeType::String => json!("string"),
            AttributeType::Number => json!("number"),
            AttributeType::Bool => json!("bool"),
            AttributeType::Any => json!("dynamic"),
            AttributeType::List(t) => json!(["list", t.to_json()]),
            AttributeType::Set(t) => json!(["set", t.to_json()]),
            AttributeType::Map(t) => json!(["map", t.to_json()]),
            AttributeType::Object(m) => json!([
                "object",
                J::Object(m.iter().map(|(k, t)| (k.clone(), t.to_json())).collect())
            ]),
            AttributeType::Tuple(ts) => {
                json!(["tuple", J::Array(ts.iter().map(|t| t.to_json()).collect())])
            }
            AttributeType::AttributeSingle(a) => json!(["object", object(a)]),
            AttributeType::AttributeList(a) => json!(["list", ["object", object(a)]]),
            AttributeType::AttributeSet(a) => json!(["set", ["object", object(a)]]),
            AttributeType::AttributeMap(a) => json!(["map", ["object", object(a)]]),
        }
    }
}

/// Whether a change of an attribute replaces the resource. Only a change the configuration
/// makes counts: an optional and computed attribute left out of the configuration is the
/// provider's to fill and never forces a replacement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Replace {
    /// Changes in place (or is computed).
    #[default]
    Never,
    /// Any change replaces the resource.
    Always,
    /// A change replaces the resource once the state holds a value; from null it does not.
    /// For inputs only a create uses, which an imported resource has not recorded yet: its
    /// first apply records them without replacing it.
    OnceSet,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttributeConstraint {
    /// Set by the provider only.
    Computed,
    /// Set by the user or left null.
    Optional,
    /// Set by the user, or by the provider when the user leaves it out.
    OptionalComputed,
    Required,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    pub attr_type: AttributeType,
    pub description: Description,
    pub constraint: AttributeConstraint,
    pub sensitive: bool,
    /// Never stored in state or plan (Terraform 1.11+); the value reaches the provider in the
    /// configuration only.
    pub write_only: bool,
    /// For a write-only attribute: the attribute a Terraform without write-only support
    /// (before 1.11) should be given instead; the diagnostic names it.
    pub use_instead: Option<String>,
    pub deprecated: bool,
    /// Shown when the deprecated attribute is used.
    pub deprecation_message: String,
    /// Whether a change of this attribute replaces the resource.
    pub requires_replace: Replace,
    /// The value an optional and computed attribute the configuration leaves out takes in the
    /// plan; the server fills it in before the resource plans.
    pub default: Option<serde_json::Value>,
}

impl Default for Attribute {
    fn default() -> Self {
        Self {
            attr_type: AttributeType::String,
            description: Description::default(),
            constraint: AttributeConstraint::Optional,
            sensitive: false,
            write_only: false,
            use_instead: None,
            deprecated: false,
            deprecation_message: String::new(),
            requires_replace: Replace::Never,
            default: None,
        }
    }
}

/// How a nested block repeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NestedBlock {
    Single(Block),
    List(Block),
    Set(Block),
    Map(Block),
    Group(Block),
    /// At most one block: a list block of at most one item, whose state field is a
    /// `Value<T>` written with [`crate::value::serde_as_vec`].
    Optional(Block),
}

impl NestedBlock {
    pub fn block(&self) -> &Block {
        match self {
            NestedBlock::Single(b)
            | NestedBlock::List(b)
            | NestedBlock::Set(b)
            | NestedBlock::Map(b)
            | NestedBlock::Group(b)
            | NestedBlock::Optional(b) => b,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub version: i64,
    pub attributes: HashMap<String, Attribute>,
    pub blocks: HashMap<String, NestedBlock>,
    pub description: Description,
    pub deprecated: bool,
}

impl Default for Block {
    fn default() -> Self {
        Self {
            version: 1,
            attributes: HashMap::new(),
            blocks: HashMap::new(),
            description: Description::default(),
            deprecated: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schema {
    pub version: i64,
    pub block: Block,
}

fn kind(k: StringKind) -> i32 {
    match k {
        StringKind::Plain => pb::StringKind::Plain as i32,
        StringKind::Markdown => pb::StringKind::Markdown as i32,
    }
}

fn attribute(name: &str, a: &Attribute) -> pb::schema::Attribute {
    use pb::schema::object::NestingMode as N;
    let nested = |attrs: &HashMap<String, Attribute>, nesting: N| {
        let mut attributes: Vec<_> = attrs.iter().map(|(n, a)| attribute(n, a)).collect();
        attributes.sort_by(|a, b| a.name.cmp(&b.name));
        Some(pb::schema::Object {
            attributes,
            nesting: nesting as i32,
            ..Default::default()
        })
    };
    let (r#type, nested_type) = match &a.attr_type {
        AttributeType::AttributeSingle(m) => (Vec::new(), nested(m, N::Single)),
        AttributeType::AttributeList(m) => (Vec::new(), nested(m, N::List)),
        AttributeType::AttributeSet(m) => (Vec::new(), nested(m, N::Set)),
        AttributeType::AttributeMap(m) => (Vec::new(), nested(m, N::Map)),
        t => (t.to_json().to_string().into_bytes(), None),
    };
    pb::schema::Attribute {
        name: name.to_string(),
        r#type,
        nested_type,
        description: a.description.content.clone(),
        description_kind: kind(a.description.kind),
        required: a.constraint == AttributeConstraint::Required,
        optional: matches!(
            a.constraint,
            AttributeConstraint::Optional | AttributeConstraint::OptionalComputed
        ),
        computed: matches!(
            a.constraint,
            AttributeConstraint::Computed | AttributeConstraint::OptionalComputed
        ),
        sensitive: a.sensitive,
        deprecated: a.deprecated,
        deprecation_message: a.deprecation_message.clone(),
        write_only: a.write_only,
    }
}

impl From<&Block> for pb::schema::Block {
    fn from(b: &Block) -> Self {
        use pb::schema::nested_block::NestingMode as N;
        let mut attributes: Vec<_> = b.attributes.iter().map(|(n, a)| attribute(n, a)).collect();
        attributes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut block_types: Vec<_> = b
            .blocks
            .iter()
            .map(|(name, nb)| {
                let (nesting, max_items) = match nb {
                    NestedBlock::Single(_) => (N::Single, 0),
                    NestedBlock::List(_) => (N::List, 0),
                    NestedBlock::Set(_) => (N::Set, 0),
                    NestedBlock::Map(_) => (N::Map, 0),
                    NestedBlock::Group(_) => (N::Group, 0),
                    NestedBlock::Optional(_) => (N::List, 1),
                };
                pb::schema::NestedBlock {
                    type_name: name.clone(),
                    block: Some(nb.block().into()),
                    nesting: nesting as i32,
                    min_items: 0,
                    max_items,
                }
            })
            .collect();
        block_types.sort_by(|a, b| a.type_name.cmp(&b.type_name));
        pb::schema::Block {
            version: b.version,
            attributes,
            block_types,
            description: b.description.content.clone(),
            description_kind: kind(b.description.kind),
            deprecated: b.deprecated,
            deprecation_message: String::new(),
        }
    }
}

impl From<&Schema> for pb::Schema {
    fn from(s: &Schema) -> Self {
        pb::Schema {
            version: s.version,
            block: Some((&s.block).into()),
        }
    }
}

/// `HashMap` literal: `map! { "a" => x, "b" => y }` (keys become `String`).
#[macro_export]
macro_rules! map {
    ($($k:expr => $v:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut m = ::std::collections::HashMap::new();
        $( m.insert(::std::string::String::from($k), ::std::convert::Into::into($v)); )*
        m
    }};
}

/// A resource's identity (Terraform 1.12+): the few values that name its remote object for
/// good, stored beside its state and accepted by `import { identity = { ... } }`.
///
/// Each attribute mirrors a top-level attribute of the resource's state, so the server
/// derives the identity from every state it returns and it cannot drift from the state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentitySchema {
    /// Bumped when the attributes change shape (`UpgradeResourceIdentity`).
    pub version: i64,
    pub attributes: Vec<IdentityAttribute>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityAttribute {
    pub name: String,
    /// A primitive type (string, number, bool) or a list of one.
    pub attr_type: AttributeType,
    pub description: String,
    /// The state attribute holding the value (for example `id` for `vm_uuid`).
    pub state_attribute: String,
    /// An import by identity must give it (else the provider can find it from the others).
    pub required_for_import: bool,
}

impl IdentityAttribute {
    /// A string identity attribute taken from the state attribute `state_attribute`, required
    /// for an import.
    pub fn string(
        name: impl Into<String>,
        state_attribute: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            attr_type: AttributeType::String,
            description: description.into(),
            state_attribute: state_attribute.into(),
            required_for_import: true,
        }
    }
}

impl From<&IdentitySchema> for pb::ResourceIdentitySchema {
    fn from(s: &IdentitySchema) -> Self {
        pb::ResourceIdentitySchema {
            version: s.version,
            identity_attributes: s
                .attributes
                .iter()
                .map(|a| pb::resource_identity_schema::IdentityAttribute {
                    name: a.name.clone(),
                    r#type: a.attr_type.to_json().to_string().into_bytes(),
                    required_for_import: a.required_for_import,
                    optional_for_import: !a.required_for_import,
                    description: a.description.clone(),
                })
                .collect(),
        }
    }
}
