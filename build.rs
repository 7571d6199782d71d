//! Link settings of the plugin binary (the protocol stubs are generated in `crates/tfplugin`).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // A position-dependent executable: Terraform starts the plugin for every command, and a PIE
    // of this size spends most of its start-up applying ~350k relative relocations (see the
    // handshake_ms benchmark). Only the final link changes; the crates stay as they are built.
    // TARGET, not the host: the linux_arm64 release is cross-linked by aarch64-linux-gnu-gcc
    // (.cargo/config.toml), which takes the same flag.
    let target = std::env::var("TARGET").unwrap_or_default();
    let fixed_address = target.starts_with("x86_64-") || target.starts_with("aarch64-");
    if fixed_address && target.contains("-linux-gnu") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
        // The bench binary also serves the no-op provider its figures compare against.
        println!("cargo:rustc-link-arg-benches=-no-pie");
    }
}
