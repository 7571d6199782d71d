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

use std::collections::BTreeMap;
use std::io::{self, Cursor, Read, Write};
use std::path::{Path, PathBuf};

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
