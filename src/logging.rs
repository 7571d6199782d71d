//! Logging to stderr in the JSON line format of HashiCorp's go-hclog.
//!
//! Terraform reads a plugin's stderr and re-logs each JSON line at the level it names, so
//! `TF_LOG=DEBUG` (or `TF_LOG_PROVIDER`) shows our lines with their real level. Nothing that
//! is logged may carry a secret: callers log setting names and hosts, never values of
//! `password`, and every line passes through [`crate::redact::redact`] before it is written,
//! so a URL or DSN with a password that slips into a message is masked all the same.

use std::fmt;
use std::io::Write;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Installs the stderr logger.
///
/// Also turns off library backtraces for the plugin: with `RUST_BACKTRACE=1` in the
/// environment, anyhow captures a backtrace (source paths, line numbers) in every error, and
/// an error's `{:?}` would carry it into a diagnostic. Panics still honour
/// `RUST_BACKTRACE`, which only reads `RUST_LIB_BACKTRACE` for library captures.
pub fn init() {
    // Before any other thread exists: setting the environment is then sound.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
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
        "warn,vsphereipam={level},terraform_provider_vsphereipam={level},tfplugin={level}"
    ));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(HclogLayer)
        .try_init();
}

/// For the admin commands: warnings as `warn: message (key=value)` lines on stderr, redacted
/// like the plugin's.
pub fn init_cli() {
    let _ = tracing_subscriber::registry()
        .with(EnvFilter::new("warn"))
        .with(PlainLayer)
        .try_init();
}

struct PlainLayer;

impl<S: Subscriber> Layer<S> for PlainLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        let extra: Vec<String> = fields
            .extra
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect();
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        let mut line = format!("{level}: {}", fields.message);
        if !extra.is_empty() {
            line.push_str(&format!(" ({})", extra.join(", ")));
        }
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

/// The one redaction helper, under the name the store's PostgreSQL backend imports.
pub use crate::redact::redact as redact_url;

struct HclogLayer;

impl<S: Subscriber> Layer<S> for HclogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        let level = hclog_level(*event.metadata().level());
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

/// The go-hclog name of a level.
fn hclog_level(level: Level) -> &'static str {
    match level {
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
        self.record_str(field, &format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let text = crate::redact::redact(value);
        if field.name() == "message" {
            self.message = text;
        } else {
            self.extra.insert(field.name().to_string(), text.into());
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

    #[test]
    fn fields_and_messages_are_redacted() {
        struct Probe;
        impl fmt::Debug for Probe {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("host=db password=s3cret")
            }
        }
        let event = |dispatch: &tracing::Dispatch| {
            tracing::dispatcher::with_default(dispatch, || {
                tracing::warn!(store = "postgres://u:s3cret@db/x", probe = ?Probe,
                    "opening postgres://u:s3cret@db/x")
            })
        };
        let fields = std::sync::Arc::new(std::sync::Mutex::new(JsonFields::default()));
        struct Capture(std::sync::Arc<std::sync::Mutex<JsonFields>>);
        impl<S: Subscriber> Layer<S> for Capture {
            fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
                event.record(&mut *self.0.lock().unwrap());
            }
        }
        let dispatch =
            tracing::Dispatch::new(tracing_subscriber::registry().with(Capture(fields.clone())));
        event(&dispatch);
        let fields = fields.lock().unwrap();
        let all = format!("{} {:?}", fields.message, fields.extra);
        assert!(!all.contains("s3cret"), "{all}");
        assert!(all.contains("postgres://u:***@db/x"), "{all}");
    }
}
