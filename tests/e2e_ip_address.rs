//! End to end: `vsphereipam_ip_address` on Terraform 1.15 and 1.0.3: the next free address
//! skips what vCenter reports, a requested address is taken only when free (the error names
//! its holder), the description changes in place and is kept in the store.

mod common;

use common::env::Env;
use common::sim::Sim;
use common::terraform::{expect_error, versions};
use vsphereipam::store::OwnerKind;

const SUBNET: &str = r#"
data "vsphereipam_wire" "app" {
  name = "pg-app"
}
resource "vsphereipam_ipsubnet" "app" {
  name     = "app"
  wire_id  = data.vsphereipam_wire.app.id
  cidr     = "10.20.0.0/24"
  start_ip = "10.20.0.20"
  end_ip   = "10.20.0.24"
  alloc_policy = "stepup"
}
"#;

fn address(name: &str, extra: &str) -> String {
    format!(
        "resource \"vsphereipam_ip_address\" \"{name}\" {{\n  subnet_id = vsphereipam_ipsubnet.app.id\n{extra}}}\n\
         output \"{name}\" {{\n  value = vsphereipam_ip_address.{name}\n}}\n"
    )
}

#[test]
fn next_free_requested_and_described_addresses() {
    let sim = Sim::start("test");
    for tf in versions() {
        let v = tf.version;
        let env = Env::new(&sim, SUBNET);
        // 10.20.0.21-.23 are reported by VMware Tools of vm-app-1, vm-app-2 and vm-multi.
        let body = address("vip", "  description = \"vip\"\n");
        let wd = env.workdir(&tf, &body);
        wd.apply_ok();
        let outs = wd.outputs();
        assert_eq!(
            outs["vip"]["ip_address"], "10.20.0.20",
            "{v}: stepup skips nothing held"
        );
        wd.plan_no_changes();

        let second = format!("{body}{}", address("next", ""));
        wd.write("main.tf", &env.config(&second));
        wd.apply_ok();
        assert_eq!(
            wd.outputs()["next"]["ip_address"],
            "10.20.0.24",
            "{v}: the addresses Tools report are skipped"
        );

        // Requested, but reported by vm-app-1's Tools: refused, naming the VM.
        let taken = format!(
            "{second}{}",
            address("taken", "  ip_address = \"10.20.0.21\"\n")
        );
        wd.write("main.tf", &env.config(&taken));
        let run = wd.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        assert!(!run.success, "{v}");
        expect_error(
            &run,
            v,
            "Address already taken",
            "ip_address = \"10.20.0.21\"",
        );
        assert!(run.flat().contains("vm-app-1"), "{v}: {}", run.flat());
        // The subnet is full now.
        let full = format!("{second}{}", address("more", ""));
        wd.write("main.tf", &env.config(&full));
        let run = wd.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        assert!(!run.success, "{v}");
        expect_error(
            &run,
            v,
            "Subnet full",
            "subnet_id = vsphereipam_ipsubnet.app.id",
        );

        // The description changes in place and is stored.
        let described = second.replace("description = \"vip\"", "description = \"app VIP\"");
        wd.write("main.tf", &env.config(&described));
        let plan = wd.run(&["plan", "-no-color", "-input=false"]);
        assert!(
            plan.stdout.contains("updated in-place"),
            "{v}: {}",
            plan.all()
        );
        wd.apply_ok();
        let vip = env
            .store()
            .addresses_of_owner(
                OwnerKind::Address,
                wd.outputs()["vip"]["id"].as_str().unwrap(),
            )
            .unwrap();
        assert_eq!(vip[0].description.as_deref(), Some("app VIP"), "{v}");
        wd.plan_no_changes();
        wd.destroy_ok();
        assert!(env.store().subnets(None).unwrap().is_empty(), "{v}");
    }
}
