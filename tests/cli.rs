//! The admin commands: the binary run by a person (no Terraform handshake cookie) against the
//! simulator and a store, with the settings from the environment.

mod common;

use std::process::{Command, Output};

use common::sim::Sim;
use serde_json::Value;
use vsphereipam::ipam::ranges::RangeSet;
use vsphereipam::ipam::subnet::{validate, Field, SubnetInput};
use vsphereipam::store::ops::AllocRequest;
use vsphereipam::store::{OwnerKind, Store, SubnetRecord};

fn cli(sim: &Sim, store: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_terraform-provider-vsphereipam"))
        .args(args)
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .env("VSPHERE_SERVER", sim.server())
        .env("VSPHERE_USER", &sim.info.user)
        .env("VSPHERE_PASSWORD", &sim.info.password)
        .env("VSPHEREIPAM_STORE", store)
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn request(
    owner: OwnerKind,
    owner_id: &str,
    ip: &str,
    vm: Option<&str>,
    wire: &str,
) -> AllocRequest {
    AllocRequest {
        subnet_id: "app".into(),
        ip: Some(ip.parse().unwrap()),
        owner_kind: owner,
        owner_id: owner_id.into(),
        vm_uuid: vm.map(Into::into),
        mac: None,
        wire_id: Some(wire.into()),
        pending: false,
        description: None,
    }
}

#[test]
fn inventory_subnets_addresses_and_audit() {
    let sim = Sim::start("test");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ipam.db").display());
    let unverified = "--allow-unverified-ssl";

    // inventory: the same snapshot the provider uses, as JSON and as tables.
    let inv = json(&cli(&sim, &url, &["inventory", "--json", unverified]));
    let names: Vec<&str> = inv["vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"vm-multi"), "{names:?}");
    assert_eq!(inv["instance_uuid"], sim.info.instance_uuid.as_str());
    let text = cli(&sim, &url, &["inventory", unverified]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("WIRES") && text.contains("pg-std-web"),
        "{text}"
    );
    assert!(text.contains("10.20.0.23"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "no progress bar on a pipe: {text:?}"
    );

    // ipam subnets / addresses
    let wire = format!(
        "{}/{}",
        sim.info.instance_uuid,
        sim.manifest()
            .portgroups
            .iter()
            .find(|p| p.name == "pg-app")
            .unwrap()
            .moref
    );
    let store = Store::open(&url).unwrap();
    store
        .create_subnet(
            &SubnetRecord {
                id: "app".into(),
                vcenter: sim.info.instance_uuid.clone(),
                name: "app".into(),
                wire_id: wire.clone(),
                domain: None,
                spec: validate(&SubnetInput {
                    cidr: Field::Value("10.20.0.0/24".into()),
                    gateway: Field::Value("10.20.0.1".into()),
                    ..Default::default()
                })
                .unwrap()
                .unwrap(),
            },
            &[],
        )
        .unwrap();
    let none = RangeSet::new();
    store
        .allocate(
            &request(OwnerKind::Address, "vip", "10.20.0.50", None, &wire),
            &none,
        )
        .unwrap();
    // The same wire carries an IPv6 /64 (dual stack).
    store
        .create_subnet(
            &SubnetRecord {
                id: "app6".into(),
                vcenter: sim.info.instance_uuid.clone(),
                name: "app6".into(),
                wire_id: wire.clone(),
                domain: None,
                spec: validate(&SubnetInput {
                    cidr: Field::Value("2001:db8:0:20::/64".into()),
                    gateway: Field::Value("2001:db8:0:20::1".into()),
                    ..Default::default()
                })
                .unwrap()
                .unwrap(),
            },
            &[],
        )
        .unwrap();
    store
        .allocate(
            &AllocRequest {
                subnet_id: "app6".into(),
                ..request(OwnerKind::Address, "vip6", "2001:db8:0:20::50", None, &wire)
            },
            &none,
        )
        .unwrap();
    let subnets = json(&cli(&sim, &url, &["ipam", "subnets", "--json"]));
    let by_id = |id: &str| {
        subnets
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no subnet {id}: {subnets}"))
            .clone()
    };
    let app = by_id("app");
    assert_eq!(app["size"], 254);
    assert_eq!(app["held"], 1);
    assert_eq!(app["reserved"], 1, "the gateway");
    assert_eq!(app["free"], 252);
    let app6 = by_id("app6");
    assert_eq!(
        app6["size"],
        u64::MAX,
        "2^64 - 1: all but the anycast address"
    );
    assert_eq!(app6["held"], 1);
    assert_eq!(app6["reserved"], 1, "the gateway");
    assert_eq!(app6["free"], u64::MAX - 2);
    assert_eq!(app6["cidr"], "2001:db8:0:20::/64");
    let table = cli(&sim, &url, &["ipam", "subnets"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("1.84e19 (~2^64)") && table.contains("254"),
        "{table}"
    );
    let addresses = json(&cli(
        &sim,
        &url,
        &["ipam", "addresses", "--subnet", "app", "--json"],
    ));
    assert_eq!(addresses[0]["ip"], "10.20.0.50");
    assert_eq!(addresses[0]["owner_kind"], "vsphereipam_ip_address");
    let addresses = json(&cli(
        &sim,
        &url,
        &["ipam", "addresses", "--subnet", "app6", "--json"],
    ));
    assert_eq!(addresses[0]["ip"], "2001:db8:0:20::50");

    // audit: clean, then two problems and a non-zero exit.
    let clean = cli(&sim, &url, &["ipam", "audit", unverified]);
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );
    store
        .allocate(
            &request(
                OwnerKind::NicFix,
                "gone-vm",
                "10.20.0.60",
                Some("4200dead-0000-0000-0000-000000000000"),
                &wire,
            ),
            &none,
        )
        .unwrap();
    store
        .allocate(
            &request(OwnerKind::Address, "squatter", "10.20.0.21", None, &wire),
            &none,
        )
        .unwrap();
    store
        .allocate(
            &AllocRequest {
                subnet_id: "app6".into(),
                ..request(
                    OwnerKind::NicFix,
                    "gone-vm",
                    "2001:db8:0:20::60",
                    Some("4200dead-0000-0000-0000-000000000000"),
                    &wire,
                )
            },
            &none,
        )
        .unwrap();
    let out = cli(&sim, &url, &["ipam", "audit", "--json", unverified]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "problems make the exit code non-zero"
    );
    let problems = json(&out);
    let kinds: Vec<(&str, &str)> = problems
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["kind"].as_str().unwrap(), p["ip"].as_str().unwrap()))
        .collect();
    assert!(kinds.contains(&("vm_gone", "10.20.0.60")), "{kinds:?}");
    assert!(
        kinds.contains(&("vm_gone", "2001:db8:0:20::60")),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("held_by_another", "10.20.0.21")),
        "{kinds:?}"
    );
    let detail = problems.to_string();
    assert!(detail.contains("vm-app-1"), "{detail}");

    // A recorded IPv6 address that the VM's Tools contradict (they report ::21 on that NIC)
    // differs, as an IPv4 one does.
    let app1 = sim
        .manifest()
        .vms
        .iter()
        .find(|v| v.name == "vm-app-1")
        .unwrap()
        .clone();
    store
        .allocate(
            &AllocRequest {
                subnet_id: "app6".into(),
                mac: Some(app1.nics[0].mac.clone()),
                ..request(
                    OwnerKind::NicFix,
                    &app1.uuid,
                    "2001:db8:0:20::99",
                    Some(&app1.uuid),
                    &wire,
                )
            },
            &none,
        )
        .unwrap();
    // vm-app-2's Tools report IPv4 only: they say nothing of its recorded IPv6 address.
    let app2 = sim
        .manifest()
        .vms
        .iter()
        .find(|v| v.name == "vm-app-2")
        .unwrap()
        .clone();
    store
        .allocate(
            &AllocRequest {
                subnet_id: "app6".into(),
                mac: Some(app2.nics[0].mac.clone()),
                ..request(
                    OwnerKind::NicFix,
                    &app2.uuid,
                    "2001:db8:0:20::98",
                    Some(&app2.uuid),
                    &wire,
                )
            },
            &none,
        )
        .unwrap();
    let problems = json(&cli(&sim, &url, &["ipam", "audit", "--json", unverified]));
    let differs: Vec<&Value> = problems
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "guest_ip_differs")
        .collect();
    assert_eq!(differs.len(), 1, "{problems}");
    assert_eq!(differs[0]["ip"], "2001:db8:0:20::99", "{problems}");
    assert!(
        differs[0]["detail"]
            .as_str()
            .unwrap()
            .contains("2001:db8:0:20::21"),
        "{problems}"
    );

    // Bad settings: a clear error, exit code 2, no secret.
    let out = Command::new(env!("CARGO_BIN_EXE_terraform-provider-vsphereipam"))
        .args(["inventory"])
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .env_remove("VSPHERE_SERVER")
        .env("VSPHERE_PASSWORD", "hunter2-secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("VSPHERE_SERVER"), "{err}");
    assert!(!err.contains("hunter2-secret"), "{err}");
}

