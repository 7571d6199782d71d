//! The plugin binary: the tfplugin6 server when Terraform starts it, the admin commands
//! (`inventory`, `ipam ...`) when a person does.

use std::process::ExitCode;

use vsphereipam::provider::{VsphereIpamProvider, PROVIDER_NAME};

fn main() -> ExitCode {
    // reqwest brings rustls with aws-lc-rs and tonic brings it with ring; with both compiled in,
    // rustls will not guess, so TLS would panic without an explicit choice.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if !tfplugin::started_by_terraform() {
        return vsphereipam::cli::main();
    }
    vsphereipam::logging::init();
    match tfplugin::serve(PROVIDER_NAME, VsphereIpamProvider::default()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
