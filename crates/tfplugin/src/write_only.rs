//! Write-only attributes (Terraform 1.11+): their values reach the provider in the
//! configuration only. The server nulls them in every state and plan it returns, at any
//! depth, and refuses them with a diagnostic when the client cannot send them without
//! storing them (a Terraform before 1.11 does not declare `write_only_attributes_allowed`).

use std::collections::HashMap;

use crate::codec::{self, Tree};
use crate::diagnostics::{AttributePath, Diagnostics};
use crate::schema::{Attribute, AttributeType, Block, NestedBlock};

/// Whether the block has a write-only attribute anywhere (else nothing needs doing).
pub(crate) fn any(block: &Block) -> bool {
    block.attributes.values().any(attribute_has_write_only)
        || block.blocks.values().any(|b| any(b.block()))
}

fn attribute_has_write_only(a: &Attribute) -> bool {
    a.write_only
        || nested_attributes(&a.attr_type).is_some_and(|m| m.values().any(attribute_has_write_only))
}

fn nested_attributes(t: &AttributeType) -> Option<&HashMap<String, Attribute>> {
    match t {
        AttributeType::AttributeSingle(m)
        | AttributeType::AttributeList(m)
        | AttributeType::AttributeSet(m)
        | AttributeType::AttributeMap(m) => Some(m),
        _ => None,
    }
}

/// How objects repeat under a nested block or nested attribute.
#[derive(Clone, Copy)]
enum Nesting {
    One,
    Many,
    Keyed,
}

/// The objects `v` holds under `nesting`.
fn objects_mut(nesting: Nesting, v: &mut Tree) -> Vec<&mut Tree> {
    match (nesting, v) {
        (Nesting::One, v @ Tree::Map(_)) => vec![v],
        (Nesting::Many, Tree::Array(items)) => items.iter_mut().collect(),
        (Nesting::Keyed, Tree::Map(entries)) => entries.iter_mut().map(|(_, v)| v).collect(),
        _ => Vec::new(),
    }
}

fn block_nesting(b: &NestedBlock) -> Nesting {
    match b {
        NestedBlock::Single(_) | NestedBlock::Group(_) => Nesting::One,
        NestedBlock::List(_) | NestedBlock::Set(_) | NestedBlock::Optional(_) => Nesting::Many,
        NestedBlock::Map(_) => Nesting::Keyed,
    }
}

fn attribute_nesting(t: &AttributeType) -> Nesting {
    match t {
        AttributeType::AttributeList(_) | AttributeType::AttributeSet(_) => Nesting::Many,
        AttributeType::AttributeMap(_) => Nesting::Keyed,
        _ => Nesting::One,
    }
}

/// Sets every write-only attribute of `value` (an object of `block`) to null.
pub(crate) fn nullify(block: &Block, value: &mut Tree) {
    let Tree::Map(entries) = value else {
        return;
    };
    for (key, v) in entries.iter_mut() {
        let Some(name) = key.as_str() else { continue };
        if let Some(a) = block.attributes.get(name) {
            if a.write_only {
                *v = Tree::Nil;
            } else if let Some(attrs) = nested_attributes(&a.attr_type) {
                if attrs.values().any(attribute_has_write_only) {
                    let inner = Block {
                        attributes: attrs.clone(),
                        ..Default::default()
                    };
                    for item in objects_mut(attribute_nesting(&a.attr_type), v) {
                        nullify(&inner, item);
                    }
                }
            }
        } else if let Some(nested) = block.blocks.get(name) {
            if any(nested.block()) {
                for item in objects_mut(block_nesting(nested), v) {
                    nullify(nested.block(), item);
                }
            }
        }
    }
}

/// Errors for write-only attributes `config` sets, for a client that cannot send them.
pub(crate) fn refuse(block: &Block, config: &Tree, base: &AttributePath, diags: &mut Diagnostics) {
    for (name, a) in &block.attributes {
        let Some(v) = codec::get(config, name) else {
            continue;
        };
        let path = base.clone().attribute(name);
        if a.write_only {
            if !matches!(v, Tree::Nil) {
                refuse_one(a, &path, diags);
            }
        } else if let Some(attrs) = nested_attributes(&a.attr_type) {
            let inner = Block {
                attributes: attrs.clone(),
                ..Default::default()
            };
            match (&a.attr_type, v) {
                (AttributeType::AttributeSingle(_), v) => refuse(&inner, v, &path, diags),
                (AttributeType::AttributeList(_), Tree::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        refuse(&inner, item, &path.clone().index(i as i64), diags);
                    }
                }
                // Set elements have no index to point at: the set itself is named.
                (AttributeType::AttributeSet(_), Tree::Array(items)) => {
                    for item in items {
                        refuse(&inner, item, &path, diags);
                    }
                }
                (AttributeType::AttributeMap(_), Tree::Map(entries)) => {
                    for (k, item) in entries {
                        let key = k.as_str().unwrap_or_default();
                        refuse(&inner, item, &path.clone().key(key), diags);
                    }
                }
                _ => {}
            }
        }
    }
    for (name, nested) in &block.blocks {
        let Some(v) = codec::get(config, name) else {
            continue;
        };
        let path = base.clone().attribute(name);
        let inner = nested.block();
        match (nested, v) {
            (NestedBlock::Single(_) | NestedBlock::Group(_), v) => refuse(inner, v, &path, diags),
            (NestedBlock::List(_) | NestedBlock::Optional(_), Tree::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    refuse(inner, item, &path.clone().index(i as i64), diags);
                }
            }
            (NestedBlock::Set(_), Tree::Array(items)) => {
                for item in items {
                    refuse(inner, item, &path, diags);
                }
            }
            (NestedBlock::Map(_), Tree::Map(entries)) => {
                for (k, item) in entries {
                    let key = k.as_str().unwrap_or_default();
                    refuse(inner, item, &path.clone().key(key), diags);
                }
            }
            _ => {}
        }
    }
}

