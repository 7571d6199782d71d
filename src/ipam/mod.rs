//! The IPAM domain: address ranges of both families, subnet rules, and address allocation.
//! Pure: no vCenter, no Terraform, no SQL, so it can be read and tested alone.

pub mod alloc;
pub mod ranges;
pub mod subnet;
