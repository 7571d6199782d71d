//! Provider settings: the `provider "vsphereipam"` block merged with the vSphere provider's
//! environment variables, checked before anything connects.

use std::fmt;
use std::path::PathBuf;

use crate::vsphere::client::{ConnectOptions, Transport};

/// Raw values from the provider block (`None` = not set there).
#[derive(Debug, Default, Clone)]
pub struct RawSettings {
    pub vsphere_server: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub allow_unverified_ssl: Option<bool>,
    pub api_transport: Option<String>,
    pub store: Option<String>,
}

/// Settings ready to use.
#[derive(Clone)]
pub struct Settings {
    pub connect: ConnectOptions,
    /// Store URL: `sqlite://<path>` or `postgres://...`.
    pub store: String,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("connect", &self.connect)
            .field("store", &crate::redact::redact(&self.store))
            .finish()
    }
}

/// A setting that is missing or wrong: which attribute, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub attribute: &'static str,
    pub summary: String,
    pub detail: String,
}

/// Merges the block with the environment (`env` is `std::env::var` outside tests).
pub fn resolve(
    raw: RawSettings,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Settings, Vec<SettingError>> {
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    let mut errors = Vec::new();

    let mut required = |attribute: &'static str, value: Option<String>, var: &str| {
        value.or_else(|| env(var)).unwrap_or_else(|| {
            errors.push(SettingError {
                attribute,
                summary: format!("Missing provider setting `{attribute}`"),
                detail: format!(
                    "Set `{attribute}` in the provider \"vsphereipam\" block or the environment variable {var}."
                ),
            });
            String::new()
        })
    };
    // Credentials written into the server (`https://user:pass@vc`, as govc's GOVC_URL takes
    // them) never travel with it into logs or diagnostics; they stand in for `user` and
    // `password` when those are unset.
    let server = raw.vsphere_server.or_else(|| env("VSPHERE_SERVER"));
    let (server, url_user, url_password) = match server {
        Some(s) => {
            let (server, user, password) = split_userinfo(&s);
            (Some(server), user, password)
        }
        None => (None, None, None),
    };
    let server = required("vsphere_server", server, "VSPHERE_SERVER");
    let user = required(
        "user",
        raw.user.or_else(|| env("VSPHERE_USER")).or(url_user),
        "VSPHERE_USER",
    );
    let password = required(
        "password",
        raw.password
            .or_else(|| env("VSPHERE_PASSWORD"))
            .or(url_password),
        "VSPHERE_PASSWORD",
    );

    let allow_unverified_ssl = match raw.allow_unverified_ssl {
        Some(v) => v,
        None => match env("VSPHERE_ALLOW_UNVERIFIED_SSL")
            .as_deref()
            .map(parse_bool)
        {
            None => false,
            Some(Some(v)) => v,
            Some(None) => {
                errors.push(SettingError {
                    attribute: "allow_unverified_ssl",
                    summary: "Invalid VSPHERE_ALLOW_UNVERIFIED_SSL".into(),
                    detail: "The environment variable VSPHERE_ALLOW_UNVERIFIED_SSL must be true or false (or 1 or 0).".into(),
                });
                false
            }
        },
    };

    let transport_text = raw
        .api_transport
        .or_else(|| env("VSPHEREIPAM_API_TRANSPORT"))
        .unwrap_or_else(|| "auto".into());
    let transport = Transport::parse(&transport_text).unwrap_or_else(|| {
        errors.push(SettingError {
            attribute: "api_transport",
            summary: format!("Invalid api_transport {transport_text:?}"),
            detail: "api_transport must be \"auto\", \"soap\" or \"json\" (VI/JSON needs vCenter 8.0U1 or later).".into(),
        });
        Transport::Auto
    });

    let store = resolve_store(raw.store, env).unwrap_or_else(|e| {
        errors.push(e);
        String::new()
    });

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Settings {
        connect: ConnectOptions {
            server,
            user,
            password,
            allow_unverified_ssl,
            transport,
        },
        store,
    })
}

/// The store URL: the setting, else `VSPHEREIPAM_STORE`, else the per-user SQLite file.
pub fn resolve_store(
    store: Option<String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<String, SettingError> {
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    match store.or_else(|| env("VSPHEREIPAM_STORE")) {
        Some(url) => check_store_url(&url)
            .map(|()| url)
            .map_err(|detail| SettingError {
                attribute: "store",
                summary: "Invalid store URL".into(),
                detail,
            }),
        None => Ok(format!("sqlite://{}", default_store_path(&env).display())),
    }
}

/// Splits `[scheme://][user[:password]@]host[:port][/path]` into the server without its
/// userinfo and the (percent-decoded) user and password.
pub fn split_userinfo(server: &str) -> (String, Option<String>, Option<String>) {
    let trimmed = server.trim();
    let (scheme, rest) = match trimmed.find("://") {
        Some(i) => trimmed.split_at(i + 3),
        None => ("", trimmed),
    };
    // The last '@' ends the userinfo: a password may hold an unencoded '@'.
    let Some(at) = rest.rfind('@') else {
        return (trimmed.to_string(), None, None);
    };
    let (userinfo, host) = (&rest[..at], &rest[at + 1..]);
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (decode(u), Some(decode(p))),
        None => (decode(userinfo), None),
    };
    let user = Some(user).filter(|u| !u.is_empty());
    (format!("{scheme}{host}"), user, password)
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Some(true),
        "0" | "false" | "no" => Some(false),
        _ => None,
    }
}

