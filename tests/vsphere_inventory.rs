//! Integration tests of the vCenter client and the bulk inventory loader against the govmomi
//! simulator (`tests/vcsim`): every inventory field against the scenario's manifest, the
//! connection error classification, re-login after session loss, and that loading costs a
//! fixed number of round trips whatever the number of VMs.

#[path = "common/sim.rs"]
mod sim;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, TcpListener};
use std::time::Instant;

use sim::{MPortgroup, MVm, Sim};
use vsphereipam::vsphere::client::{
    connect, ConnectError, ConnectOptions, Transport, VsphereClient,
};
use vsphereipam::vsphere::guest::{guest_ips, guest_ipv6s};
use vsphereipam::vsphere::inventory::{
    load_inventory, load_inventory_with_progress, LoadProgress, PAGE_SIZE,
};
use vsphereipam::vsphere::model::{Inventory, PortGroupKind, Vlan};

fn options(sim: &Sim) -> ConnectOptions {
    sim.connect_options()
}

async fn connected(sim: &Sim) -> VsphereClient {
    sim.client().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inventory_matches_manifest() {
    let sim = Sim::start("test");
    let client = connected(&sim).await;
    assert_eq!(client.instance_uuid(), sim.info.instance_uuid);

    let inventory = load_inventory(&client).await.expect("load inventory");

    assert_eq!(inventory.instance_uuid, sim.info.instance_uuid);
    check_datacenters(&sim, &inventory);
    check_hosts(&sim, &inventory);
    check_portgroups(&sim, &inventory);
    check_vms(&sim, &inventory);
}

fn check_datacenters(sim: &Sim, inventory: &Inventory) {
    let got: BTreeSet<(String, String)> = inventory
        .datacenters
        .iter()
        .map(|d| (d.moref.clone(), d.name.clone()))
        .collect();
    let want: BTreeSet<(String, String)> = sim
        .manifest()
        .datacenters
        .iter()
        .map(|d| (d.moref.clone(), d.name.clone()))
        .collect();
    assert_eq!(got, want);
}

fn check_hosts(sim: &Sim, inventory: &Inventory) {
    let manifest = sim.manifest();
    assert_eq!(inventory.hosts.len(), manifest.hosts.len(), "host count");
    let clusters: BTreeMap<&str, &str> = manifest
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.moref.as_str()))
        .collect();
    for want in &manifest.hosts {
        let host = inventory
            .hosts
            .iter()
            .find(|h| h.moref == want.moref)
            .unwrap_or_else(|| panic!("host {} missing", want.moref));
        assert_eq!(host.name, want.name);
        assert_eq!(
            host.datacenter, want.datacenter,
            "datacenter of {}",
            want.name
        );
        assert_eq!(host.connection_state, "connected");
        assert!(!host.in_maintenance);
        match clusters.get(want.cluster.as_str()) {
            Some(cluster) => assert_eq!(host.compute_resource.as_deref(), Some(*cluster)),
            None => assert!(
                host.compute_resource.is_some(),
                "standalone host {} has a ComputeResource",
                want.name
            ),
        }
        let vmknics: Vec<_> = manifest
            .vmknics
            .iter()
            .filter(|k| k.host == want.moref)
            .collect();
        assert_eq!(
            host.vmknics.len(),
            vmknics.len(),
            "vmknics of {}",
            want.name
        );
        for k in vmknics {
            let got = host
                .vmknics
                .iter()
                .find(|n| n.device == k.device)
                .unwrap_or_else(|| panic!("{} of {} missing", k.device, want.name));
            let want_pg = Some(k.portgroup.as_str()).filter(|p| !p.is_empty());
            assert_eq!(
                got.portgroup.as_deref(),
                want_pg,
                "{} of {}",
                k.device,
                want.name
            );
            let want_ip =
                k.ip.parse::<Ipv4Addr>()
                    .ok()
                    .filter(|ip| !ip.is_unspecified());
            assert_eq!(got.ip, want_ip, "{} ip of {}", k.device, want.name);
        }
    }
}