/// Progress of a long inventory load shows on a terminal (here a pseudo-terminal made by
/// `script`) and nothing of it on a pipe.
#[test]
fn inventory_progress_on_a_terminal_only() {
    let sim = Sim::start("test");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ipam.db").display());
    // The page of objects comes 800 ms late, long enough for the spinner to be drawn.
    sim.control(
        "delay",
        &[("method", "RetrievePropertiesEx"), ("ms", "800")],
    );

    let piped = cli(&sim, &url, &["inventory", "--allow-unverified-ssl"]);
    assert_eq!(piped.status.code(), Some(0));
    assert!(
        piped.stderr.is_empty(),
        "nothing but the table on a pipe: {:?}",
        String::from_utf8_lossy(&piped.stderr)
    );

    let command = format!(
        "{} inventory --allow-unverified-ssl",
        env!("CARGO_BIN_EXE_terraform-provider-vsphereipam")
    );
    let out = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .env("VSPHERE_SERVER", sim.server())
        .env("VSPHERE_USER", &sim.info.user)
        .env("VSPHERE_PASSWORD", &sim.info.password)
        .env("VSPHEREIPAM_STORE", &url)
        .output()
        .expect("run script(1) from util-linux");
    let terminal = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{terminal}");
    let server = sim.server();
    assert!(
        terminal.contains(&format!("loading the inventory of {server}")),
        "a spinner while the objects are read: {terminal:?}"
    );
    assert!(terminal.contains("WIRES"), "then the table: {terminal:?}");
}
