//! PostgreSQL for the tests: `VSPHEREIPAM_TEST_POSTGRES` (an admin URL) when set, otherwise the
//! throwaway cluster `scripts/postgres.sh` starts. Every test gets a database of its own.

use std::sync::OnceLock;

/// The admin URL, the cluster started on first use. A missing PostgreSQL fails the test.
pub fn admin_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("VSPHEREIPAM_TEST_POSTGRES") {
            return url;
        }
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres.sh");
        let out = std::process::Command::new(&script)
            .arg("start")
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
        assert!(
            out.status.success(),
            "cannot start PostgreSQL for the tests: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    })
    .clone()
}

/// A new, empty database; returns its URL.
pub fn fresh_database() -> String {
    let admin = admin_url();
    let name = format!("t_{}", uuid_like());
    // On a thread of its own: the sync client must not run inside a test's async runtime.
    let sql = format!("CREATE DATABASE {name}");
    let admin_for_thread = admin.clone();
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&admin_for_thread, postgres::NoTls)
            .expect("connect to the test PostgreSQL");
        client.batch_execute(&sql).expect("create test database");
    })
    .join()
    .unwrap();
    match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("admin URL without a database: {admin}"),
    }
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}_{:x}", std::process::id(), nanos)
}
