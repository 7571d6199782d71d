//! `moved` blocks across resource types and providers (Terraform 1.8+, `MoveResourceState`):
//! what Terraform hands the target resource about the source.

use crate::diagnostics::Diagnostics;

/// A resource of another type (or another provider) that a `moved` block points at one of
/// ours: its state as that provider stored it.
#[derive(Clone, Debug, PartialEq)]
pub struct MoveSource {
    /// The source's provider, as Terraform writes it: `registry.terraform.io/hashicorp/vsphere`.
    pub provider: String,
    /// The source's resource type, `vsphere_virtual_machine`.
    pub type_name: String,
    /// The schema version its state was written with.
    pub schema_version: i64,
    /// Its state as stored (JSON, the source provider's attribute names).
    pub state: serde_json::Value,
    /// Its private state (the source provider's, opaque).
    pub private: Vec<u8>,
    /// Its identity, when the source has one (JSON), and that identity's schema version.
    pub identity: Option<serde_json::Value>,
    pub identity_version: i64,
}

impl MoveSource {
    /// Whether the source is `type_name` of the provider `namespace/name` (from any registry
    /// host; `hashicorp/vsphere` matches `registry.terraform.io/hashicorp/vsphere`).
    pub fn is(&self, provider: &str, type_name: &str) -> bool {
        let tail = self
            .provider
            .rsplit('/')
            .take(2)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("/");
        self.type_name == type_name
            && (self.provider.eq_ignore_ascii_case(provider) || tail.eq_ignore_ascii_case(provider))
    }

    /// The error for a source this resource cannot adopt, naming the sources it can.
    pub fn refuse(&self, diags: &mut Diagnostics, target: &str, accepted: &[&str]) {
        let can = match accepted {
            [] => format!("{target} cannot adopt resources of other types."),
            _ => format!("{target} adopts only {}.", accepted.join(", ")),
        };
        diags.root_error(
            format!("Cannot move {} to {target}", self.type_name),
            format!(
                "A `moved` block points {} of provider {} at {target}. {can} Remove the `moved` block, or import the object instead.",
                self.type_name, self.provider
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(provider: &str) -> MoveSource {
        MoveSource {
            provider: provider.into(),
            type_name: "vsphere_virtual_machine".into(),
            schema_version: 3,
            state: serde_json::json!({}),
            private: Vec::new(),
            identity: None,
            identity_version: 0,
        }
    }

    #[test]
    fn sources_match_with_or_without_the_registry_host() {
        let s = source("registry.terraform.io/hashicorp/vsphere");
        assert!(s.is("hashicorp/vsphere", "vsphere_virtual_machine"));
        assert!(s.is(
            "registry.terraform.io/hashicorp/vsphere",
            "vsphere_virtual_machine"
        ));
        assert!(!s.is("hashicorp/vsphere", "vsphere_folder"));
        assert!(!source("registry.terraform.io/other/vsphere")
            .is("hashicorp/vsphere", "vsphere_virtual_machine"));
    }

    #[test]
    fn a_refusal_names_what_is_accepted() {
        let mut diags = Diagnostics::default();
        source("registry.terraform.io/hashicorp/aws").refuse(
            &mut diags,
            "vsphereipam_vm",
            &["vsphere_virtual_machine of hashicorp/vsphere"],
        );
        let d = &diags.errors[0];
        assert!(d.summary.contains("vsphere_virtual_machine"));
        assert!(
            d.detail.contains("registry.terraform.io/hashicorp/aws"),
            "{}",
            d.detail
        );
        assert!(d
            .detail
            .contains("adopts only vsphere_virtual_machine of hashicorp/vsphere"));
    }
}
