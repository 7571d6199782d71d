//! How the PostgreSQL store connects, with libpq's meaning: the URL (`postgres://…`) and the
//! key=value (`host=… dbname=…`) forms, and `sslmode` with `sslrootcert`.
//!
//! tokio-postgres parses both forms but knows only three TLS modes (disable, prefer, require)
//! and never verifies by itself; libpq's six modes and its rules on root certificates are
//! implemented here, on rustls:
//!
//! - `disable`: plain only. `allow`: plain first, TLS if that fails. `prefer` (the default):
//!   TLS when the server offers it, else plain, and plain again if the TLS attempt fails.
//!   `require`: TLS only. None of these check the certificate unless a root certificate is
//!   there (`sslrootcert`, or `~/.postgresql/root.crt`), in which case its chain is checked as
//!   with `verify-ca` — libpq does the same.
//! - `verify-ca`: TLS, the certificate chain must end at `sslrootcert`. `verify-full`: the
//!   same, and the certificate must name the host connected to. Both need a root certificate.
//! - `sslrootcert=system`: the machine's trusted roots; only with `verify-full` (libpq 16).
//!
//! Errors never contain the connection string: it may hold a password.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::Host;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "invalid sslmode {other:?}: use disable, allow, prefer, require, verify-ca \
                     or verify-full"
                ))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// Nothing given and no `~/.postgresql/root.crt`: certificates are not checked.
    None,
    File(PathBuf),
    /// `sslrootcert=system`: the machine's trust store.
    System,
}

/// A parsed connection string: tokio-postgres' config (TLS mode set per attempt) and the TLS
/// settings it cannot hold.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub config: tokio_postgres::Config,
    pub sslmode: SslMode,
    pub rootcert: RootCert,
}

/// True when `s` is a PostgreSQL connection string: a `postgres://` / `postgresql://` URL or
/// the key=value form (`host=db dbname=ipam`).
pub fn is_postgres(s: &str) -> bool {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        return true;
    }
    let s = s.trim_start();
    let key: String = s
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    !key.is_empty() && s[key.len()..].trim_start().starts_with('=')
}

/// Parses a connection string as libpq does (see the module doc). `home` is the user's home
/// directory, where libpq looks for `.postgresql/root.crt`.
pub fn parse(conninfo: &str, home: Option<&std::path::Path>) -> Result<ConnInfo, String> {
    let (rest, sslmode, rootcert) =
        if conninfo.starts_with("postgres://") || conninfo.starts_with("postgresql://") {
            split_url(conninfo)?
        } else {
            split_keywords(conninfo)?
        };
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|e| format!("invalid PostgreSQL connection string: {e}"))?;
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        // libpq's default: the local server's socket directory (Debian's, else upstream's).
        let dir = ["/var/run/postgresql", "/tmp"]
            .into_iter()
            .find(|d| std::path::Path::new(d).is_dir())
            .unwrap_or("/tmp");
        config.host_path(dir);
    }
    if config.get_user().is_none() {
        // libpq's default: the operating system user.
        if let Some(user) = std::env::var("USER")
            .ok()
            .or_else(|| std::env::var("LOGNAME").ok())
        {
            config.user(user);
        }
    }
    let rootcert = match rootcert.as_deref() {
        Some("system") => RootCert::System,
        Some(path) => RootCert::File(PathBuf::from(path)),
        None => match home.map(|h| h.join(".postgresql/root.crt")) {
            Some(default) if default.is_file() => RootCert::File(default),
            _ => RootCert::None,
        },
    };
    let sslmode = match sslmode.as_deref() {
        Some(s) => SslMode::parse(s)?,
        // libpq 16: with the system's roots, anything less than verify-full is meaningless.
        None if rootcert == RootCert::System => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    if rootcert == RootCert::System && sslmode != SslMode::VerifyFull {
        return Err(format!(
            "sslrootcert=system needs sslmode=verify-full (not {}): anyone can get a \
             certificate the system trusts for a host name they control",
            sslmode.as_str()
        ));
    }
    if matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) && rootcert == RootCert::None {
        return Err(format!(
            "sslmode={} needs the certificate of the CA that signed the server's: set \
             sslrootcert to its file (or sslrootcert=system with verify-full), or choose an \
             sslmode that does not verify the server (require)",
            sslmode.as_str()
        ));
    }
    Ok(ConnInfo {
        config,
        sslmode,
        rootcert,
    })
}

type Split = (String, Option<String>, Option<String>);

