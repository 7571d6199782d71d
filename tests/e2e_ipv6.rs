//! End to end, on every Terraform version of the harness: a dual-stack wire (an IPv4 and an
//! IPv6 subnet on one port group), `vsphereipam_ip_address` from the IPv6 subnet (next free and
//! requested), the IPv6 addresses VMware Tools report (not the link-local one) and a VMkernel
//! adapter's static IPv6 address listed by the wire, recorded as observed and never handed out,
//! the subnet data source counting a /64, an empty second plan; and each bad IPv6 input the
//! contract names a diagnostic on its attribute at plan time: IPv4-mapped addresses, zone ids,
//! prefixes outside /48 to /127, an IPv4 address asked from an IPv6 subnet, an address of the
//! other family. And `vsphereipam_vm` with a dual-stack NIC and an IPv6-only one: what the
//! customization carried, the records, an empty second plan, import, a failed create releasing
//! both addresses, the release at destroy, and the bad inputs of a NIC's IPv6 side; guests
//! adding a SLAAC address, dropping an address (the drift warning) or never configuring the
//! IPv6 one (the create times out).

mod common;

use common::env::Env;
use common::sim::Sim;
use common::terraform::{expect_error, versions};
use vsphereipam::store::OwnerKind;

const DUAL_STACK: &str = r#"
data "vsphereipam_wire" "app" {
  name = "pg-app"
}
resource "vsphereipam_ipsubnet" "app4" {
  name    = "app4"
  wire_id = data.vsphereipam_wire.app.id
  cidr    = "10.20.0.0/24"
  gateway = "10.20.0.1"
}
resource "vsphereipam_ipsubnet" "app6" {
  name            = "app6"
  wire_id         = data.vsphereipam_wire.app.id
  cidr            = "2001:db8:0:20::/64"
  gateway         = "2001:db8:0:20::1"
  dns_servers     = ["2001:db8::53", "10.0.0.2"]
  reserved_ranges = ["2001:db8:0:20::100-2001:db8:0:20::1ff"]
  alloc_policy    = "stepup"
}
resource "vsphereipam_ip_address" "vip6" {
  subnet_id   = vsphereipam_ipsubnet.app6.id
  description = "IPv6 VIP"
}
resource "vsphereipam_ip_address" "dns6" {
  subnet_id  = vsphereipam_ipsubnet.app6.id
  ip_address = "2001:db8:0:20::53"
}
data "vsphereipam_ipsubnet" "app6" {
  cidr       = "2001:db8:0:20::/64"
  depends_on = [vsphereipam_ip_address.vip6, vsphereipam_ip_address.dns6]
}
output "app6" {
  value = vsphereipam_ipsubnet.app6
}
output "vip6" {
  value = vsphereipam_ip_address.vip6.ip_address
}
output "dns6" {
  value = vsphereipam_ip_address.dns6.ip_address
}
output "app_vm_ips" {
  value = data.vsphereipam_wire.app.vm_ips
}
output "app_vmkernel_ips" {
  value = data.vsphereipam_wire.app.vmkernel_ips
}
output "counts" {
  value = {
    size = data.vsphereipam_ipsubnet.app6.size
    held = data.vsphereipam_ipsubnet.app6.held
    free     = data.vsphereipam_ipsubnet.app6.free
    observed = data.vsphereipam_ipsubnet.app6.observed
  }
}
"#;

fn subnet(name: &str, attrs: &str) -> String {
    format!(
        "resource \"vsphereipam_ipsubnet\" \"{name}\" {{\n  name    = \"{name}\"\n  wire_id = data.vsphereipam_wire.app.id\n  {attrs}\n}}\n"
    )
}

fn address(name: &str, ip: &str) -> String {
    format!(
        "resource \"vsphereipam_ip_address\" \"{name}\" {{\n  subnet_id  = vsphereipam_ipsubnet.app6.id\n  ip_address = \"{ip}\"\n}}\n"
    )
}

