//! Provider-level figures, one `name value unit` line each: the handshake time Terraform
//! waits for, the inventory load of a 10,000-VM simulator and its vCenter round trips, and
//! `terraform plan` of 500 subnets against 500 built-in `terraform_data` resources, the apply of
//! 50 `vsphereipam_vm` in one run, the vCenter round trips of a plan refreshing 200 of them, and
//! a `terraform query` listing 10,000 VMs (time and vCenter round trips).
//! Beside the plan figures, the same plans of a provider that does no work (`noop`, served by
//! this binary) show how much of the overhead is Terraform's cost of a plugin resource.
//!
//! Run: `cargo bench --bench provider` (part of `make bench`); `cargo bench --bench provider --
//! plan` measures only the figures of the groups named (`handshake`, `inventory`, `query`, `plan`,
//! `apply`).

#[path = "../tests/common/mod.rs"]
mod common;
mod noop;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::env::Env;
use common::sim::Sim;
use common::terraform::{versions, Workdir};
use vsphereipam::vsphere::client::{connect, ConnectOptions, Transport};
use vsphereipam::vsphere::inventory::load_inventory;

const MAGIC_COOKIE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

/// Milliseconds from spawning a plugin as Terraform does (a client certificate in
/// `PLUGIN_CLIENT_CERT`, so the plugin makes its own TLS certificate first, or none) to reading
/// its handshake line, for each `(binary, client certificate)`: 24 rounds taking turns between
/// them, the first 3 unmeasured (Cargo has just written the 100 MB binaries; their first starts
/// page them in, which an installed provider does not pay on every run), median of the rest.
fn handshake_ms(starts: &[(&std::path::Path, Option<&str>)]) -> Vec<f64> {
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); starts.len()];
    for round in 0..24 {
        for ((binary, client_cert), times) in starts.iter().zip(&mut times) {
            let ms = handshake_once(binary, *client_cert);
            if round >= 3 {
                times.push(ms);
            }
        }
    }
    medians(times)
}

/// The median of each list of timings.
fn medians(lists: Vec<Vec<f64>>) -> Vec<f64> {
    lists
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect()
}

fn handshake_once(binary: &std::path::Path, client_cert: Option<&str>) -> f64 {
    let mut command = Command::new(binary);
    command
        .env("TF_PLUGIN_MAGIC_COOKIE", MAGIC_COOKIE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "6")
        .env_remove("PLUGIN_CLIENT_CERT")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(cert) = client_cert {
        command.env("PLUGIN_CLIENT_CERT", cert);
    }
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ms = started.elapsed().as_secs_f64() * 1e3;
    assert!(line.starts_with("1|6|"), "handshake: {line:?}");
    let server_cert = line.trim_end().split('|').nth(5).unwrap_or("");
    assert_eq!(
        server_cert.len() > 50,
        client_cert.is_some(),
        "a server certificate exactly when a client one was given: {line:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
    ms
}

/// A client certificate like the one Terraform (go-plugin's AutoMTLS) makes for every plugin.
fn client_certificate() -> String {
    tfplugin::client::ClientCert::generate().cert_pem
}

fn inventory(vms: usize) -> (f64, u64) {
    let sim = Sim::start_with("scale", &["-vms", &vms.to_string()]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = connect(&ConnectOptions {
            server: sim.server(),
            user: sim.info.user.clone(),
            password: sim.info.password.clone(),
            allow_unverified_ssl: true,
            transport: Transport::Soap,
        })
        .await
        .unwrap();
        let before = client.calls();
        let started = Instant::now();
        let inv = load_inventory(&client).await.unwrap();
        let ms = started.elapsed().as_secs_f64() * 1e3;
        assert!(inv.vms.len() >= vms);
        (ms, client.calls() - before)
    })
}

/// Seconds of `terraform plan` (refresh included) over each applied configuration: `PLAN_RUNS`
/// rounds taking turns between them (one run varies by ±15% on a 2-core machine, and a slow
/// moment should hit every configuration alike), the median round of each.
fn plan_seconds(workdirs: &[&Workdir]) -> Vec<f64> {
    for wd in workdirs {
        wd.apply_ok();
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); workdirs.len()];
    for _ in 0..PLAN_RUNS {
        for (wd, times) in workdirs.iter().zip(&mut times) {
            let started = Instant::now();
            let run = wd.run(&["plan", "-input=false", "-no-color", "-detailed-exitcode"]);
            times.push(started.elapsed().as_secs_f64());
            assert!(run.success, "plan shows changes or failed: {}", run.all());
        }
    }
    medians(times)
}

const PLAN_RUNS: usize = 5;

