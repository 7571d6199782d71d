//! End to end: guest customization of `vsphereipam_vm` (`linux {}` / `windows {}`) through
//! Terraform 1.15 and 1.0.3 against the simulator's `test` scenario. The simulator records the
//! `CustomizeVM_Task` spec that reached it (tests/vcsim/customization.go); the tests assert on
//! that spec for both families, on every plan-time refusal, on replacement when an input
//! changes, on import, and that no secret shows in a TRACE log, a plan or the admin CLI.

mod common;

use common::env::Env;
use common::sim::Sim;
use common::terraform::{expect_error, versions, Workdir};
use serde_json::{json, Value};

const ADMIN_PASSWORD: &str = "Adm1n-Pa55word-7f3c";
const DOMAIN_PASSWORD: &str = "J01n-Pa55word-91ab";
const PRODUCT_KEY: &str = "KEY42-PRDCT-9Q8W7-E6R5T-Y4U3I";

/// Subnets: `app` (a domain, DNS, gateway) on pg-app and `bare` (no domain) on pg-db.
const SUBNETS: &str = r#"
variable "admin_password" {
  type      = string
  sensitive = true
}
variable "domain_password" {
  type      = string
  sensitive = true
}
variable "product_key" {
  type      = string
  sensitive = true
}
data "vsphereipam_wire" "app" {
  name = "pg-app"
}
data "vsphereipam_wire" "db" {
  name = "pg-db"
}
resource "vsphereipam_ipsubnet" "app" {
  name        = "app"
  wire_id     = data.vsphereipam_wire.app.id
  cidr        = "10.20.0.0/24"
  start_ip    = "10.20.0.100"
  gateway     = "10.20.0.1"
  dns_servers = ["10.20.0.2"]
  domain      = "app.example.com"
}
resource "vsphereipam_ipsubnet" "bare" {
  name     = "bare"
  wire_id  = data.vsphereipam_wire.db.id
  cidr     = "10.30.0.0/24"
  start_ip = "10.30.0.100"
}
"#;

/// A VM from `template` on `subnet` with `extra` lines (blocks included), and an output of it.
fn vm(label: &str, name: &str, template: &str, subnet: &str, extra: &str) -> String {
    format!(
        "resource \"vsphereipam_vm\" \"{label}\" {{\n  name       = \"{name}\"\n  \
         datacenter = \"DC0\"\n  template   = \"{template}\"\n{extra}\n  network_interface {{\n    \
         subnet_id = vsphereipam_ipsubnet.{subnet}.id\n  }}\n}}\n\
         output \"{label}\" {{\n  value     = vsphereipam_vm.{label}\n  sensitive = true\n}}\n"
    )
}

fn workdir(env: &Env, tf: &common::terraform::Terraform, body: &str) -> Workdir {
    env.workdir(tf, &format!("{SUBNETS}\n{body}"))
        .env("TF_VAR_admin_password", ADMIN_PASSWORD)
        .env("TF_VAR_domain_password", DOMAIN_PASSWORD)
        .env("TF_VAR_product_key", PRODUCT_KEY)
}

fn spec(sim: &Sim, name: &str) -> Value {
    sim.customization(name)
        .unwrap_or_else(|| panic!("no customization spec reached VM {name}"))
}

const LINUX: &str = r##"  linux {
    host_name    = "web-a"
    time_zone    = "Europe/Berlin"
    hw_clock_utc = false
    script_text  = "#!/bin/sh\necho customized > /etc/motd"
  }"##;

const WINDOWS_WORKGROUP: &str = r#"  windows {
    admin_password        = var.admin_password
    workgroup             = "LAB"
    full_name             = "Ops Team"
    organization_name     = "Example Corp"
    product_key           = var.product_key
    time_zone             = 110
    auto_logon            = true
    auto_logon_count      = 2
    run_once_command_list = ["cmd /c echo one", "powershell -Command Enable-PSRemoting"]
  }"#;

const WINDOWS_DOMAIN: &str = r#"  windows {
    computer_name         = "WINDOM1"
    admin_password        = var.admin_password
    join_domain           = "corp.example.com"
    domain_admin_user     = "joiner@corp.example.com"
    domain_admin_password = var.domain_password
    domain_ou             = "OU=web,DC=corp,DC=example,DC=com"
  }"#;