#[test]
fn dual_stack_subnets_and_ipv6_addresses() {
    let sim = Sim::start("test");
    for tf in versions() {
        let v = tf.version;
        let env = Env::new(&sim, "");
        let wd = env.workdir(&tf, DUAL_STACK);
        wd.apply_ok();
        let outs = wd.outputs();
        let app6 = &outs["app6"];
        assert_eq!(app6["start_ip"], "2001:db8:0:20::1", "{v}: {app6}");
        assert_eq!(app6["end_ip"], "2001:db8:0:20:ffff:ffff:ffff:ffff", "{v}");
        assert_eq!(app6["netmask"], "ffff:ffff:ffff:ffff::", "{v}");
        assert_eq!(app6["prefix_length"], 64, "{v}");
        // stepup: ::1 is the gateway, so the first free address is ::2.
        assert_eq!(outs["vip6"], "2001:db8:0:20::2", "{v}");
        assert_eq!(outs["dns6"], "2001:db8:0:20::53", "{v}");
        let counts = &outs["counts"];
        assert_eq!(
            counts["size"], "18446744073709551615",
            "{v}: 2^64 - 1, as a string"
        );
        assert_eq!(counts["held"], 2, "{v}");
        assert_eq!(
            counts["observed"], 2,
            "{v}: vm-app-1 reports 2001:db8:0:20::21, host DC0_C0_H1's vmk1 has ::5"
        );
        assert_eq!(
            counts["free"],
            (u64::MAX - 2 - 2 - 1 - 256).to_string(),
            "{v}: minus the two held, the two observed, the gateway and 256 reserved"
        );
        // The wire lists the IPv6 address Tools report, not the link-local one.
        let vm_ips = outs["app_vm_ips"].to_string();
        assert!(
            vm_ips.contains("\"10.20.0.21\"") && vm_ips.contains("\"2001:db8:0:20::21\""),
            "{v}: {vm_ips}"
        );
        assert!(!vm_ips.contains("fe80"), "{v}: {vm_ips}");
        assert_eq!(
            outs["app_vmkernel_ips"],
            serde_json::json!(["10.20.0.5", "2001:db8:0:20::5"]),
            "{v}"
        );
        wd.plan_no_changes();
        let store = env.store();
        let held: Vec<String> = store
            .subnets(None)
            .unwrap()
            .iter()
            .filter(|s| !s.spec.is_v4())
            .flat_map(|s| store.addresses(&s.id).unwrap())
            .filter(|a| a.owner_kind == OwnerKind::Address)
            .map(|a| a.ip.to_string())
            .collect();
        assert_eq!(held, ["2001:db8:0:20::2", "2001:db8:0:20::53"], "{v}");
        let observed: Vec<String> = store
            .subnets(None)
            .unwrap()
            .iter()
            .filter(|s| !s.spec.is_v4())
            .flat_map(|s| store.addresses(&s.id).unwrap())
            .filter(|a| a.owner_kind == OwnerKind::Observed)
            .map(|a| format!("{} {}", a.ip, a.owner_id))
            .collect();
        assert_eq!(observed.len(), 2, "{v}: {observed:?}");
        assert!(
            observed[0].starts_with("2001:db8:0:20::5 host ")
                && observed[0].ends_with(" vmk1")
                && observed[1].starts_with("2001:db8:0:20::21 VM \"vm-app-1\""),
            "{v}: {observed:?}"
        );

        // Bad inputs, all in one plan against the applied subnets.
        let bad_subnets = [
            (
                "mapped",
                r#"cidr = "::ffff:10.9.0.0/120""#,
                "IPv4-mapped cidr",
            ),
            (
                "short",
                r#"cidr = "2001:db8:1::/47""#,
                "Unsupported prefix length",
            ),
            (
                "long",
                r#"cidr = "2001:db8:1::/128""#,
                "Unsupported prefix length",
            ),
            (
                "linklocal",
                r#"cidr = "fe80::/64""#,
                "cidr cannot hand out addresses",
            ),
            (
                "upper",
                r#"cidr = "2001:DB8:2::/64""#,
                "cidr is not in canonical form",
            ),
            (
                "zone",
                r#"cidr = "2001:db8:3::/64"
  gateway = "2001:db8:3::1%eth0""#,
                "Invalid gateway",
            ),
            (
                "family",
                r#"cidr = "2001:db8:4::/64"
  gateway = "10.20.0.1""#,
                "gateway of the wrong family",
            ),
        ];
        let bad_addresses = [
            ("mapped_ip", "::ffff:10.20.0.60", "Invalid IP address"),
            ("zone_ip", "2001:db8:0:20::77%eth0", "Invalid IP address"),
            ("upper_ip", "2001:DB8:0:20::77", "Invalid IP address"),
        ];
        let mut body = DUAL_STACK.to_string();
        for (name, attrs, _) in bad_subnets {
            body.push_str(&subnet(name, attrs));
        }
        for (name, ip, _) in bad_addresses {
            body.push_str(&address(name, ip));
        }
        wd.write("main.tf", &env.config(&body));
        let run = wd.plan_err();
        for (_, attrs, summary) in bad_subnets {
            let line = attrs.lines().last().unwrap().trim();
            expect_error(&run, v, summary, line);
        }
        for (_, ip, summary) in bad_addresses {
            expect_error(&run, v, summary, &format!("ip_address = \"{ip}\""));
        }

        // What needs the store or the inventory is refused by the plan, on the attribute.
        let mut body = DUAL_STACK.to_string();
        body.push_str(&address("v4_from_v6", "10.20.0.60"));
        body.push_str(&address("reported", "2001:db8:0:20::21"));
        wd.write("main.tf", &env.config(&body));
        let run = wd.plan_err();
        expect_error(
            &run,
            v,
            "Refused by the IPAM",
            "ip_address = \"10.20.0.60\"",
        );
        expect_error(
            &run,
            v,
            "Address already taken",
            "ip_address = \"2001:db8:0:20::21\"",
        );
        assert!(run.flat().contains("vm-app-1"), "{v}: {}", run.flat());
        assert!(
            run.flat()
                .contains("is an IPv4 address and the subnet 2001:db8:0:20::/64 is IPv6"),
            "{v}: {}",
            run.flat()
        );
        assert!(
            env.store().subnets(None).unwrap().len() == 2,
            "{v}: nothing written"
        );

        wd.write("main.tf", &env.config(DUAL_STACK));
        wd.destroy_ok();
        assert!(env.store().subnets(None).unwrap().is_empty(), "{v}");
    }
}