/// A working directory whose only provider is the no-op one, with `resources` as its config.
fn noop_workdir(
    tf: &common::terraform::Terraform,
    plugin_dir: &std::path::Path,
    resources: &str,
) -> Workdir {
    let wd = Workdir::new(
        tf,
        &format!(
            "terraform {{\n  required_providers {{\n    noop = {{ source = \"{}\" }}\n  }}\n}}\n{resources}",
            noop::SOURCE.trim_start_matches("registry.terraform.io/")
        ),
    );
    let rc = wd.path().join("noop.tfrc");
    std::fs::write(&rc, noop::cli_config(plugin_dir)).expect("write noop.tfrc");
    wd.env("TF_CLI_CONFIG_FILE", &rc.display().to_string())
}

fn sim_calls(sim: &Sim) -> u64 {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(sim.stats())
        .total
}

/// `terraform apply` of 50 VMs (seconds, vCenter calls), then of 150 more, then the calls of a
/// plan that refreshes all 200.
fn vm_figures(tf: &common::terraform::Terraform) -> (f64, u64, u64) {
    let sim = Sim::start("test");
    let env = Env::new(&sim, "");
    let config = |count: usize| {
        env.config(&format!(
            "data \"vsphereipam_wire\" \"app\" {{\n  name = \"pg-app\"\n}}\n\
             resource \"vsphereipam_ipsubnet\" \"vms\" {{\n  name = \"vms\"\n  wire_id = data.vsphereipam_wire.app.id\n  cidr = \"10.40.0.0/22\"\n  gateway = \"10.40.0.1\"\n}}\n\
             resource \"vsphereipam_vm\" \"vm\" {{\n  count = {count}\n  name = \"bench-${{count.index}}\"\n  datacenter = \"DC0\"\n  template = \"tmpl-linux\"\n  network_interface {{\n    subnet_id = vsphereipam_ipsubnet.vms.id\n  }}\n}}\n"
        ))
    };
    let wd = env.workdir(tf, "");
    wd.write("main.tf", &config(0));
    wd.apply_ok();
    wd.write("main.tf", &config(50));
    let calls = sim_calls(&sim);
    let started = Instant::now();
    wd.apply_ok();
    let apply_s = started.elapsed().as_secs_f64();
    let apply_calls = sim_calls(&sim) - calls;
    wd.write("main.tf", &config(200));
    wd.apply_ok();
    let calls = sim_calls(&sim);
    let run = wd.run(&["plan", "-input=false", "-no-color", "-detailed-exitcode"]);
    assert!(
        run.success,
        "plan of 200 VMs shows changes or failed: {}",
        run.all()
    );
    let refresh_calls = sim_calls(&sim) - calls;
    (apply_s, apply_calls, refresh_calls)
}

fn main() {
    if noop::started_as_plugin() {
        return noop::serve();
    }
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    // Groups named on the command line (none: all); Cargo's own flags start with `--`.
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |group: &str| named.is_empty() || named.iter().any(|n| n == group);
    if wanted("handshake") {
        handshake_figures();
    }
    if wanted("inventory") {
        let (ms, calls) = inventory(10_000);
        println!("inventory_10000_vms_ms {ms:.0} ms");
        println!("inventory_calls {calls} calls");
    }
    if wanted("query") {
        let (ms, calls, results) = query_figures(10_000);
        println!("query_10000_vms_ms {ms:.0} ms");
        println!("query_10000_vms_calls {calls} calls");
        assert_eq!(results, 10_000, "one result per VM");
    }
    let tf = versions().remove(0);
    if wanted("plan") {
        plan_figures(&tf);
    }
    if wanted("apply") {
        let (apply_s, apply_calls, refresh_calls) = vm_figures(&tf);
        println!("apply_50_vms_s {apply_s:.2} s");
        println!("apply_50_vms_calls {apply_calls} calls");
        println!("refresh_200_vms_calls {refresh_calls} calls");
    }
}

fn handshake_figures() {
    let cert = client_certificate();
    let ours = std::path::Path::new(env!("CARGO_BIN_EXE_terraform-provider-vsphereipam"));
    let noop_plugin = noop::plugin_dir();
    let noop_binary = noop_plugin.path().join("terraform-provider-noop");
    // Ours, the no-op provider (the floor of the protocol layer), and both without TLS (how runs
    // before the client certificate was added measured it).
    let [tls, noop_tls, no_tls, noop_no_tls] = handshake_ms(&[
        (ours, Some(&cert)),
        (&noop_binary, Some(&cert)),
        (ours, None),
        (&noop_binary, None),
    ])[..] else {
        unreachable!("four kinds of start measured")
    };
    println!("handshake_ms {tls:.1} ms");
    println!("handshake_noop_ms {noop_tls:.1} ms");
    println!("handshake_no_tls_ms {no_tls:.1} ms");
    println!("handshake_noop_no_tls_ms {noop_no_tls:.1} ms");
}

