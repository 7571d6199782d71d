//! End to end: `vsphereipam_wire` and the provider configuration, through Terraform 1.15 and
//! 1.0.3, against the vCenter simulator's `test` scenario.

mod common;

use common::sim::{MPortgroup, Manifest, Sim};
use common::terraform::{header, versions, Workdir};
use serde_json::{json, Value};

/// A workdir whose provider settings come from the environment, like CI pipelines set them.
fn workdir(tf: &common::terraform::Terraform, sim: &Sim, body: &str) -> Workdir {
    Workdir::new(
        tf,
        &format!("{}\nprovider \"vsphereipam\" {{}}\n{body}", header()),
    )
    .env("VSPHERE_SERVER", &sim.server())
    .env("VSPHERE_USER", &sim.info.user)
    .env("VSPHERE_PASSWORD", &sim.info.password)
    .env("VSPHERE_ALLOW_UNVERIFIED_SSL", "true")
}

fn pg<'m>(m: &'m Manifest, name: &str, switch: &str) -> &'m MPortgroup {
    m.portgroups
        .iter()
        .find(|p| p.name == name && (switch.is_empty() || p.switch == switch))
        .unwrap_or_else(|| panic!("scenario has no port group {name} on {switch:?}"))
}

fn sorted_ips(mut ips: Vec<String>) -> Vec<String> {
    ips.sort_by_key(|ip| ip.parse::<std::net::IpAddr>().expect("an IP address"));
    ips.dedup();
    ips
}

/// What the data source must report for a port group, computed from the scenario's manifest.
fn expected(sim: &Sim, p: &MPortgroup) -> Value {
    let m = sim.manifest();
    let vm_ips: Vec<String> = m
        .vms
        .iter()
        .flat_map(|vm| &vm.nics)
        .filter(|nic| nic.portgroup == p.moref && !nic.ip.is_empty())
        .flat_map(|nic| std::iter::once(nic.ip.clone()).chain(nic.ipv6.clone()))
        .collect();
    let vmk_ips: Vec<String> = m
        .vmknics
        .iter()
        .filter(|v| v.portgroup == p.moref && !v.ip.is_empty())
        .flat_map(|v| std::iter::once(v.ip.clone()).chain(v.ipv6.clone()))
        .collect();
    let mut hosts = p.hosts.clone();
    hosts.sort();
    json!({
        "id": format!("{}/{}", sim.info.instance_uuid, p.moref),
        "moref": p.moref,
        "name": p.name,
        "type": p.kind,
        "vlan_id": p.vlan,
        "switch_name": p.switch,
        "switch_uuid": if p.kind == "distributed" { json!(p.switch_uuid) } else { Value::Null },
        "datacenter": p.datacenter,
        "host_ids": hosts,
        "vm_ips": sorted_ips(vm_ips),
        "vmkernel_ips": sorted_ips(vmk_ips),
    })
}

const LOOKUPS: &str = r#"
data "vsphereipam_wire" "app" {
  name = "pg-app"
}
data "vsphereipam_wire" "trunk" {
  name       = "pg-trunk"
  datacenter = "DC0"
}
data "vsphereipam_wire" "pvlan" {
  name = "pg-pvlan"
}
data "vsphereipam_wire" "dup1" {
  name   = "pg-dup"
  switch = "DSwitch1"
}
data "vsphereipam_wire" "web" {
  name = "pg-std-web"
}
data "vsphereipam_wire" "partial" {
  name   = "pg-std-partial"
  switch = "vSwitch0"
}
data "vsphereipam_wire" "by_moref" {
  moref = data.vsphereipam_wire.app.moref
}
locals {
  keys = ["id", "moref", "name", "type", "vlan_id", "switch_name", "switch_uuid", "datacenter", "host_ids", "vm_ips", "vmkernel_ips"]
}
output "wires" {
  value = {
    for k, w in {
      app = data.vsphereipam_wire.app, trunk = data.vsphereipam_wire.trunk,
      pvlan = data.vsphereipam_wire.pvlan, dup1 = data.vsphereipam_wire.dup1,
      web = data.vsphereipam_wire.web, partial = data.vsphereipam_wire.partial,
      by_moref = data.vsphereipam_wire.by_moref
    } : k => { for a in local.keys : a => w[a] }
  }
}
"#;