fn check_store_url(url: &str) -> Result<(), String> {
    let ok = url
        .strip_prefix("sqlite://")
        .map(|path| !path.is_empty())
        .unwrap_or(false)
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "The store must be \"sqlite://<path>\" or \"postgres://user@host/db\"; got {:?}.",
            crate::redact::redact(url)
        ))
    }
}

/// The per-user embedded store: `$XDG_DATA_HOME/vsphereipam/ipam.db`, else
/// `~/.local/share/vsphereipam/ipam.db`.
pub fn default_store_path(env: &impl Fn(&str) -> Option<String>) -> PathBuf {
    let base = env("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("vsphereipam").join("ipam.db")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn environment_fills_what_the_block_leaves_out() {
        let s = resolve(
            RawSettings {
                user: Some("block-user".into()),
                ..Default::default()
            },
            env(&[
                ("VSPHERE_SERVER", "vc:8443"),
                ("VSPHERE_USER", "env-user"),
                ("VSPHERE_PASSWORD", "pw"),
                ("VSPHERE_ALLOW_UNVERIFIED_SSL", "true"),
                ("HOME", "/home/u"),
            ]),
        )
        .unwrap();
        assert_eq!(s.connect.server, "vc:8443");
        assert_eq!(s.connect.user, "block-user");
        assert!(s.connect.allow_unverified_ssl);
        assert_eq!(s.store, "sqlite:///home/u/.local/share/vsphereipam/ipam.db");
    }

    #[test]
    fn tls_is_verified_by_default() {
        let s = resolve(
            RawSettings {
                vsphere_server: Some("vc".into()),
                user: Some("u".into()),
                password: Some("p".into()),
                ..Default::default()
            },
            env(&[]),
        )
        .unwrap();
        assert!(!s.connect.allow_unverified_ssl);
        assert!(matches!(s.connect.transport, Transport::Auto));
    }

    #[test]
    fn each_missing_or_bad_setting_is_named() {
        let errs = resolve(
            RawSettings {
                api_transport: Some("rest".into()),
                store: Some("mysql://x".into()),
                ..Default::default()
            },
            env(&[("VSPHERE_ALLOW_UNVERIFIED_SSL", "maybe")]),
        )
        .unwrap_err();
        let attrs: Vec<_> = errs.iter().map(|e| e.attribute).collect();
        assert_eq!(
            attrs,
            [
                "vsphere_server",
                "user",
                "password",
                "allow_unverified_ssl",
                "api_transport",
                "store"
            ]
        );
        assert!(errs[0].detail.contains("VSPHERE_SERVER"));
    }

    #[test]
    fn credentials_in_the_server_are_split_off() {
        let s = resolve(
            RawSettings::default(),
            env(&[(
                "VSPHERE_SERVER",
                "https://admin%40corp:p%40ss:w@vc.example:443/sdk",
            )]),
        )
        .unwrap();
        assert_eq!(s.connect.server, "https://vc.example:443/sdk");
        assert_eq!(s.connect.user, "admin@corp");
        assert_eq!(s.connect.password, "p@ss:w");
        assert!(!format!("{s:?}").contains("p@ss"));
        // Explicit settings win over the userinfo; a bare `user:pass@host` is split too.
        let s = resolve(
            RawSettings {
                vsphere_server: Some("u:secret@vc".into()),
                password: Some("explicit".into()),
                ..Default::default()
            },
            env(&[("VSPHERE_USER", "env-user")]),
        )
        .unwrap();
        assert_eq!(
            (s.connect.server.as_str(), s.connect.user.as_str()),
            ("vc", "env-user")
        );
        assert_eq!(s.connect.password, "explicit");
        assert_eq!(split_userinfo("vc:443"), ("vc:443".into(), None, None));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let s = resolve(
            RawSettings {
                vsphere_server: Some("vc".into()),
                user: Some("u".into()),
                password: Some("hunter2".into()),
                store: Some("postgres://ipam:pgsecret@db/ipam".into()),
                ..Default::default()
            },
            env(&[]),
        )
        .unwrap();
        let text = format!("{s:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("pgsecret"),
            "{text}"
        );
    }
}
