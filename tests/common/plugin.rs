//! Our own tfplugin6 client: starts the built provider the way Terraform does (magic cookie,
//! client certificate, handshake line on stdout, mutual TLS) and calls it over gRPC directly,
//! for fast protocol-level tests without Terraform.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tonic::transport::Channel;

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

impl Plugin {
    /// Starts the provider binary with extra environment variables and connects to it.
    ///
    /// tf-provider's server certificate is a self-signed CA certificate used as the end-entity
    /// certificate; Go's TLS (Terraform) accepts it, rustls's webpki verifier refuses it. So this
    /// client starts the plugin without `PLUGIN_CLIENT_CERT`, which tf-provider serves as plain
    /// HTTP/2, and mutual TLS is exercised by Terraform itself in every end-to-end test.
    pub async fn start(env: &[(&str, &str)]) -> Plugin {
        let started = Instant::now();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_terraform-provider-vsphereipam"));
        cmd.env("TF_PLUGIN_MAGIC_COOKIE", MAGIC_COOKIE)
            .env("PLUGIN_PROTOCOL_VERSIONS", "6")
            .env_remove("PLUGIN_CLIENT_CERT")
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
        let channel = Channel::from_shared(format!("http://{}", parts[3]))
            .expect("endpoint")
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

/// The value Terraform sets so a plugin knows it was started by Terraform.
const MAGIC_COOKIE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

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