#[test]
fn wire_describes_distributed_and_standard_port_groups() {
    let sim = Sim::start("test");
    let m = sim.manifest();
    let want = json!({
        "app": expected(&sim, pg(m, "pg-app", "")),
        "trunk": expected(&sim, pg(m, "pg-trunk", "")),
        "pvlan": expected(&sim, pg(m, "pg-pvlan", "")),
        "dup1": expected(&sim, pg(m, "pg-dup", "DSwitch1")),
        "web": expected(&sim, pg(m, "pg-std-web", "")),
        "partial": expected(&sim, pg(m, "pg-std-partial", "")),
        "by_moref": expected(&sim, pg(m, "pg-app", "")),
    });
    // The scenario must exercise what the contract promises, or this test proves little.
    assert_eq!(want["trunk"]["vlan_id"], -1);
    assert_eq!(want["app"]["vlan_id"], 120);
    assert!(want["app"]["vm_ips"].as_array().unwrap().len() >= 3);
    assert!(!want["app"]["vmkernel_ips"].as_array().unwrap().is_empty());
    assert!(!want["web"]["vmkernel_ips"].as_array().unwrap().is_empty());
    assert_eq!(want["partial"]["host_ids"].as_array().unwrap().len(), 1);

    for tf in versions() {
        let wd = workdir(&tf, &sim, LOOKUPS);
        wd.apply_ok();
        let got = &wd.outputs()["wires"];
        for key in want.as_object().unwrap().keys() {
            assert_eq!(got[key], want[key], "terraform {}: wire {key}", tf.version);
        }
        // A second plan is empty: data sources are stable.
        wd.plan_no_changes();

        // A plan that went well logs no provider error (Terraform 1.15 also calls the
        // RPCs of protocol 6.9 and 6.10; none of them may log an error).
        let quiet = workdir(&tf, &sim, LOOKUPS).env("TF_LOG", "ERROR");
        quiet.init();
        let run = quiet.run(&["plan", "-input=false", "-no-color"]);
        let out = run.all();
        assert!(run.success, "terraform {}: {out}", tf.version);
        assert!(
            !out.lines()
                .any(|l| l.contains("[ERROR]") && l.contains("terraform-provider-vsphereipam")),
            "terraform {}: provider errors logged by a good plan:\n{out}",
            tf.version
        );
    }
}