const VM_SUBNETS: &str = r#"
data "vsphereipam_wire" "app" {
  name = "pg-app"
}
resource "vsphereipam_ipsubnet" "app4" {
  name        = "app4"
  wire_id     = data.vsphereipam_wire.app.id
  cidr        = "10.20.0.0/24"
  start_ip    = "10.20.0.100"
  gateway     = "10.20.0.1"
  dns_servers = ["10.20.0.2", "2001:db8:0:20::2"]
  domain      = "app.example.com"
}
resource "vsphereipam_ipsubnet" "app6" {
  name         = "app6"
  wire_id      = data.vsphereipam_wire.app.id
  cidr         = "2001:db8:0:20::/64"
  gateway      = "2001:db8:0:20::1"
  dns_servers  = ["2001:db8:0:20::2"]
  alloc_policy = "stepup"
}
"#;

fn vm(label: &str, name: &str, nic: &str) -> String {
    format!(
        "resource \"vsphereipam_vm\" \"{label}\" {{\n  datacenter = \"DC0\"\n  template   = \"tmpl-linux\"\n  name       = \"{name}\"\n  network_interface {{\n{nic}\n  }}\n}}\noutput \"{label}\" {{\n  value = vsphereipam_vm.{label}\n}}\n"
    )
}

/// A VM with a dual-stack NIC (IPv4 subnet + `ipv6_subnet_id`, both next free) and an
/// IPv6-only VM (an IPv6 `subnet_id`, a requested address), on every Terraform version.
#[test]
fn dual_stack_and_ipv6_only_vms() {
    let sim = Sim::start("test");
    for tf in versions() {
        let v = tf.version;
        let tag = v.replace('.', "");
        let env = Env::new(&sim, "");
        let (dual, only6) = (format!("dual-{tag}"), format!("only6-{tag}"));
        let body = format!(
            "{VM_SUBNETS}{}{}",
            vm(
                "dual",
                &dual,
                "    subnet_id      = vsphereipam_ipsubnet.app4.id\n    ipv6_subnet_id = vsphereipam_ipsubnet.app6.id"
            ),
            vm(
                "only6",
                &only6,
                "    subnet_id  = vsphereipam_ipsubnet.app6.id\n    ip_address = \"2001:db8:0:20::66\""
            )
        );
        let wd = env.workdir(&tf, &body);
        wd.apply_ok();
        let outs = wd.outputs();
        let nic = &outs["dual"]["network_interface"][0];
        assert_eq!(nic["ip_address"], "10.20.0.254", "{v}: {nic}");
        // stepup: ::1 is the gateway, ::2 (a DNS server) is not reserved: the first free.
        let v6 = nic["ipv6_address"]
            .as_str()
            .expect("ipv6_address")
            .to_string();
        assert_eq!(v6, "2001:db8:0:20::2", "{v}: {nic}");
        let app6_id = env
            .store()
            .subnets(None)
            .unwrap()
            .into_iter()
            .find(|s| s.name == "app6")
            .expect("app6")
            .id;
        assert_eq!(nic["ipv6_subnet_id"], app6_id.as_str(), "{v}: {nic}");
        let only = &outs["only6"]["network_interface"][0];
        assert_eq!(only["ip_address"], "2001:db8:0:20::66", "{v}: {only}");
        assert_eq!(only["ipv6_address"], serde_json::Value::Null, "{v}: {only}");
        assert_eq!(
            only["ipv6_subnet_id"],
            serde_json::Value::Null,
            "{v}: {only}"
        );

        // What vCenter was asked to do.
        let seen = sim.customization(&dual).expect("dual customized");
        let a = &seen["adapters"][0];
        assert_eq!(a["ip"], "10.20.0.254", "{v}: {seen}");
        assert_eq!(a["subnet_mask"], "255.255.255.0", "{v}: {seen}");
        assert_eq!(
            a["gateways"],
            serde_json::json!(["10.20.0.1"]),
            "{v}: {seen}"
        );
        assert_eq!(
            a["ipv6"],
            serde_json::json!([format!("{v6}/64")]),
            "{v}: {seen}"
        );
        assert_eq!(
            a["ipv6_gateways"],
            serde_json::json!(["2001:db8:0:20::1"]),
            "{v}: {seen}"
        );
        assert_eq!(
            a["dns_servers"],
            serde_json::json!(["10.20.0.2", "2001:db8:0:20::2"]),
            "{v}: {seen}"
        );
        let seen = sim.customization(&only6).expect("only6 customized");
        let a = &seen["adapters"][0];
        assert_eq!(a["dhcp"], true, "{v}: {seen}");
        assert_eq!(a["ip"], "", "{v}: {seen}");
        assert_eq!(
            a["ipv6"],
            serde_json::json!(["2001:db8:0:20::66/64"]),
            "{v}: {seen}"
        );
        assert_eq!(
            a["dns_servers"],
            serde_json::json!(["2001:db8:0:20::2"]),
            "{v}: {seen}"
        );

        // The store: both addresses of the dual-stack NIC and the IPv6-only one, each the
        // VM's own record with its MAC, none pending.
        let store = env.store();
        let vm_records = || -> Vec<(String, String, String)> {
            let mut out: Vec<(String, String, String)> = store
                .subnets(None)
                .unwrap()
                .iter()
                .flat_map(|s| store.addresses(&s.id).unwrap())
                .filter(|a| a.owner_kind == OwnerKind::Vm)
                .map(|a| {
                    assert!(!a.pending, "{v}: {a:?}");
                    (
                        a.owner_id.clone(),
                        a.ip.to_string(),
                        a.mac.clone().unwrap_or_default(),
                    )
                })
                .collect();
            out.sort();
            out
        };
        let records = vm_records();
        let dual_id = outs["dual"]["id"].as_str().unwrap();
        let only_id = outs["only6"]["id"].as_str().unwrap();
        let dual_mac = nic["mac"].as_str().unwrap();
        let mut want = vec![
            (
                dual_id.to_string(),
                "10.20.0.254".to_string(),
                dual_mac.to_string(),
            ),
            (dual_id.to_string(), v6.clone(), dual_mac.to_string()),
            (
                only_id.to_string(),
                "2001:db8:0:20::66".to_string(),
                only["mac"].as_str().unwrap().to_string(),
            ),
        ];
        want.sort();
        assert_eq!(records, want, "{v}");
        wd.plan_no_changes();

        // Import: both VMs forgotten by the state and their records released (VMs nobody
        // recorded). The import finds the Tools-reported addresses (the dual-stack NIC's IPv6
        // one in the IPv6 subnet of its port group) and writes nothing; the apply records them.
        // The dual-stack VM's configuration leaves ipv6_subnet_id unset, as one written before
        // the guest had IPv6: the import records the IPv6 address anyway, without a
        // replacement.
        let v4_config = body.replacen("\n    ipv6_subnet_id = vsphereipam_ipsubnet.app6.id", "", 1);
        assert_ne!(v4_config, body);
        wd.write("main.tf", &env.config(&v4_config));
        for (label, id) in [("dual", dual_id), ("only6", only_id)] {
            let rm = wd.run(&["state", "rm", &format!("vsphereipam_vm.{label}")]);
            assert!(rm.success, "{v}: {}", rm.all());
            store.release_owner(OwnerKind::Vm, id).unwrap();
            let run = wd.run(&[
                "import",
                "-no-color",
                "-input=false",
                &format!("vsphereipam_vm.{label}"),
                id,
            ]);
            assert!(run.success, "{v}: {}", run.all());
        }
        assert!(vm_records().is_empty(), "{v}: the import wrote");
        let applied = wd.apply_ok();
        assert!(
            applied.stdout.contains("0 added, 2 changed, 0 destroyed"),
            "{v}: {}",
            applied.stdout
        );
        assert_eq!(vm_records(), want, "{v}: recorded by the apply");
        let outs = wd.outputs();
        let nic = &outs["dual"]["network_interface"][0];
        assert_eq!(nic["ipv6_address"], v6.as_str(), "{v}: {nic}");
        assert_eq!(nic["ipv6_subnet_id"], app6_id.as_str(), "{v}: {nic}");
        let only = &outs["only6"]["network_interface"][0];
        assert_eq!(only["ip_address"], "2001:db8:0:20::66", "{v}: {only}");
        wd.plan_no_changes();
        wd.write("main.tf", &env.config(&body));
        wd.plan_no_changes();

        // A create that fails after the clone (vCenter refuses the power-on): the partial VM
        // is removed and both addresses of its dual-stack NIC are released, none left pending.
        let mut failing = body.clone();
        failing.push_str(&vm(
            "failing",
            &format!("failing-{tag}"),
            "    subnet_id      = vsphereipam_ipsubnet.app4.id\n    ipv6_subnet_id = vsphereipam_ipsubnet.app6.id",
        ));
        wd.write("main.tf", &env.config(&failing));
        sim.control("fail", &[("method", "PowerOnVM_Task"), ("count", "1")]);
        let run = wd.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        assert!(!run.success, "{v}: {}", run.all());
        let flat = run.flat();
        assert!(
            flat.contains("Creating the VM failed")
                && flat.contains("was removed")
                && flat.contains("Its addresses were released"),
            "{v}: {}",
            run.all()
        );
        assert_eq!(vm_records(), want, "{v}: the failed create left records");
        wd.write("main.tf", &env.config(&body));
        wd.plan_no_changes();

        // Bad inputs known from the configuration alone.
        let bad_config = [
            (
                "no_subnet",
                "    subnet_id    = vsphereipam_ipsubnet.app4.id\n    ipv6_address = \"2001:db8:0:20::70\"",
                "ipv6_address without ipv6_subnet_id",
                "ipv6_address = \"2001:db8:0:20::70\"",
            ),
            (
                "v4_in_v6",
                "    subnet_id      = vsphereipam_ipsubnet.app4.id\n    ipv6_subnet_id = vsphereipam_ipsubnet.app6.id\n    ipv6_address   = \"10.20.0.150\"",
                "IPv4 address in ipv6_address",
                "ipv6_address   = \"10.20.0.150\"",
            ),
            (
                "mapped",
                "    subnet_id      = vsphereipam_ipsubnet.app4.id\n    ipv6_subnet_id = vsphereipam_ipsubnet.app6.id\n    ipv6_address   = \"::ffff:10.20.0.151\"",
                "Invalid IPv6 address",
                "ipv6_address   = \"::ffff:10.20.0.151\"",
            ),
            (
                "zone",
                "    subnet_id      = vsphereipam_ipsubnet.app4.id\n    ipv6_subnet_id = vsphereipam_ipsubnet.app6.id\n    ipv6_address   = \"2001:db8:0:20::72%eth0\"",
                "Invalid IPv6 address",
                "ipv6_address   = \"2001:db8:0:20::72%eth0\"",
            ),
        ];
        let mut bad = body.clone();
        for (label, nic, _, _) in bad_config {
            bad.push_str(&vm(label, &format!("{label}-{tag}"), nic));
        }
        wd.write("main.tf", &env.config(&bad));
        let run = wd.plan_err();
        for (_, _, summary, line) in bad_config {
            expect_error(&run, v, summary, line);
        }
        // Bad inputs the store decides, at plan time.
        let bad_store = [
            (
                "v4_as_v6",
                "    subnet_id      = vsphereipam_ipsubnet.app4.id\n    ipv6_subnet_id = vsphereipam_ipsubnet.app4.id",
                "IPv4 subnet in ipv6_subnet_id",
                "ipv6_subnet_id = vsphereipam_ipsubnet.app4.id",
            ),
            (
                "two_v6",
                "    subnet_id       = vsphereipam_ipsubnet.app6.id\n    ipv6_subnet_id  = vsphereipam_ipsubnet.app6.id",
                "Two subnets of one family on one NIC",
                "ipv6_subnet_id  = vsphereipam_ipsubnet.app6.id",
            ),
            (
                "outside",
                "    subnet_id      = vsphereipam_ipsubnet.app4.id\n    ipv6_subnet_id = vsphereipam_ipsubnet.app6.id\n    ipv6_address   = \"2001:db8:0:21::5\"",
                "Refused by the IPAM",
                "ipv6_address   = \"2001:db8:0:21::5\"",
            ),
            (
                "taken",
                "    subnet_id      = vsphereipam_ipsubnet.app4.id\n    ipv6_subnet_id = vsphereipam_ipsubnet.app6.id\n    ipv6_address   = \"2001:db8:0:20::66\"",
                "Address already taken",
                "ipv6_address   = \"2001:db8:0:20::66\"",
            ),
        ];
        let mut bad = body.clone();
        for (label, nic, _, _) in bad_store {
            bad.push_str(&vm(label, &format!("{label}-{tag}"), nic));
        }
        wd.write("main.tf", &env.config(&bad));
        let before = vm_records();
        let run = wd.plan_err();
        for (_, _, summary, line) in bad_store {
            expect_error(&run, v, summary, line);
        }
        assert_eq!(vm_records(), before, "{v}: a plan wrote");

        // Destroy releases every address of both VMs.
        wd.write("main.tf", &env.config(&body));
        wd.destroy_ok();
        assert!(vm_records().is_empty(), "{v}: {:?}", vm_records());
    }
}

