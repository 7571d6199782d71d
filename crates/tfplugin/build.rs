//! Generates the protocol stubs: Terraform's tfplugin6 (server for the provider, client for
//! tests and tools) and go-plugin's small controller and stdio services, from the workspace's
//! one copy of each in `proto/`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../../proto");
    tonic_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_protos(
            &[
                "../../proto/tfplugin6.proto",
                "../../proto/plugin_controller.proto",
                "../../proto/plugin_stdio.proto",
            ],
            &["../../proto"],
        )?;
    Ok(())
}
