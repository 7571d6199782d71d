//! terraform-provider-vsphereipam: IP address management for VMware vSphere, as a Terraform
//! provider. See ARCHITECTURE.md for the map of the layers below.

pub mod cli;
pub mod ipam;
pub mod logging;
pub mod nics;
pub mod pending;
pub mod placement;
pub mod provider;
pub mod redact;
pub mod store;
pub mod vmlife;
pub mod vsphere;