/// What the guest does with its IPv6 address, end to end on every Terraform version: a guest
/// that adds a SLAAC address beside the assigned one is created and plans clean; a guest that
/// drops an address (Tools report the IPv4 one only, another IPv6 one, or the IPv6 one only)
/// makes the plan warn, naming the NIC and the address; a guest that never configures the
/// assigned IPv6 address makes the create time out with a diagnostic naming it, the VM removed
/// and both addresses released.
#[test]
fn the_guests_ipv6_address_slaac_drift_and_timeout() {
    let sim = Sim::start("test");
    for tf in versions() {
        let v = tf.version;
        let tag = v.replace('.', "");
        let env = Env::new(&sim, "");
        let name = format!("slaac-{tag}");
        sim.control("guest_ipv6", &[("mode", "slaac")]);
        // A short wait: the guests here answer at once or never.
        let body = format!(
            "{VM_SUBNETS}{}",
            vm(
                "dual",
                &name,
                "    subnet_id      = vsphereipam_ipsubnet.app4.id\n    ipv6_subnet_id = vsphereipam_ipsubnet.app6.id"
            )
        )
        .replacen(
            "  name       = \"",
            "  guest_ip_timeout = \"10s\"\n  name       = \"",
            1,
        );
        assert!(body.contains("guest_ip_timeout"));
        let wd = env.workdir(&tf, &body);
        let applied = wd.apply_ok();
        assert!(
            !applied.flat().contains("differ from the IPAM"),
            "{v}: {}",
            applied.all()
        );
        let outs = wd.outputs();
        let nic = &outs["dual"]["network_interface"][0];
        let v4 = nic["ip_address"].as_str().expect("ip_address").to_string();
        let v6 = nic["ipv6_address"]
            .as_str()
            .expect("ipv6_address")
            .to_string();
        let mac = nic["mac"].as_str().expect("mac").to_string();
        let plan = wd.run(&["plan", "-detailed-exitcode", "-no-color", "-input=false"]);
        assert!(plan.success, "{v}: {}", plan.all());
        assert!(
            !plan.flat().contains("differ from the IPAM"),
            "{v}: {}",
            plan.all()
        );

        // The guest drops its IPv6 address: Tools report the IPv4 one only, then another
        // IPv6 one.
        for (ips, assigned, says) in [
            (v4.clone(), &v6, "report no global IPv6 address".to_string()),
            (
                format!("{v4},2001:db8:0:20::999"),
                &v6,
                "report 2001:db8:0:20::999".to_string(),
            ),
            // Or its IPv4 address, keeping the IPv6 one.
            (v6.clone(), &v4, "report no IPv4 address".to_string()),
        ] {
            sim.control("guest_ips", &[("vm", &name), ("mac", &mac), ("ips", &ips)]);
            let plan = wd.run(&["plan", "-no-color", "-input=false"]);
            assert!(plan.success, "{v}: {}", plan.all());
            let flat = plan.flat();
            assert!(
                flat.contains("differ from the IPAM")
                    && flat.contains(&format!("NIC {mac} has {assigned} assigned"))
                    && flat.contains(&says),
                "{v}: {ips}: {}",
                plan.all()
            );
        }
        wd.destroy_ok();

        // The guest never configures its IPv6 address: the create times out naming it, the
        // VM is removed and both addresses released.
        sim.control("guest_ipv6", &[("mode", "ignore")]);
        wd.write("main.tf", &env.config(&body));
        let run = wd.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        assert!(!run.success, "{v}: {}", run.all());
        let flat = run.flat();
        assert!(
            flat.contains("VMware Tools did not report the assigned addresses")
                && flat.contains(&format!(" {v6})"))
                && flat.contains("The VM was removed"),
            "{v}: {}",
            run.all()
        );
        let store = env.store();
        let held: Vec<_> = store
            .subnets(None)
            .unwrap()
            .iter()
            .flat_map(|s| store.addresses(&s.id).unwrap())
            .filter(|a| a.owner_kind == OwnerKind::Vm)
            .collect();
        assert!(held.is_empty(), "{v}: {held:?}");
        sim.control("guest_ipv6", &[("mode", "apply")]);
        wd.write("main.tf", &env.config(VM_SUBNETS));
        wd.destroy_ok();
    }
}

