//! Many VMs refreshed at once after concurrent applies, on both stores: six `terraform apply`
//! runs (separate states, one store) each create 8 `vsphereipam_vm` on one subnet, then the six
//! are destroyed one after the other, each destroy refreshing its 8 VMs concurrently. Every run
//! finishes (a destroy that never answers is killed and fails the test, with the plugin's
//! thread stacks and Terraform's log tail), and nothing is left. Issue 13 reported destroys of
//! this shape that never finished with the blocking PostgreSQL client; with the pooled client
//! the test first found concurrent releases in one subnet failing on a duplicate held run.
//! A store that takes the refresh's statements and never answers fails the plan with the
//! store's error once the answer timeout has passed, instead of leaving it waiting for good.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::env::Env;
use common::proxy::FaultProxy;
use common::sim::Sim;
use common::terraform::{versions, Run, Workdir};
use vsphereipam::store::OwnerKind;

const RUNS: usize = 6;
const PER_RUN: usize = 8;
/// Far beyond what a run takes here; only a run that never answers gets there.
const HANG: Duration = Duration::from_secs(300);

fn body(run: usize, subnet_id: &str) -> String {
    format!(
        "resource \"vsphereipam_vm\" \"v\" {{\n  count      = {PER_RUN}\n  name       = \"r{run}-${{count.index}}\"\n\
         \x20 datacenter = \"DC0\"\n  template   = \"tmpl-linux\"\n  network_interface {{\n    subnet_id = \"{subnet_id}\"\n  }}\n}}\n"
    )
}

/// Runs Terraform with `args`; kills it and fails the test when it has not finished after
/// [`HANG`].
fn run_or_hang(wd: &Workdir, args: &[&str]) -> Run {
    run_or_hang_with(wd, args, &[])
}

