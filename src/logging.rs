//! Logging to stderr in the JSON line format of HashiCorp's go-hclog.
//!
//! Terraform reads a plugin's stderr and re-logs each JSON line at the level it names, so
//! `TF_LOG=DEBUG` (or `TF_LOG_PROVIDER`) shows our lines with their real level. Nothing that
//! is logged may carry a secret: callers log setting names and hosts, never values of
//! `password` or store URLs with credentials (see [`redact_url`]).

use std::fmt;
use std::io::Write;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Installs the stderr logger unless tf-provider will install its own (`PLUGIN_LOG_FILE`).
pub fn init() {
    if std::env::var_os("PLUGIN_LOG_FILE").is_some() {
        return;
    }
    let level = ["TF_LOG_PROVIDER", "TF_LOG"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .map(|v| match v.to_ascii_lowercase().as_str() {
            "trace" | "json" => "trace",
            "debug" => "debug",
            "info" => "info",
            "error" => "error",
            _ => "warn",
        })
        .unwrap_or("warn");
    // Our own crate at the requested level; dependencies stay at warn so a DEBUG log is not
    // drowned in HTTP/2 frames.
    let filter = EnvFilter::new(format!(
        "warn,vsphereipam={level},terraform_provider_vsphereipam={level}"
    ));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(HclogLayer)
        .try_init();
}

/// Removes the password from a URL such as `postgres://user:secret@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

struct HclogLayer;

impl<S: Subscriber> Layer<S> for HclogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        let level = hclog_level(
            event.metadata().target(),
            *event.metadata().level(),
            &fields,
        );
        let mut line = serde_json::Map::new();
        line.insert("@level".into(), level.into());
        line.insert("@message".into(), fields.message.into());
        line.insert("@module".into(), "vsphereipam".into());
        let now = humantime::format_rfc3339_micros(std::time::SystemTime::now());
        line.insert("@timestamp".into(), now.to_string().into());
        line.extend(fields.extra);
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "{}", serde_json::Value::Object(line));
    }
}

/// gRPC code 12, UNIMPLEMENTED, as tower-http's trace layer (inside tf-provider) names it.
const UNIMPLEMENTED: &str = "Code: 12";

/// The go-hclog level of an event. Newer Terraform versions probe RPCs that tf-provider does
/// not offer (resource identity, for one) and carry on when told they are unimplemented;
/// tower-http logs each such answer as an error, which `TF_LOG=ERROR` would show as a provider
/// failure on every run. Those answers are logged at debug level instead.
fn hclog_level(target: &str, level: Level, fields: &JsonFields) -> &'static str {
    let probe = target.starts_with("tower_http")
        && fields.extra.get("classification").and_then(|c| c.as_str()) == Some(UNIMPLEMENTED);
    match level {
        _ if probe => "debug",
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

#[derive(Default)]
struct JsonFields {
    message: String,
    extra: serde_json::Map<String, serde_json::Value>,
}

impl Visit for JsonFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.extra.insert(field.name().to_string(), text.into());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.extra.insert(field.name().to_string(), value.into());
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.extra.insert(field.name().to_string(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.extra.insert(field.name().to_string(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.extra.insert(field.name().to_string(), value.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(classification: &str) -> JsonFields {
        let mut f = JsonFields::default();
        f.extra
            .insert("classification".into(), classification.into());
        f
    }

    #[test]
    fn unimplemented_probes_are_not_errors() {
        let target = "tower_http::trace::on_failure";
        assert_eq!(
            hclog_level(target, Level::ERROR, &fields("Code: 12")),
            "debug"
        );
        // Any other failure stays an error, and our own events keep their level.
        assert_eq!(
            hclog_level(target, Level::ERROR, &fields("Code: 13")),
            "error"
        );
        assert_eq!(
            hclog_level("vsphereipam::store", Level::ERROR, &fields("Code: 12")),
            "error"
        );
        assert_eq!(
            hclog_level("vsphereipam", Level::WARN, &JsonFields::default()),
            "warn"
        );
    }

    #[test]
    fn redacts_password_in_urls() {
        assert_eq!(
            redact_url("postgres://ipam:s3cret@db.example/ipam"),
            "postgres://ipam:***@db.example/ipam"
        );
        assert_eq!(
            redact_url("sqlite:///var/lib/x.db"),
            "sqlite:///var/lib/x.db"
        );
    }
}