/// A `vsphereipam_vm` state written before NICs had `ipv6_subnet_id`/`ipv6_address` (here: the
/// attributes taken out of the state file) is read by the current schema and plans empty with
/// its unchanged configuration.
#[test]
fn a_vm_state_without_the_ipv6_attributes_plans_empty() {
    let sim = Sim::start("test");
    for tf in versions() {
        let v = tf.version;
        let env = Env::new(&sim, "");
        let body = format!(
            "{VM_SUBNETS}{}",
            vm(
                "v4",
                &format!("v4-{}", v.replace('.', "")),
                "    subnet_id = vsphereipam_ipsubnet.app4.id"
            )
        );
        let wd = env.workdir(&tf, &body);
        wd.apply_ok();
        let path = wd.path().join("terraform.tfstate");
        let mut state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut stripped = 0;
        for resource in state["resources"].as_array_mut().unwrap() {
            if resource["type"] != "vsphereipam_vm" {
                continue;
            }
            for instance in resource["instances"].as_array_mut().unwrap() {
                for nic in instance["attributes"]["network_interface"]
                    .as_array_mut()
                    .unwrap()
                {
                    let nic = nic.as_object_mut().unwrap();
                    assert!(nic.remove("ipv6_subnet_id").is_some(), "{v}: {nic:?}");
                    assert!(nic.remove("ipv6_address").is_some(), "{v}: {nic:?}");
                    stripped += 1;
                }
            }
        }
        assert_eq!(stripped, 1, "{v}");
        std::fs::write(&path, serde_json::to_string_pretty(&state).unwrap()).unwrap();
        wd.plan_no_changes();
        wd.destroy_ok();
    }
}
