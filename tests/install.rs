//! Installing the provider the way Terraform installs providers: `terraform init` on Terraform
//! 1.0.3, 1.11 (the machine's `terraform`) and 1.15, from a filesystem mirror, from a network
//! mirror and from a provider registry (signed SHA256SUMS), both served over HTTPS on 127.0.0.1,
//! with a version constraint. The release holds this test build's binary for linux_amd64 and a
//! stand-in linux_arm64 package (Terraform only hashes the packages of other platforms),
//! packaged and signed by the code `make release` runs (crates/dist) with a GnuPG key the test
//! generates, plus a decoy newer version the constraint must skip. Also: `--version`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use common::terraform::{self, Run, Terraform, Workdir};
use vsphereipam_dist as dist;

const BIN: &str = env!("CARGO_BIN_EXE_terraform-provider-vsphereipam");
/// Newer than any real version, so only the constraint keeps Terraform from taking it.
const DECOY: &str = "99.0.0";

/// Terraform 1.15 and 1.0.3 from `.tools/bin`, and 1.11 from PATH (the machine image's): the
/// harness's versions, which must include that 1.11.
fn versions() -> Vec<Terraform> {
    let all = terraform::versions();
    let labels: Vec<&str> = all.iter().map(|t| t.version).collect();
    assert_eq!(
        labels,
        ["1.15", "1.0.3", "1.11"],
        "terraform on PATH must be 1.11"
    );
    all
}

/// The release of this test build (good) with its registry tree, a copy of the mirror whose
/// zip was swapped for another package while its hashes still name the good one (tampered),
/// and a signature by the same key over other content (for a registry whose sums do not match
/// their signature).
struct Mirrors {
    _dir: tempfile::TempDir,
    good: dist::Release,
    registry: dist::Registry,
    tampered: PathBuf,
    bad_signature: Vec<u8>,
    ca_pem: PathBuf,
    tls: Arc<rustls::ServerConfig>,
}

fn mirrors() -> &'static Mirrors {
    static M: OnceLock<Mirrors> = OnceLock::new();
    M.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("dist");
        let arm64 = dir.path().join("arm64");
        std::fs::write(&arm64, "stands in for the arm64 build\n").unwrap();
        let good = dist::write_release(
            &out,
            dist::VERSION,
            &[("linux_amd64", Path::new(BIN)), ("linux_arm64", &arm64)],
        )
        .unwrap();
        let decoy = dir.path().join("decoy");
        std::fs::write(&decoy, "#!/bin/sh\nexit 1\n").unwrap();
        dist::write_release(&out, DECOY, &[("linux_amd64", &decoy)]).unwrap();

        let signer =
            dist::Signer::throwaway(&dir.path().join("gnupg"), "vsphereipam install test").unwrap();
        dist::sign_release(&out, DECOY, &signer).unwrap();
        let registry = dist::sign_release(&out, dist::VERSION, &signer).unwrap();
        let other = dir.path().join("other");
        std::fs::write(&other, "not the SHA256SUMS\n").unwrap();
        signer.sign(&other, &dir.path().join("other.sig")).unwrap();
        let bad_signature = std::fs::read(dir.path().join("other.sig")).unwrap();
        signer.stop_agent();

        let tampered = dir.path().join("tampered");
        let from = dist::mirror_dir(&good.mirror);
        let to = dist::mirror_dir(&tampered);
        std::fs::create_dir_all(&to).unwrap();
        for name in ["index.json".to_string(), format!("{}.json", dist::VERSION)] {
            std::fs::copy(from.join(&name), to.join(&name)).unwrap();
        }
        let other = dist::package(b"#!/bin/sh\necho not the provider\n", dist::VERSION).unwrap();
        std::fs::write(to.join(dist::zip_name(dist::VERSION, "linux_amd64")), other).unwrap();

        let (ca_pem, tls) = certificates(dir.path());
        Mirrors {
            _dir: dir,
            good,
            registry,
            tampered,
            bad_signature,
            ca_pem,
            tls,
        }
    })
}

/// A CA that only this test trusts (Terraform reads it through `SSL_CERT_FILE`, as Go's
/// crypto/x509 does on Linux) and a server certificate for 127.0.0.1 and localhost signed by it.
fn certificates(dir: &Path) -> (PathBuf, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "vsphereipam install test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "vsphereipam test mirror");
    let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    let ca_pem = dir.join("ca.pem");
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    (ca_pem, Arc::new(tls))
}

