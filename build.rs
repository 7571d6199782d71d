//! Generates the tfplugin6 gRPC client used by the protocol tests (`tests/common/plugin.rs`).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/tfplugin6.proto");
    // A position-dependent executable: Terraform starts the plugin for every command, and a PIE
    // of this size spends most of its start-up applying ~350k relative relocations (see the
    // handshake_ms benchmark). Only the final link changes; the crates stay as they are built.
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("x86_64-") && target.contains("-linux-gnu") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
        // The bench binary also serves the no-op provider its figures compare against.
        println!("cargo:rustc-link-arg-benches=-no-pie");
    }
    tonic_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_protos(&["proto/tfplugin6.proto"], &["proto"])?;
    Ok(())
}
