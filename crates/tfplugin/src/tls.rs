//! go-plugin's AutoMTLS, server side: a fresh P-256 certificate for this process (sent to
//! Terraform in the handshake line), and only the client certificate Terraform announced in
//! `PLUGIN_CLIENT_CERT` may connect.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

/// The server's TLS setup and the certificate to announce.
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    pub cert_der: Vec<u8>,
}

/// A self-signed P-256 certificate for `localhost` (the name go-plugin's client checks) and
/// its PKCS#8 key. P-256: the cheapest curve Go's TLS and ring both sign and verify quickly.
pub fn server_certificate() -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), String> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| format!("cannot make a TLS key: {e}"))?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .map_err(|e| format!("cannot make a TLS certificate: {e}"))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyAgreement,
    ];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("cannot sign the TLS certificate: {e}"))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((cert.der().clone(), key))
}

impl ServerTls {
    /// TLS for a plugin whose client announced `client_cert_pem`.
    pub fn new(client_cert_pem: &str) -> Result<ServerTls, String> {
        let client = CertificateDer::from_pem_slice(client_cert_pem.as_bytes())
            .map_err(|e| format!("PLUGIN_CLIENT_CERT is not a PEM certificate ({e})"))?;
        let (cert, key) = server_certificate()?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(ExactClient {
            expected: client.into_owned(),
            algorithms: verify_algorithms(),
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert.clone()], key)
            .map_err(|e| format!("TLS setup: {e}"))?;
        // gRPC clients (grpc-go since 1.67) insist on ALPN h2.
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(ServerTls {
            config: Arc::new(config),
            cert_der: cert.to_vec(),
        })
    }
}

/// Signature algorithms a client certificate may use. go-plugin's client key is ECDSA P-521,
/// which ring cannot verify: aws-lc-rs's list covers it (and everything ring's does).
fn verify_algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms
}

/// Accepts exactly one certificate (byte for byte), whose key must sign the handshake.
#[derive(Debug)]
struct ExactClient {
    expected: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for ExactClient {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientCert;
    use rustls::pki_types::ServerName;

    /// A TLS handshake over an in-memory pipe, as `client` (or without a certificate).
    async fn handshake(server: &ServerTls, client: Option<&ClientCert>) -> Result<(), String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(server.cert_der.clone()))
            .map_err(|e| e.to_string())?;
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match client {
            Some(c) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        let (a, b) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server.config.clone());
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let server_side = tokio::spawn(async move { acceptor.accept(a).await.map(|_| ()) });
        let name = ServerName::try_from("localhost").unwrap();
        let client_side = connector.connect(name, b).await;
        let server_result = server_side.await.unwrap();
        // With TLS 1.3 the client may finish before the server rejects its certificate.
        server_result.map_err(|e| e.to_string())?;
        client_side.map(|_| ()).map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn only_the_announced_client_certificate_connects() {
        let announced = ClientCert::generate();
        let server = ServerTls::new(&announced.cert_pem).unwrap();
        handshake(&server, Some(&announced)).await.unwrap();
        let other = ClientCert::generate();
        let e = handshake(&server, Some(&other)).await.unwrap_err();
        assert!(e.contains("certificate"), "{e}");
        let e = handshake(&server, None).await.unwrap_err();
        assert!(e.to_lowercase().contains("certificate"), "{e}");
    }

    #[test]
    fn the_server_certificate_is_p256_for_localhost() {
        let (cert, _) = server_certificate().unwrap();
        let der = cert.as_ref();
        // id-ecPublicKey with prime256v1 (1.2.840.10045.3.1.7).
        let p256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        assert!(der.windows(p256.len()).any(|w| w == p256));
        assert!(der.windows(9).any(|w| w == b"localhost"));
    }

    #[test]
    fn a_client_certificate_that_is_not_pem_is_a_launch_error() {
        assert!(ServerTls::new("not a certificate").is_err());
    }
}
