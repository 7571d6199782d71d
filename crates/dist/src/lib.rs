//! A release of terraform-provider-vsphereipam: its name, version and plugin protocol versions,
//! and the files that a provider registry and Terraform's two kinds of mirror serve.
//!
//! `make release` runs the `vsphereipam-dist` binary on the cross-built binaries; the install
//! tests (`tests/install.rs`) and `make demo` package the debug binary through the same
//! functions, so what Terraform installs there is what a release ships.
//!
//! What [`write_release`] puts under its output directory, for version V:
//!
//! ```text
//! terraform-provider-vsphereipam_V_linux_amd64.zip     one executable, mode 0755
//! terraform-provider-vsphereipam_V_manifest.json       {"version":1,"metadata":{"protocol_versions":[...]}}
//! terraform-provider-vsphereipam_V_SHA256SUMS          every zip and the manifest
//! mirror/registry.terraform.io/vsphereipam/vsphereipam/
//!     index.json                                       network mirror: the versions
//!     V.json                                           network mirror: zips with h1: and zh: hashes
//!     terraform-provider-vsphereipam_V_linux_amd64.zip filesystem mirror (packed layout) and
//!                                                      the network mirror's download
//! ```
//!
//! One `mirror/` tree serves both kinds: a filesystem mirror reads only the zips of the packed
//! layout, and the JSON files make the same tree a network mirror when a web server serves it.
//!
//! With a [`Signer`] (a GnuPG key), the release also holds what a provider registry serves:
//!
//! ```text
//! terraform-provider-vsphereipam_V_SHA256SUMS.sig      detached binary signature of the sums
//! registry/.well-known/terraform.json                  service discovery: providers.v1
//! registry/v1/providers/vsphereipam/vsphereipam/
//!     versions                                         the versions and their platforms
//!     V/download/<os>/<arch>                           one package: URLs, shasum, public key
//!     V/<zips>, V/<SHA256SUMS>, V/<SHA256SUMS.sig>     what those documents point at
//! ```
//!
//! `registry/` is the provider registry protocol as static files, so any HTTPS server can
//! serve it (the documents' URLs are relative to them). Terraform writes the `zh:` hash of
//! every zip into the lock file only when it installs from a registry whose SHA256SUMS carries
//! a signature by one of the keys the download document lists; from a mirror it records just
//! the `h1:` hash it computes for the platform it installed.

use std::collections::BTreeMap;
use std::io::{self, Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The plugin's file name prefix, which Terraform requires (`terraform-provider-<type>`).
pub const NAME: &str = "terraform-provider-vsphereipam";
/// The version from Cargo.toml (the workspace's `package.version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Plugin protocol versions the binary serves, written as the registry manifest writes them.
pub const PROTOCOL_VERSIONS: &[&str] = &["6.0"];
/// `source = "vsphereipam/vsphereipam"` is short for this host, namespace and type.
pub const HOSTNAME: &str = "registry.terraform.io";
pub const NAMESPACE: &str = "vsphereipam";
pub const TYPE: &str = "vsphereipam";

/// What `terraform-provider-vsphereipam --version` prints after the program name.
pub fn version_text() -> String {
    format!(
        "{VERSION}\nplugin protocol versions: {}",
        PROTOCOL_VERSIONS.join(", ")
    )
}

pub fn zip_name(version: &str, platform: &str) -> String {
    format!("{NAME}_{version}_{platform}.zip")
}

pub fn sums_name(version: &str) -> String {
    format!("{NAME}_{version}_SHA256SUMS")
}

pub fn manifest_name(version: &str) -> String {
    format!("{NAME}_{version}_manifest.json")
}

/// The executable inside a package; Terraform runs the file whose name starts with
/// `terraform-provider-<type>`, and the version suffix is HashiCorp's convention.
pub fn executable_name(version: &str) -> String {
    format!("{NAME}_v{version}")
}

/// The registry manifest (HashiCorp's `terraform-registry-manifest.json` format).
pub fn manifest_json() -> String {
    let manifest = json!({ "version": 1, "metadata": { "protocol_versions": PROTOCOL_VERSIONS } });
    format!(
        "{}\n",
        serde_json::to_string_pretty(&manifest).expect("plain JSON")
    )
}

/// A platform as Terraform names it: `<os>_<arch>`, e.g. `linux_arm64`.
pub fn check_platform(platform: &str) -> io::Result<()> {
    let ok = platform.split_once('_').is_some_and(|(os, arch)| {
        [os, arch].iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
    });
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("platform {platform:?} is not <os>_<arch>, e.g. linux_amd64"),
        ))
    }
}

