//! End to end: the write-only passwords of `vsphereipam_vm.windows` (`admin_password_wo`,
//! `domain_admin_password_wo`). On Terraform 1.15 and 1.11 they reach vCenter's customization
//! spec (the simulator records it) and appear nowhere in the state or the plan; Terraform
//! 1.0.3, which cannot send a value without storing it, gets a diagnostic on the attribute
//! that names the one to use instead.

mod common;

use common::env::Env;
use common::sim::Sim;
use common::terraform::{expect_error, versions};
use serde_json::{json, Value};

const ADMIN_PASSWORD: &str = "Wo-Adm1n-Pa55-c0ffee";
const DOMAIN_PASSWORD: &str = "Wo-J01n-Pa55-bead42";

/// The passwords come from ephemeral variables (Terraform 1.10+), which Terraform keeps out of
/// saved plans too: then no file Terraform writes may hold them. 1.0.3 gets plain sensitive
/// variables (it knows no `ephemeral`).
fn variables(ephemeral: bool) -> String {
    let e = if ephemeral {
        "\n  ephemeral = true"
    } else {
        ""
    };
    format!(
        "variable \"admin_password\" {{\n  type      = string\n  sensitive = true{e}\n}}\n\
         variable \"domain_password\" {{\n  type      = string\n  sensitive = true{e}\n}}\n"
    )
}

const SUBNET: &str = r#"
data "vsphereipam_wire" "app" {
  name = "pg-app"
}
resource "vsphereipam_ipsubnet" "app" {
  name        = "app"
  wire_id     = data.vsphereipam_wire.app.id
  cidr        = "10.20.0.0/24"
  start_ip    = "10.20.0.100"
  domain      = "app.example.com"
}
"#;

fn vm(label: &str, name: &str, windows: &str) -> String {
    format!(
        "resource \"vsphereipam_vm\" \"{label}\" {{\n  name       = \"{name}\"\n  \
         datacenter = \"DC0\"\n  template   = \"tmpl-windows\"\n  windows {{\n{windows}\n  }}\n  \
         network_interface {{\n    subnet_id = vsphereipam_ipsubnet.app.id\n  }}\n}}\n"
    )
}

const WORKGROUP: &str =
    "    admin_password_wo = var.admin_password\n    workgroup         = \"LAB\"";
const DOMAIN: &str = "    admin_password_wo        = var.admin_password\n    \
                      join_domain              = \"corp.example.com\"\n    \
                      domain_admin_user        = \"joiner@corp.example.com\"\n    \
                      domain_admin_password_wo = var.domain_password";

#[test]
fn write_only_passwords_reach_vcenter_and_never_the_state() {
    let sim = Sim::start("test");
    for tf in versions() {
        let v: &str = tf.version;
        let sfx = v.replace('.', "");
        let env = Env::new(&sim, "");
        let (wg, dom) = (format!("wowg-{sfx}"), format!("wodom-{sfx}"));
        let vars = variables(v != "1.0.3");
        let body = format!(
            "{vars}{SUBNET}\n{}{}",
            vm("wg", &wg, WORKGROUP),
            vm("dom", &dom, DOMAIN)
        );
        let wd = env
            .workdir(&tf, &body)
            .env("TF_VAR_admin_password", ADMIN_PASSWORD)
            .env("TF_VAR_domain_password", DOMAIN_PASSWORD);
        if v == "1.0.3" {
            // One resource: Terraform 1.0.3 reports the first failing resource only.
            wd.write(
                "main.tf",
                &env.config(&format!("{vars}{SUBNET}\n{}", vm("dom", &dom, DOMAIN))),
            );
            let run = wd.plan_err();
            expect_error(
                &run,
                v,
                "Write-only attribute needs Terraform 1.11 or later",
                "admin_password_wo",
            );
            let flat = run.flat();
            assert!(flat.contains("Set `admin_password` instead"), "{v}: {flat}");
            assert!(
                flat.contains("Set `domain_admin_password` instead"),
                "{v}: {flat}"
            );
            assert!(!flat.contains(ADMIN_PASSWORD) && !flat.contains(DOMAIN_PASSWORD));
            assert!(
                sim.customization(&dom).is_none(),
                "{v}: nothing was created"
            );
            continue;
        }
        wd.apply_ok();
        let w = &sim.customization(&wg).expect("the workgroup VM's spec")["windows"];
        assert_eq!(
            w["password"],
            json!({"value": ADMIN_PASSWORD, "plain_text": true}),
            "{v}"
        );
        assert_eq!(w["join_workgroup"], "LAB", "{v}");
        let d = &sim.customization(&dom).expect("the domain VM's spec")["windows"];
        assert_eq!(
            d["domain_admin_password"],
            json!({"value": DOMAIN_PASSWORD, "plain_text": true}),
            "{v}"
        );
        assert_eq!(
            d["password"],
            json!({"value": ADMIN_PASSWORD, "plain_text": true}),
            "{v}"
        );
        let state = std::fs::read_to_string(wd.path().join("terraform.tfstate")).unwrap();
        for secret in [ADMIN_PASSWORD, DOMAIN_PASSWORD] {
            assert!(
                !state.contains(secret),
                "{v}: a write-only password is in the state"
            );
        }
        let parsed: Value = serde_json::from_str(&state).unwrap();
        let windows = parsed["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == "vsphereipam_vm" && r["name"] == "dom")
            .map(|r| r["instances"][0]["attributes"]["windows"][0].clone())
            .unwrap();
        assert_eq!(windows["domain_admin_password_wo"], Value::Null, "{v}");
        assert_eq!(windows["join_domain"], "corp.example.com", "{v}");
        // Terraform proposes the write-only values at every plan; nothing changes.
        wd.plan_no_changes();
        let plan = wd.run(&["plan", "-no-color", "-input=false", "-out=tfplan"]);
        assert!(plan.success, "{v}: {}", plan.all());
        let show = wd.run(&["show", "-json", "-no-color", "tfplan"]);
        for secret in [ADMIN_PASSWORD, DOMAIN_PASSWORD] {
            assert!(
                !show.stdout.contains(secret),
                "{v}: a write-only password is in the plan"
            );
        }
        wd.destroy_ok();
    }
}
