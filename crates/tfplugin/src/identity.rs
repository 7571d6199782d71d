//! Resource identity (Terraform 1.12+): derived by the server from every state a resource
//! returns, so it is as stable as the state attributes it mirrors, and the identity an
//! `import { identity = { ... } }` block names, handed to the resource typed.

use serde::de::DeserializeOwned;

use crate::codec::{self, Tree};
use crate::diagnostics::Diagnostics;
use crate::proto::tfplugin6 as pb;
use crate::schema::IdentitySchema;

/// An identity as Terraform sent it (an import by identity, a moved resource's source).
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    tree: Tree,
}

impl Identity {
    pub(crate) fn new(tree: Tree) -> Self {
        Self { tree }
    }

    /// The attribute `name` typed; `None` when it is absent, null or of another type.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        codec::get(&self.tree, name).and_then(|v| codec::from_tree::<Option<T>>(v).ok()?)
    }

    /// The string attribute `name`, when set.
    pub fn string(&self, name: &str) -> Option<String> {
        self.get::<String>(name)
    }

    /// Names and values of the attributes that are set (for messages).
    pub fn describe(&self) -> String {
        let Tree::Map(entries) = &self.tree else {
            return "null".into();
        };
        entries
            .iter()
            .filter(|(_, v)| !matches!(v, Tree::Nil))
            .map(|(k, v)| format!("{} = {}", k.as_str().unwrap_or("?"), v))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The identity of the object `state` describes: each attribute copied from its state
/// attribute. A null state has a null identity.
pub(crate) fn of_state(schema: &IdentitySchema, state: &Tree) -> Tree {
    if matches!(state, Tree::Nil) {
        return Tree::Nil;
    }
    Tree::Map(
        schema
            .attributes
            .iter()
            .map(|a| {
                let v = codec::get(state, &a.state_attribute)
                    .cloned()
                    .unwrap_or(Tree::Nil);
                (Tree::from(a.name.as_str()), v)
            })
            .collect(),
    )
}

/// `raw` (stored JSON, or what Terraform sent) shaped as an object of the schema: attributes
/// the schema lacks are dropped, missing ones are null.
pub(crate) fn conform(schema: &IdentitySchema, raw: &Tree) -> Tree {
    if matches!(raw, Tree::Nil) {
        return Tree::Nil;
    }
    Tree::Map(
        schema
            .attributes
            .iter()
            .map(|a| {
                let v = codec::get(raw, &a.name).cloned().unwrap_or(Tree::Nil);
                (Tree::from(a.name.as_str()), v)
            })
            .collect(),
    )
}

/// Null, or an object whose attributes are all null.
pub(crate) fn is_null(identity: &Tree) -> bool {
    match identity {
        Tree::Nil => true,
        Tree::Map(entries) => entries.iter().all(|(_, v)| matches!(v, Tree::Nil)),
        _ => false,
    }
}

/// Whether any value inside is unknown.
pub(crate) fn has_unknown(tree: &Tree) -> bool {
    match tree {
        Tree::Ext(0 | 12, _) => true,
        Tree::Array(items) => items.iter().any(has_unknown),
        Tree::Map(entries) => entries.iter().any(|(_, v)| has_unknown(v)),
        _ => false,
    }
}

/// The same identity, attribute by attribute (Terraform may order an object's keys otherwise).
pub(crate) fn same(schema: &IdentitySchema, a: &Tree, b: &Tree) -> bool {
    schema
        .attributes
        .iter()
        .all(|attr| codec::get(a, &attr.name) == codec::get(b, &attr.name))
}

/// Decodes an identity Terraform sent; absent is null.
pub(crate) fn read(
    diags: &mut Diagnostics,
    data: &Option<pb::ResourceIdentityData>,
) -> Option<Tree> {
    let Some(v) = data.as_ref().and_then(|d| d.identity_data.as_ref()) else {
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
                "Malformed resource identity",
                format!("{e}. Terraform sent an identity this provider cannot read; check that Terraform and the provider are compatible versions."),
            );
            None
        }
    }
}

/// The protocol form; a null identity is left out.
pub(crate) fn data(identity: &Tree) -> Option<pb::ResourceIdentityData> {
    if matches!(identity, Tree::Nil) {
        return None;
    }
    Some(pb::ResourceIdentityData {
        identity_data: Some(pb::DynamicValue {
            msgpack: codec::tree_to_msgpack(identity),
            json: Vec::new(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::from_json;
    use crate::schema::IdentityAttribute;
    use serde_json::json;

    /// An object with its keys in the order given (the schema's).
    fn obj(entries: &[(&str, Tree)]) -> Tree {
        Tree::Map(
            entries
                .iter()
                .map(|(k, v)| (Tree::from(*k), v.clone()))
                .collect(),
        )
    }

    fn schema() -> IdentitySchema {
        IdentitySchema {
            version: 0,
            attributes: vec![
                IdentityAttribute::string("subnet_id", "subnet_id", "The subnet."),
                IdentityAttribute::string("ip_address", "address", "The address."),
            ],
        }
    }

    #[test]
    fn the_identity_mirrors_state_attributes() {
        let state = from_json(json!({"subnet_id": "s1", "address": "10.0.0.5", "note": "x"}));
        let id = of_state(&schema(), &state);
        assert_eq!(
            id,
            obj(&[
                ("subnet_id", "s1".into()),
                ("ip_address", "10.0.0.5".into())
            ])
        );
        assert!(!is_null(&id) && !has_unknown(&id));
        assert_eq!(of_state(&schema(), &Tree::Nil), Tree::Nil);
        // Key order does not matter; values do.
        let reordered = from_json(json!({"ip_address": "10.0.0.5", "subnet_id": "s1"}));
        assert!(same(&schema(), &id, &reordered));
        let other = from_json(json!({"ip_address": "10.0.0.6", "subnet_id": "s1"}));
        assert!(!same(&schema(), &id, &other));
    }

    #[test]
    fn unknown_and_null_identities_are_told_apart() {
        let planned = Tree::Map(vec![
            (Tree::from("subnet_id"), Tree::from("s1")),
            (Tree::from("ip_address"), Tree::Ext(0, vec![0])),
        ]);
        assert!(has_unknown(&planned) && !is_null(&planned));
        assert!(is_null(&from_json(
            json!({"subnet_id": null, "ip_address": null})
        )));
    }

    #[test]
    fn conform_drops_and_adds_attributes() {
        let raw = from_json(json!({"subnet_id": "s1", "old": 1}));
        let c = conform(&schema(), &raw);
        assert_eq!(
            c,
            obj(&[("subnet_id", "s1".into()), ("ip_address", Tree::Nil)])
        );
        let identity = Identity::new(c);
        assert_eq!(identity.string("subnet_id").as_deref(), Some("s1"));
        assert_eq!(identity.string("ip_address"), None);
        assert_eq!(identity.describe(), "subnet_id = \"s1\"");
    }
}
