//! List resources (`terraform query`, Terraform 1.14+): a provider lists existing objects of
//! one of its managed resource types, and Terraform writes import blocks (and configuration)
//! for them.
//!
//! A list resource yields each object as the managed resource's state and a display name;
//! the server derives the identity from that state with the managed resource's identity
//! schema (the same derivation as every read), sends the state itself only when Terraform
//! asked for it, and stops the provider once Terraform's limit is reached. The results are
//! streamed as they come: the provider's `list` runs in its own task and waits whenever
//! Terraform reads slower than it lists.

use std::marker::PhantomData;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;
use tonic::Status;

use crate::codec::{self, Tree};
use crate::diagnostics::Diagnostics;
use crate::identity;
use crate::proto::tfplugin6 as pb;
use crate::resource::decode;
use crate::schema::{Block, IdentitySchema, Schema};
use crate::write_only;

/// A list resource, named like the managed resource type whose objects it lists.
#[async_trait]
pub trait ListResource: Send + Sync {
    /// The filters of the `config` block of a `list` block.
    type Config<'a>: Serialize + DeserializeOwned + Send;
    /// The managed resource's state type.
    type State<'a>: Serialize + Send;

    /// The schema of the `config` block.
    fn schema(&self, diags: &mut Diagnostics) -> Option<Schema>;

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::Config<'a>) -> Option<()> {
        let _ = (diags, config);
        Some(())
    }

    /// Pushes each object found to `results` until it runs out or `push` returns false
    /// (Terraform's limit is reached, or Terraform went away). An error in `diags` ends the
    /// list with that error; `None` must come with one.
    async fn list<'a>(
        &self,
        diags: &mut Diagnostics,
        config: Self::Config<'a>,
        results: &mut Results<'_, Self::State<'a>>,
    ) -> Option<()>;
}

/// Where a list resource's results go, typed.
pub struct Results<'s, S> {
    sink: &'s mut ListSink,
    _state: PhantomData<fn(&S)>,
}

impl<S: Serialize> Results<'_, S> {
    /// Whether Terraform asked for each object's whole state (`include_resource`); without it
    /// a state that holds the identity's attributes is enough.
    pub fn include_resource(&self) -> bool {
        self.sink.include_resource
    }

    /// How many more results Terraform takes.
    pub fn remaining(&self) -> usize {
        self.sink.limit.saturating_sub(self.sink.sent)
    }

    /// Sends one object; false when no more are wanted.
    pub async fn push(&mut self, display_name: impl Into<String>, state: &S) -> bool {
        let tree = match codec::to_msgpack(state)
            .map_err(|e| e.to_string())
            .and_then(|b| codec::read_msgpack(&b).map_err(|e| e.to_string()))
        {
            Ok(t) => t,
            Err(e) => {
                let mut diags = Diagnostics::default();
                diags.root_error(
                    "Provider error: cannot encode a listed object",
                    format!("{e}. This is a bug in the provider; please report it."),
                );
                self.sink.diagnostics(diags).await;
                return false;
            }
        };
        self.sink.push(display_name.into(), tree).await
    }
}

/// The untyped side: encodes results into stream events.
pub struct ListSink {
    tx: mpsc::Sender<Result<pb::list_resource::Event, Status>>,
    identity: IdentitySchema,
    resource: Block,
    write_only: bool,
    include_resource: bool,
    limit: usize,
    sent: usize,
}

impl ListSink {
    pub(crate) fn new(
        tx: mpsc::Sender<Result<pb::list_resource::Event, Status>>,
        identity: IdentitySchema,
        resource: Block,
        include_resource: bool,
        limit: i64,
    ) -> Self {
        Self {
            tx,
            write_only: write_only::any(&resource),
            identity,
            resource,
            include_resource,
            // Terraform always sends its limit; a client that sends none gets everything.
            limit: if limit > 0 {
                limit as usize
            } else {
                usize::MAX
            },
            sent: 0,
        }
    }

    pub(crate) async fn push(&mut self, display_name: String, state: Tree) -> bool {
        if self.sent >= self.limit {
            return false;
        }
        let identity = identity::of_state(&self.identity, &state);
        if identity::is_null(&identity) || identity::has_unknown(&identity) {
            let mut diags = Diagnostics::default();
            diags.root_warning(
                "Listed object skipped",
                format!("{display_name:?} has no complete identity ({}); it cannot be imported and is left out.",
                    self.identity.attributes.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")),
            );
            return self.diagnostics(diags).await;
        }
        let resource_object = self.include_resource.then(|| {
            let mut object = crate::upgrade::conform(&state, &self.resource);
            if self.write_only {
                write_only::nullify(&self.resource, &mut object);
            }
            pb::DynamicValue {
                msgpack: codec::tree_to_msgpack(&object),
                json: Vec::new(),
            }
        });
        let event = pb::list_resource::Event {
            identity: identity::data(&identity),
            display_name,
            resource_object,
            diagnostic: Vec::new(),
        };
        if self.tx.send(Ok(event)).await.is_err() {
            return false;
        }
        self.sent += 1;
        self.sent < self.limit
    }

    /// Sends diagnostics as an event of their own; false when Terraform went away or an
    /// error ends the list.
    pub(crate) async fn diagnostics(&mut self, diags: Diagnostics) -> bool {
        if diags.errors.is_empty() && diags.warnings.is_empty() {
            return true;
        }
        let fatal = diags.has_errors();
        let event = pb::list_resource::Event {
            diagnostic: diags.into_proto(),
            ..Default::default()
        };
        self.tx.send(Ok(event)).await.is_ok() && !fatal
    }
}

/// A list resource as the server calls it.
#[async_trait]
pub trait DynamicListResource: Send + Sync {
    fn schema(&self, diags: &mut Diagnostics) -> Option<Schema>;
    async fn validate(&self, diags: &mut Diagnostics, config: Tree) -> Option<()>;
    async fn list(&self, diags: &mut Diagnostics, config: Tree, sink: &mut ListSink) -> Option<()>;
}

#[async_trait]
impl<T: ListResource> DynamicListResource for T {
    fn schema(&self, diags: &mut Diagnostics) -> Option<Schema> {
        ListResource::schema(self, diags)
    }

    async fn validate(&self, diags: &mut Diagnostics, config: Tree) -> Option<()> {
        let config = decode(diags, &config, "the list configuration")?;
        ListResource::validate(self, diags, config).await
    }

    async fn list(&self, diags: &mut Diagnostics, config: Tree, sink: &mut ListSink) -> Option<()> {
        let config = decode(diags, &config, "the list configuration")?;
        let mut results = Results {
            sink,
            _state: PhantomData,
        };
        ListResource::list(self, diags, config, &mut results).await
    }
}

impl<T: ListResource + 'static> From<T> for Box<dyn DynamicListResource> {
    fn from(value: T) -> Self {
        Box::new(value)
    }
}