/// A static HTTPS server of `root` on 127.0.0.1, logging the paths asked for; it stops when
/// dropped.
struct Server {
    url: String,
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start(root: &Path, tls: Arc<rustls::ServerConfig>) -> Self {
        Self::start_with(root, tls, HashMap::new())
    }

    /// Serves `replaced` (path → content) instead of the files at those paths.
    fn start_with(
        root: &Path,
        tls: Arc<rustls::ServerConfig>,
        replaced: HashMap<String, Vec<u8>>,
    ) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = format!("https://127.0.0.1:{port}/");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (log, root) = (requests.clone(), Arc::new(root.to_path_buf()));
        let replaced = Arc::new(replaced);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, log, root) = (acceptor.clone(), log.clone(), root.clone());
                let replaced = replaced.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends its connection here.
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let path = req.uri().path().to_string();
                            log.lock().unwrap().push(path.clone());
                            let response = match replaced.get(&path) {
                                Some(body) => hyper::Response::new(body.clone().into()),
                                None => static_file(&root, &path),
                            };
                            async move { Ok::<_, std::convert::Infallible>(response) }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Server {
            url,
            port,
            requests,
            _runtime: runtime,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// The file at `path` under `root`, as a static web server answers: JSON as
/// `application/json`, which the mirror protocol asks for; 404 when absent or outside `root`.
fn static_file(root: &Path, path: &str) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let inside = !path.split('/').any(|part| part == "..");
    let content = inside
        .then(|| std::fs::read(root.join(path.trim_start_matches('/'))).ok())
        .flatten();
    let builder = hyper::Response::builder();
    match content {
        Some(body) => builder
            .header(
                hyper::header::CONTENT_TYPE,
                if path.ends_with(".json") {
                    "application/json"
                } else {
                    "application/zip"
                },
            )
            .body(body.into()),
        None => builder.status(404).body(Default::default()),
    }
    .unwrap()
}

/// The `required_providers` every run uses: `source`, and a constraint that takes this
/// release and not the decoy.
fn main_tf(source: &str) -> String {
    format!(
        "terraform {{\n  required_providers {{\n    vsphereipam = {{\n      source  = \"{source}\"\n      version = \"~> {}\"\n    }}\n  }}\n}}\n",
        dist::VERSION
    )
}

/// A working directory whose CLI config installs providers only from `installation` (an
/// air-gapped machine: no `direct {}`), trusting the test CA.
fn workdir(tf: &Terraform, installation: &str) -> Workdir {
    workdir_with(
        tf,
        "vsphereipam/vsphereipam",
        &format!("provider_installation {{\n  {installation}\n}}\n"),
    )
}

/// A working directory for `source` with `cli_config` as its CLI configuration, trusting the
/// test CA.
fn workdir_with(tf: &Terraform, source: &str, cli_config: &str) -> Workdir {
    let wd = Workdir::new(tf, &main_tf(source))
        .env("SSL_CERT_FILE", &mirrors().ca_pem.display().to_string());
    // Workdir writes a dev_overrides config; these tests replace it.
    wd.write("terraformrc", cli_config);
    wd
}

fn filesystem_mirror(root: &Path) -> String {
    format!(
        "filesystem_mirror {{\n    path = \"{}\"\n  }}",
        root.display()
    )
}

fn network_mirror(url: &str) -> String {
    format!("network_mirror {{\n    url = \"{url}\"\n  }}")
}

fn init(wd: &Workdir) -> Run {
    wd.run(&["init", "-input=false", "-no-color"])
}

/// A successful init installed this release, the lock file holds its hashes, and the
/// installed plugin answers Terraform (`validate` loads its schema).
fn assert_installed(wd: &Workdir, run: &Run, how: &str) {
    let address = format!("{}/{}/{}", dist::HOSTNAME, dist::NAMESPACE, dist::TYPE);
    assert_installed_as(wd, run, how, &address);
}

