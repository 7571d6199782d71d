//! End to end, on every Terraform version of the harness: a dual-stack wire (an IPv4 and an
//! IPv6 subnet on one port group), `vsphereipam_ip_address` from the IPv6 subnet (next free and
//! requested), the IPv6 addresses VMware Tools report (not the link-local one) and a VMkernel
//! adapter's static IPv6 address listed by the wire, recorded as observed and never handed out,
//! the subnet data source counting a /64, an empty second plan; and each bad IPv6 input the
//! contract names a diagnostic on its attribute at plan time: IPv4-mapped addresses, zone ids,
//! prefixes outside /48 to /127, an IPv4 address asked from an IPv6 subnet, an address of the
//! other family, a VM NIC on an IPv6 subnet.

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
            (
                "dns4",
                r#"cidr = "10.30.0.0/24"
  dns_servers = ["2001:db8::53"]"#,
                "IPv6 DNS server on an IPv4 subnet",
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
        body.push_str(&format!(
            "resource \"vsphereipam_vm\" \"v6nic\" {{\n  datacenter = \"DC0\"\n  template   = \"tmpl-linux\"\n  name       = \"v6nic-{}\"\n  network_interface {{\n    subnet_id = vsphereipam_ipsubnet.app6.id\n  }}\n}}\n",
            v.replace('.', "")
        ));
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
        expect_error(
            &run,
            v,
            "IPv6 subnet on a VM NIC",
            "subnet_id = vsphereipam_ipsubnet.app6.id",
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
