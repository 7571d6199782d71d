//! Shared test harness: the vCenter simulator, Terraform runs, and our gRPC plugin client.
#![allow(dead_code)]

pub mod env;
pub mod pg;
pub mod plugin;
pub mod sim;
pub mod terraform;
