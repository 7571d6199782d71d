//! The no-duplicate guarantee between provider processes, without Terraform: 8 plugin processes
//! (started and driven by our tfplugin6 client), each creating 24 `vsphereipam_ip_address`
//! resources at once, all from one /25 (126 addresses) until it is full, on SQLite and on
//! PostgreSQL.

mod common;

use std::collections::HashSet;

use common::plugin::{decode, dynamic, errors, proto, Plugin};
use common::sim::Sim;
use serde_json::{json, Value};
use vsphereipam::ipam::subnet::{validate, Field, SubnetInput};
use vsphereipam::store::{OwnerKind, Store, SubnetRecord};

const PROCESSES: usize = 8;
const PER_PROCESS: usize = 24;

/// One ApplyResourceChange create; `Ok(address)` or `Err(error diagnostics)`.
async fn create(plugin: &Plugin, subnet_id: &str) -> Result<String, Vec<String>> {
    let config =
        json!({"id": null, "subnet_id": subnet_id, "ip_address": null, "description": null});
    let resp = plugin
        .client
        .clone()
        .apply_resource_change(proto::apply_resource_change::Request {
            type_name: "vsphereipam_ip_address".into(),
            prior_state: dynamic(&Value::Null),
            planned_state: dynamic(&config),
            config: dynamic(&config),
            planned_private: vec![],
            provider_meta: dynamic(&Value::Null),
            ..Default::default()
        })
        .await
        .expect("ApplyResourceChange")
        .into_inner();
    let errs = errors(&resp.diagnostics);
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(decode(&resp.new_state)["ip_address"]
        .as_str()
        .expect("an address")
        .to_string())
}

fn processes_fill_one_subnet(sim: &Sim, store_url: &str) {
    let store = Store::open(store_url).unwrap();
    let moref = &sim
        .manifest()
        .portgroups
        .iter()
        .find(|p| p.name == "pg-db")
        .unwrap()
        .moref;
    store
        .create_subnet(
            &SubnetRecord {
                id: "crowded".into(),
                vcenter: sim.info.instance_uuid.clone(),
                name: "crowded".into(),
                wire_id: format!("{}/{moref}", sim.info.instance_uuid),
                domain: None,
                spec: validate(&SubnetInput {
                    cidr: Field::Value("10.78.0.0/25".into()),
                    alloc_policy: Field::Value("random".into()),
                    ..Default::default()
                })
                .unwrap()
                .unwrap(),
            },
            &[],
        )
        .unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcomes: Vec<Result<String, Vec<String>>> = runtime.block_on(async {
        let config = json!({
            "vsphere_server": sim.server(), "user": sim.info.user, "password": sim.info.password,
            "allow_unverified_ssl": true, "api_transport": null, "store": store_url,
        });
        let mut plugins = Vec::new();
        for _ in 0..PROCESSES {
            let plugin = Plugin::start(&[]).await;
            let resp = plugin
                .client
                .clone()
                .configure_provider(proto::configure_provider::Request {
                    terraform_version: "1.15.5".into(),
                    config: dynamic(&config),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert!(
                errors(&resp.diagnostics).is_empty(),
                "{:?}",
                resp.diagnostics
            );
            plugins.push(plugin);
        }
        let calls = plugins
            .iter()
            .flat_map(|p| (0..PER_PROCESS).map(move |_| create(p, "crowded")));
        futures::future::join_all(calls).await
    });

    let granted: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    for refused in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert!(
            refused.iter().all(|e| e.starts_with("Subnet full")),
            "{store_url}: only a full subnet may refuse: {refused:?}"
        );
    }
    let unique: HashSet<&&String> = granted.iter().collect();
    assert_eq!(unique.len(), granted.len(), "{store_url}: an address twice");
    assert_eq!(granted.len(), 126, "{store_url}: the /25 fills exactly");
    let held = store
        .addresses("crowded")
        .unwrap()
        .iter()
        .filter(|a| a.owner_kind == OwnerKind::Address)
        .count();
    assert_eq!(held, 126, "{store_url}: the store agrees");
}

#[test]
fn provider_processes_never_share_an_address_sqlite() {
    let sim = Sim::start("test");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ipam.db").display());
    processes_fill_one_subnet(&sim, &url);
}

#[test]
fn provider_processes_never_share_an_address_postgres() {
    let sim = Sim::start("test");
    processes_fill_one_subnet(&sim, &common::pg::fresh_database());
}