/// The URL without `sslmode` and `sslrootcert`, and their (percent-decoded) values.
fn split_url(url: &str) -> Result<Split, String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), None, None));
    };
    let (mut sslmode, mut rootcert) = (None, None);
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = || {
            percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| format!("the value of {key} is not valid UTF-8"))
        };
        match key {
            "sslmode" => sslmode = Some(decoded()?),
            "sslrootcert" => rootcert = Some(decoded()?),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, sslmode, rootcert))
}

/// The key=value string without `sslmode` and `sslrootcert` (libpq's quoting: single quotes,
/// backslash escapes), and their values.
fn split_keywords(s: &str) -> Result<Split, String> {
    let (mut sslmode, mut rootcert) = (None, None);
    let mut kept = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!(
                "invalid PostgreSQL connection string: {key:?} is not followed by \"=\""
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(format!(
                            "invalid PostgreSQL connection string: the value of {key} lacks \
                             its closing quote"
                        ))
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        match key.as_str() {
            "sslmode" => sslmode = Some(value),
            "sslrootcert" => rootcert = Some(value),
            _ => kept.push(format!(
                "{key}='{}'",
                value.replace('\\', "\\\\").replace('\'', "\\'")
            )),
        }
    }
    Ok((kept.join(" "), sslmode, rootcert))
}

impl ConnInfo {
    /// The store as logs and errors name it: the password masked, no option.
    pub fn describe(&self) -> String {
        let user = self.config.get_user().unwrap_or("");
        let secret = if self.config.get_password().is_some() {
            ":***"
        } else {
            ""
        };
        let hosts: Vec<String> = if self.config.get_hosts().is_empty() {
            self.config
                .get_hostaddrs()
                .iter()
                .map(|a| a.to_string())
                .collect()
        } else {
            self.config
                .get_hosts()
                .iter()
                .map(|h| match h {
                    Host::Tcp(name) => name.clone(),
                    Host::Unix(path) => path.display().to_string(),
                })
                .collect()
        };
        let port = self
            .config
            .get_ports()
            .first()
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        let db = self.config.get_dbname().unwrap_or(user);
        format!("postgres://{user}{secret}@{}{port}/{db}", hosts.join(","))
    }

    /// Only Unix-domain sockets: libpq uses no TLS on them.
    pub fn local_only(&self) -> bool {
        self.config.get_hostaddrs().is_empty()
            && self
                .config
                .get_hosts()
                .iter()
                .all(|h| matches!(h, Host::Unix(_)))
    }

    /// The rustls configuration for this sslmode and root certificate.
    pub fn tls(&self) -> Result<rustls::ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = match &self.rootcert {
            RootCert::None => None,
            RootCert::File(path) => {
                let mut roots = RootCertStore::empty();
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        format!(
                            "cannot read sslrootcert {}: {e}; set sslrootcert to a PEM file of \
                             the CA certificate that signed the server's",
                            path.display()
                        )
                    })?;
                for cert in certs {
                    roots.add(cert).map_err(|e| {
                        format!(
                            "sslrootcert {} holds a certificate rustls cannot use: {e}",
                            path.display()
                        )
                    })?;
                }
                if roots.is_empty() {
                    return Err(format!(
                        "sslrootcert {} holds no certificate; set it to a PEM file of the CA \
                         certificate that signed the server's",
                        path.display()
                    ));
                }
                Some(roots)
            }
            RootCert::System => {
                let mut roots = RootCertStore::empty();
                for cert in rustls_native_certs::load_native_certs().certs {
                    // One the platform holds but rustls cannot parse is skipped, as browsers do.
                    let _ = roots.add(cert);
                }
                Some(roots)
            }
        };
        let verifier = Verifier {
            roots: roots.map(Arc::new),
            check_name: self.sslmode == SslMode::VerifyFull,
            provider: provider.clone(),
        };
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth())
    }
}

/// libpq's certificate checks: the chain when there are roots, the host name for
/// verify-full; the handshake signatures always (TLS without them would not be TLS).
#[derive(Debug)]
struct Verifier {
    roots: Option<Arc<RootCertStore>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
            if self.check_name {
                rustls::client::verify_server_name(&cert, server_name)?;
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What to tell the user when a TLS handshake failed: which setting to change.
pub fn tls_hint(error: &(dyn std::error::Error + 'static), info: &ConnInfo) -> Option<String> {
    let rustls_error = chain(error).find_map(|e| {
        e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        })
    })?;
    let root = match &info.rootcert {
        RootCert::File(p) => format!("sslrootcert {}", p.display()),
        RootCert::System => "the system's trusted roots (sslrootcert=system)".to_string(),
        RootCert::None => "no root certificate".to_string(),
    };
    use rustls::CertificateError as C;
    Some(match rustls_error {
        rustls::Error::InvalidCertificate(C::NotValidForName)
        | rustls::Error::InvalidCertificate(C::NotValidForNameContext { .. }) => format!(
            "the server's certificate does not name the host connected to (sslmode={}): \
             connect with a host name the certificate lists, or use sslmode=verify-ca to check \
             only that a trusted CA signed it",
            info.sslmode.as_str()
        ),
        rustls::Error::InvalidCertificate(e) => format!(
            "the server's certificate was refused ({e:?}) when checked against {root} \
             (sslmode={}): set sslrootcert to the file of the CA certificate that signed the \
             server's",
            info.sslmode.as_str()
        ),
        other => format!(
            "TLS with the server failed ({other}); check sslmode (now {})",
            info.sslmode.as_str()
        ),
    })
}

/// `error` and its sources.
pub fn chain<'e>(
    error: &'e (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'e (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |e| e.source())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(s: &str) -> ConnInfo {
        parse(s, None).unwrap()
    }