#[test]
fn linux_and_windows_specs_reach_vcenter_as_configured() {
    let sim = Sim::start("test");
    for tf in versions() {
        let v: &str = tf.version;
        let sfx = v.replace('.', "");
        let env = Env::new(&sim, "");
        let names = [
            format!("lin-{sfx}"),
            format!("plain-{sfx}"),
            format!("wg-{sfx}"),
            format!("dom-{sfx}"),
        ];
        let body = vm("lin", &names[0], "tmpl-linux", "app", LINUX)
            + &vm("plain", &names[1], "tmpl-linux", "bare", "")
            + &vm("wg", &names[2], "tmpl-windows", "app", WINDOWS_WORKGROUP)
            + &vm("dom", &names[3], "tmpl-windows", "bare", WINDOWS_DOMAIN);
        let wd = workdir(&env, &tf, &body);
        wd.apply_ok();
        let outs = wd.outputs();

        // Linux with a block: its values; the domain is the first NIC's subnet's.
        let lin = spec(&sim, &names[0]);
        assert_eq!(lin["identity"], "CustomizationLinuxPrep", "{v}: {lin}");
        assert_eq!(
            lin["linux"],
            json!({
                "host_name": "web-a",
                "domain": "app.example.com",
                "time_zone": "Europe/Berlin",
                "hw_clock_utc": false,
                "script_text": "#!/bin/sh\necho customized > /etc/motd",
            }),
            "{v}"
        );
        assert_eq!(lin["windows"], Value::Null, "{v}");
        let ip = outs["lin"]["network_interface"][0]["ip_address"].clone();
        assert_eq!(lin["adapters"][0]["ip"], ip, "{v}: {lin}");
        assert_eq!(outs["lin"]["hostname"], "web-a", "{v}");
        assert_eq!(lin["request_count"], 1, "{v}");

        // Linux without a block: documented defaults; no subnet domain gives "localdomain".
        let plain = spec(&sim, &names[1]);
        assert_eq!(
            plain["linux"],
            json!({
                "host_name": names[1],
                "domain": "localdomain",
                "time_zone": "",
                "hw_clock_utc": true,
                "script_text": "",
            }),
            "{v}"
        );

        // Windows in a workgroup: every value, the password in plain text as the API wants.
        let wg = spec(&sim, &names[2]);
        assert_eq!(wg["identity"], "CustomizationSysprep", "{v}: {wg}");
        let w = &wg["windows"];
        assert_eq!(
            w["password"],
            json!({"value": ADMIN_PASSWORD, "plain_text": true}),
            "{v}"
        );
        assert_eq!(w["computer_name"], names[2].as_str(), "{v}");
        assert_eq!(w["join_workgroup"], "LAB", "{v}");
        assert_eq!(w["join_domain"], "", "{v}");
        assert_eq!(w["domain_admin_password"], Value::Null, "{v}");
        assert_eq!(w["time_zone"], 110, "{v}");
        assert_eq!(w["auto_logon"], true, "{v}");
        assert_eq!(w["auto_logon_count"], 2, "{v}");
        assert_eq!(w["full_name"], "Ops Team", "{v}");
        assert_eq!(w["org_name"], "Example Corp", "{v}");
        assert_eq!(w["product_id"], PRODUCT_KEY, "{v}");
        assert_eq!(
            w["run_once"],
            json!(["cmd /c echo one", "powershell -Command Enable-PSRemoting"]),
            "{v}"
        );
        assert_eq!(wg["change_sid"], true, "{v}");

        // Windows joining a domain, with the documented defaults for the rest.
        let dom = spec(&sim, &names[3]);
        let d = &dom["windows"];
        assert_eq!(d["computer_name"], "WINDOM1", "{v}");
        assert_eq!(outs["dom"]["hostname"], "WINDOM1", "{v}");
        assert_eq!(d["join_workgroup"], "", "{v}");
        assert_eq!(d["join_domain"], "corp.example.com", "{v}");
        assert_eq!(d["domain_admin"], "joiner@corp.example.com", "{v}");
        assert_eq!(
            d["domain_admin_password"],
            json!({"value": DOMAIN_PASSWORD, "plain_text": true}),
            "{v}"
        );
        assert_eq!(d["domain_ou"], "OU=web,DC=corp,DC=example,DC=com", "{v}");
        assert_eq!(
            d["password"],
            json!({"value": ADMIN_PASSWORD, "plain_text": true}),
            "{v}"
        );
        assert_eq!(d["time_zone"], 85, "{v}");
        assert_eq!(d["auto_logon"], false, "{v}");
        assert_eq!(d["auto_logon_count"], 1, "{v}");
        assert_eq!(d["full_name"], "Administrator", "{v}");
        assert_eq!(d["org_name"], "Managed by Terraform", "{v}");
        assert_eq!(d["product_id"], "", "{v}");
        assert_eq!(d["run_once"], Value::Null, "{v}");

        // The simulator applied the names: VMware Tools report them.
        let inv = {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                vsphereipam::vsphere::inventory::load_inventory(&sim.client().await)
                    .await
                    .unwrap()
            })
        };
        for (name, host) in [(&names[0], "web-a"), (&names[3], "WINDOM1")] {
            let live = inv.vms.iter().find(|x| &x.name == name).unwrap();
            assert_eq!(live.guest_hostname.as_deref(), Some(host), "{v}");
        }
        wd.plan_no_changes();

        // A state written before the blocks existed (no linux/windows keys) still reads, and
        // a VM without blocks in its configuration shows no change.
        let path = wd.path().join("terraform.tfstate");
        let mut state: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for r in state["resources"].as_array_mut().unwrap() {
            if r["name"] == "plain" {
                let attrs = r["instances"][0]["attributes"].as_object_mut().unwrap();
                assert!(attrs.remove("linux").is_some(), "{v}: {attrs:?}");
                attrs.remove("windows");
            }
        }
        state["serial"] = json!(state["serial"].as_i64().unwrap() + 1);
        std::fs::write(&path, serde_json::to_string_pretty(&state).unwrap()).unwrap();
        wd.plan_no_changes();

        // Any customization input replaces the VM: customization runs once.
        let changed = body.replace("Europe/Berlin", "America/New_York");
        wd.write("main.tf", &env.config(&format!("{SUBNETS}\n{changed}")));
        let plan = wd.run(&["plan", "-no-color", "-input=false"]);
        assert!(plan.success, "{v}: {}", plan.all());
        assert!(
            plan.stdout.contains("1 to add, 0 to change, 1 to destroy"),
            "{v}: {}",
            plan.all()
        );
        assert!(
            plan.stdout.contains("# forces replacement"),
            "{v}: {}",
            plan.all()
        );
        wd.apply_ok();
        let lin = spec(&sim, &names[0]);
        assert_eq!(lin["linux"]["time_zone"], "America/New_York", "{v}");
        assert_eq!(lin["request_count"], 2, "{v}");
        let after = wd.outputs();
        // The simulator derives config.uuid from the name; the moref is new.
        assert_ne!(
            after["lin"]["moref"], outs["lin"]["moref"],
            "{v}: not replaced"
        );
        wd.plan_no_changes();
        wd.destroy_ok();
    }
}

