//! Everything that speaks vim25 to vCenter for terraform-provider-vsphereipam: the session
//! ([`client`]), one bulk inventory fetch ([`inventory`]) into plain data ([`model`]).
//! Kept in its own crate because vim_rs's generated types make it slow to compile: built once,
//! it is linked by the provider, its tests and its benchmarks.

pub mod client;
pub mod inventory;
pub mod model;
