//! The plugin binary Terraform starts: logging, then the tfplugin6 server.

use vsphereipam::provider::{VsphereIpamProvider, PROVIDER_NAME};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    vsphereipam::logging::init();
    // reqwest brings rustls with aws-lc-rs and tonic brings it with ring; with both compiled in,
    // rustls will not guess, so the plugin's TLS server would panic without an explicit choice.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tf_provider::serve(PROVIDER_NAME, VsphereIpamProvider::default()).await
}