#[test]
fn customization_refusals_are_plan_time_diagnostics() {
    let sim = Sim::start("test");
    for tf in versions() {
        let v: &str = tf.version;
        let env = Env::new(&sim, "");
        let wd = workdir(&env, &tf, "");
        wd.apply_ok();
        let windows = |inner: &str| format!("  windows {{\n{inner}\n  }}");
        let cases: Vec<(String, &str, &str)> = vec![
            (
                vm("x", "x", "tmpl-windows", "app", ""),
                "Missing windows block",
                "resource \"vsphereipam_vm\" \"x\"",
            ),
            (
                vm(
                    "x",
                    "x",
                    "tmpl-windows",
                    "app",
                    &windows("    workgroup = \"LAB\""),
                ),
                "Missing Administrator password",
                "windows {",
            ),
            (
                vm(
                    "x",
                    "x",
                    "tmpl-windows",
                    "app",
                    &windows("    admin_password = \"\""),
                ),
                "Missing Administrator password",
                "admin_password = \"\"",
            ),
            (
                vm(
                    "x",
                    "x",
                    "tmpl-windows",
                    "app",
                    &windows(
                        "    admin_password = var.admin_password\n    join_domain = \"corp.example.com\"",
                    ),
                ),
                "Missing domain_admin_user",
                "windows {",
            ),
            (
                vm(
                    "x",
                    "x",
                    "tmpl-windows",
                    "app",
                    &windows(
                        "    admin_password = var.admin_password\n    workgroup = \"LAB\"\n    \
                         join_domain = \"corp.example.com\"\n    domain_admin_user = \"j\"\n    \
                         domain_admin_password = var.domain_password",
                    ),
                ),
                "workgroup and join_domain together",
                "workgroup = \"LAB\"",
            ),
            (
                vm(
                    "x",
                    "x",
                    "tmpl-windows",
                    "app",
                    &windows("    admin_password = var.admin_password\n    time_zone = 86"),
                ),
                "Unknown Windows time zone index",
                "time_zone = 86",
            ),
            (
                vm(
                    "x",
                    "x",
                    "tmpl-windows",
                    "app",
                    &windows(
                        "    admin_password = var.admin_password\n    computer_name = \"much-too-long-name\"",
                    ),
                ),
                "Invalid computer_name",
                "computer_name = \"much-too-long-name\"",
            ),
            (
                vm(
                    "x",
                    "a-much-too-long-vm-name",
                    "tmpl-windows",
                    "app",
                    "  hostname = \"a-much-too-long-vm-name\"\n".to_string().as_str(),
                )
                .replace(
                    "  hostname",
                    &format!(
                        "{}\n  hostname",
                        windows("    admin_password = var.admin_password")
                    ),
                ),
                "Invalid Windows computer name",
                "hostname = \"a-much-too-long-vm-name\"",
            ),
            (
                vm(
                    "x",
                    "x",
                    "tmpl-windows",
                    "app",
                    "  linux {\n    time_zone = \"UTC\"\n  }",
                ),
                "linux block for a Windows template",
                "linux {",
            ),
            (
                vm(
                    "x",
                    "x",
                    "tmpl-linux",
                    "app",
                    &windows("    admin_password = var.admin_password"),
                ),
                "windows block for a non-Windows template",
                "windows {",
            ),
            (
                vm(
                    "x",
                    "x",
                    "tmpl-linux",
                    "app",
                    "  linux {\n    time_zone = \"Europe/Berlinn\"\n  }",
                ),
                "Unknown time zone",
                "time_zone = \"Europe/Berlinn\"",
            ),
            (
                vm(
                    "x",
                    "x",
                    "tmpl-linux",
                    "app",
                    "  hostname = \"one\"\n  linux {\n    host_name = \"two\"\n  }",
                ),
                "Two different host names",
                "host_name = \"two\"",
            ),
        ];
        for (body, summary, snippet) in cases {
            wd.write("main.tf", &env.config(&format!("{SUBNETS}\n{body}")));
            let run = wd.plan_err();
            // Terraform 1.0 and 1.11 quote the resource for a path that ends at a block.
            let snippet = match snippet {
                "linux {" | "windows {" if v != "1.15" && summary.contains("template") => {
                    "resource \"vsphereipam_vm\" \"x\""
                }
                other => other,
            };
            expect_error(&run, v, summary, snippet);
            assert!(!run.all().contains(ADMIN_PASSWORD), "{v}: {}", run.all());
            // Refused at plan time: nothing reached vCenter.
            assert!(sim.customization("x").is_none(), "{v}: {summary}");
        }
        wd.write("main.tf", &env.config(SUBNETS));
        wd.destroy_ok();
    }
}

