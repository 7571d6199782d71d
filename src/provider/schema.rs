//! Short constructors for schema attributes. Descriptions are Markdown and are the single
//! source of the Registry docs (`src/provider/docs.rs` renders them).

use tfplugin::schema::{
    Attribute, AttributeConstraint, AttributeType, Description, IdentityAttribute, IdentitySchema,
    Replace,
};

fn attribute(constraint: AttributeConstraint, attr_type: AttributeType, doc: &str) -> Attribute {
    Attribute {
        attr_type,
        description: Description::markdown(doc),
        constraint,
        ..Default::default()
    }
}

pub fn required(attr_type: AttributeType, doc: &str) -> Attribute {
    attribute(AttributeConstraint::Required, attr_type, doc)
}

pub fn optional(attr_type: AttributeType, doc: &str) -> Attribute {
    attribute(AttributeConstraint::Optional, attr_type, doc)
}

pub fn computed(attr_type: AttributeType, doc: &str) -> Attribute {
    attribute(AttributeConstraint::Computed, attr_type, doc)
}

pub fn optional_computed(attr_type: AttributeType, doc: &str) -> Attribute {
    attribute(AttributeConstraint::OptionalComputed, attr_type, doc)
}

/// `attribute`, whose change replaces the resource (the protocol layer plans the replacement).
pub fn replaces(attribute: Attribute) -> Attribute {
    Attribute {
        requires_replace: Replace::Always,
        ..attribute
    }
}

/// `attribute` (optional and computed) with the value the plan gives it when the configuration
/// leaves it out.
pub fn defaults_to(value: serde_json::Value, attribute: Attribute) -> Attribute {
    Attribute {
        default: Some(value),
        ..attribute
    }
}

/// `attribute`, an input only a create uses: once recorded, a change replaces the resource; an
/// imported resource records it with its first apply instead.
pub fn replaces_once_set(attribute: Attribute) -> Attribute {
    Attribute {
        requires_replace: Replace::OnceSet,
        ..attribute
    }
}

pub fn string_list() -> AttributeType {
    AttributeType::List(Box::new(AttributeType::String))
}

/// Optional and sensitive: Terraform hides the value in plans and output.
pub fn sensitive(attr_type: AttributeType, doc: &str) -> Attribute {
    Attribute {
        sensitive: true,
        ..attribute(AttributeConstraint::Optional, attr_type, doc)
    }
}

/// A resource's identity (Terraform 1.12+, names fixed by CONTRACT.md): `(identity attribute,
/// state attribute it mirrors, description)` for each, all strings an import must give.
pub fn identity(attributes: &[(&str, &str, &str)]) -> IdentitySchema {
    IdentitySchema {
        version: 0,
        attributes: attributes
            .iter()
            .map(|(name, from, doc)| IdentityAttribute::string(*name, *from, *doc))
            .collect(),
    }
}
