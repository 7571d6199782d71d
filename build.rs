//! Link settings of the plugin binary (the protocol stubs are generated in `crates/tfplugin`).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // A position-dependent executable: Terraform starts the plugin for every command, and a PIE
    // of this size spends most of its start-up applying ~350k relative relocations (see the
    // handshake_ms benchmark). Only the final link changes; the crates stay as they are built.
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("x86_64-") && target.contains("-linux-gnu") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
        // The bench binary also serves the no-op provider its figures compare against.
        println!("cargo:rustc-link-arg-benches=-no-pie");
    }
}