#[test]
fn import_records_customization_without_touching_the_vm() {
    let sim = Sim::start("test");
    let app1 = sim
        .manifest()
        .vms
        .iter()
        .find(|v| v.name == "vm-app-1")
        .unwrap()
        .clone();
    for tf in versions() {
        let v: &str = tf.version;
        let env = Env::new(&sim, "");
        let subnets = SUBNETS.replace(
            "start_ip    = \"10.20.0.100\"",
            "start_ip    = \"10.20.0.10\"",
        );
        let wd = env.workdir(&tf, &subnets);
        let wd = wd
            .env("TF_VAR_admin_password", ADMIN_PASSWORD)
            .env("TF_VAR_domain_password", DOMAIN_PASSWORD)
            .env("TF_VAR_product_key", PRODUCT_KEY);
        wd.apply_ok();
        let body = vm("imported", "vm-app-1", "tmpl-linux", "app", LINUX);
        wd.write("main.tf", &env.config(&format!("{subnets}\n{body}")));
        let run = wd.run(&[
            "import",
            "-no-color",
            "-input=false",
            "vsphereipam_vm.imported",
            &app1.uuid,
        ]);
        assert!(run.success, "{v}: {}", run.all());
        // The first apply records the linux block (and template) without replacing the VM.
        let plan = wd.run(&["plan", "-no-color", "-input=false"]);
        assert!(plan.success, "{v}: {}", plan.all());
        assert!(
            !plan.stdout.contains("must be replaced") && plan.stdout.contains("to change"),
            "{v}: {}",
            plan.all()
        );
        wd.apply_ok();
        wd.plan_no_changes();
        assert!(
            sim.customization("vm-app-1").is_none(),
            "{v}: the imported VM was customized"
        );
        let show = wd.run(&["show", "-json", "-no-color"]);
        let state: Value = serde_json::from_str(&show.stdout).unwrap();
        let imported = state["values"]["root_module"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["address"] == "vsphereipam_vm.imported")
            .unwrap()
            .clone();
        assert_eq!(
            imported["values"]["id"],
            app1.uuid.to_ascii_lowercase(),
            "{v}"
        );
        assert_eq!(
            imported["values"]["linux"][0]["time_zone"], "Europe/Berlin",
            "{v}"
        );
        // From now on a change replaces it, like for any VM.
        let changed = body.replace("Europe/Berlin", "UTC");
        wd.write("main.tf", &env.config(&format!("{subnets}\n{changed}")));
        let plan = wd.run(&["plan", "-no-color", "-input=false"]);
        assert!(
            plan.stdout.contains("must be replaced"),
            "{v}: {}",
            plan.all()
        );
        // Forget it again without deleting the scenario's VM (its addresses stay recorded in
        // this test's own store).
        let rm = wd.run(&["state", "rm", "vsphereipam_vm.imported"]);
        assert!(rm.success, "{v}: {}", rm.all());
    }
}

