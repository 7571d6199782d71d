//! The vCenter simulator (`tests/vcsim`) for integration tests.
//!
//! [`Sim::start`] builds `.sim/vcsim` when it is missing or older than its Go sources, runs it
//! with a scenario, waits for its info file and parses it (URL, credentials, stats endpoints and
//! the manifest of expected objects). Dropping the [`Sim`] kills the process; the simulator also
//! exits by itself when the test process dies, because its stdin (a pipe we hold) closes.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

/// How long a scenario may take to come up (the scale scenario creates thousands of VMs).
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// Serializes builds between tests of one test binary.
static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// A running simulator.
pub struct Sim {
    child: Child,
    /// Held so that the simulator sees EOF (and exits) if this process dies without Drop.
    _stdin: Option<ChildStdin>,
    _dir: tempfile::TempDir,
    pub info: SimInfo,
}

/// The simulator's info file.
#[derive(Debug, Clone, Deserialize)]
pub struct SimInfo {
    /// `https://127.0.0.1:PORT/sdk` (the request-counting front).
    pub url: String,
    #[serde(default)]
    pub host: String,
    pub user: String,
    pub password: String,
    pub instance_uuid: String,
    pub stats_url: String,
    #[serde(default)]
    pub stats_reset_url: String,
    #[serde(default)]
    pub backend_url: String,
    /// The front's self-signed certificate (for 127.0.0.1 and localhost).
    #[serde(default)]
    pub cert_pem: String,
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub scenario: String,
    #[serde(default)]
    pub setup_ms: u64,
    #[serde(default)]
    pub manifest: Manifest,
}

