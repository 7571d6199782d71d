//! Terraform's plugin protocol 6.10 for a provider written in Rust.
//!
//! - [`serve`]: go-plugin's side of the launch (magic cookie, protocol version, Unix socket or
//!   TCP, AutoMTLS, the handshake line) and the gRPC services Terraform talks to, until
//!   Terraform (or a signal) stops the plugin.
//! - [`Provider`], [`Resource`], [`DataSource`], [`ListResource`]: what a provider
//!   implements, with values as plain Rust structs of [`Value`]s; [`schema`] declares them
//!   (identities and write-only attributes included), [`Diagnostics`] reports.
//! - [`client`]: starts a plugin the way Terraform does and connects to it, for tests.
//!
//! Only a provider's edge (and test tools) should name these types.

pub mod client;
pub mod codec;
mod data_source;
mod diagnostics;
mod handshake;
mod identity;
mod list;
mod moves;
pub mod proto;
mod provider;
mod resource;
pub mod schema;
mod server;
mod tls;
mod upgrade;
pub mod value;
#[cfg(all(test, unix))]
mod wire_tests;
mod write_only;

pub use data_source::{DataSource, DynamicDataSource};
pub use diagnostics::{AttributePath, Diagnostic, Diagnostics, Step};
pub use handshake::{
    serve, started_by_terraform, LaunchError, MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE,
};
pub use identity::Identity;
pub use list::{DynamicListResource, ListResource, ListSink, Results};
pub use moves::MoveSource;
pub use provider::{DynamicProvider, Provider};
pub use resource::{DynamicResource, Resource};
pub use server::ProviderService;
pub use tls::server_certificate;
pub use value::{
    Value, ValueBool, ValueEmpty, ValueList, ValueMap, ValueNumber, ValueSet, ValueString,
};
