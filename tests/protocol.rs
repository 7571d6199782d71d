//! Protocol-level tests: our tfplugin6 client drives the built binary directly, the way
//! Terraform does (handshake, mutual TLS), without Terraform in between.

mod common;

use common::plugin::{decode, dynamic, errors, proto, Plugin};
use common::sim::Sim;
use serde_json::{json, Value};

fn provider_config(sim: &Sim, password: &str, store: &str) -> Value {
    json!({
        "vsphere_server": sim.server(),
        "user": sim.info.user,
        "password": password,
        "allow_unverified_ssl": true,
        "api_transport": null,
        "store": store,
    })
}

fn wire_config(name: &str) -> Value {
    json!({
        "id": null, "name": name, "datacenter": null, "switch": null, "moref": null,
        "type": null, "vlan_id": null, "switch_name": null, "switch_uuid": null,
        "host_ids": null, "vm_ips": null, "vmkernel_ips": null,
    })
}

async fn configure(plugin: &mut Plugin, config: &Value) -> Vec<String> {
    let resp = plugin
        .client
        .configure_provider(proto::configure_provider::Request {
            terraform_version: "1.15.5".into(),
            config: dynamic(config),
            ..Default::default()
        })
        .await
        .expect("ConfigureProvider")
        .into_inner();
    errors(&resp.diagnostics)
}

fn store_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("ipam.db").display())
}

#[tokio::test]
async fn schema_lists_every_type_and_marks_the_password_sensitive() {
    let mut plugin = Plugin::start(&[]).await;
    eprintln!("handshake after {:?}", plugin.handshake);
    let schema = plugin
        .client
        .get_provider_schema(proto::get_provider_schema::Request {})
        .await
        .expect("GetProviderSchema")
        .into_inner();
    assert!(errors(&schema.diagnostics).is_empty());
    assert!(schema.data_source_schemas.contains_key("vsphereipam_wire"));
    assert!(schema.resource_schemas.contains_key("vsphereipam_ipsubnet"));
    let provider = schema
        .provider
        .expect("provider schema")
        .block
        .expect("block");
    let password = provider
        .attributes
        .iter()
        .find(|a| a.name == "password")
        .expect("password");
    assert!(password.sensitive && password.optional);
    for name in [
        "vsphere_server",
        "user",
        "allow_unverified_ssl",
        "api_transport",
        "store",
    ] {
        assert!(provider.attributes.iter().any(|a| a.name == name), "{name}");
    }
}

#[tokio::test]
async fn concurrent_reads_share_one_inventory_load() {
    let sim = Sim::start("test");
    let dir = tempfile::tempdir().unwrap();
    let mut plugin = Plugin::start(&[]).await;
    assert_eq!(
        configure(
            &mut plugin,
            &provider_config(&sim, &sim.info.password, &store_url(&dir))
        )
        .await,
        Vec::<String>::new()
    );
    sim.reset_stats().await;

    let names = [
        "pg-app",
        "pg-db",
        "pg-trunk",
        "pg-std-web",
        "pg-std-partial",
        "pg-pvlan",
    ];
    let reads = (0..24).map(|i| {
        let mut client = plugin.client.clone();
        let name = names[i % names.len()];
        async move {
            let resp = client
                .read_data_source(proto::read_data_source::Request {
                    type_name: "vsphereipam_wire".into(),
                    config: dynamic(&wire_config(name)),
                    provider_meta: dynamic(&Value::Null),
                    ..Default::default()
                })
                .await
                .expect("ReadDataSource")
                .into_inner();
            assert!(
                errors(&resp.diagnostics).is_empty(),
                "{:?}",
                errors(&resp.diagnostics)
            );
            (name, decode(&resp.state))
        }
    });
    let results = futures::future::join_all(reads).await;
    for (name, state) in &results {
        assert_eq!(state["name"], *name);
        assert!(state["id"]
            .as_str()
            .unwrap()
            .starts_with(&sim.info.instance_uuid));
    }
    let stats = sim.stats().await;
    // 24 reads, one bulk load: a handful of round trips, not one per read.
    let retrieves: u64 = stats
        .by_method
        .iter()
        .filter(|(m, _)| m.contains("Retrieve") || m.contains("ContainerView"))
        .map(|(_, n)| n)
        .sum();
    assert!(
        stats.total <= 6,
        "24 concurrent reads made {} calls: {:?}",
        stats.total,
        stats.by_method
    );
    assert!(retrieves >= 1, "{:?}", stats.by_method);
}