/// [`assert_installed`] for the provider source address `address` (host/namespace/type).
fn assert_installed_as(wd: &Workdir, run: &Run, how: &str, address: &str) {
    let v = &wd.tf.version;
    assert!(run.success, "terraform {v} init from {how}:\n{}", run.all());
    let short = address
        .strip_prefix(&format!("{}/", dist::HOSTNAME))
        .unwrap_or(address);
    let installed = format!("Installing {short} v{}", dist::VERSION);
    assert!(
        run.all().contains(&installed),
        "terraform {v}, {how}:\n{}",
        run.all()
    );
    assert!(
        !run.all().contains(DECOY),
        "terraform {v}, {how}:\n{}",
        run.all()
    );

    let lock = std::fs::read_to_string(wd.path().join(".terraform.lock.hcl")).unwrap();
    let package = &mirrors().good.packages[0];
    assert!(
        lock.contains(&format!("provider \"{address}\""))
            && lock.contains(&format!("version     = \"{}\"", dist::VERSION))
            && lock.contains(&format!("constraints = \"~> {}\"", dist::VERSION)),
        "terraform {v}, {how}: lock file\n{lock}"
    );
    assert!(
        lock.contains(&format!("\"{}\"", package.h1)),
        "terraform {v}, {how}: the lock file lacks {}:\n{lock}",
        package.h1
    );

    let validate = wd.run(&["validate", "-no-color"]);
    assert!(
        validate.success,
        "terraform {v} validate:\n{}",
        validate.all()
    );
}

#[test]
fn init_from_a_filesystem_mirror_on_every_terraform() {
    let m = mirrors();
    for tf in versions() {
        let wd = workdir(&tf, &filesystem_mirror(&m.good.mirror));
        let run = init(&wd);
        assert_installed(&wd, &run, "a filesystem mirror");
    }
}

#[test]
fn init_from_a_network_mirror_over_https_on_every_terraform() {
    let m = mirrors();
    let server = Server::start(&m.good.mirror, m.tls.clone());
    let base = format!("/{}/{}/{}/", dist::HOSTNAME, dist::NAMESPACE, dist::TYPE);
    for tf in versions() {
        let wd = workdir(&tf, &network_mirror(&server.url));
        let run = init(&wd);
        assert_installed(&wd, &run, "a network mirror");
        let asked = server.requests();
        for file in [
            "index.json".to_string(),
            format!("{}.json", dist::VERSION),
            dist::zip_name(dist::VERSION, "linux_amd64"),
        ] {
            assert!(
                asked.contains(&format!("{base}{file}")),
                "terraform {}: {file} not asked for: {asked:?}",
                tf.version
            );
        }
    }
    assert!(!server.requests().iter().any(|p| p.contains(DECOY)));
}

#[test]
fn a_tampered_zip_fails_init_with_the_checksum_error() {
    let m = mirrors();
    let server = Server::start(&m.tampered, m.tls.clone());
    for tf in versions() {
        // Network mirror: the zip does not match the hashes its version document lists.
        let wd = workdir(&tf, &network_mirror(&server.url));
        let run = init(&wd);
        assert!(!run.success, "terraform {}:\n{}", tf.version, run.all());
        let flat = run.flat();
        assert!(
            flat.contains("doesn't match") && flat.contains("checksum"),
            "terraform {}, network mirror:\n{}",
            tf.version,
            run.all()
        );
        assert!(!wd.path().join(".terraform.lock.hcl").exists());

        // Filesystem mirror: the lock file of a good install refuses the swapped zip.
        let wd = workdir(&tf, &filesystem_mirror(&m.good.mirror));
        assert!(init(&wd).success);
        wd.write(
            "terraformrc",
            &format!(
                "provider_installation {{\n  {}\n}}\n",
                filesystem_mirror(&m.tampered)
            ),
        );
        std::fs::remove_dir_all(wd.path().join(".terraform")).unwrap();
        let run = init(&wd);
        assert!(!run.success, "terraform {}:\n{}", tf.version, run.all());
        assert!(
            run.flat().contains(
                "doesn't match any of the checksums previously recorded in the dependency lock file"
            ),
            "terraform {}, filesystem mirror:\n{}",
            tf.version,
            run.all()
        );
    }
}

/// The CLI configuration of a machine that installs from registries only (`direct {}`), and
/// `host` blocks pointing service discovery of a host name at a `providers.v1` URL.
fn registry_config(hosts: &[(&str, &str)]) -> String {
    let mut config = String::new();
    for (host, providers_v1) in hosts {
        config += &format!(
            "host \"{host}\" {{\n  services = {{\n    \"providers.v1\" = \"{providers_v1}\"\n  }}\n}}\n"
        );
    }
    config + "provider_installation {\n  direct {}\n}\n"
}

