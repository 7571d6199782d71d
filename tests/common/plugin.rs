//! Our own tfplugin6 client: starts the built provider the way Terraform does (magic cookie,
//! client certificate, handshake line on stdout, mutual TLS) and calls it over gRPC directly,
//! for fast protocol-level tests without Terraform.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

pub mod proto {
    tonic::include_proto!("tfplugin6");
}

use proto::provider_client::ProviderClient;

pub struct Plugin {
    child: Child,
    pub client: ProviderClient<Channel>,
    /// Time from spawning the process to reading the handshake line.
    pub handshake: Duration,
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client_identity() -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key pair");
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("cert params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.self_signed(&key).expect("self-signed client cert");
    (cert.pem(), key.serialize_pem())
}

fn der_to_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let body: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ascii"))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        body.join("\n")
    )
}

impl Plugin {
    /// Starts the provider binary with extra environment variables.
    pub async fn start(env: &[(&str, &str)]) -> Plugin {
        let (cert_pem, key_pem) = client_identity();
        let started = Instant::now();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_terraform-provider-vsphereipam"));
        cmd.env(
            "TF_PLUGIN_MAGIC_COOKIE",
            "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2",
        )
        .env("PLUGIN_PROTOCOL_VERSIONS", "6")
        .env("PLUGIN_CLIENT_CERT", &cert_pem)
        .env_remove("VSPHERE_SERVER")
        .env_remove("VSPHERE_USER")
        .env_remove("VSPHERE_PASSWORD")
        .env_remove("VSPHERE_ALLOW_UNVERIFIED_SSL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start provider");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("handshake line");
        let handshake = started.elapsed();

        // core-version|protocol-version|network|address|protocol|server-cert
        let parts: Vec<&str> = line.trim().split('|').collect();
        assert_eq!(parts.len(), 6, "handshake line: {line:?}");
        assert_eq!(&parts[..3], ["1", "6", "tcp"], "handshake line: {line:?}");
        assert_eq!(parts[4], "grpc");
        let server_der = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(parts[5])
            .expect("server cert is base64");

        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(der_to_pem(&server_der)))
            .identity(Identity::from_pem(cert_pem, key_pem))
            .domain_name("localhost");
        let channel = Channel::from_shared(format!("https://{}", parts[3]))
            .expect("endpoint")
            .tls_config(tls)
            .expect("tls config")
            .connect()
            .await
            .expect("connect to provider");
        Plugin {
            child,
            client: ProviderClient::new(channel),
            handshake,
        }
    }
}

/// Encodes a JSON value the way Terraform sends values: MessagePack.
pub fn dynamic(value: &serde_json::Value) -> Option<proto::DynamicValue> {
    Some(proto::DynamicValue {
        msgpack: rmp_serde::to_vec(value).expect("msgpack"),
        json: vec![],
    })
}

/// Decodes a MessagePack value returned by the provider.
pub fn decode(value: &Option<proto::DynamicValue>) -> serde_json::Value {
    let v = value.as_ref().expect("a value");
    rmp_serde::from_slice(&v.msgpack).expect("msgpack value")
}

/// `summary: detail @ path` of each error diagnostic, for assertions.
pub fn errors(diags: &[proto::Diagnostic]) -> Vec<String> {
    diags
        .iter()
        .filter(|d| d.severity == proto::diagnostic::Severity::Error as i32)
        .map(|d| {
            let path: Vec<String> = d
                .attribute
                .iter()
                .flat_map(|a| &a.steps)
                .filter_map(|s| match &s.selector {
                    Some(proto::attribute_path::step::Selector::AttributeName(n)) => {
                        Some(n.clone())
                    }
                    _ => None,
                })
                .collect();
            format!("{}: {} @ {}", d.summary, d.detail, path.join("."))
        })
        .collect()
}
