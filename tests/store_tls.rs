//! libpq's `sslmode` with the PostgreSQL store, against a cluster configured like Debian's
//! stock install (`ssl = on`, a self-signed snakeoil certificate; `scripts/postgres.sh
//! start-ssl`) and against the plain test cluster (ssl off).
//!
//! On the ssl cluster, database `tls_only` refuses plain connections and `plain_only` refuses
//! TLS, so whether a mode connected with TLS or without shows in which one it can open.

mod common;

use std::path::PathBuf;
use std::process::Command;

use vsphereipam::store::{Store, StoreError};

const PASSWORD: &str = "not-for-logs";

struct SslCluster {
    port: String,
    dir: PathBuf,
}

/// The ssl cluster, started once per process: the tests run on parallel threads, and two
/// `pg_ctl start`s at once on a stopped cluster fail the second ("lock file already exists").
fn ssl_cluster() -> &'static SslCluster {
    static CLUSTER: std::sync::OnceLock<SslCluster> = std::sync::OnceLock::new();
    CLUSTER.get_or_init(start_ssl_cluster)
}

fn start_ssl_cluster() -> SslCluster {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/postgres.sh");
    let out = Command::new(script)
        .arg("start-ssl")
        .env_remove("VSPHEREIPAM_TEST_PG_PORT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "postgres.sh start-ssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap();
    let port = url
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let tmp = std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into());
    SslCluster {
        port: port.to_string(),
        dir: PathBuf::from(tmp).join(format!("vsphereipam-pg-ssl-{port}")),
    }
}

impl SslCluster {
    fn url(&self, host: &str, db: &str, params: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@{host}:{}/{db}{params}",
            self.port
        )
    }
    fn cert(&self, name: &str) -> String {
        self.dir.join(format!("{name}.crt")).display().to_string()
    }
}

/// Opens the store, failing with the error text; checks the password never shows.
fn open(url: &str) -> Result<Store, String> {
    match Store::open(url) {
        Ok(store) => Ok(store),
        Err(e) => {
            let text = e.to_string();
            assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
            assert!(!text.contains(PASSWORD), "the password leaked: {text}");
            Err(text)
        }
    }
}

fn opens(url: &str) {
    let store = open(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    store.subnets(None).unwrap_or_else(|e| panic!("{url}: {e}"));
}

fn refused(url: &str) -> String {
    match open(url) {
        Ok(_) => panic!("{url} connected"),
        Err(e) => e,
    }
}

#[test]
fn each_sslmode_against_a_server_with_a_self_signed_certificate() {
    let c = ssl_cluster();
    let local = "127.0.0.1";
    let snakeoil = c.cert("snakeoil");
    let other = c.cert("other");

    // disable: plain only.
    opens(&c.url(local, "plain_only", "?sslmode=disable"));
    let e = refused(&c.url(local, "tls_only", "?sslmode=disable"));
    assert!(e.contains("no encryption"), "{e}");

    // allow: plain first, TLS when plain is refused.
    opens(&c.url(local, "plain_only", "?sslmode=allow"));
    opens(&c.url(local, "tls_only", "?sslmode=allow"));

    // prefer, and no sslmode at all (libpq's default): TLS without checking the self-signed
    // certificate; plain text when TLS is refused.
    for params in ["?sslmode=prefer", ""] {
        opens(&c.url(local, "tls_only", params));
        opens(&c.url(local, "plain_only", params));
    }

    // require: TLS, certificate not checked...
    opens(&c.url(local, "tls_only", "?sslmode=require"));
    let e = refused(&c.url(local, "plain_only", "?sslmode=require"));
    assert!(
        e.contains("rejects connection") || e.contains("reject"),
        "{e}"
    );
    // ...unless a root certificate is given: then checked as with verify-ca.
    opens(&c.url(
        local,
        "tls_only",
        &format!("?sslmode=require&sslrootcert={snakeoil}"),
    ));
    let e = refused(&c.url(
        local,
        "tls_only",
        &format!("?sslmode=require&sslrootcert={other}"),
    ));
    assert!(e.contains("sslrootcert"), "names the setting to fix: {e}");
    // prefer with a root certificate that does not match: TLS fails, plain text is tried.
    let e = refused(&c.url(local, "tls_only", &format!("?sslrootcert={other}")));
    assert!(e.contains("with TLS") && e.contains("sslrootcert"), "{e}");

    // verify-ca: the chain, not the host name (127.0.0.1 is not in the certificate).
    opens(&c.url(
        local,
        "tls_only",
        &format!("?sslmode=verify-ca&sslrootcert={snakeoil}"),
    ));
    let e = refused(&c.url(
        local,
        "tls_only",
        &format!("?sslmode=verify-ca&sslrootcert={other}"),
    ));
    assert!(e.contains("sslrootcert"), "{e}");
    let e = refused(&c.url(local, "tls_only", "?sslmode=verify-ca"));
    assert!(e.contains("sslrootcert"), "verify-ca needs a root: {e}");

    // verify-full: the chain and the host name.
    opens(&c.url(
        "localhost",
        "tls_only",
        &format!("?sslmode=verify-full&sslrootcert={snakeoil}"),
    ));
    let e = refused(&c.url(
        local,
        "tls_only",
        &format!("?sslmode=verify-full&sslrootcert={snakeoil}"),
    ));
    assert!(e.contains("does not name the host"), "{e}");
    assert!(e.contains("verify-ca"), "says what to change: {e}");
    let e = refused(&c.url(
        "localhost",
        "tls_only",
        &format!("?sslmode=verify-full&sslrootcert={other}"),
    ));
    assert!(e.contains("sslrootcert"), "{e}");

    // The key=value form, as psql takes it; the host name is checked, hostaddr connected to.
    let dsn = |host: &str, mode: &str| {
        format!(
            "host={host} hostaddr=127.0.0.1 port={} user=postgres password='{PASSWORD}' \
             dbname=tls_only sslmode={mode} sslrootcert='{snakeoil}'",
            c.port
        )
    };
    opens(&dsn("localhost", "verify-full"));
    let e = refused(&dsn("db.example", "verify-full"));
    assert!(e.contains("does not name the host"), "{e}");
    opens(&dsn("db.example", "verify-ca"));
}

#[test]
fn each_sslmode_against_a_server_without_tls() {
    let url =
        common::pg::fresh_database().replacen("postgres@", &format!("postgres:{PASSWORD}@"), 1);
    let ssl = ssl_cluster();
    for mode in ["disable", "allow", "prefer"] {
        opens(&format!("{url}?sslmode={mode}"));
    }
    opens(&url);
    for params in [
        "?sslmode=require".to_string(),
        format!("?sslmode=verify-ca&sslrootcert={}", ssl.cert("snakeoil")),
        format!("?sslmode=verify-full&sslrootcert={}", ssl.cert("snakeoil")),
    ] {
        let e = refused(&format!("{url}{params}"));
        assert!(
            e.contains("does not support TLS") && e.contains("sslmode"),
            "{params}: {e}"
        );
    }
}