fn check_portgroups(sim: &Sim, inventory: &Inventory) {
    let manifest = sim.manifest();
    let got: BTreeSet<&str> = inventory
        .portgroups
        .iter()
        .map(|p| p.moref.as_str())
        .collect();
    let want: BTreeSet<&str> = manifest
        .portgroups
        .iter()
        .map(|p| p.moref.as_str())
        .collect();
    assert_eq!(got, want, "port group morefs");
    for want in &manifest.portgroups {
        let pg = inventory
            .portgroups
            .iter()
            .find(|p| p.moref == want.moref)
            .expect("port group present");
        let what = format!("{} ({})", want.name, want.moref);
        assert_eq!(pg.name, want.name);
        assert_eq!(pg.kind.as_str(), want.kind, "{what}");
        assert_eq!(pg.datacenter, want.datacenter, "datacenter of {what}");
        assert_eq!(pg.switch_name, want.switch, "switch of {what}");
        assert_eq!(pg.host_ids, want.hosts, "hosts of {what}");
        assert_eq!(pg.uplink, want.uplink, "uplink flag of {what}");
        assert_eq!(pg.vlan.as_number(), want.vlan, "vlan of {what}");
        assert_eq!(pg.vlan, expected_vlan(want), "vlan of {what}");
        match pg.kind {
            PortGroupKind::Standard => {
                assert_eq!(pg.switch_uuid, None);
                assert_eq!(pg.key, None);
            }
            PortGroupKind::Distributed => {
                assert_eq!(pg.switch_uuid.as_deref(), Some(want.switch_uuid.as_str()));
                assert_eq!(pg.key.as_deref(), Some(want.key.as_str()));
            }
        }
    }
}

fn expected_vlan(pg: &MPortgroup) -> Vlan {
    match pg.vlan_kind.as_str() {
        "vlan" => Vlan::Id { id: pg.vlan as u16 },
        "pvlan" => Vlan::Private { id: pg.vlan as u16 },
        "trunk" => Vlan::Trunk {
            ranges: pg
                .trunk
                .iter()
                .map(|r| (r.start as u16, r.end as u16))
                .collect(),
        },
        _ => Vlan::None,
    }
}

fn check_vms(sim: &Sim, inventory: &Inventory) {
    let manifest = sim.manifest();
    assert_eq!(inventory.vms.len(), manifest.vms.len(), "VM count");
    for want in &manifest.vms {
        let vm = inventory
            .vms
            .iter()
            .find(|v| v.moref == want.moref)
            .unwrap_or_else(|| panic!("VM {} missing", want.name));
        let what = &want.name;
        assert_eq!(vm.name, want.name);
        assert_eq!(vm.uuid, want.uuid, "uuid of {what}");
        assert_eq!(
            vm.instance_uuid.as_deref(),
            Some(want.instance_uuid.as_str()).filter(|u| !u.is_empty()),
            "instance uuid of {what}"
        );
        assert_eq!(vm.template, want.template, "template flag of {what}");
        assert_eq!(vm.power_state, want.power_state, "power state of {what}");
        assert_eq!(
            vm.host.as_deref(),
            Some(want.host.as_str()).filter(|h| !h.is_empty()),
            "host of {what}"
        );
        check_vm_nics(vm, want);
        let want_ips: Vec<Ipv4Addr> = sorted_ips(&want.ips);
        assert_eq!(vm.all_guest_ips(), want_ips, "guest IPs of {what}");
        if want.guest_id.starts_with("windows") {
            assert_eq!(vm.guest_family.as_deref(), Some("windowsGuest"), "{what}");
        } else if want.guest_id.contains("Linux") {
            assert_eq!(vm.guest_family.as_deref(), Some("linuxGuest"), "{what}");
        }
    }
}

fn check_vm_nics(vm: &vsphereipam::vsphere::model::Vm, want: &MVm) {
    let got: Vec<(i32, String, Option<String>)> = vm
        .nics
        .iter()
        .map(|n| (n.key, n.mac.clone(), n.portgroup.clone()))
        .collect();
    let mut expected: Vec<(i32, String, Option<String>)> = want
        .nics
        .iter()
        .map(|n| {
            let pg = Some(n.portgroup.clone()).filter(|p| !p.is_empty());
            (n.key, n.mac.to_ascii_lowercase(), pg)
        })
        .collect();
    expected.sort_by_key(|n| n.0);
    assert_eq!(got, expected, "NICs of {}", want.name);
    // Tools reports each IP against the NIC's MAC.
    for nic in want.nics.iter().filter(|n| !n.ip.is_empty()) {
        let ips = vm.guest_ips.get(&nic.mac.to_ascii_lowercase());
        let ip: Ipv4Addr = nic.ip.parse().expect("manifest IP");
        assert!(
            ips.is_some_and(|ips| ips.contains(&ip)),
            "{} reported for {} of {}: {:?}",
            nic.ip,
            nic.mac,
            want.name,
            vm.guest_ips
        );
    }
}

