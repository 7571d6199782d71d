//! The plugin launch and the protocol edge, through our own client (`tests/common/plugin.rs`):
//! who may start and connect to the plugin, and what bad requests get back. None of these
//! needs vCenter: they stop at the handshake, at validation, or at the type lookup.

mod common;

use std::io::Read;
use std::process::Stdio;

use common::plugin::{command, dynamic, errors, proto, ClientCert, Plugin};
use serde_json::{json, Value};
use tfplugin::codec::{tree_to_msgpack, Tree};

fn subnet_config(vlan_id: Value) -> Value {
    json!({
        "id": null, "name": "app", "wire_id": "w", "cidr": "10.20.0.0/24",
        "start_ip": null, "end_ip": null, "gateway": null, "dns_servers": null,
        "domain": null, "vlan_id": vlan_id, "alloc_policy": null, "reserved_ranges": null,
        "netmask": null, "prefix_length": null, "additional_wire_ids": null,
    })
}

/// `errors()` lines of ValidateResourceConfig for `config` (MessagePack as given).
async fn validate(plugin: &mut Plugin, type_name: &str, msgpack: Vec<u8>) -> Vec<String> {
    let resp = plugin
        .client
        .validate_resource_config(proto::validate_resource_config::Request {
            type_name: type_name.into(),
            config: Some(proto::DynamicValue {
                msgpack,
                json: vec![],
            }),
            ..Default::default()
        })
        .await
        .expect("the plugin answers")
        .into_inner();
    errors(&resp.diagnostics)
}