#[test]
fn no_secret_in_trace_logs_plans_outputs_or_the_admin_cli() {
    let sim = Sim::start("test");
    for tf in versions() {
        let v: &str = tf.version;
        let sfx = v.replace('.', "");
        let env = Env::new(&sim, "");
        let body = vm(
            "dom",
            &format!("sec-{sfx}"),
            "tmpl-windows",
            "app",
            &WINDOWS_DOMAIN.replace(
                "    computer_name         = \"WINDOM1\"\n",
                "    product_key           = var.product_key\n",
            ),
        );
        let log = tempfile::NamedTempFile::new().unwrap();
        let wd = workdir(&env, &tf, &body)
            .env("TF_LOG", "TRACE")
            .env("TF_LOG_PATH", log.path().to_str().unwrap());
        let plan = wd.run(&["plan", "-no-color", "-input=false"]);
        assert!(plan.success, "{v}: {}", plan.all());
        assert!(
            plan.stdout.contains("(sensitive value)"),
            "{v}: {}",
            plan.stdout
        );
        let apply = wd.apply_ok();
        let show = wd.run(&["show", "-no-color"]);
        let output = wd.run(&["output", "-no-color"]);
        // The spec did carry them: the absence below is not for lack of use.
        let reached = spec(&sim, &format!("sec-{sfx}"));
        assert_eq!(
            reached["windows"]["password"]["value"], ADMIN_PASSWORD,
            "{v}"
        );
        assert_eq!(reached["windows"]["product_id"], PRODUCT_KEY, "{v}");
        let trace = std::fs::read_to_string(log.path()).unwrap();
        assert!(
            trace.contains("terraform-provider-vsphereipam") && trace.len() > 10_000,
            "{v}: the TRACE log holds no provider lines ({} bytes)",
            trace.len()
        );
        let mut cli = String::new();
        for args in [
            &["ipam", "subnets"][..],
            &["ipam", "audit"][..],
            &["inventory", "--json"][..],
        ] {
            let out =
                std::process::Command::new(env!("CARGO_BIN_EXE_terraform-provider-vsphereipam"))
                    .args(args)
                    .env("VSPHEREIPAM_STORE", env.store_url())
                    .env("VSPHERE_SERVER", sim.server())
                    .env("VSPHERE_USER", &sim.info.user)
                    .env("VSPHERE_PASSWORD", &sim.info.password)
                    .env("VSPHERE_ALLOW_UNVERIFIED_SSL", "true")
                    .output()
                    .unwrap();
            cli.push_str(&String::from_utf8_lossy(&out.stdout));
            cli.push_str(&String::from_utf8_lossy(&out.stderr));
        }
        assert!(cli.contains(&format!("sec-{sfx}")), "{v}: {cli}");
        for (what, text) in [
            ("TRACE log", trace.as_str()),
            ("plan", &plan.all()),
            ("apply", &apply.all()),
            ("show", &show.all()),
            ("output", &output.all()),
            ("admin CLI", cli.as_str()),
        ] {
            for secret in [ADMIN_PASSWORD, DOMAIN_PASSWORD, PRODUCT_KEY] {
                assert!(
                    !text.contains(secret),
                    "{v}: {what} shows a secret ({} bytes)",
                    text.len()
                );
            }
        }
        let wd = wd.env("TF_LOG", "");
        wd.destroy_ok();
    }
}
