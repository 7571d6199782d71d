//! Installing the provider the way Terraform installs providers: `terraform init` on Terraform
//! 1.0.3, 1.11 (the machine's `terraform`) and 1.15, from a filesystem mirror and from a network
//! mirror served over HTTPS on 127.0.0.1, with `source = "vsphereipam/vsphereipam"` and a version
//! constraint. The mirrors hold this test build's binary, packaged for linux_amd64 by the code
//! `make release` runs (crates/dist), plus a decoy newer version the constraint must skip.
//! Also: `--version`, and the linux_arm64 release build answering it under qemu-user.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use common::terraform::{self, Run, Terraform, Workdir};
use vsphereipam_dist as dist;

const BIN: &str = env!("CARGO_BIN_EXE_terraform-provider-vsphereipam");
/// Newer than any real version, so only the constraint keeps Terraform from taking it.
const DECOY: &str = "99.0.0";

/// Terraform 1.15 and 1.0.3 from `.tools/bin`, and 1.11 from PATH (the machine image's).
fn versions() -> Vec<Terraform> {
    let mut all = terraform::versions();
    let out = Command::new("terraform")
        .arg("version")
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .output()
        .expect("`terraform` (1.11) on PATH");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("Terraform v1.11."),
        "terraform on PATH: {text}"
    );
    let path = std::env::var_os("PATH").unwrap();
    let bin = std::env::split_paths(&path)
        .map(|d| d.join("terraform"))
        .find(|p| p.is_file())
        .unwrap();
    all.push(Terraform {
        version: "1.11",
        bin,
    });
    all
}

/// The release of this test build (good), and a copy whose zip was swapped for another
/// package while its hashes still name the good one (tampered).
struct Mirrors {
    _dir: tempfile::TempDir,
    good: dist::Release,
    tampered: PathBuf,
    ca_pem: PathBuf,
    tls: Arc<rustls::ServerConfig>,
}

fn mirrors() -> &'static Mirrors {
    static M: OnceLock<Mirrors> = OnceLock::new();
    M.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("dist");
        let good =
            dist::write_release(&out, dist::VERSION, &[("linux_amd64", Path::new(BIN))]).unwrap();
        let decoy = dir.path().join("decoy");
        std::fs::write(&decoy, "#!/bin/sh\nexit 1\n").unwrap();
        dist::write_release(&out, DECOY, &[("linux_amd64", &decoy)]).unwrap();

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
            tampered,
            ca_pem,
            tls,
        }
    })
}

/// A CA that only this test trusts (Terraform reads it through `SSL_CERT_FILE`, as Go's
/// crypto/x509 does on Linux) and a server certificate for 127.0.0.1 signed by it.
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
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
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
    requests: Arc<Mutex<Vec<String>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start(root: &Path, tls: Arc<rustls::ServerConfig>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("https://{}/", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (log, root) = (requests.clone(), Arc::new(root.to_path_buf()));
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, log, root) = (acceptor.clone(), log.clone(), root.clone());
                tokio::spawn(async move {
                    // A client that refuses the certificate ends its connection here.
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let path = req.uri().path().to_string();
                            log.lock().unwrap().push(path.clone());
                            let response = static_file(&root, &path);
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

/// The `required_providers` every run uses: a constraint that takes this release and not the
/// decoy.
fn main_tf() -> String {
    format!(
        "terraform {{\n  required_providers {{\n    vsphereipam = {{\n      source  = \"vsphereipam/vsphereipam\"\n      version = \"~> {}\"\n    }}\n  }}\n}}\n",
        dist::VERSION
    )
}

/// A working directory whose CLI config installs providers only from `installation` (an
/// air-gapped machine: no `direct {}`), trusting the test CA.
fn workdir(tf: &Terraform, installation: &str) -> Workdir {
    let wd =
        Workdir::new(tf, &main_tf()).env("SSL_CERT_FILE", &mirrors().ca_pem.display().to_string());
    // Workdir writes a dev_overrides config; these tests replace it by a mirror.
    wd.write(
        "terraformrc",
        &format!("provider_installation {{\n  {installation}\n}}\n"),
    );
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
    let v = &wd.tf.version;
    assert!(run.success, "terraform {v} init from {how}:\n{}", run.all());
    let installed = format!("Installing vsphereipam/vsphereipam v{}", dist::VERSION);
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
        lock.contains("provider \"registry.terraform.io/vsphereipam/vsphereipam\"")
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
