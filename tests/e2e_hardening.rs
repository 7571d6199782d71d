//! Hardening, end to end through Terraform 1.15 and 1.0.3 against the simulator: secrets never
//! printed (TRACE logs, diagnostics, the admin CLI), private store files, and plan-time refusals
//! that name their attribute and say what to do.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::env::Env;
use common::sim::Sim;
use common::terraform::{expect_error, header, versions, Run, Terraform, Workdir};

/// A workdir with `provider_block` and `body`, vCenter settings from the environment (`server`
/// and `credentials` as given), and `store` in VSPHEREIPAM_STORE when set.
fn workdir(
    tf: &Terraform,
    sim: &Sim,
    provider_block: &str,
    body: &str,
    server: &str,
    credentials: bool,
    store: Option<&str>,
) -> Workdir {
    let mut wd = Workdir::new(tf, &format!("{}\n{provider_block}\n{body}", header()))
        .env("VSPHERE_SERVER", server)
        .env("VSPHERE_ALLOW_UNVERIFIED_SSL", "true");
    if credentials {
        wd = wd
            .env("VSPHERE_USER", &sim.info.user)
            .env("VSPHERE_PASSWORD", &sim.info.password);
    }
    if let Some(store) = store {
        wd = wd.env("VSPHEREIPAM_STORE", store);
    }
    wd
}

