//! Generates the tfplugin6 gRPC client used by the protocol tests (`tests/common/plugin.rs`).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/tfplugin6.proto");
    tonic_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_protos(&["proto/tfplugin6.proto"], &["proto"])?;
    Ok(())
}
