//! Everything that talks to vCenter. The vim_rs session, the bulk inventory fetch and the
//! snapshot model live in the `vsphereipam-vcenter` crate (`crates/vcenter`); this module adds
//! the shared snapshot cache and the wire view of port groups.

pub use vsphereipam_vcenter::vm_ops;
pub use vsphereipam_vcenter::{client, guest, inventory, model};

pub mod cache;
pub mod wire;