#[tokio::test]
async fn configure_errors_point_at_the_setting() {
    let sim = Sim::start("test");
    let dir = tempfile::tempdir().unwrap();
    let mut plugin = Plugin::start(&[]).await;
    let errs = configure(
        &mut plugin,
        &provider_config(&sim, "not-the-password", &store_url(&dir)),
    )
    .await;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].ends_with("@ password"), "{errs:?}");
    assert!(!errs[0].contains("not-the-password"));

    let mut plugin = Plugin::start(&[]).await;
    let errs = configure(
        &mut plugin,
        &provider_config(&sim, &sim.info.password, "sqlite:///proc/forbidden/ipam.db"),
    )
    .await;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("Cannot open the IPAM store") && errs[0].ends_with("@ store"),
        "{errs:?}"
    );
}

#[tokio::test]
async fn malformed_requests_get_diagnostics_not_a_crash() {
    let sim = Sim::start("test");
    let dir = tempfile::tempdir().unwrap();
    let mut plugin = Plugin::start(&[]).await;
    configure(
        &mut plugin,
        &provider_config(&sim, &sim.info.password, &store_url(&dir)),
    )
    .await;
    let garbage = [
        proto::DynamicValue {
            msgpack: vec![0xc1, 0xff, 0x00],
            json: vec![],
        },
        proto::DynamicValue {
            msgpack: rmp_serde::to_vec(&json!({"name": 42})).unwrap(),
            json: vec![],
        },
        proto::DynamicValue {
            msgpack: rmp_serde::to_vec(&json!([1, 2, 3])).unwrap(),
            json: vec![],
        },
    ];
    for value in garbage {
        let resp = plugin
            .client
            .read_data_source(proto::read_data_source::Request {
                type_name: "vsphereipam_wire".into(),
                config: Some(value),
                provider_meta: dynamic(&Value::Null),
                ..Default::default()
            })
            .await
            .expect("the plugin answers")
            .into_inner();
        assert!(!errors(&resp.diagnostics).is_empty());
    }
    // Unknown type names too.
    let resp = plugin
        .client
        .read_data_source(proto::read_data_source::Request {
            type_name: "vsphereipam_nope".into(),
            config: dynamic(&wire_config("pg-app")),
            provider_meta: dynamic(&Value::Null),
            ..Default::default()
        })
        .await
        .expect("the plugin answers")
        .into_inner();
    assert!(!errors(&resp.diagnostics).is_empty());
    // Still alive and serving.
    let resp = plugin
        .client
        .read_data_source(proto::read_data_source::Request {
            type_name: "vsphereipam_wire".into(),
            config: dynamic(&wire_config("pg-app")),
            provider_meta: dynamic(&Value::Null),
            ..Default::default()
        })
        .await
        .expect("the plugin still answers")
        .into_inner();
    assert!(errors(&resp.diagnostics).is_empty());
}

/// SIGTERM (or SIGINT: Ctrl-C on `terraform apply`) while a call is in flight: the call still
/// gets its answer, then the plugin exits cleanly and removes its socket.
#[test]
fn a_stop_signal_lets_the_call_in_flight_answer_first() {
    let sim = Sim::start("test");
    // The proxy runs a runtime of its own: made outside the test's.
    let proxy = common::proxy::FaultProxy::https(&sim.info.url);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(stop_signal(&sim, &proxy));
}

async fn stop_signal(sim: &Sim, proxy: &common::proxy::FaultProxy) {
    let dir = tempfile::tempdir().unwrap();
    let mut plugin = Plugin::start(&[]).await;
    let mut config = provider_config(sim, &sim.info.password, &store_url(&dir));
    config["vsphere_server"] = json!(proxy.server());
    assert_eq!(configure(&mut plugin, &config).await, Vec::<String>::new());
    // The inventory load, which the wire read waits for, is held by vCenter's slow answer.
    proxy.delay("RetrievePropertiesEx", std::time::Duration::from_secs(3));
    let mut client = plugin.client.clone();
    let read = tokio::spawn(async move {
        client
            .read_data_source(proto::read_data_source::Request {
                type_name: "vsphereipam_wire".into(),
                config: dynamic(&wire_config("pg-app")),
                provider_meta: dynamic(&Value::Null),
                ..Default::default()
            })
            .await
    });
    common::wait_for(
        "the read to reach vCenter",
        std::time::Duration::from_millis(20),
        || (proxy.seen("RetrievePropertiesEx") > 0).then_some(()),
    );
    let socket = std::path::PathBuf::from(&plugin.handshake_line.address);
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &plugin.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let resp = read
        .await
        .expect("read task")
        .expect("the read in flight is answered after SIGTERM")
        .into_inner();
    assert!(
        errors(&resp.diagnostics).is_empty(),
        "{:?}",
        errors(&resp.diagnostics)
    );
    assert_eq!(decode(&resp.state)["name"], "pg-app");
    let status = plugin.exited().await;
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists(), "{} left behind", socket.display());
}
