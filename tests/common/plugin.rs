//! Our own tfplugin6 client: starts the built provider the way Terraform does (magic cookie,
//! protocol versions, a client certificate, the handshake line on stdout, mutual TLS over the
//! announced Unix socket) and calls it over gRPC directly, for fast protocol-level tests
//! without Terraform. The stubs are `crates/tfplugin`'s, from the one `tfplugin6.proto`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tonic::transport::Channel;

pub use tfplugin::client::{ClientCert, Handshake};
pub use tfplugin::proto::tfplugin6 as proto;

use proto::provider_client::ProviderClient;

pub struct Plugin {
    pub child: Child,
    pub client: ProviderClient<Channel>,
    pub channel: Channel,
    pub handshake_line: Handshake,
    pub cert: ClientCert,
    /// Time from spawning the process to reading the handshake line.
    pub handshake: Duration,
}

impl Plugin {
    /// The process's exit status, waited for without blocking the runtime: the client's
    /// connection task runs on it and has to answer the server's goaway for the server to end.
    pub async fn exited(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for the plugin to exit"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The provider binary with Terraform's launch environment (and no vSphere settings).
pub fn command(cert: &ClientCert) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_terraform-provider-vsphereipam"));
    cmd.env("TF_PLUGIN_MAGIC_COOKIE", MAGIC_COOKIE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "5,6")
        .env("PLUGIN_CLIENT_CERT", &cert.cert_pem)
        .env_remove("VSPHERE_SERVER")
        .env_remove("VSPHERE_USER")
        .env_remove("VSPHERE_PASSWORD")
        .env_remove("VSPHERE_ALLOW_UNVERIFIED_SSL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

impl Plugin {
    /// Starts the provider binary with extra environment variables, reads its handshake line
    /// and connects with the client certificate it was given.
    pub async fn start(env: &[(&str, &str)]) -> Plugin {
        let cert = ClientCert::generate();
        let mut cmd = command(&cert);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let mut child = cmd.spawn().expect("start provider");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("handshake line");
        let handshake = started.elapsed();
        let handshake_line = Handshake::parse(&line).expect("handshake line");
        assert_eq!(
            (
                handshake_line.core_version.as_str(),
                handshake_line.protocol_version.as_str(),
                handshake_line.protocol.as_str()
            ),
            ("1", "6", "grpc"),
            "handshake line: {line:?}"
        );
        let channel = tfplugin::client::connect(&handshake_line, Some(&cert))
            .await
            .expect("connect to provider");
        Plugin {
            child,
            client: ProviderClient::new(channel.clone()),
            channel,
            handshake_line,
            cert,
            handshake,
        }
    }
}

/// The value Terraform sets so a plugin knows it was started by Terraform.
pub const MAGIC_COOKIE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

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