/// SOAP request counts since start or the last reset.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SimStats {
    pub total: u64,
    #[serde(default)]
    pub by_method: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Manifest {
    pub datacenters: Vec<MDatacenter>,
    pub clusters: Vec<MCluster>,
    pub hosts: Vec<MHost>,
    pub switches: Vec<MSwitch>,
    pub portgroups: Vec<MPortgroup>,
    pub vms: Vec<MVm>,
    pub vmknics: Vec<MVmknic>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MDatacenter {
    pub moref: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MCluster {
    pub moref: String,
    pub name: String,
    pub datacenter: String,
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MHost {
    pub moref: String,
    pub name: String,
    pub datacenter: String,
    /// Cluster name; "" for a standalone host.
    pub cluster: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MSwitch {
    pub moref: String,
    pub name: String,
    pub uuid: String,
    pub datacenter: String,
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MRange {
    pub start: i32,
    pub end: i32,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MPortgroup {
    pub moref: String,
    pub name: String,
    /// "standard" or "distributed".
    #[serde(rename = "type")]
    pub kind: String,
    pub datacenter: String,
    /// vSwitch name (standard) or distributed switch name.
    pub switch: String,
    pub switch_uuid: String,
    pub key: String,
    /// 0 none, id, -1 trunk, PVLAN secondary id.
    pub vlan: i64,
    /// none | vlan | trunk | pvlan
    pub vlan_kind: String,
    pub trunk: Vec<MRange>,
    pub uplink: bool,
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MNic {
    pub key: i32,
    pub mac: String,
    /// Port group moref.
    pub portgroup: String,
    pub portgroup_name: String,
    /// "standard" or "distributed".
    pub backing: String,
    pub switch_uuid: String,
    pub ip: String,
    /// Global IPv6 addresses Tools report on the NIC.
    pub ipv6: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MVm {
    pub moref: String,
    pub name: String,
    pub uuid: String,
    pub instance_uuid: String,
    pub datacenter: String,
    pub host: String,
    pub template: bool,
    pub power_state: String,
    pub guest_id: String,
    pub nics: Vec<MNic>,
    pub ips: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MVmknic {
    pub host: String,
    pub host_name: String,
    pub device: String,
    /// "" when the port group has no Network object (the default Management Network).
    pub portgroup: String,
    pub portgroup_name: String,
    pub ip: String,
    /// Static IPv6 addresses.
    pub ipv6: Vec<String>,
    pub netmask: String,
    pub mac: String,
}

impl Sim {
    /// Starts a scenario (`test`, `demo`, `scale`) and waits until it is ready.
    pub fn start(scenario: &str) -> Sim {
        Sim::start_with(scenario, &[])
    }

    /// Like [`Sim::start`] with extra flags, e.g. `&["-vms", "2000"]`.
    pub fn start_with(scenario: &str, extra_args: &[&str]) -> Sim {
        let binary = binary();
        let dir = tempfile::tempdir().expect("temp dir for the simulator");
        let info_path = dir.path().join("info.json");
        let mut child = Command::new(&binary)
            .args(["-scenario", scenario, "-exit-on-stdin-eof", "-info"])
            .arg(&info_path)
            .args(extra_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stdin = child.stdin.take();
        let info = match wait_for_info(&mut child, &info_path) {
            Ok(info) => info,
            Err(msg) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("simulator scenario {scenario}: {msg}");
            }
        };
        Sim {
            child,
            _stdin: stdin,
            _dir: dir,
            info,
        }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.info.manifest
    }

    /// "127.0.0.1:PORT" of the SOAP front.
    pub fn server(&self) -> String {
        let rest = self
            .info
            .url
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        rest.split('/').next().unwrap_or(rest).to_string()
    }

    /// SOAP requests the simulator has seen since start or the last reset.
    pub async fn stats(&self) -> SimStats {
        let response = http()
            .get(&self.info.stats_url)
            .send()
            .await
            .expect("GET simulator stats");
        let body = response.text().await.expect("simulator stats body");
        serde_json::from_str(&body).expect("simulator stats JSON")
    }

    pub async fn reset_stats(&self) {
        http()
            .post(&self.info.stats_reset_url)
            .send()
            .await
            .expect("POST simulator stats reset");
    }
}

impl Sim {
    /// Settings that reach this simulator over SOAP, accepting its throwaway certificate.
    pub fn connect_options(&self) -> vsphereipam::vsphere::client::ConnectOptions {
        vsphereipam::vsphere::client::ConnectOptions {
            server: self.info.url.clone(),
            user: self.info.user.clone(),
            password: self.info.password.clone(),
            allow_unverified_ssl: true,
            transport: vsphereipam::vsphere::client::Transport::Soap,
        }
    }

    /// A logged-in vCenter client.
    pub async fn client(&self) -> vsphereipam::vsphere::client::VsphereClient {
        vsphereipam::vsphere::client::connect(&self.connect_options())
            .await
            .expect("connect to the simulator")
    }

    /// Changes vCenter the way an operator would, through the simulator's control endpoint
    /// (`tests/vcsim/control.go`): `control("move_nic", &[("vm", "x"), ("nic", "0"), ("pg", "y")])`.
    pub fn control(&self, action: &str, query: &[(&str, &str)]) {
        let base = self.info.stats_url.trim_end_matches("/_stats");
        // Scenario names need no escaping.
        let args: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let url = format!("{base}/_control/{action}?{}", args.join("&"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (status, body) = runtime.block_on(async {
            let response = http()
                .post(&url)
                .send()
                .await
                .expect("POST simulator control");
            let status = response.status();
            (status, response.text().await.unwrap_or_default())
        });
        assert!(status.is_success(), "{action} {query:?}: {status} {body}");
    }
}

impl Sim {
    /// The last guest customization spec that reached VM `name` (`GET
    /// /_control/customization`, see tests/vcsim/customization.go), or `None` when none did.
    pub fn customization(&self, name: &str) -> Option<serde_json::Value> {
        let base = self.info.stats_url.trim_end_matches("/_stats");
        let url = format!("{base}/_control/customization?vm={name}");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let response = http()
                .get(&url)
                .send()
                .await
                .expect("GET simulator customization");
            if response.status() == reqwest::StatusCode::NOT_FOUND {
                return None;
            }
            assert!(
                response.status().is_success(),
                "{url}: {}",
                response.status()
            );
            let body = response.text().await.expect("customization body");
            Some(serde_json::from_str(&body).expect("customization JSON"))
        })
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .expect("HTTP client")
}

fn wait_for_info(child: &mut Child, info_path: &Path) -> Result<SimInfo, String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(text) = std::fs::read_to_string(info_path) {
            return serde_json::from_str(&text).map_err(|e| format!("bad info file: {e}"));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status} before writing its info file"));
        }
        if Instant::now() > deadline {
            return Err(format!("not ready after {START_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Path of the simulator binary, (re)built when missing or older than `tests/vcsim/*.go`.
pub fn binary() -> PathBuf {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let root = repo_root();
    let binary = root.join(".sim").join("vcsim");
    let built = modified(&binary);
    let newest_source = std::fs::read_dir(root.join("tests").join("vcsim"))
        .expect("tests/vcsim sources")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "go"))
        .filter_map(|e| modified(&e.path()))
        .max();
    let stale = match (built, newest_source) {
        (None, _) => true,
        (Some(b), Some(s)) => s > b,
        (Some(_), None) => false,
    };
    if stale {
        build(&root, &binary);
    }
    binary
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Builds to a temporary name and renames, so a test binary running in parallel never executes
/// a half-written file.
fn build(root: &Path, binary: &Path) {
    let dir = binary.parent().expect(".sim dir");
    std::fs::create_dir_all(dir).expect("create .sim");
    let tmp = dir.join(format!("vcsim.build-{}", std::process::id()));
    let status = Command::new("go")
        .current_dir(root)
        .env("GOPATH", "/usr/share/gocode")
        .env("GO111MODULE", "off")
        .args(["build", "-o"])
        .arg(&tmp)
        .arg("./tests/vcsim")
        .status()
        .expect("run `go build` for the simulator");
    assert!(status.success(), "building tests/vcsim failed: {status}");
    std::fs::rename(&tmp, binary).expect("install .sim/vcsim");
}