fn run_plugin(cmd: &mut std::process::Command) -> (bool, String, String) {
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run the plugin");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn a_launch_without_protocol_6_says_so_and_exits() {
    let cert = ClientCert::generate();
    let (ok, stdout, stderr) = run_plugin(command(&cert).env("PLUGIN_PROTOCOL_VERSIONS", "4,5"));
    assert!(!ok);
    assert!(stdout.is_empty(), "no handshake line: {stdout:?}");
    assert!(stderr.contains("protocol 6"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_wrong_magic_cookie_gets_a_sentence_not_a_server() {
    let cert = ClientCert::generate();
    let (ok, stdout, stderr) = run_plugin(command(&cert).env("TF_PLUGIN_MAGIC_COOKIE", "nope"));
    assert!(!ok);
    assert!(stdout.is_empty(), "{stdout:?}");
    assert!(stderr.contains("Terraform provider plugin"), "{stderr}");
}

#[test]
fn a_person_running_the_binary_gets_the_admin_commands() {
    let cert = ClientCert::generate();
    let mut cmd = command(&cert);
    cmd.env_remove("TF_PLUGIN_MAGIC_COOKIE").arg("--help");
    let (ok, stdout, stderr) = run_plugin(&mut cmd);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("Terraform starts this binary"), "{stdout}");
    assert!(stdout.contains("inventory"), "{stdout}");
}

#[tokio::test]
async fn only_the_announced_client_certificate_may_connect() {
    let plugin = Plugin::start(&[]).await;
    assert_eq!(plugin.handshake_line.network, "unix");
    assert!(plugin.handshake_line.server_cert.is_some());
    for client in [None, Some(ClientCert::generate())] {
        let refused = match tfplugin::client::connect(&plugin.handshake_line, client.as_ref()).await
        {
            Err(_) => true,
            // tonic may hand out the channel and fail on the first call.
            Ok(channel) => proto::provider_client::ProviderClient::new(channel)
                .get_metadata(proto::get_metadata::Request {})
                .await
                .is_err(),
        };
        assert!(refused, "a client with {client:?} got in");
    }
    // The holder of the announced certificate still gets answers.
    let mut ok = plugin.client.clone();
    let meta = ok
        .get_metadata(proto::get_metadata::Request {})
        .await
        .expect("GetMetadata")
        .into_inner();
    let caps = meta.server_capabilities.expect("capabilities");
    assert!(caps.plan_destroy && caps.get_provider_schema_optional);
    assert!(meta
        .resources
        .iter()
        .any(|r| r.type_name == "vsphereipam_vm"));
}

#[tokio::test]
async fn the_socket_is_removed_when_terraform_shuts_the_plugin_down() {
    let mut plugin = Plugin::start(&[]).await;
    let socket = std::path::PathBuf::from(&plugin.handshake_line.address);
    assert!(socket.exists());
    let mut controller = tfplugin::proto::plugin::grpc_controller_client::GrpcControllerClient::new(
        plugin.channel.clone(),
    );
    controller
        .shutdown(tfplugin::proto::plugin::Empty {})
        .await
        .expect("Shutdown");
    let status = plugin.exited().await;
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists(), "{} left behind", socket.display());
    let mut rest = String::new();
    if let Some(mut out) = plugin.child.stdout.take() {
        let _ = out.read_to_string(&mut rest);
    }
}

#[tokio::test]
async fn bad_requests_get_diagnostics_and_the_plugin_keeps_serving() {
    let mut plugin = Plugin::start(&[]).await;
    // A fraction where a whole number goes: a sentence on that attribute.
    let config = rmp_serde::to_vec_named(&subnet_config(json!(12.5))).unwrap();
    let errs = validate(&mut plugin, "vsphereipam_ipsubnet", config).await;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("A whole number is needed") && errs[0].ends_with("@ vlan_id"),
        "{errs:?}"
    );
    assert!(errs[0].contains("12.5"), "{errs:?}");
    // A value of the wrong shape names its path.
    let config = rmp_serde::to_vec_named(&subnet_config(json!([1]))).unwrap();
    let errs = validate(&mut plugin, "vsphereipam_ipsubnet", config).await;
    assert!(errs[0].ends_with("@ vlan_id"), "{errs:?}");
    // Malformed MessagePack.
    let errs = validate(&mut plugin, "vsphereipam_ipsubnet", vec![0xdb, 0xff]).await;
    assert!(errs[0].starts_with("Malformed configuration"), "{errs:?}");
    // An unknown resource type.
    let config = rmp_serde::to_vec_named(&subnet_config(json!(12))).unwrap();
    let errs = validate(&mut plugin, "vsphereipam_nope", config.clone()).await;
    assert!(errs[0].contains("vsphereipam_nope"), "{errs:?}");
    // Unknowns where the configuration may hold them (cty's extension type 0): no error.
    let mut tree = tfplugin::codec::read_msgpack(&config).unwrap();
    if let Tree::Map(entries) = &mut tree {
        for (k, v) in entries.iter_mut() {
            if matches!(k.as_str(), Some("wire_id" | "vlan_id" | "dns_servers")) {
                *v = Tree::Ext(0, vec![0]);
            }
        }
    }
    let errs = validate(&mut plugin, "vsphereipam_ipsubnet", tree_to_msgpack(&tree)).await;
    assert!(errs.is_empty(), "{errs:?}");
    // RPCs this provider has nothing for answer with a diagnostic.
    let resp = plugin
        .client
        .move_resource_state(proto::move_resource_state::Request::default())
        .await
        .expect("MoveResourceState answers")
        .into_inner();
    assert!(!errors(&resp.diagnostics).is_empty());
    let resp = plugin
        .client
        .validate_ephemeral_resource_config(
            proto::validate_ephemeral_resource_config::Request::default(),
        )
        .await
        .expect("ValidateEphemeralResourceConfig answers")
        .into_inner();
    assert!(!errors(&resp.diagnostics).is_empty());
    // An older client (protocol 6.0 fields only) is served: ReadDataSource without client
    // capabilities, on an unconfigured provider, gets a diagnostic, not a dropped stream.
    let resp = plugin
        .client
        .read_data_source(proto::read_data_source::Request {
            type_name: "vsphereipam_wire".into(),
            config: dynamic(&json!({
                "id": null, "name": "pg", "datacenter": null, "switch": null, "moref": null,
                "type": null, "vlan_id": null, "switch_name": null, "switch_uuid": null,
                "host_ids": null, "vm_ips": null, "vmkernel_ips": null,
            })),
            provider_meta: None,
            client_capabilities: None,
        })
        .await
        .expect("the plugin answers")
        .into_inner();
    assert!(errors(&resp.diagnostics)[0].starts_with("Provider not configured"));
    // Still serving.
    plugin
        .client
        .get_provider_schema(proto::get_provider_schema::Request {})
        .await
        .expect("GetProviderSchema after the bad requests");
}

