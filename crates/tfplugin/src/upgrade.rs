//! Stored state (JSON, as Terraform keeps it) to the MessagePack of the current schema.
//!
//! Terraform asks for this before every use of a stored state. Attributes the schema no
//! longer has are dropped, new ones are null, so a provider that added an optional attribute
//! reads older states unchanged.

use crate::codec::{get, Tree};
use crate::schema::{Attribute, AttributeType, Block, NestedBlock};

/// `value` shaped as an object of `block`.
pub fn conform(value: &Tree, block: &Block) -> Tree {
    if matches!(value, Tree::Nil) {
        return Tree::Nil;
    }
    let mut entries = Vec::with_capacity(block.attributes.len() + block.blocks.len());
    for (name, attribute) in &block.attributes {
        let v = get(value, name).unwrap_or(&Tree::Nil);
        entries.push((Tree::from(name.as_str()), conform_attribute(v, attribute)));
    }
    for (name, nested) in &block.blocks {
        let v = get(value, name).unwrap_or(&Tree::Nil);
        let inner = nested.block();
        let shaped = match (nested, v) {
            (
                NestedBlock::List(_) | NestedBlock::Set(_) | NestedBlock::Optional(_),
                Tree::Array(items),
            ) => Tree::Array(items.iter().map(|i| conform(i, inner)).collect()),
            (NestedBlock::List(_) | NestedBlock::Set(_) | NestedBlock::Optional(_), _) => {
                Tree::Array(Vec::new())
            }
            (NestedBlock::Map(_), Tree::Map(items)) => Tree::Map(
                items
                    .iter()
                    .map(|(k, i)| (k.clone(), conform(i, inner)))
                    .collect(),
            ),
            (NestedBlock::Map(_), _) => Tree::Map(Vec::new()),
            (NestedBlock::Group(_), Tree::Nil) => conform(&Tree::Map(Vec::new()), inner),
            (NestedBlock::Single(_) | NestedBlock::Group(_), v) => conform(v, inner),
        };
        entries.push((Tree::from(name.as_str()), shaped));
    }
    Tree::Map(entries)
}

fn conform_attribute(v: &Tree, attribute: &Attribute) -> Tree {
    let nested = |attrs: &std::collections::HashMap<String, Attribute>, v: &Tree| {
        let block = Block {
            attributes: attrs.clone(),
            ..Default::default()
        };
        conform(v, &block)
    };
    match (&attribute.attr_type, v) {
        (_, Tree::Nil) => Tree::Nil,
        (AttributeType::AttributeSingle(a), v) => nested(a, v),
        (AttributeType::AttributeList(a) | AttributeType::AttributeSet(a), Tree::Array(items)) => {
            Tree::Array(items.iter().map(|i| nested(a, i)).collect())
        }
        (AttributeType::AttributeMap(a), Tree::Map(items)) => Tree::Map(
            items
                .iter()
                .map(|(k, i)| (k.clone(), nested(a, i)))
                .collect(),
        ),
        (_, v) => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::from_json;
    use crate::schema::AttributeConstraint;

    #[test]
    fn drops_removed_attributes_and_adds_new_ones_as_null() {
        let attr = |t| Attribute {
            attr_type: t,
            constraint: AttributeConstraint::Optional,
            ..Default::default()
        };
        let nic = Block {
            attributes: crate::map! { "ip" => attr(AttributeType::String) },
            ..Default::default()
        };
        let block = Block {
            attributes: crate::map! {
                "name" => attr(AttributeType::String),
                "added" => attr(AttributeType::Number)
            },
            blocks: crate::map! { "nic" => NestedBlock::List(nic) },
            ..Default::default()
        };
        let stored = from_json(
            serde_json::json!({"name": "a", "gone": 1, "nic": [{"ip": "x", "old": true}]}),
        );
        let t = conform(&stored, &block);
        assert_eq!(get(&t, "name"), Some(&Tree::from("a")));
        assert_eq!(get(&t, "added"), Some(&Tree::Nil));
        assert_eq!(get(&t, "gone"), None);
        let Some(Tree::Array(nics)) = get(&t, "nic") else {
            panic!("{t:?}")
        };
        assert_eq!(get(&nics[0], "old"), None);
        assert_eq!(get(&nics[0], "ip"), Some(&Tree::from("x")));
    }
}
