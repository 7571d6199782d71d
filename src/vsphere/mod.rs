//! Everything that talks to vCenter: the client, the inventory snapshot, wires, VM operations.

pub mod cache;
pub mod client;
pub mod inventory;
pub mod model;
pub mod wire;