    #[test]
    fn url_and_keywords_give_the_same_settings() {
        let url = parsed("postgres://ipam:pw@db.example:5433/ipam?sslmode=verify-ca&sslrootcert=%2Fetc%2Fca.pem&application_name=x");
        let kv = parsed("host=db.example port=5433 user=ipam password='pw' dbname=ipam sslmode=verify-ca sslrootcert=/etc/ca.pem application_name=x");
        for c in [&url, &kv] {
            assert_eq!(c.sslmode, SslMode::VerifyCa);
            assert_eq!(c.rootcert, RootCert::File("/etc/ca.pem".into()));
            assert_eq!(c.config.get_user(), Some("ipam"));
            assert_eq!(c.config.get_password(), Some(&b"pw"[..]));
            assert_eq!(c.config.get_dbname(), Some("ipam"));
            assert_eq!(c.config.get_ports(), [5433]);
            assert_eq!(c.config.get_application_name(), Some("x"));
            assert_eq!(c.describe(), "postgres://ipam:***@db.example:5433/ipam");
        }
    }

    #[test]
    fn quoted_values_keep_spaces_quotes_and_backslashes() {
        let c = parsed(r"host = db dbname='my db' password='it\'s \\ secret' user=u");
        assert_eq!(c.config.get_dbname(), Some("my db"));
        assert_eq!(c.config.get_password(), Some(&br"it's \ secret"[..]));
        assert!(!c.describe().contains("secret"));
    }

    #[test]
    fn prefer_is_the_default_and_system_roots_mean_verify_full() {
        assert_eq!(parsed("postgres://u@h/db").sslmode, SslMode::Prefer);
        assert_eq!(parsed("host=h user=u").sslmode, SslMode::Prefer);
        let system = parsed("postgres://u@h/db?sslrootcert=system");
        assert_eq!(
            (system.sslmode, system.rootcert),
            (SslMode::VerifyFull, RootCert::System)
        );
        let err = parse("postgres://u@h/db?sslrootcert=system&sslmode=require", None).unwrap_err();
        assert!(err.contains("verify-full"), "{err}");
    }

    #[test]
    fn verification_needs_a_root_certificate() {
        for mode in ["verify-ca", "verify-full"] {
            let err = parse(&format!("postgres://u:pw@h/db?sslmode={mode}"), None).unwrap_err();
            assert!(err.contains("sslrootcert"), "{err}");
            assert!(!err.contains("pw"), "{err}");
        }
        let err = parse("postgres://u@h/db?sslmode=verify", None).unwrap_err();
        assert!(err.contains("invalid sslmode"), "{err}");
    }

    #[test]
    fn the_default_root_certificate_is_used_when_it_exists() {
        let home = tempfile::tempdir().unwrap();
        assert_eq!(
            parse("postgres://u@h/db", Some(home.path()))
                .unwrap()
                .rootcert,
            RootCert::None
        );
        std::fs::create_dir(home.path().join(".postgresql")).unwrap();
        std::fs::write(home.path().join(".postgresql/root.crt"), "").unwrap();
        assert_eq!(
            parse("postgres://u@h/db?sslmode=require", Some(home.path()))
                .unwrap()
                .rootcert,
            RootCert::File(home.path().join(".postgresql/root.crt"))
        );
    }

    #[test]
    fn recognizes_both_forms() {
        assert!(is_postgres("postgres://h/db"));
        assert!(is_postgres("postgresql://h/db"));
        assert!(is_postgres("host=h dbname=db"));
        assert!(is_postgres(" dbname = db"));
        assert!(!is_postgres("sqlite:///tmp/x.db"));
        assert!(!is_postgres("/tmp/x.db"));
    }

    #[test]
    fn no_host_means_the_local_socket() {
        let c = parsed("dbname=ipam user=u");
        assert!(c.local_only());
        assert!(!parsed("host=db user=u").local_only());
    }
}
