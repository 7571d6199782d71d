//! Every configuration under `examples/` is applied against the simulator on both Terraform
//! versions: the provider and data source examples, each resource example (apply, an empty
//! second plan, the import its `import.sh` shows, destroy) and the quickstart. A new example
//! directory is picked up without touching this file.

mod common;

use std::path::{Path, PathBuf};

use common::sim::Sim;
use common::terraform::{header, versions, Terraform, Workdir};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn example_dirs(kind: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(repo().join("examples").join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no examples under examples/{kind}");
    dirs
}

/// A working directory configured from the environment, as the README tells users to, with the
/// examples' variables set from the scenario.
fn env_workdir(tf: &Terraform, sim: &Sim, main_tf: &str) -> Workdir {
    let legacy = sim
        .manifest()
        .vms
        .iter()
        .find(|v| v.name == "vm-app-legacy" || v.name == "vm-app-noip")
        .expect("a VM without Tools addresses on pg-app");
    Workdir::new(tf, main_tf)
        .env("TF_VAR_legacy_vm_uuid", &legacy.uuid)
        .env("TF_VAR_windows_admin_password", "Example-Pa55word")
        .env("VSPHERE_SERVER", &sim.server())
        .env("VSPHERE_USER", &sim.info.user)
        .env("VSPHERE_PASSWORD", &sim.info.password)
        .env("VSPHERE_ALLOW_UNVERIFIED_SSL", "true")
}

/// The resource addresses `import.sh` imports (`terraform import <address> <id>` lines).
fn import_addresses(script: &str) -> Vec<String> {
    script
        .lines()
        .filter_map(|l| l.trim().strip_prefix("terraform import "))
        .map(|rest| rest.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// The `id` of a resource in the state, from `terraform show -json`.
fn state_id(wd: &Workdir, address: &str) -> String {
    let run = wd.run(&["show", "-json", "-no-color"]);
    assert!(run.success, "show failed:\n{}", run.all());
    let state: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let resources = state["values"]["root_module"]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    resources
        .iter()
        .find(|r| r["address"] == address)
        .and_then(|r| r["values"]["id"].as_str())
        .unwrap_or_else(|| panic!("{address} not in state: {}", run.stdout))
        .to_string()
}

#[test]
fn provider_and_data_source_examples_apply() {
    let sim = Sim::start("test");
    for tf in versions() {
        let wd = Workdir::new(
            &tf,
            &format!(
                "{}\n{}",
                header(),
                read(&repo().join("examples/provider/provider.tf"))
            ),
        )
        .env("TF_VAR_vsphere_server", &sim.server())
        .env("TF_VAR_vsphere_user", &sim.info.user)
        .env("TF_VAR_vsphere_password", &sim.info.password)
        .env("TF_VAR_allow_unverified_ssl", "true");
        for dir in example_dirs("data-sources") {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            wd.write(&format!("{name}.tf"), &read(&dir.join("data-source.tf")));
        }
        wd.apply_ok();
        let outs = wd.outputs();
        assert_eq!(outs["app_wire"]["vlan_id"], 120, "{}", tf.version);
        assert_eq!(
            outs["web_vmkernel_ips"],
            serde_json::json!(["10.50.0.11", "10.50.0.12"]),
            "{}",
            tf.version
        );
        // vm-multi's Tools report 10.30.0.41 on pg-db, inside the db subnet's 90 addresses.
        assert_eq!(
            outs["db_subnet"]["size"],
            serde_json::json!(90),
            "{}",
            tf.version
        );
        assert_eq!(outs["db_subnet"]["observed"], 1, "{}", tf.version);
        assert_eq!(outs["db_subnet"]["free"], 89, "{}", tf.version);
        assert_eq!(
            outs["db_observed"],
            serde_json::json!({ "10.30.0.41": "vm-multi" }),
            "{}",
            tf.version
        );
        wd.plan_no_changes();
    }
}

#[test]
fn resource_examples_apply_import_and_destroy() {
    let sim = Sim::start("test");
    for tf in versions() {
        for dir in example_dirs("resources") {
            let what = format!("terraform {} {}", tf.version, dir.display());
            let wd = env_workdir(
                &tf,
                &sim,
                &format!(
                    "{}\nprovider \"vsphereipam\" {{}}\n\n{}",
                    header(),
                    read(&dir.join("resource.tf"))
                ),
            );
            wd.apply_ok();
            wd.plan_no_changes();

            let script = read(&dir.join("import.sh"));
            let addresses = import_addresses(&script);
            assert!(!addresses.is_empty(), "{what}: import.sh imports nothing");
            for address in addresses {
                let id = state_id(&wd, &address);
                let rm = wd.run(&["state", "rm", "-no-color", &address]);
                assert!(rm.success, "{what}: state rm:\n{}", rm.all());
                let import = wd.run(&["import", "-no-color", "-input=false", &address, &id]);
                assert!(
                    import.success,
                    "{what}: import {address} {id}:\n{}",
                    import.all()
                );
                // `state rm` dropped the outputs that read the resource; the apply only
                // brings them back.
                // Inputs only a create uses cannot be read back: when import.sh says so, the
                // first apply records them, changing nothing else.
                let applied = wd.apply_ok();
                let records = script.contains("first apply records them");
                assert!(
                    applied.stdout.contains("0 added, 0 changed, 0 destroyed")
                        || (records && applied.stdout.contains("0 added, 1 changed, 0 destroyed")),
                    "{what}: imported {address} differs from its configuration:\n{}",
                    applied.stdout
                );
                wd.plan_no_changes();
            }
            wd.destroy_ok();
        }
    }
}

#[test]
fn quickstart_applies() {
    let sim = Sim::start("demo");
    for tf in versions() {
        let wd = env_workdir(
            &tf,
            &sim,
            &read(&repo().join("examples/quickstart/main.tf")),
        );
        wd.apply_ok();
        let outs = wd.outputs();
        let wires = &outs["wires"];
        assert_eq!(wires["pg-db"]["vlan_id"], 130, "{}: {wires}", tf.version);
        assert_eq!(wires["pg-std-web"]["type"], "standard", "{}", tf.version);
        let cidrs: Vec<&str> = outs["subnets"]
            .as_array()
            .expect("subnets output is a list")
            .iter()
            .map(|s| s["cidr"].as_str().expect("cidr"))
            .collect();
        assert_eq!(
            cidrs,
            ["10.20.0.0/24", "2001:db8:0:20::/64", "10.50.0.0/24"],
            "{}",
            tf.version
        );
        assert_eq!(
            outs["subnets"][1]["range"], "2001:db8:0:20::1-2001:db8:0:20:ffff:ffff:ffff:ffff",
            "{}",
            tf.version
        );
        assert_eq!(
            outs["fixed"][0]["nics"][0]["ip_address"], "10.20.0.50",
            "{}",
            tf.version
        );
        // stepdown from the top of 10.20.0.10-10.20.0.250; nothing is held up there.
        assert_eq!(
            outs["allocated"][0]["ip_address"], "10.20.0.250",
            "{}",
            tf.version
        );
        // The dual-stack wire's IPv6 VIP: stepdown from the top of the /64.
        assert_eq!(
            outs["allocated"][1]["ip_address"], "2001:db8:0:20:ffff:ffff:ffff:ffff",
            "{}",
            tf.version
        );
        // Three VMs, each with the address Tools report, on distinct addresses below the VIP.
        let vms = outs["vms"].as_array().expect("vms output");
        assert_eq!(vms.len(), 3, "{}", tf.version);
        let mut ips: Vec<String> = Vec::new();
        for vm in vms {
            let ip = vm["nics"][0]["ip_address"].as_str().unwrap().to_string();
            assert_eq!(vm["guest_ips"], serde_json::json!([ip]), "{}", tf.version);
            ips.push(ip);
        }
        // The two app VMs are created in parallel: either may get either address.
        ips[..2].sort();
        assert_eq!(
            ips,
            ["10.20.0.248", "10.20.0.249", "10.50.0.199"],
            "{}",
            tf.version
        );
        assert_eq!(
            vms[2]["nics"][0]["port_group"], "pg-std-web",
            "{}",
            tf.version
        );
        // The app VMs are dual stack: the next free IPv6 addresses below the IPv6 VIP.
        let mut ipv6: Vec<&str> = vms[..2]
            .iter()
            .map(|vm| vm["nics"][0]["ipv6_address"].as_str().unwrap_or_default())
            .collect();
        ipv6.sort();
        assert_eq!(
            ipv6,
            [
                "2001:db8:0:20:ffff:ffff:ffff:fffd",
                "2001:db8:0:20:ffff:ffff:ffff:fffe"
            ],
            "{}",
            tf.version
        );
        assert_eq!(
            vms[2]["nics"][0]["ipv6_address"],
            serde_json::Value::Null,
            "{}",
            tf.version
        );
        // The wires output was read before the VMs existed; the next apply shows their
        // addresses in it, and then nothing changes.
        wd.apply_ok();
        let outs = wd.outputs();
        let app_ips = outs["wires"]["pg-app"]["vm_ips"].to_string();
        assert!(app_ips.contains("10.20.0.249"), "{}: {app_ips}", tf.version);
        wd.plan_no_changes();
        wd.destroy_ok();
    }
}
