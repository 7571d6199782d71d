//! Shared test harness: the vCenter simulator, Terraform runs, and our gRPC plugin client.
#![allow(dead_code)]

pub mod env;
pub mod pg;
pub mod plugin;
pub mod proxy;
pub mod sim;
pub mod terraform;

/// Calls `f` every `every` until it gives a value; fails the test after a minute, naming `what`.
pub fn wait_for<T>(what: &str, every: std::time::Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(every);
    }
}

/// A subnet record as the store keeps it: `id` (also its name) on `wire_id`, the whole `cidr`
/// allocatable, for tests that put subnets into a store directly.
pub fn subnet_record(
    vcenter: &str,
    wire_id: &str,
    id: &str,
    cidr: &str,
) -> vsphereipam::store::SubnetRecord {
    use vsphereipam::ipam::subnet::{validate, Field, SubnetInput};
    vsphereipam::store::SubnetRecord {
        id: id.into(),
        vcenter: vcenter.into(),
        name: id.into(),
        wire_id: wire_id.into(),
        domain: None,
        spec: validate(&SubnetInput {
            cidr: Field::Value(cidr.into()),
            ..Default::default()
        })
        .expect("valid subnet")
        .expect("complete subnet"),
    }
}