#[tokio::test]
async fn a_destroy_is_planned_with_a_null_proposal() {
    // plan_destroy is advertised: Terraform sends PlanResourceChange with a null proposed
    // state before a destroy; the answer is a null plan.
    let mut plugin = Plugin::start(&[]).await;
    let prior = json!({"id": "s/w", "subnet_id": "s", "wire_id": "w"});
    let resp = plugin
        .client
        .plan_resource_change(proto::plan_resource_change::Request {
            type_name: "vsphereipam_subnet_additional_wire".into(),
            prior_state: dynamic(&prior),
            proposed_new_state: dynamic(&Value::Null),
            config: dynamic(&Value::Null),
            ..Default::default()
        })
        .await
        .expect("PlanResourceChange")
        .into_inner();
    assert!(
        errors(&resp.diagnostics).is_empty(),
        "{:?}",
        resp.diagnostics
    );
    assert_eq!(
        resp.planned_state.expect("planned state").msgpack,
        vec![0xc0]
    );
    // A changed `wire_id` replaces the attachment: the path comes from the schema.
    let planned = json!({"id": "s/w", "subnet_id": "s", "wire_id": "w2"});
    let resp = plugin
        .client
        .plan_resource_change(proto::plan_resource_change::Request {
            type_name: "vsphereipam_subnet_additional_wire".into(),
            prior_state: dynamic(&prior),
            proposed_new_state: dynamic(&planned),
            config: dynamic(&planned),
            ..Default::default()
        })
        .await
        .expect("PlanResourceChange")
        .into_inner();
    assert!(
        errors(&resp.diagnostics).is_empty(),
        "{:?}",
        resp.diagnostics
    );
    let paths: Vec<String> = resp
        .requires_replace
        .iter()
        .flat_map(|p| &p.steps)
        .filter_map(|s| match &s.selector {
            Some(proto::attribute_path::step::Selector::AttributeName(n)) => Some(n.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(paths, ["wire_id"]);
}

#[test]
fn a_fraction_where_a_whole_number_goes_fails_terraform_validate_on_that_attribute() {
    let head = r#"
terraform {
  required_providers {
    vsphereipam = { source = "vsphereipam/vsphereipam" }
  }
}
"#;
    let subnet = r#"
resource "vsphereipam_ipsubnet" "app" {
  name    = "app"
  wire_id = "x/network-7"
  cidr    = "10.20.0.0/24"
  vlan_id = 12.5
}
"#;
    let vm = r#"
resource "vsphereipam_vm" "web" {
  name       = "web"
  datacenter = "DC0"
  template   = "tmpl"
  num_cpus   = 2.5
  memory_mb  = 1024
  network_interface {
    subnet_id = "s"
  }
}
"#;
    for tf in common::terraform::versions() {
        for (resource, attribute, value) in [(subnet, "vlan_id", "12.5"), (vm, "num_cpus", "2.5")] {
            let wd = common::terraform::Workdir::new(&tf, &format!("{head}{resource}"));
            wd.init();
            let run = wd.run(&["validate", "-no-color"]);
            assert!(!run.success, "terraform {} validate passed", tf.version);
            let out = run.flat();
            assert!(
                out.contains("A whole number is needed")
                    && out.contains(&format!("`{attribute}` takes a whole number, not {value}")),
                "terraform {}: {out}",
                tf.version
            );
            assert!(!out.contains("untagged enum"), "{out}");
        }
    }
}