fn refuse_one(a: &Attribute, path: &AttributePath, diags: &mut Diagnostics) {
    let instead = match &a.use_instead {
        Some(other) => format!(
            "Set `{other}` instead (kept in the state, marked sensitive), or use Terraform 1.11 or later to keep the value out of the state."
        ),
        None => "Remove it, or use Terraform 1.11 or later.".to_string(),
    };
    diags.error(
        "Write-only attribute needs Terraform 1.11 or later",
        format!(
            "`{path}` is write-only: Terraform passes its value to the provider without ever storing it, which this version of Terraform cannot do. {instead}"
        ),
        path.clone(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::from_json;
    use crate::schema::AttributeConstraint;
    use serde_json::json;

    fn windows() -> Block {
        let plain = Attribute {
            constraint: AttributeConstraint::Optional,
            sensitive: true,
            ..Default::default()
        };
        let wo = |instead: Option<&str>| Attribute {
            write_only: true,
            use_instead: instead.map(str::to_string),
            ..plain.clone()
        };
        let nested = Attribute {
            attr_type: AttributeType::AttributeList(crate::map! {
                "secret_wo" => wo(None),
                "label" => plain.clone(),
            }),
            ..plain.clone()
        };
        let inner = Block {
            attributes: crate::map! {
                "admin_password" => plain.clone(),
                "admin_password_wo" => wo(Some("admin_password")),
            },
            ..Default::default()
        };
        Block {
            attributes: crate::map! { "name" => plain.clone(), "token_wo" => wo(None), "extra" => nested },
            blocks: crate::map! { "windows" => NestedBlock::Optional(inner) },
            ..Default::default()
        }
    }

    #[test]
    fn write_only_values_are_nulled_at_any_depth() {
        let block = windows();
        assert!(any(&block));
        assert!(!any(&Block::default()));
        let mut v = from_json(json!({
            "name": "vm", "token_wo": "t",
            "extra": [{"secret_wo": "s", "label": "l"}],
            "windows": [{"admin_password": "p", "admin_password_wo": "w"}]
        }));
        nullify(&block, &mut v);
        assert_eq!(
            v,
            from_json(json!({
                "name": "vm", "token_wo": null,
                "extra": [{"secret_wo": null, "label": "l"}],
                "windows": [{"admin_password": "p", "admin_password_wo": null}]
            }))
        );
    }

    #[test]
    fn an_old_terraform_is_told_which_attribute_to_use_instead() {
        let block = windows();
        let config = from_json(json!({
            "name": "vm", "token_wo": null,
            "extra": [{"secret_wo": null, "label": "l"}, {"secret_wo": "s", "label": null}],
            "windows": [{"admin_password": null, "admin_password_wo": "w"}]
        }));
        let mut diags = Diagnostics::default();
        refuse(&block, &config, &AttributePath::root(), &mut diags);
        let mut got: Vec<_> = diags
            .errors
            .iter()
            .map(|d| (d.attribute.clone().unwrap().to_string(), d.detail.clone()))
            .collect();
        got.sort();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].0, "extra[1].secret_wo");
        assert!(got[0].1.contains("Remove it"), "{}", got[0].1);
        assert_eq!(got[1].0, "windows[0].admin_password_wo");
        assert!(
            got[1].1.contains("Set `admin_password` instead"),
            "{}",
            got[1].1
        );
        // Nothing configured: nothing to refuse.
        let mut diags = Diagnostics::default();
        let empty =
            from_json(json!({"name": "vm", "token_wo": null, "extra": null, "windows": []}));
        refuse(&block, &empty, &AttributePath::root(), &mut diags);
        assert!(diags.errors.is_empty());
    }
}