/// The zip of one platform: the executable alone, mode 0755, with a fixed timestamp so the
/// same binary always gives the same zip (and the same `zh:` hash).
pub fn package(binary: &[u8], version: &str) -> io::Result<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755)
        .last_modified_time(zip::DateTime::default());
    zip.start_file(executable_name(version), options)
        .map_err(io::Error::other)?;
    zip.write_all(binary)?;
    Ok(zip.finish().map_err(io::Error::other)?.into_inner())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Terraform's legacy hash of a zip: SHA-256 of the archive file.
pub fn zh_hash(zip: &[u8]) -> String {
    format!("zh:{}", sha256_hex(zip))
}

/// Terraform's `h1:` hash of a package: SHA-256 over the sorted lines
/// `<sha256 of file>  <path>` of the files it unpacks to (Go's dirhash Hash1), so it is the
/// hash Terraform computes from an installed provider and writes into the lock file.
pub fn h1_hash(zip: &[u8]) -> io::Result<String> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).map_err(io::Error::other)?;
    let mut files = BTreeMap::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(io::Error::other)?;
        if !entry.is_file() {
            continue;
        }
        let name = entry.name().to_string();
        if name.contains('\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a file name in the zip holds a newline",
            ));
        }
        let mut content = Vec::new();
        entry.read_to_end(&mut content)?;
        files.insert(name, sha256_hex(&content));
    }
    let summary: String = files
        .iter()
        .map(|(name, sum)| format!("{sum}  {name}\n"))
        .collect();
    let digest = Sha256::digest(summary.as_bytes());
    Ok(format!(
        "h1:{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    ))
}

/// One platform's package as written.
#[derive(Debug, Clone)]
pub struct Package {
    pub platform: String,
    pub zip: PathBuf,
    pub h1: String,
    pub zh: String,
}

/// What [`write_release`] wrote.
#[derive(Debug, Clone)]
pub struct Release {
    pub version: String,
    pub packages: Vec<Package>,
    pub sums: PathBuf,
    pub manifest: PathBuf,
    /// The root to name as `filesystem_mirror { path }`, or to serve as `network_mirror { url }`.
    pub mirror: PathBuf,
}

/// The directory under a mirror root that holds this provider's files.
pub fn mirror_dir(mirror_root: &Path) -> PathBuf {
    mirror_root.join(HOSTNAME).join(NAMESPACE).join(TYPE)
}

/// Packages each `(platform, binary)` and writes the release files and the mirror tree under
/// `out` (layout in the module doc). Versions and platforms already in `out` stay listed, so
/// platforms can be added in separate runs and a mirror can hold several versions.
pub fn write_release(out: &Path, version: &str, binaries: &[(&str, &Path)]) -> io::Result<Release> {
    let mirror = out.join("mirror");
    let dir = mirror_dir(&mirror);
    std::fs::create_dir_all(&dir)?;
    let mut packages = Vec::new();
    let mut archives = Map::new();
    for (platform, binary) in binaries {
        check_platform(platform)?;
        let bytes = std::fs::read(binary)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", binary.display())))?;
        let zip = package(&bytes, version)?;
        let name = zip_name(version, platform);
        std::fs::write(out.join(&name), &zip)?;
        std::fs::write(dir.join(&name), &zip)?;
        let (h1, zh) = (h1_hash(&zip)?, zh_hash(&zip));
        archives.insert(
            platform.to_string(),
            json!({ "url": name, "hashes": [h1, zh] }),
        );
        packages.push(Package {
            platform: platform.to_string(),
            zip: out.join(&name),
            h1,
            zh,
        });
    }

    let manifest = out.join(manifest_name(version));
    std::fs::write(&manifest, manifest_json())?;

    // The sums cover every zip of this version in `out`, earlier runs' included.
    let prefix = format!("{NAME}_{version}_");
    let mut sums = BTreeMap::new();
    for entry in std::fs::read_dir(out)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(".zip") || name == manifest_name(version) {
            sums.insert(name.clone(), sha256_hex(&std::fs::read(out.join(&name))?));
        }
    }
    let sums_path = out.join(sums_name(version));
    let lines: String = sums
        .iter()
        .map(|(name, sum)| format!("{sum}  {name}\n"))
        .collect();
    std::fs::write(&sums_path, lines)?;

    merge_json(&dir.join(format!("{version}.json")), "archives", archives)?;
    let mut versions = Map::new();
    versions.insert(version.to_string(), json!({}));
    merge_json(&dir.join("index.json"), "versions", versions)?;

    Ok(Release {
        version: version.to_string(),
        packages,
        sums: sums_path,
        manifest,
        mirror,
    })
}

