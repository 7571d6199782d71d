//! Conversions between Terraform values and plain Rust, and diagnostics for domain errors.

use std::borrow::Cow;

use tfplugin::value::{Value, ValueList, ValueNumber, ValueString};
use tfplugin::{AttributePath, Diagnostics};

use crate::ipam::subnet::{Field, Violation};
use crate::store::StoreError;

pub fn field_str(v: &ValueString<'_>) -> Field<String> {
    match v {
        Value::Value(s) => Field::Value(s.to_string()),
        Value::Null => Field::Null,
        Value::Unknown => Field::Unknown,
    }
}

pub fn field_num(v: &ValueNumber) -> Field<i64> {
    match v {
        Value::Value(n) => Field::Value(*n),
        Value::Null => Field::Null,
        Value::Unknown => Field::Unknown,
    }
}

pub fn field_list(v: &ValueList<ValueString<'_>>) -> Field<Vec<Field<String>>> {
    match v {
        Value::Value(items) => Field::Value(items.iter().map(field_str).collect()),
        Value::Null => Field::Null,
        Value::Unknown => Field::Unknown,
    }
}

pub fn string<'a>(s: impl Into<String>) -> ValueString<'a> {
    Value::Value(Cow::Owned(s.into()))
}

pub fn opt_string<'a, T: ToString>(s: Option<T>) -> ValueString<'a> {
    s.map(|s| Cow::Owned(s.to_string())).into()
}

pub fn strings<'a, T: ToString>(items: impl IntoIterator<Item = T>) -> ValueList<ValueString<'a>> {
    Value::Value(items.into_iter().map(|i| string(i.to_string())).collect())
}

/// The known blocks of a list block (unknown or null ones are left out).
pub fn blocks<T>(list: &ValueList<Value<T>>) -> Vec<&T> {
    list.as_ref_option()
        .map(|l| l.iter().filter_map(|b| b.as_ref_option()).collect())
        .unwrap_or_default()
}

/// [`blocks`], to fill in computed values.
pub fn blocks_mut<T>(list: &mut ValueList<Value<T>>) -> Vec<&mut T> {
    match list {
        Value::Value(l) => l
            .iter_mut()
            .filter_map(|b| match b {
                Value::Value(b) => Some(b),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

pub fn known(v: &ValueString<'_>) -> Option<String> {
    v.as_ref_option().map(|s| s.to_string())
}

pub fn violation(diags: &mut Diagnostics, v: &Violation) {
    let mut path = AttributePath::new(v.attribute);
    if let Some(i) = v.index {
        path = path.index(i as i64);
    }
    diags.error(v.summary.clone(), v.detail.clone(), path);
}

/// The value of a store call, or `None` with the failure as a diagnostic on the resource.
pub fn or_diag<T>(diags: &mut Diagnostics, result: Result<T, StoreError>) -> Option<T> {
    result.map_err(|e| store_error(diags, &e, None)).ok()
}

/// A store failure as a diagnostic on `attribute` (or the whole resource when `None`).
pub fn store_error(diags: &mut Diagnostics, e: &StoreError, attribute: Option<&'static str>) {
    store_error_at(diags, e, attribute.map(AttributePath::new));
}

/// A store failure as a diagnostic on `path` (or the whole resource when `None`).
pub fn store_error_at(diags: &mut Diagnostics, e: &StoreError, path: Option<AttributePath>) {
    let (summary, detail) = match e {
        StoreError::Overlap { .. } => ("Subnet range overlaps another subnet", format!("{e}. Choose a range that no other subnet of this vCenter uses.")),
        StoreError::InUse { .. } => ("Subnet still in use", format!("The {e}. Destroy or change those resources first.")),
        StoreError::InTheWay { .. } => ("Held addresses would leave the range", format!("The {e}. Release them first or keep them allocatable.")),
        StoreError::AddressTaken { .. } => ("Address already taken", format!("{e}. Choose another address, or release it from its holder first.")),
        StoreError::SubnetFull { .. } => ("Subnet full", format!("The {e}.")),
        StoreError::NotFound(_) => ("Not found in the IPAM store", format!("{e}.")),
        StoreError::Refused(_) => ("Refused by the IPAM", format!("{e}.")),
        StoreError::Unavailable(_) | StoreError::Corrupt(_) => (
            "IPAM store error",
            format!("{e}. Check the provider's `store` setting and that the database is reachable; nothing was changed."),
        ),
    };
    // A store error may quote its URL or a server message that does.
    let detail = crate::redact::redact(&detail);
    match path {
        Some(p) => diags.error(summary, detail, p),
        None => diags.root_error(summary, detail),
    }
}