/// `terraform plan` with TF_LOG=TRACE into a file: the run and the whole log.
fn traced_plan(wd: &Workdir) -> (Run, String) {
    if wd.tf.version != "1.0.3" {
        wd.init();
    }
    let log = wd.path().join("trace.log");
    let out = wd
        .command(&["plan", "-input=false", "-no-color"])
        .env("TF_LOG", "TRACE")
        .env("TF_LOG_PATH", &log)
        .output()
        .expect("run terraform");
    let run = Run {
        success: out.status.success(),
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let text = std::fs::read_to_string(&log).expect("terraform wrote the TRACE log");
    assert!(
        text.contains("vsphereipam"),
        "the log holds the plugin's lines"
    );
    (run, text)
}

const LOOKUP: &str = r#"
data "vsphereipam_wire" "app" {
  name = "pg-app"
}
resource "vsphereipam_ipsubnet" "app" {
  name     = "app"
  wire_id  = data.vsphereipam_wire.app.id
  cidr     = "10.20.0.0/24"
  start_ip = "10.20.0.100"
  end_ip   = "10.20.0.199"
}
"#;

/// Each form a secret can take in a store URL, a DSN or the vCenter server setting: the whole
/// TRACE log of a plan and its output never show it, whether the plan works or fails.
#[test]
fn secrets_never_reach_logs_or_diagnostics() {
    let sim = Sim::start("test");
    let db = common::pg::fresh_database();
    let (base, name) = db.rsplit_once('/').unwrap();
    let (scheme, host) = base.split_once("://").unwrap();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let (address, port) = host.split_once(':').unwrap();
    let server = sim.server();
    let plain = "provider \"vsphereipam\" {}";
    let from_var = "variable \"store\" {}\nprovider \"vsphereipam\" {\n  store = var.store\n}";
    struct Case<'a> {
        what: &'a str,
        secrets: &'a [&'a str],
        provider: &'a str,
        server: String,
        credentials: bool,
        store: Option<String>,
        var_store: Option<String>,
        /// Something the run must show, so the secret was at least handled.
        shows: &'a [&'a str],
    }
    let cases = [
        Case {
            what: "password in the URL's userinfo, store reachable",
            secrets: &["UrlS3cretPw"],
            provider: plain,
            server: server.clone(),
            credentials: true,
            store: Some(format!(
                "{scheme}://postgres:UrlS3cretPw@{address}:{port}/{name}?sslmode=disable"
            )),
            var_store: None,
            shows: &["provider configured"],
        },
        Case {
            what: "password as a query parameter, store unreachable",
            secrets: &["QueryS3cretPw"],
            provider: plain,
            server: server.clone(),
            credentials: true,
            store: Some(format!(
                "{scheme}://postgres@{address}:1/{name}?sslmode=disable&password=QueryS3cretPw"
            )),
            var_store: None,
            shows: &["Cannot open the IPAM store"],
        },
        Case {
            what: "key=value DSN with a quoted password, through a variable",
            secrets: &["DsnS3cret", "Pw x"],
            provider: from_var,
            server: server.clone(),
            credentials: true,
            store: None,
            var_store: Some(format!(
                "host={address} port={port} user=postgres password='DsnS3cret\\'Pw x' dbname={name}"
            )),
            shows: &["store"],
        },
        Case {
            what: "wrong vCenter password in VSPHERE_SERVER",
            secrets: &["VcS3cretPw"],
            provider: plain,
            server: format!("https://user:VcS3cretPw@{server}"),
            credentials: false,
            store: None,
            var_store: None,
            shows: &["vCenter rejected the login"],
        },
        Case {
            what: "vCenter credentials in VSPHERE_SERVER",
            secrets: &[":pass@"],
            provider: plain,
            server: format!("https://user:pass@{server}"),
            credentials: false,
            store: None,
            var_store: None,
            shows: &["provider configured"],
        },
    ];
    for tf in versions() {
        let v = tf.version;
        for case in &cases {
            let dir = tempfile::tempdir().unwrap();
            let default_store = format!("sqlite://{}", dir.path().join("ipam.db").display());
            let mut wd = workdir(
                &tf,
                &sim,
                case.provider,
                LOOKUP,
                &case.server,
                case.credentials,
                Some(case.store.as_deref().unwrap_or(&default_store)),
            );
            if let Some(store) = &case.var_store {
                wd = wd.env("TF_VAR_store", store);
            }
            let (run, log) = traced_plan(&wd);
            let all = format!("{}\n{log}", run.all());
            for secret in case.secrets {
                assert!(
                    !all.contains(secret),
                    "{v}, {}: {secret:?} was printed:\n{}",
                    case.what,
                    all.lines()
                        .filter(|l| l.contains(secret))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            for shown in case.shows {
                assert!(
                    all.contains(shown),
                    "{v}, {}: {shown:?} missing:\n{}\nplugin log:\n{}",
                    case.what,
                    run.all(),
                    log.lines()
                        .filter(|l| l.contains("provider.terraform-provider-vsphereipam"))
                        .take(40)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
        }
    }

    // The admin CLI: a failing store and a refused DSN.
    for store in [
        format!("{scheme}://postgres:CliS3cretPw@{address}:1/{name}?sslmode=disable"),
        format!("host={address} password=CliS3cretPw dbname={name}"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_terraform-provider-vsphereipam"))
            .args(["ipam", "subnets"])
            .env_remove("TF_PLUGIN_MAGIC_COOKIE")
            .env("VSPHEREIPAM_STORE", &store)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(!text.contains("CliS3cretPw"), "{text}");
        assert!(text.contains("***"), "the store is named, masked: {text}");
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The default store's directory is made 0700 and its file 0600 even under umask 000; a store
/// file left readable by others is tightened with a warning (admin CLI and plugin).
#[test]
fn store_files_are_private() {
    let home = tempfile::tempdir().unwrap();
    let cli = |umask: &str| {
        Command::new("sh")
            .args([
                "-c",
                &format!("umask {umask}; exec \"$0\" ipam subnets"),
                env!("CARGO_BIN_EXE_terraform-provider-vsphereipam"),
            ])
            .env_remove("TF_PLUGIN_MAGIC_COOKIE")
            .env_remove("VSPHEREIPAM_STORE")
            .env_remove("XDG_DATA_HOME")
            .env("HOME", home.path())
            .output()
            .unwrap()
    };
    let out = cli("000");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = home.path().join(".local/share/vsphereipam");
    let db = dir.join("ipam.db");
    assert_eq!(mode(&dir), 0o700, "store directory");
    assert_eq!(mode(&db), 0o600, "store file");
    assert!(out.stderr.is_empty(), "no warning for a fresh store");

    // Widened by hand (with leftover -wal/-shm files): tightened, with a warning.
    let companions = ["ipam.db-wal", "ipam.db-shm"].map(|n| dir.join(n));
    for f in &companions {
        std::fs::write(f, b"").unwrap();
    }
    for f in companions.iter().chain([&db]) {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let out = cli("022");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for f in companions.iter().chain([&db]) {
        if f.exists() {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
    }
    assert!(
        stderr.contains("warn:") && stderr.contains("mode 644"),
        "{stderr}"
    );

    // The plugin: Terraform shows the warning at TF_LOG=WARN.
    let sim = Sim::start("test");
    let tf = versions().remove(0);
    let env = Env::new(&sim, "");
    let url = env.store_url();
    let file = url.trim_start_matches("sqlite://").to_string();
    drop(env.store());
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o664)).unwrap();
    let wd = env.workdir(
        &tf,
        "data \"vsphereipam_wire\" \"app\" {\n  name = \"pg-app\"\n}\n",
    );
    wd.init();
    let out = wd
        .command(&["plan", "-input=false", "-no-color"])
        .env("TF_LOG", "WARN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("mode 664"), "{stderr}");
    assert_eq!(mode(Path::new(&file)), 0o600);
}

const BASE: &str = r#"
data "vsphereipam_wire" "app" {
  name = "pg-app"
}
data "vsphereipam_wire" "db" {
  name = "pg-db"
}
resource "vsphereipam_ipsubnet" "app" {
  name     = "app"
  wire_id  = data.vsphereipam_wire.app.id
  cidr     = "10.20.0.0/24"
  start_ip = "10.20.0.100"
  end_ip   = "10.20.0.199"
}
resource "vsphereipam_ip_address" "held" {
  subnet_id  = vsphereipam_ipsubnet.app.id
  ip_address = "10.20.0.150"
}
"#;

/// A `vsphereipam_vm` on the app subnet with `extra` attributes and one NIC block per entry.
fn vm(label: &str, extra: &str, nics: &[&str]) -> String {
    let blocks: String = nics
        .iter()
        .map(|n| {
            format!(
                "  network_interface {{\n    subnet_id = vsphereipam_ipsubnet.app.id\n{n}  }}\n"
            )
        })
        .collect();
    format!(
        "resource \"vsphereipam_vm\" \"{label}\" {{\n  name       = \"{label}\"\n  datacenter = \"DC0\"\n  \
         template   = \"tmpl-linux\"\n{extra}{blocks}}}\n"
    )
}

/// Every check that can run at plan time does, on the attribute at fault, saying what to do.
#[test]
fn plan_time_checks_name_their_attribute() {
    let sim = Sim::start("test");
    let m = sim.manifest();
    let moref = |name: &str| {
        m.portgroups
            .iter()
            .find(|p| p.name == name)
            .unwrap()
            .moref
            .clone()
    };
    let uplink = m
        .portgroups
        .iter()
        .find(|p| p.uplink)
        .expect("the scenario has an uplink port group");
    let uuid = |name: &str| m.vms.iter().find(|v| v.name == name).unwrap().uuid.clone();
    let (app1, tmpl) = (uuid("vm-app-1"), uuid("tmpl-linux"));
    let cases: Vec<(String, &str, String, &[&str])> = vec![
        (
            vm("big", "  memory_mb  = 99999999999\n", &[""]),
            "Invalid memory_mb",
            "memory_mb  = 99999999999".into(),
            &["from 4 to 25165824"],
        ),
        (
            vm(
                "twice",
                "",
                &["    ip_address = \"10.20.0.160\"\n", "    ip_address = \"10.20.0.160\"\n"],
            ),
            "Two NICs ask for one address",
            "ip_address = \"10.20.0.160\"".into(),
            &["network_interface[0] and network_interface[1] both ask for 10.20.0.160"],
        ),
        (
            vm("f", "  folder     = \"no/such\"\n", &[""]),
            "The VM folder was not found",
            "folder     = \"no/such\"".into(),
            &["DC0/vm/no/such"],
        ),
        (
            vm("d", "  datastore  = \"NoSuchDS\"\n", &[""]),
            "The datastore was not found",
            "datastore  = \"NoSuchDS\"".into(),
            &["DC0/datastore/NoSuchDS"],
        ),
        (
            "resource \"vsphereipam_ip_address\" \"out\" {\n  subnet_id  = vsphereipam_ipsubnet.app.id\n  ip_address = \"10.20.0.50\"\n}\n".into(),
            "Refused by the IPAM",
            "ip_address = \"10.20.0.50\"".into(),
            &["outside the allocatable range"],
        ),
        (
            "resource \"vsphereipam_ip_address\" \"again\" {\n  subnet_id  = vsphereipam_ipsubnet.app.id\n  ip_address = \"10.20.0.150\"\n}\n".into(),
            "Address already taken",
            "ip_address = \"10.20.0.150\"".into(),
            &["vsphereipam_ip_address"],
        ),
        (
            format!("data \"vsphereipam_wire\" \"both\" {{\n  moref = \"{}\"\n  name  = \"pg-app\"\n}}\n", moref("pg-db")),
            "`moref` and `name` name different port groups",
            "name  = \"pg-app\"".into(),
            &["is port group \"pg-db\""],
        ),
        (
            format!("data \"vsphereipam_wire\" \"up\" {{\n  name = \"{}\"\n}}\n", uplink.name),
            "Uplink port groups are not wires",
            format!("name = \"{}\"", uplink.name),
            &["VM port group"],
        ),
        (
            format!("data \"vsphereipam_wire\" \"up\" {{\n  moref = \"{}\"\n}}\n", uplink.moref),
            "Uplink port groups are not wires",
            format!("moref = \"{}\"", uplink.moref),
            &[],
        ),
        (
            "resource \"vsphereipam_ipsubnet\" \"dom\" {\n  name    = \"dom\"\n  wire_id = data.vsphereipam_wire.db.id\n  cidr    = \"10.30.0.0/24\"\n  domain  = \"corp_example.\"\n}\n".into(),
            "Invalid domain",
            "domain  = \"corp_example.\"".into(),
            &["corp.example"],
        ),
        (
            format!("resource \"vsphereipam_vm_nic_fix\" \"t\" {{\n  vm_id = \"{tmpl}\"\n  nic {{\n    ip_address = \"10.20.0.170\"\n  }}\n}}\n"),
            "A template has no addresses to record",
            format!("vm_id = \"{tmpl}\""),
            &["is a template"],
        ),
        (
            format!("resource \"vsphereipam_vm_nic_fix\" \"c\" {{\n  vm_id = \"{app1}\"\n  nic {{\n    ip_address = \"10.20.0.171\"\n  }}\n}}\n"),
            "VMware Tools report another address",
            "ip_address = \"10.20.0.171\"".into(),
            &["report 10.20.0.21"],
        ),
    ];
    for tf in versions() {
        let v = tf.version;
        let env = Env::new(&sim, "");
        let wd = env.workdir(&tf, BASE);
        wd.apply_ok();
        for (body, summary, snippet, details) in &cases {
            wd.write("main.tf", &env.config(&format!("{BASE}{body}")));
            let run = wd.plan_err();
            expect_error(&run, v, summary, snippet);
            let flat = run.flat();
            for d in *details {
                assert!(flat.contains(d), "{v}: {summary}: missing {d:?} in {flat}");
            }
        }

        // With RUST_BACKTRACE=1 a diagnostic stays a sentence: no backtrace, no source paths.
        let run = {
            let out = wd
                .command(&["plan", "-input=false", "-no-color"])
                .env("RUST_BACKTRACE", "1")
                .output()
                .unwrap();
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        };
        assert!(
            run.contains("Invalid") || run.contains("VMware Tools"),
            "{v}: {run}"
        );
        assert!(
            !run.contains(".rs:") && !run.to_lowercase().contains("backtrace"),
            "{v}: {run}"
        );

        // A NIC taking the next free address leaves the one another NIC asks for alone: with
        // stepdown the next free is .199, the address the second NIC wants.
        let both = vm("order", "", &["", "    ip_address = \"10.20.0.199\"\n"]);
        wd.write("main.tf", &env.config(&format!("{BASE}{both}")));
        let plan = wd.run(&["plan", "-input=false", "-no-color"]);
        assert!(plan.success, "{v}: {}", plan.all());

        // One attachment per (subnet, wire): a second resource for it is refused, at apply
        // when both are new, at plan once one exists.
        let attach = |label: &str| {
            format!(
                "resource \"vsphereipam_subnet_additional_wire\" \"{label}\" {{\n  subnet_id = vsphereipam_ipsubnet.app.id\n  wire_id   = data.vsphereipam_wire.db.id\n}}\n"
            )
        };
        let two = format!("{BASE}{}{}", attach("a"), attach("b"));
        wd.write("main.tf", &env.config(&two));
        let run = wd.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        assert!(!run.success, "{v}: {}", run.all());
        assert!(
            run.flat().contains("already attached"),
            "{v}: {}",
            run.all()
        );
        let run = wd.plan_err();
        expect_error(
            &run,
            v,
            "Wire already attached",
            "wire_id   = data.vsphereipam_wire.db.id",
        );
        assert!(
            run.flat().contains("terraform import"),
            "{v}: {}",
            run.all()
        );
        wd.write("main.tf", &env.config(BASE));
        wd.destroy_ok();
    }
}

/// `ipam audit` reports a record whose NIC VMware Tools now report another address for.
#[test]
fn audit_reports_a_guest_that_changed_its_address() {
    use vsphereipam::ipam::ranges::RangeSet;
    use vsphereipam::store::ops::AllocRequest;
    use vsphereipam::store::{OwnerKind, Store};

    let sim = Sim::start("test");
    let m = sim.manifest();
    let app1 = m.vms.iter().find(|v| v.name == "vm-app-1").unwrap();
    let pg = m.portgroups.iter().find(|p| p.name == "pg-app").unwrap();
    let wire = format!("{}/{}", sim.info.instance_uuid, pg.moref);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ipam.db").display());
    let store = Store::open(&url).unwrap();
    store
        .create_subnet(
            &common::subnet_record(&sim.info.instance_uuid, &wire, "app", "10.20.0.0/24"),
            &[],
        )
        .unwrap();
    // Recorded as 10.20.0.99 on the NIC whose Tools report 10.20.0.21.
    store
        .allocate(
            &AllocRequest {
                subnet_id: "app".into(),
                ip: Some("10.20.0.99".parse().unwrap()),
                owner_kind: OwnerKind::NicFix,
                owner_id: app1.uuid.to_ascii_lowercase(),
                vm_uuid: Some(app1.uuid.to_ascii_lowercase()),
                mac: Some(app1.nics[0].mac.clone()),
                wire_id: Some(wire),
                pending: false,
                description: None,
            },
            &RangeSet::new(),
        )
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_terraform-provider-vsphereipam"))
        .args(["ipam", "audit", "--json", "--allow-unverified-ssl"])
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .env("VSPHERE_SERVER", sim.server())
        .env("VSPHERE_USER", &sim.info.user)
        .env("VSPHERE_PASSWORD", &sim.info.password)
        .env("VSPHEREIPAM_STORE", &url)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let problems: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = problems
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "guest_ip_differs")
        .unwrap_or_else(|| panic!("{problems}"));
    assert_eq!(found["ip"], "10.20.0.99");
    assert!(
        found["detail"].as_str().unwrap().contains("10.20.0.21"),
        "{found}"
    );
}