/// Writes `{ key: entries }` to `path`, keeping the entries an existing file has under `key`
/// that `entries` does not replace.
fn merge_json(path: &Path, key: &str, entries: Map<String, Value>) -> io::Result<()> {
    let mut merged = match std::fs::read(path) {
        Ok(old) => serde_json::from_slice::<Value>(&old)
            .ok()
            .and_then(|v| v.get(key).and_then(Value::as_object).cloned())
            .unwrap_or_default(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Map::new(),
        Err(e) => return Err(e),
    };
    merged.extend(entries);
    let mut doc = Map::new();
    doc.insert(key.to_string(), Value::Object(merged));
    let text = serde_json::to_string_pretty(&Value::Object(doc)).expect("plain JSON");
    std::fs::write(path, format!("{text}\n"))
}

/// A GnuPG key that signs releases: anything `gpg --local-user` takes (fingerprint, key id,
/// e-mail), from the default GnuPG home or `gnupg_home`. Signing runs Debian's `gpg`, so the
/// key never passes through this program.
#[derive(Debug, Clone)]
pub struct Signer {
    pub key: String,
    pub gnupg_home: Option<PathBuf>,
}

/// A public key as the registry's download document lists it.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// The long key id, upper-case hex, as HashiCorp's registry writes it.
    pub key_id: String,
    pub ascii_armor: String,
}

impl Signer {
    fn gpg(&self) -> Command {
        let mut cmd = Command::new("gpg");
        cmd.args(["--batch", "--no-tty", "--quiet"]);
        if let Some(home) = &self.gnupg_home {
            cmd.arg("--homedir").arg(home);
        }
        cmd
    }

    fn run(&self, what: &str, cmd: &mut Command) -> io::Result<Vec<u8>> {
        let out = cmd.output().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{what}: cannot run gpg ({e}); install Debian's gpg"),
            )
        })?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(io::Error::other(format!(
                "{what} with key {:?}: gpg {}: {}",
                self.key,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// Writes `file`'s detached binary signature to `signature`.
    pub fn sign(&self, file: &Path, signature: &Path) -> io::Result<()> {
        self.run(
            "signing",
            self.gpg()
                .args([
                    "--yes",
                    "--detach-sign",
                    "--local-user",
                    &self.key,
                    "--output",
                ])
                .arg(signature)
                .arg(file),
        )
        .map(drop)
    }

    /// The signing key's public half.
    pub fn public_key(&self) -> io::Result<PublicKey> {
        let armor = self.run(
            "exporting the public key",
            self.gpg()
                .args(["--armor", "--export-options", "export-minimal", "--export"])
                .arg(&self.key),
        )?;
        let ascii_armor = String::from_utf8(armor).map_err(io::Error::other)?;
        if !ascii_armor.contains("BEGIN PGP PUBLIC KEY BLOCK") {
            return Err(io::Error::other(format!(
                "gpg knows no public key {:?}",
                self.key
            )));
        }
        let listing = self.run(
            "reading the key id",
            self.gpg()
                .args(["--with-colons", "--list-keys"])
                .arg(&self.key),
        )?;
        // `pub:<validity>:<length>:<algorithm>:<long key id>:...`
        let key_id = String::from_utf8_lossy(&listing)
            .lines()
            .find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.first() == Some(&"pub") && fields.len() > 4)
                    .then(|| fields[4].to_ascii_uppercase())
            })
            .ok_or_else(|| io::Error::other(format!("gpg lists no key {:?}", self.key)))?;
        Ok(PublicKey {
            key_id,
            ascii_armor,
        })
    }
}

impl Signer {
    /// A new passphrase-less RSA signing key in `gnupg_home` (created 0700): for tests and for
    /// trying a registry out. A real release key lives in its owner's keyring instead.
    pub fn throwaway(gnupg_home: &Path, user_id: &str) -> io::Result<Signer> {
        std::fs::create_dir_all(gnupg_home)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(gnupg_home, std::fs::Permissions::from_mode(0o700))?;
        }
        let signer = Signer {
            key: user_id.to_string(),
            gnupg_home: Some(gnupg_home.to_path_buf()),
        };
        // RSA: the OpenPGP library of Terraform 1.0.x reads no newer key types.
        signer.run(
            "generating a key",
            signer.gpg().args([
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--quick-generate-key",
                user_id,
                "rsa3072",
                "sign",
                "never",
            ]),
        )?;
        Ok(signer)
    }

    /// Stops the gpg-agent that signing started for a `gnupg_home` (a throwaway home would
    /// otherwise leave it running).
    pub fn stop_agent(&self) {
        if let Some(home) = &self.gnupg_home {
            let _ = Command::new("gpgconf")
                .arg("--homedir")
                .arg(home)
                .args(["--kill", "gpg-agent"])
                .output();
        }
    }
}

