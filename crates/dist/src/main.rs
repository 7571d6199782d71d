//! `vsphereipam-dist OUT PLATFORM=BINARY...`: packages built provider binaries into a release
//! directory (zips, SHA256SUMS, manifest, mirror tree; see the library's doc). `make release`
//! runs it on the linux_amd64 and linux_arm64 release builds, `make demo` on the debug build.

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
        .and_then(|()| vsphereipam_dist::write_release(out, vsphereipam_dist::VERSION, &refs));
    match result {
        Ok(release) => {
            for p in &release.packages {
                println!("{}  {}  {}", p.zip.display(), p.h1, p.zh);
            }
            println!("{}", release.sums.display());
            println!("{}", release.manifest.display());
            println!("mirror: {}", release.mirror.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vsphereipam-dist: {e}");
            ExitCode::FAILURE
        }
    }
}
