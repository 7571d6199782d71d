//! The host's side, for tests and tools: a client certificate as Terraform makes one, the
//! handshake line read back, and a gRPC channel to the plugin over its socket with mutual TLS.

use base64::Engine;
use hyper_util::rt::TokioIo;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

/// A client certificate and key, PEM encoded (what Terraform puts in `PLUGIN_CLIENT_CERT`).
#[derive(Clone, Debug)]
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl ClientCert {
    pub fn generate() -> ClientCert {
        let key =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a P-256 key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.self_signed(&key).expect("self-signed certificate");
        ClientCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// What the plugin announced: `core|protocol|network|address|grpc|cert`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    pub core_version: String,
    pub protocol_version: String,
    pub network: String,
    pub address: String,
    pub protocol: String,
    /// The server certificate (DER) when the plugin serves TLS.
    pub server_cert: Option<Vec<u8>>,
}

impl Handshake {
    pub fn parse(line: &str) -> Result<Handshake, String> {
        let parts: Vec<&str> = line.trim_end().split('|').collect();
        if parts.len() != 6 {
            return Err(format!("handshake line {line:?} does not have 6 fields"));
        }
        let server_cert = match parts[5] {
            "" => None,
            b64 => Some(
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(b64.trim_end_matches('='))
                    .map_err(|e| format!("server certificate: {e}"))?,
            ),
        };
        Ok(Handshake {
            core_version: parts[0].into(),
            protocol_version: parts[1].into(),
            network: parts[2].into(),
            address: parts[3].into(),
            protocol: parts[4].into(),
            server_cert,
        })
    }
}

fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Connects to the plugin as announced; with `client` as the TLS client certificate when the
/// plugin serves TLS (without one, the plugin must refuse the connection).
pub async fn connect(
    handshake: &Handshake,
    client: Option<&ClientCert>,
) -> Result<Channel, tonic::transport::Error> {
    let scheme = if handshake.server_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let authority = if handshake.network == "tcp" {
        handshake.address.clone()
    } else {
        "localhost".into()
    };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{authority}"))?;
    if let Some(der) = &handshake.server_cert {
        // tonic's TLS takes rustls's process-wide provider, which rustls cannot pick by itself
        // when, as in this workspace, both ring and aws-lc-rs are compiled in. The server side
        // names its provider; a host process that chose one already keeps it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(pem(der)))
            .domain_name("localhost");
        if let Some(c) = client {
            tls = tls.identity(Identity::from_pem(&c.cert_pem, &c.key_pem));
        }
        endpoint = endpoint.tls_config(tls)?;
    }
    if handshake.network == "unix" {
        #[cfg(unix)]
        {
            let path = std::path::PathBuf::from(&handshake.address);
            return endpoint
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(
                            tokio::net::UnixStream::connect(path).await?,
                        ))
                    }
                }))
                .await;
        }
    }
    endpoint.tcp_nodelay(true).connect().await
}
