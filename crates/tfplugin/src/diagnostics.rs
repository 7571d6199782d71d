//! Diagnostics (errors and warnings Terraform shows) and the attribute paths they point at.

use std::fmt;

use crate::proto::tfplugin6 as pb;

/// One step of an attribute path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    Attribute(String),
    Key(String),
    Index(i64),
}

/// Where in a configuration or state a diagnostic points: `network_interface[0].ip_address`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AttributePath {
    pub steps: Vec<Step>,
}

impl AttributePath {
    /// A path starting at the top-level attribute `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            steps: vec![Step::Attribute(name.into())],
        }
    }
    /// The whole object.
    pub fn root() -> Self {
        Self::default()
    }
    pub fn attribute(mut self, name: impl Into<String>) -> Self {
        self.steps.push(Step::Attribute(name.into()));
        self
    }
    pub fn index(mut self, i: i64) -> Self {
        self.steps.push(Step::Index(i));
        self
    }
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.steps.push(Step::Key(key.into()));
        self
    }
    pub fn is_root(&self) -> bool {
        self.steps.is_empty()
    }
}

impl fmt::Display for AttributePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.steps.iter().enumerate() {
            match step {
                Step::Attribute(a) if i == 0 => write!(f, "{a}")?,
                Step::Attribute(a) => write!(f, ".{a}")?,
                Step::Key(k) => write!(f, "[{k:?}]")?,
                Step::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

impl From<&AttributePath> for pb::AttributePath {
    fn from(p: &AttributePath) -> Self {
        use pb::attribute_path::step::Selector;
        pb::AttributePath {
            steps: p
                .steps
                .iter()
                .map(|s| pb::attribute_path::Step {
                    selector: Some(match s {
                        Step::Attribute(a) => Selector::AttributeName(a.clone()),
                        Step::Key(k) => Selector::ElementKeyString(k.clone()),
                        Step::Index(i) => Selector::ElementKeyInt(*i),
                    }),
                })
                .collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub summary: String,
    pub detail: String,
    pub attribute: Option<AttributePath>,
}

/// What a call found wrong; an error fails the call, a warning is only shown.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn error(
        &mut self,
        summary: impl Into<String>,
        detail: impl Into<String>,
        attribute: AttributePath,
    ) {
        self.errors.push(Diagnostic {
            summary: summary.into(),
            detail: detail.into(),
            attribute: (!attribute.is_root()).then_some(attribute),
        });
    }
    pub fn root_error(&mut self, summary: impl Into<String>, detail: impl Into<String>) {
        self.error(summary, detail, AttributePath::root());
    }
    pub fn root_error_short(&mut self, summary: impl Into<String>) {
        self.root_error(summary, "");
    }
    pub fn warning(
        &mut self,
        summary: impl Into<String>,
        detail: impl Into<String>,
        attribute: AttributePath,
    ) {
        self.warnings.push(Diagnostic {
            summary: summary.into(),
            detail: detail.into(),
            attribute: (!attribute.is_root()).then_some(attribute),
        });
    }
    pub fn root_warning(&mut self, summary: impl Into<String>, detail: impl Into<String>) {
        self.warning(summary, detail, AttributePath::root());
    }
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    pub(crate) fn into_proto(self) -> Vec<pb::Diagnostic> {
        let one = |d: Diagnostic, severity: pb::diagnostic::Severity| pb::Diagnostic {
            severity: severity as i32,
            summary: d.summary,
            detail: d.detail,
            attribute: d.attribute.as_ref().map(Into::into),
        };
        self.errors
            .into_iter()
            .map(|d| one(d, pb::diagnostic::Severity::Error))
            .chain(
                self.warnings
                    .into_iter()
                    .map(|d| one(d, pb::diagnostic::Severity::Warning)),
            )
            .collect()
    }
}
