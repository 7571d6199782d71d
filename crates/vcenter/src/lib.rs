//! Everything that speaks vim25 to vCenter for terraform-provider-vsphereipam: the session
//! ([`client`]), one bulk inventory fetch ([`inventory`]) into plain data ([`model`]), the VM
//! operations ([`vm_ops`]) and the addresses VMware Tools reports ([`guest`]). Inside, `rows`
//! (one PropertyCollector row per object type), `pc` (reads), `task` (tasks and lost answers),
//! `fault` and `spec` (empty vim25 spec literals) serve both.
//! Kept in its own crate because vim_rs's generated types make it slow to compile: built once,
//! it is linked by the provider, its tests and its benchmarks.

pub mod client;
mod fault;
pub mod guest;
pub mod inventory;
pub mod model;
mod pc;
mod rows;
mod spec;
mod task;
pub mod vm_ops;

/// The futures this crate hands out are boxed: proving a future `Send` means walking every
/// type it holds across an `.await`, and vim_rs's generated types make that walk huge. Boxed
/// here, it is done once, when this crate compiles, instead of in every async caller.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