fn plan_figures(tf: &common::terraform::Terraform) {
    let noop_plugin = noop::plugin_dir();
    let sim = Sim::start("test");
    let subnets = |kind: &str, wire_id: &str| -> String {
        (0..500)
            .map(|i| {
                format!(
                    "resource \"{kind}\" \"s{i}\" {{\n  name = \"s{i}\"\n  wire_id = {wire_id}\n  cidr = \"10.{}.{}.0/24\"\n}}\n",
                    100 + i / 256,
                    i % 256
                )
            })
            .collect()
    };
    let data = |kind: &str| -> String {
        (0..500)
            .map(|i| format!("resource \"{kind}\" \"d{i}\" {{\n  input = \"s{i}\"\n}}\n"))
            .collect()
    };
    let env = Env::new(&sim, "");
    let ours = env.workdir(
        tf,
        &format!(
            "data \"vsphereipam_wire\" \"db\" {{\n  name = \"pg-db\"\n}}\n{}",
            subnets("vsphereipam_ipsubnet", "data.vsphereipam_wire.db.id")
        ),
    );
    let floor = Workdir::new(tf, &data("terraform_data"));
    let noop_subnets = noop_workdir(
        tf,
        noop_plugin.path(),
        &format!(
            "data \"noop_wire\" \"db\" {{\n  name = \"pg-db\"\n}}\n{}",
            subnets("noop_subnet", "data.noop_wire.db.id")
        ),
    );
    let noop_data = noop_workdir(tf, noop_plugin.path(), &data("noop_data"));
    let [plan_ours, plan_floor, plan_noop_subnets, plan_noop_data] =
        plan_seconds(&[&ours, &floor, &noop_subnets, &noop_data])[..]
    else {
        unreachable!("four configurations planned")
    };
    println!("plan_500_subnets_s {plan_ours:.2} s");
    println!("plan_500_terraform_data_s {plan_floor:.2} s");
    println!("plan_overhead_ratio {:.2} x", plan_ours / plan_floor);
    // Our work per plan over the same schema served with no work behind it, both by
    // crates/tfplugin: what the provider itself adds.
    println!(
        "plan_ratio_vs_noop_subnets {:.2} x",
        plan_ours / plan_noop_subnets
    );
    // The floor of a plugin: the ipsubnet schema with no work behind it, and a 3-attribute one.
    println!("plan_500_noop_subnets_s {plan_noop_subnets:.2} s");
    println!("plan_500_noop_data_s {plan_noop_data:.2} s");
    println!(
        "plan_overhead_ratio_noop_subnets {:.2} x",
        plan_noop_subnets / plan_floor
    );
    println!(
        "plan_overhead_ratio_noop_data {:.2} x",
        plan_noop_data / plan_floor
    );
}

/// `terraform query` of `vms` VMs at the protocol level: a configured provider lists
/// `vsphereipam_vm_nic_fix` (objects included) over VMs whose addresses sit in subnets of the
/// store; milliseconds from the request to the last result, vCenter calls, results.
fn query_figures(vms: usize) -> (f64, u64, usize) {
    use common::plugin::{dynamic, errors, proto, Plugin};
    let sim = Sim::start_with("scale", &["-vms", &vms.to_string()]);
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite://{}", dir.path().join("ipam.db").display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // The scale scenario puts VM i on port group i % 5 with an address in 10.(100 + i % 5)/16.
        let inventory = load_inventory(&sim.client().await).await.unwrap();
        let store = vsphereipam::store::Store::open(&store_url).unwrap();
        for (i, pg) in ["pg-app", "pg-db", "pg-std-web", "pg-k8s", "pg-std-mgmt"]
            .iter()
            .enumerate()
        {
            let moref = &inventory
                .portgroups
                .iter()
                .find(|p| p.name == *pg)
                .unwrap()
                .moref;
            let wire = format!("{}/{moref}", inventory.instance_uuid);
            let cidr = format!("10.{}.0.0/16", 100 + i);
            let record = common::subnet_record(&inventory.instance_uuid, &wire, pg, &cidr);
            store.create_subnet(&record, &[]).unwrap();
        }
        let mut plugin = Plugin::start(&[]).await;
        let config = serde_json::json!({
            "vsphere_server": sim.server(), "user": sim.info.user, "password": sim.info.password,
            "allow_unverified_ssl": true, "api_transport": "soap", "store": store_url,
        });
        let configured = plugin
            .client
            .configure_provider(proto::configure_provider::Request {
                terraform_version: "1.15.5".into(),
                config: dynamic(&config),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(errors(&configured.diagnostics).is_empty());
        sim.reset_stats().await;
        let started = Instant::now();
        let mut stream = plugin
            .client
            .list_resource(proto::list_resource::Request {
                type_name: "vsphereipam_vm_nic_fix".into(),
                config: dynamic(&serde_json::Value::Null),
                include_resource_object: true,
                limit: 2 * vms as i64,
            })
            .await
            .unwrap()
            .into_inner();
        let mut results = 0;
        while let Some(event) = stream.message().await.unwrap() {
            assert!(errors(&event.diagnostic).is_empty());
            results += 1;
        }
        let ms = started.elapsed().as_secs_f64() * 1e3;
        (ms, sim.stats().await.total, results)
    })
}
