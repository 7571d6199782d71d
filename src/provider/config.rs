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
            .field("store", &crate::logging::redact_url(&self.store))
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
    let server = required("vsphere_server", raw.vsphere_server, "VSPHERE_SERVER");
    let user = required("user", raw.user, "VSPHERE_USER");
    let password = required("password", raw.password, "VSPHERE_PASSWORD");

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
            crate::logging::redact_url(url)
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
