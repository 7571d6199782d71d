//! `vsphereipam-dist OUT PLATFORM=BINARY...`: packages built provider binaries into a release
//! directory (zips, SHA256SUMS, manifest, mirror tree; see the library's doc). `make release`
//! runs it on the linux_amd64 and linux_arm64 release builds, `make demo` on the debug build.
//!
//! With `VSPHEREIPAM_GPG_KEY` set (a key gpg knows: fingerprint, key id or e-mail; `GNUPGHOME`
//! picks another keyring), it also signs the SHA256SUMS and writes the registry tree. Without
//! it the release is unsigned: fine for mirrors, refused by Terraform from a registry.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: vsphereipam-dist OUT_DIR PLATFORM=BINARY... \
                     (e.g. dist linux_amd64=target/release/terraform-provider-vsphereipam)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((out, pairs)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let mut binaries: Vec<(&str, PathBuf)> = Vec::new();
    for pair in pairs {
        let Some((platform, binary)) = pair.split_once('=') else {
            eprintln!("{pair:?} is not PLATFORM=BINARY\n{USAGE}");
            return ExitCode::from(2);
        };
        binaries.push((platform, PathBuf::from(binary)));
    }
    if binaries.is_empty() {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let refs: Vec<(&str, &Path)> = binaries.iter().map(|(p, b)| (*p, b.as_path())).collect();
    let out = Path::new(out);
    let result = std::fs::create_dir_all(out)
        .and_then(|()| vsphereipam_dist::write_release(out, vsphereipam_dist::VERSION, &refs))
        .and_then(|release| {
            let key = std::env::var("VSPHEREIPAM_GPG_KEY").unwrap_or_default();
            let registry = if key.is_empty() {
                None
            } else {
                let signer = vsphereipam_dist::Signer {
                    key,
                    gnupg_home: None,
                };
                Some(vsphereipam_dist::sign_release(
                    out,
                    &release.version,
                    &signer,
                )?)
            };
            Ok((release, registry))
        });
    match result {
        Ok((release, registry)) => {
            for p in &release.packages {
                println!("{}  {}  {}", p.zip.display(), p.h1, p.zh);
            }
            println!("{}", release.sums.display());
            println!("{}", release.manifest.display());
            println!("mirror: {}", release.mirror.display());
            match registry {
                Some(r) => {
                    println!("{}", r.signature.display());
                    println!("registry: {} (key {})", r.root.display(), r.key.key_id);
                }
                None => eprintln!(
                    "vsphereipam-dist: SHA256SUMS not signed and no registry/ written: \
                     set VSPHEREIPAM_GPG_KEY to a gpg key to publish to a provider registry"
                ),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vsphereipam-dist: {e}");
            ExitCode::FAILURE
        }
    }
}