#[test]
fn ambiguous_and_unknown_names_are_errors_that_list_what_to_do() {
    let sim = Sim::start("test");
    for tf in versions() {
        let wd = workdir(
            &tf,
            &sim,
            "data \"vsphereipam_wire\" \"dup\" {\n  name = \"pg-dup\"\n}\n",
        );
        let out = wd.plan_err().flat();
        assert!(
            out.contains("Port group name is ambiguous"),
            "{}: {out}",
            tf.version
        );
        assert!(
            out.contains("2 port groups match name = \"pg-dup\""),
            "{}: {out}",
            tf.version
        );
        assert!(
            out.contains("DSwitch0") && out.contains("DSwitch1"),
            "{}: {out}",
            tf.version
        );
        assert!(out.contains("datacenter \"DC0\""), "{}: {out}", tf.version);
        // The diagnostic points at the attribute: Terraform quotes its line.
        assert!(out.contains("name = \"pg-dup\""), "{}: {out}", tf.version);

        let wd = workdir(
            &tf,
            &sim,
            "data \"vsphereipam_wire\" \"nope\" {\n  name       = \"pg-app\"\n  datacenter = \"DC1\"\n}\n",
        );
        let out = wd.plan_err().flat();
        assert!(
            out.contains("Port group not found"),
            "{}: {out}",
            tf.version
        );
        assert!(
            out.contains(r#"name = "pg-app", datacenter = "DC1""#),
            "{}: {out}",
            tf.version
        );

        let wd = workdir(
            &tf,
            &sim,
            "data \"vsphereipam_wire\" \"none\" {\n  datacenter = \"DC0\"\n}\n",
        );
        let out = wd.plan_err().flat();
        assert!(
            out.contains("Missing port group name"),
            "{}: {out}",
            tf.version
        );
    }
}

/// The password comes from a variable (`TF_VAR_pw`), as in real configurations, so Terraform's
/// quote of the attribute line does not show it and any appearance of it is a leak.
fn provider_block(server: &str, unverified: bool) -> String {
    format!(
        "{}\nvariable \"pw\" {{\n  type      = string\n  sensitive = true\n}}\nprovider \"vsphereipam\" {{\n  vsphere_server       = \"{server}\"\n  user                 = \"user\"\n  password             = var.pw\n  allow_unverified_ssl = {unverified}\n}}\ndata \"vsphereipam_wire\" \"app\" {{\n  name = \"pg-app\"\n}}\n",
        header()
    )
}

fn assert_clean_failure(version: &str, out: &str, secret: &str) {
    assert!(
        !out.contains("panicked") && !out.contains("plugin crashed"),
        "{version}: {out}"
    );
    assert!(
        !out.contains(secret),
        "{version}: the password leaked:\n{out}"
    );
}

#[test]
fn connection_problems_name_the_setting_to_fix() {
    let sim = Sim::start("test");
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let secret = "Wr0ng-s3cret-pw";
    for tf in versions() {
        // Wrong password, with debug logging on: the secret must appear nowhere.
        let wd = Workdir::new(&tf, &provider_block(&sim.server(), true))
            .env("TF_VAR_pw", secret)
            .env("TF_LOG", "DEBUG");
        let out = wd.plan_err().all();
        assert!(
            out.contains("vCenter rejected the login of user \"user\""),
            "{}: {out}",
            tf.version
        );
        assert!(
            out.contains("password             = var.pw"),
            "{}: attribute not pointed at:\n{out}",
            tf.version
        );
        assert!(
            out.contains("\"@module\":\"vsphereipam\"") || out.contains("vsphereipam"),
            "{out}"
        );
        assert_clean_failure(tf.version, &out, secret);

        // Nothing listening.
        let wd = Workdir::new(
            &tf,
            &provider_block(&format!("127.0.0.1:{closed_port}"), true),
        )
        .env("TF_VAR_pw", secret);
        let out = wd.plan_err().all();
        assert!(
            out.contains("Cannot reach vCenter server"),
            "{}: {out}",
            tf.version
        );
        assert!(
            out.contains("vsphere_server       = "),
            "{}: {out}",
            tf.version
        );
        assert_clean_failure(tf.version, &out, secret);

        // Self-signed certificate and TLS verification on.
        let wd = Workdir::new(&tf, &provider_block(&sim.server(), false))
            .env("TF_VAR_pw", &sim.info.password);
        let out = wd.plan_err().all();
        assert!(out.contains("is not trusted"), "{}: {out}", tf.version);
        assert!(
            out.contains("allow_unverified_ssl = false"),
            "{}: {out}",
            tf.version
        );
        assert_clean_failure(tf.version, &out, &sim.info.password.repeat(3));

        // A missing setting names its environment variable.
        let wd = Workdir::new(&tf, &format!("{}\nprovider \"vsphereipam\" {{}}\ndata \"vsphereipam_wire\" \"a\" {{\n  name = \"x\"\n}}\n", header()));
        let out = wd.plan_err().all();
        assert!(
            out.contains("Missing provider setting `vsphere_server`"),
            "{}: {out}",
            tf.version
        );
        assert!(out.contains("VSPHERE_SERVER"), "{}: {out}", tf.version);
    }
}