/// The detached signature of a version's SHA256SUMS.
pub fn signature_name(version: &str) -> String {
    format!("{}.sig", sums_name(version))
}

/// What [`sign_release`] wrote.
#[derive(Debug, Clone)]
pub struct Registry {
    /// The root to serve over HTTPS as the registry's host (or below the URL a CLI
    /// configuration's `host` block names for `providers.v1`, minus `v1/providers/`).
    pub root: PathBuf,
    pub signature: PathBuf,
    pub key: PublicKey,
}

/// The directory under a registry root that the `providers.v1` service URL points at.
pub const PROVIDERS_V1: &str = "v1/providers";

/// Signs the SHA256SUMS of `version` in `out` (written by [`write_release`]) and writes the
/// registry tree (layout in the module doc) for every platform of that version in `out`.
/// Other versions already in the tree stay listed.
pub fn sign_release(out: &Path, version: &str, signer: &Signer) -> io::Result<Registry> {
    let sums = out.join(sums_name(version));
    if !sums.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{}: write the release first", sums.display()),
        ));
    }
    let signature = out.join(signature_name(version));
    signer.sign(&sums, &signature)?;
    let key = signer.public_key()?;

    let root = out.join("registry");
    let wellknown = root.join(".well-known");
    std::fs::create_dir_all(&wellknown)?;
    std::fs::write(
        wellknown.join("terraform.json"),
        format!(
            "{}\n",
            json!({ "providers.v1": format!("/{PROVIDERS_V1}/") })
        ),
    )?;
    let provider = root.join(PROVIDERS_V1).join(NAMESPACE).join(TYPE);
    let files = provider.join(version);
    std::fs::create_dir_all(&files)?;
    for name in [sums_name(version), signature_name(version)] {
        std::fs::copy(out.join(&name), files.join(&name))?;
    }

    let prefix = format!("{NAME}_{version}_");
    let mut platforms = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(out)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        let Some(platform) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".zip"))
        else {
            continue;
        };
        check_platform(platform)?;
        let (os, arch) = platform.split_once('_').expect("checked");
        let zip = std::fs::read(out.join(&name))?;
        std::fs::write(files.join(&name), &zip)?;
        // The document sits at <version>/download/<os>/<arch>; its URLs go back up to
        // <version>/, and Terraform resolves them against the document's own URL.
        let download = json!({
            "protocols": PROTOCOL_VERSIONS,
            "os": os,
            "arch": arch,
            "filename": name,
            "download_url": format!("../../{name}"),
            "shasums_url": format!("../../{}", sums_name(version)),
            "shasums_signature_url": format!("../../{}", signature_name(version)),
            "shasum": sha256_hex(&zip),
            "signing_keys": { "gpg_public_keys": [{
                "key_id": key.key_id,
                "ascii_armor": key.ascii_armor,
                "trust_signature": "",
                "source": "",
                "source_url": null,
            }]},
        });
        let dir = files.join("download").join(os);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(arch), pretty(&download))?;
        platforms.push(json!({ "os": os, "arch": arch }));
    }

    // `versions`: this version replaces its earlier entry, the others stay.
    let path = provider.join("versions");
    let mut versions: Vec<Value> = match std::fs::read(&path) {
        Ok(old) => serde_json::from_slice::<Value>(&old)
            .ok()
            .and_then(|v| v.get("versions").and_then(Value::as_array).cloned())
            .unwrap_or_default(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    versions.retain(|v| v.get("version").and_then(Value::as_str) != Some(version));
    versions.push(json!({
        "version": version,
        "protocols": PROTOCOL_VERSIONS,
        "platforms": platforms,
    }));
    std::fs::write(&path, pretty(&json!({ "versions": versions })))?;

    Ok(Registry {
        root,
        signature,
        key,
    })
}

fn pretty(value: &Value) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(value).expect("plain JSON")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_is_reproducible_and_executable() {
        let a = package(b"#!/bin/sh\necho hi\n", "1.2.3").unwrap();
        let b = package(b"#!/bin/sh\necho hi\n", "1.2.3").unwrap();
        assert_eq!(a, b);
        let mut archive = zip::ZipArchive::new(Cursor::new(&a)).unwrap();
        assert_eq!(archive.len(), 1);
        let entry = archive.by_index(0).unwrap();
        assert_eq!(entry.name(), "terraform-provider-vsphereipam_v1.2.3");
        assert_eq!(entry.unix_mode().map(|m| m & 0o777), Some(0o755));
    }

    #[test]
    fn h1_is_go_dirhash_of_the_unpacked_files() {
        // Worked by hand: one file "a" holding "x".
        let zip = {
            let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
            zip.start_file("a", zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(b"x").unwrap();
            zip.finish().unwrap().into_inner()
        };
        let line = format!("{}  a\n", sha256_hex(b"x"));
        let want = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(line));
        assert_eq!(h1_hash(&zip).unwrap(), format!("h1:{want}"));
        assert_eq!(zh_hash(&zip), format!("zh:{}", sha256_hex(&zip)));
    }

    #[test]
    fn platforms_are_os_underscore_arch() {
        assert!(check_platform("linux_amd64").is_ok());
        assert!(check_platform("linux_arm64").is_ok());
        for bad in [
            "linux",
            "linux_",
            "_amd64",
            "Linux_amd64",
            "linux-amd64",
            "a_b/c",
        ] {
            assert!(check_platform(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_signed_release_is_a_static_registry_whose_urls_lead_to_its_files() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("dist");
        std::fs::create_dir_all(&out).unwrap();
        let bin = tmp.path().join("bin");
        std::fs::write(&bin, b"binary").unwrap();
        let signer = Signer::throwaway(&tmp.path().join("gnupg"), "dist unit test").unwrap();
        write_release(
            &out,
            "1.0.0",
            &[("linux_amd64", &bin), ("linux_arm64", &bin)],
        )
        .unwrap();
        sign_release(&out, "1.0.0", &signer).unwrap();
        write_release(&out, "1.1.0", &[("linux_amd64", &bin)]).unwrap();
        let registry = sign_release(&out, "1.1.0", &signer).unwrap();
        signer.stop_agent();

        let verify = signer
            .gpg()
            .arg("--verify")
            .arg(&registry.signature)
            .arg(out.join(sums_name("1.1.0")))
            .output()
            .unwrap();
        assert!(verify.status.success(), "{verify:?}");
        assert_eq!(registry.key.key_id.len(), 16);

        let read =
            |p: PathBuf| -> Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
        let discovery = read(registry.root.join(".well-known/terraform.json"));
        assert_eq!(discovery["providers.v1"], "/v1/providers/");
        let provider = registry.root.join(PROVIDERS_V1).join(NAMESPACE).join(TYPE);
        let versions = read(provider.join("versions"));
        let listed: Vec<(String, usize)> = versions["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let platforms = v["platforms"].as_array().unwrap().len();
                (v["version"].as_str().unwrap().to_string(), platforms)
            })
            .collect();
        assert_eq!(listed, [("1.0.0".to_string(), 2), ("1.1.0".to_string(), 1)]);

        let doc_dir = provider.join("1.0.0/download/linux");
        let doc = read(doc_dir.join("arm64"));
        assert_eq!(doc["os"], "linux");
        assert_eq!(doc["arch"], "arm64");
        for key in ["download_url", "shasums_url", "shasums_signature_url"] {
            // Relative to the document's URL, .../1.0.0/download/linux/arm64.
            let rel = doc[key].as_str().unwrap().strip_prefix("../../").unwrap();
            assert!(provider.join("1.0.0").join(rel).is_file(), "{key}: {rel}");
        }
        let zip = std::fs::read(
            provider
                .join("1.0.0")
                .join(doc["filename"].as_str().unwrap()),
        )
        .unwrap();
        assert_eq!(doc["shasum"], sha256_hex(&zip));
        assert!(doc["signing_keys"]["gpg_public_keys"][0]["ascii_armor"]
            .as_str()
            .unwrap()
            .contains("BEGIN PGP PUBLIC KEY BLOCK"));
    }

    #[test]
    fn a_second_run_adds_platforms_and_keeps_the_first() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        let bin = out.join("bin");
        std::fs::write(&bin, b"binary").unwrap();
        write_release(out, "1.0.0", &[("linux_amd64", &bin)]).unwrap();
        let second = write_release(out, "1.0.0", &[("linux_arm64", &bin)]).unwrap();
        let dir = mirror_dir(&second.mirror);
        let v: Value =
            serde_json::from_slice(&std::fs::read(dir.join("1.0.0.json")).unwrap()).unwrap();
        let platforms: Vec<_> = v["archives"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(platforms, ["linux_amd64", "linux_arm64"]);
        let sums = std::fs::read_to_string(&second.sums).unwrap();
        assert_eq!(sums.lines().count(), 3, "{sums}");
        assert!(sums.contains("_manifest.json"));
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(&second.manifest).unwrap()).unwrap();
        assert_eq!(manifest["metadata"]["protocol_versions"][0], "6.0");
    }
}