/// [`run_or_hang`] with extra environment variables for this run.
fn run_or_hang_with(wd: &Workdir, args: &[&str], vars: &[(&str, &str)]) -> Run {
    let out = wd.path().join(format!("{}.out", args[0]));
    let err = wd.path().join(format!("{}.err", args[0]));
    let log = wd.path().join(format!("{}.log", args[0]));
    let mut child = wd
        .command(args)
        .envs(vars.iter().copied())
        .env("TF_LOG", "trace")
        .env("TF_LOG_PATH", &log)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("start terraform");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > HANG {
            let stacks = plugin_stacks(child.id());
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            panic!(
                "terraform {} {} never finished:\n{}\n{}\nplugin threads:\n{stacks}\nlog tail:\n{}",
                wd.tf.version,
                args.join(" "),
                std::fs::read_to_string(&out).unwrap_or_default(),
                std::fs::read_to_string(&err).unwrap_or_default(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    Run {
        success: status.success(),
        status,
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
    }
}

/// The thread stacks of Terraform's plugin processes (gdb), to tell where a hang waits.
fn plugin_stacks(terraform: u32) -> String {
    let Ok(children) = std::process::Command::new("pgrep")
        .args(["-P", &terraform.to_string()])
        .output()
    else {
        return "pgrep unavailable".into();
    };
    String::from_utf8_lossy(&children.stdout)
        .split_whitespace()
        .map(|pid| {
            std::process::Command::new("gdb")
                .args(["-p", pid, "-batch", "-ex", "thread apply all bt 30"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_else(|e| format!("gdb: {e}"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn concurrent_applies_then_destroys(sim: &Sim, store_url: &str) {
    let env = Env::with_store(sim, "", store_url);
    let subnet = common::subnet_record(
        &sim.info.instance_uuid,
        &env.wire_id("pg-app"),
        "many",
        "10.88.0.0/24",
    );
    env.store().create_subnet(&subnet, &[]).unwrap();
    let tfs = versions();
    let workdirs: Vec<Workdir> = (0..RUNS)
        .map(|i| {
            let wd = env.workdir(&tfs[i % tfs.len()], &body(i, "many"));
            wd.init();
            wd
        })
        .collect();

    let applies: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = workdirs
            .iter()
            .map(|wd| {
                s.spawn(move || {
                    run_or_hang(wd, &["apply", "-auto-approve", "-input=false", "-no-color"])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (wd, run) in workdirs.iter().zip(&applies) {
        assert!(
            run.success,
            "{store_url} {}: apply failed:\n{}",
            wd.tf.version,
            run.all()
        );
    }
    let vms = env
        .store()
        .addresses("many")
        .unwrap()
        .into_iter()
        .filter(|a| a.owner_kind == OwnerKind::Vm && !a.pending)
        .count();
    assert_eq!(vms, RUNS * PER_RUN, "{store_url}: one record per VM");

    for wd in &workdirs {
        let run = run_or_hang(
            wd,
            &["destroy", "-auto-approve", "-input=false", "-no-color"],
        );
        assert!(
            run.success,
            "{store_url} {}: destroy failed:\n{}",
            wd.tf.version,
            run.all()
        );
        assert!(!run.all().contains("panicked"), "{}", run.all());
    }
    let left: Vec<_> = env
        .store()
        .addresses("many")
        .unwrap()
        .into_iter()
        .filter(|a| a.owner_kind != OwnerKind::Observed)
        .collect();
    assert!(
        left.is_empty(),
        "{store_url}: nothing held after destroy: {left:?}"
    );
}

#[test]
fn concurrent_applies_then_refreshes_sqlite() {
    let sim = Sim::start("test");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ipam.db").display());
    concurrent_applies_then_destroys(&sim, &url);
}

#[test]
fn concurrent_applies_then_refreshes_postgres() {
    let sim = Sim::start("test");
    concurrent_applies_then_destroys(&sim, &common::pg::fresh_database());
}

/// The refresh's statements reach a store that never answers them (a TCP front holds the
/// connection open and silent): the plan fails with the store's error once the answer is overdue
/// (2 s here, `VSPHEREIPAM_ANSWER_TIMEOUT`), where it used to wait for as long as the store kept
/// silent. Once the store answers again the plan shows no changes and the destroy leaves nothing.
#[test]
fn a_silent_store_fails_the_refresh_instead_of_hanging_it() {
    let sim = Sim::start("test");
    let url = common::pg::fresh_database();
    let (head, rest) = url.split_once('@').expect("user@host in the test URL");
    let (server, database) = rest.split_once('/').expect("a database in the test URL");
    let upstream = std::net::ToSocketAddrs::to_socket_addrs(server)
        .expect("the test cluster's address")
        .next()
        .unwrap();
    let proxy = FaultProxy::tcp(upstream);
    let fronted = format!("{head}@{}/{database}?sslmode=disable", proxy.server());
    let env = Env::with_store(&sim, "", &fronted);
    let subnet = common::subnet_record(
        &sim.info.instance_uuid,
        &env.wire_id("pg-app"),
        "quiet",
        "10.89.0.0/24",
    );
    env.store().create_subnet(&subnet, &[]).unwrap();
    let wd = env.workdir(&versions()[0], &body(0, "quiet"));
    wd.init();
    let apply = run_or_hang(
        &wd,
        &["apply", "-auto-approve", "-input=false", "-no-color"],
    );
    assert!(apply.success, "{}", apply.all());

    // What a VM's read asks the store for its records.
    proxy.silence_on("owner_kind = $1 AND owner_id = $2");
    let plan = run_or_hang_with(
        &wd,
        &["plan", "-input=false", "-no-color"],
        &[("VSPHEREIPAM_ANSWER_TIMEOUT", "2s")],
    );
    assert!(!plan.success, "{}", plan.all());
    assert!(proxy.silenced() > 0, "no read reached the store");
    assert!(
        plan.flat().contains("IPAM store error")
            && plan.flat().contains("no answer from the server within 2s"),
        "{}",
        plan.all()
    );
    assert!(!plan.all().contains("panicked"), "{}", plan.all());

    proxy.clear();
    wd.plan_no_changes();
    let destroy = run_or_hang(
        &wd,
        &["destroy", "-auto-approve", "-input=false", "-no-color"],
    );
    assert!(destroy.success, "{}", destroy.all());
    let left: Vec<_> = env
        .store()
        .addresses("quiet")
        .unwrap()
        .into_iter()
        .filter(|a| a.owner_kind != OwnerKind::Observed)
        .collect();
    assert!(left.is_empty(), "nothing held after destroy: {left:?}");
}
