//! The plugin binary Terraform starts: logging, then the tfplugin6 server.

use vsphereipam::provider::{VsphereIpamProvider, PROVIDER_NAME};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    vsphereipam::logging::init();
    tf_provider::serve(PROVIDER_NAME, VsphereIpamProvider::default()).await
}
