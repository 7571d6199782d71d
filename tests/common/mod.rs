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