/// A private registry's name that resolves nowhere: only a `host` block leads to it.
const PRIVATE_HOST: &str = "registry.example.test";

/// [`assert_installed_as`], and the lock file also holds the `zh:` hash of every platform's zip,
/// taken from the signed SHA256SUMS, and init names the key that signed them.
fn assert_signed_install(wd: &Workdir, run: &Run, how: &str, address: &str) {
    let v = &wd.tf.version;
    assert_installed_as(wd, run, how, address);
    let m = mirrors();
    let lock = std::fs::read_to_string(wd.path().join(".terraform.lock.hcl")).unwrap();
    let platforms: Vec<_> = m.good.packages.iter().map(|p| &p.platform).collect();
    assert_eq!(platforms, ["linux_amd64", "linux_arm64"]);
    for package in &m.good.packages {
        assert!(
            lock.contains(&format!("\"{}\"", package.zh)),
            "terraform {v}, {how}: the lock file lacks {} ({}):\n{lock}",
            package.zh,
            package.platform
        );
    }
    assert!(
        run.all().contains(&m.registry.key.key_id),
        "terraform {v}, {how}: init does not name key {}:\n{}",
        m.registry.key.key_id,
        run.all()
    );
}

#[test]
fn init_from_a_signed_registry_locks_the_zh_hashes_of_every_platform() {
    let m = mirrors();
    let server = Server::start(&m.registry.root, m.tls.clone());
    let providers_v1 = format!("{}{}/", server.url, dist::PROVIDERS_V1);
    for tf in versions() {
        // A registry with a host name of its own: found through its
        // /.well-known/terraform.json.
        let host = format!("localhost:{}", server.port);
        let address = format!("{host}/{}/{}", dist::NAMESPACE, dist::TYPE);
        let wd = workdir_with(&tf, &address, &registry_config(&[]));
        let run = init(&wd);
        assert_signed_install(&wd, &run, "a registry found by service discovery", &address);

        // A registry served below some URL, named by a `host` block.
        let address = format!("{PRIVATE_HOST}/{}/{}", dist::NAMESPACE, dist::TYPE);
        let wd = workdir_with(
            &tf,
            &address,
            &registry_config(&[(PRIVATE_HOST, &providers_v1)]),
        );
        let run = init(&wd);
        assert_signed_install(&wd, &run, "a registry named by a host block", &address);
    }
    let asked = server.requests();
    assert!(
        asked.iter().any(|p| p == "/.well-known/terraform.json"),
        "{asked:?}"
    );
    assert!(!asked
        .iter()
        .any(|p| p.ends_with(".zip") && p.contains(DECOY)));
    assert!(
        !asked.iter().any(|p| p.contains("linux_arm64")),
        "only this platform's zip is downloaded: {asked:?}"
    );
}

#[test]
fn a_registry_whose_sums_do_not_match_their_signature_fails_init() {
    let m = mirrors();
    let signature = format!(
        "/{}/{}/{}/{}/{}",
        dist::PROVIDERS_V1,
        dist::NAMESPACE,
        dist::TYPE,
        dist::VERSION,
        dist::signature_name(dist::VERSION)
    );
    let server = Server::start_with(
        &m.registry.root,
        m.tls.clone(),
        HashMap::from([(signature.clone(), m.bad_signature.clone())]),
    );
    let providers_v1 = format!("{}{}/", server.url, dist::PROVIDERS_V1);
    for tf in versions() {
        let address = format!("{PRIVATE_HOST}/{}/{}", dist::NAMESPACE, dist::TYPE);
        let wd = workdir_with(
            &tf,
            &address,
            &registry_config(&[(PRIVATE_HOST, &providers_v1)]),
        );
        let run = init(&wd);
        assert!(!run.success, "terraform {}:\n{}", tf.version, run.all());
        let flat = run.flat();
        assert!(
            flat.contains("error checking signature"),
            "terraform {}:\n{}",
            tf.version,
            run.all()
        );
        assert!(!wd.path().join(".terraform.lock.hcl").exists());
        assert!(!wd
            .path()
            .join(".terraform/providers")
            .join(PRIVATE_HOST)
            .exists());
    }
    assert!(server.requests().contains(&signature));
}

#[test]
fn version_flag_prints_the_version_and_the_protocol_versions() {
    let out = Command::new(BIN)
        .arg("--version")
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text,
        format!(
            "terraform-provider-vsphereipam {}\nplugin protocol versions: 6.0\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}