fn sorted_ips(ips: &[String]) -> Vec<Ipv4Addr> {
    let mut out: Vec<Ipv4Addr> = ips.iter().filter_map(|ip| ip.parse().ok()).collect();
    out.sort();
    out.dedup();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_errors_name_the_setting_to_fix() {
    let sim = Sim::start("test");

    let wrong_password = ConnectOptions {
        password: "not-the-password-xyzzy".to_string(),
        ..options(&sim)
    };
    let err = connect(&wrong_password).await.expect_err("wrong password");
    assert_eq!(
        err,
        ConnectError::InvalidLogin {
            user: sim.info.user.clone()
        }
    );
    let text = err.to_string();
    assert!(text.contains("`password`"), "{text}");
    assert!(!text.contains("xyzzy"), "password leaked: {text}");
    assert!(!format!("{wrong_password:?}").contains("xyzzy"));

    let verified = ConnectOptions {
        allow_unverified_ssl: false,
        ..options(&sim)
    };
    let err = connect(&verified)
        .await
        .expect_err("self-signed certificate");
    assert!(
        matches!(err, ConnectError::UntrustedCertificate { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("allow_unverified_ssl"), "{err}");

    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("free port");
        listener.local_addr().expect("addr").port()
    };
    let unreachable = ConnectOptions {
        server: format!("127.0.0.1:{port}"),
        ..options(&sim)
    };
    let err = connect(&unreachable)
        .await
        .expect_err("nothing listens there");
    assert!(matches!(err, ConnectError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("vsphere_server"), "{err}");

    let auto = ConnectOptions {
        server: format!("127.0.0.1:{port}"),
        transport: Transport::Auto,
        ..options(&sim)
    };
    let err = connect(&auto).await.expect_err("nothing listens there");
    assert!(matches!(err, ConnectError::Unreachable { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_transport_falls_back_to_soap() {
    let sim = Sim::start("test");
    let client = connect(&ConnectOptions {
        transport: Transport::Auto,
        // Users paste all sorts of forms; the info URL ends in /sdk.
        server: format!("https://{}/sdk/", sim.server()),
        ..options(&sim)
    })
    .await
    .expect("connect with auto transport");
    let inventory = load_inventory(&client).await.expect("load inventory");
    assert_eq!(inventory.vms.len(), sim.manifest().vms.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_in_again_once_when_the_session_is_lost() {
    let sim = Sim::start("test");
    let client = connected(&sim).await;
    client.end_session().await.expect("logout");
    sim.reset_stats().await;

    // Many tasks hit NotAuthenticated together; only one of them may log in.
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { load_inventory(&client).await })
        })
        .collect();
    for task in tasks {
        let inventory = task.await.expect("task").expect("inventory after re-login");
        assert_eq!(inventory.vms.len(), sim.manifest().vms.len());
    }
    let stats = sim.stats().await;
    assert_eq!(stats.by_method.get("Login"), Some(&1), "{stats:?}");
}

/// Round trips (client counter and simulator counter) to load the inventory.
async fn load_cost(sim: &Sim, client: &VsphereClient) -> (u64, u64, Inventory, u128) {
    sim.reset_stats().await;
    let before = client.calls();
    let started = Instant::now();
    let inventory = load_inventory(client).await.expect("load inventory");
    let elapsed = started.elapsed().as_millis();
    let client_calls = client.calls() - before;
    let sim_calls = sim.stats().await.total;
    (client_calls, sim_calls, inventory, elapsed)
}

/// A reload (the session's view exists: only page calls) reporting progress to `progress`.
async fn sim_reset_and_load(
    sim: &Sim,
    client: &VsphereClient,
    progress: &(dyn Fn(LoadProgress) + Send + Sync),
) {
    sim.reset_stats().await;
    load_inventory_with_progress(client, progress)
        .await
        .expect("load inventory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn loading_cost_does_not_grow_with_vms() {
    let small = Sim::start("test");
    let client = connected(&small).await;
    let (small_client, small_sim, _, _) = load_cost(&small, &client).await;
    assert_eq!(small_client, small_sim, "client and simulator agree");
    drop(client);
    drop(small);

    let vms = 2000;
    let scale = Sim::start_with("scale", &["-vms", &vms.to_string()]);
    let client = connected(&scale).await;
    let (calls, sim_calls, inventory, elapsed_ms) = load_cost(&scale, &client).await;
    assert!(inventory.vms.len() >= vms, "{} VMs", inventory.vms.len());
    assert_eq!(inventory.vms.len(), scale.manifest().vms.len());
    assert_eq!(calls, sim_calls, "client and simulator agree");

    let objects = inventory.vms.len() + inventory.hosts.len() + inventory.portgroups.len() + 64;
    let pages = objects.div_ceil(PAGE_SIZE as usize) as u64;
    // CreateContainerView + RetrievePropertiesEx, plus continuation pages.
    assert!(
        calls <= 2 + pages,
        "{calls} calls for {} VMs",
        inventory.vms.len()
    );
    // A reload reuses the session's view.
    let (again, again_sim, reloaded, _) = load_cost(&scale, &client).await;
    assert_eq!(again, again_sim, "client and simulator agree");
    assert_eq!(reloaded.vms.len(), inventory.vms.len());
    assert!(again < calls, "reload: {again} calls, first load: {calls}");
    assert!(
        calls <= small_client + pages,
        "small: {small_client}, scale: {calls}"
    );
    // Progress is reported after every page, counting up to every object read.
    let reports = std::sync::Mutex::new(Vec::<LoadProgress>::new());
    let record = |p: LoadProgress| reports.lock().unwrap().push(p);
    sim_reset_and_load(&scale, &client, &record).await;
    let reports = reports.into_inner().unwrap();
    let page_calls = scale.stats().await.total;
    assert_eq!(
        reports.len() as u64,
        page_calls,
        "one report per page: {reports:?}"
    );
    for (i, p) in reports.iter().enumerate() {
        assert_eq!(p.pages as usize, i + 1, "{reports:?}");
    }
    assert!(reports.windows(2).all(|w| w[0].objects < w[1].objects));
    let last = reports.last().expect("at least one page");
    assert!(
        last.objects >= inventory.vms.len() + inventory.hosts.len() + inventory.portgroups.len(),
        "{last:?}"
    );
    eprintln!(
        "inventory of {} VMs, {} hosts, {} port groups: {} ms, {} round trips (small scenario: {})",
        inventory.vms.len(),
        inventory.hosts.len(),
        inventory.portgroups.len(),
        elapsed_ms,
        calls,
        small_client
    );
}

/// One reader for the inventory and for waiting on a new VM: a NIC that Tools reports with no
/// usable IPv4 address (IPv6 and link-local only, or nothing) is not in the map, so "Tools
/// report an address on this NIC" is whether its MAC is there.
#[test]
fn guest_addresses_by_mac() {
    let ips = guest_ips([
        (
            "00:50:56:AA:00:01",
            vec!["10.0.0.5/24", "fe80::1", "10.0.0.4", "10.0.0.5"],
        ),
        ("00:50:56:aa:00:02", vec!["fe80::2", "169.254.7.7"]),
        ("00:50:56:aa:00:03", vec![]),
        ("", vec!["10.0.0.9"]),
        // A NIC reported twice (once per address source) is one entry.
        ("00:50:56:aa:00:01", vec!["10.0.0.6"]),
    ]);
    let ip = |last| Ipv4Addr::new(10, 0, 0, last);
    assert_eq!(
        ips.into_iter().collect::<Vec<_>>(),
        vec![("00:50:56:aa:00:01".to_string(), vec![ip(4), ip(5), ip(6)])]
    );
}

/// Global IPv6 addresses per MAC, apart: link-local (with or without a zone), multicast,
/// loopback and IPv4-mapped ones are left out, a prefix length is cut off.
#[test]
fn guest_ipv6_addresses_by_mac() {
    let ips = guest_ipv6s([
        (
            "00:50:56:AA:00:01",
            vec![
                "10.0.0.5",
                "2001:db8::5/64",
                "fe80::1",
                "fe80::1%eth0",
                "2001:db8::4",
                "2001:db8::5",
            ],
        ),
        (
            "00:50:56:aa:00:02",
            vec!["fe80::2", "ff02::1", "::1", "::ffff:10.0.0.1"],
        ),
        ("", vec!["2001:db8::9"]),
    ]);
    assert_eq!(
        ips.into_iter().collect::<Vec<_>>(),
        vec![(
            "00:50:56:aa:00:01".to_string(),
            vec![
                "2001:db8::4".parse::<std::net::Ipv6Addr>().unwrap(),
                "2001:db8::5".parse().unwrap()
            ]
        )]
    );
}
