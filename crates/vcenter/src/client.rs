//! The vCenter session: connecting, classifying connection failures, re-login, call counting.
//!
//! [`connect`] logs in once and returns a [`VsphereClient`], a cheap-to-clone handle that any
//! number of tokio tasks can use at the same time. Every request goes through [`VimSession`], which
//! implements `vim_rs`'s [`VimClient`] trait so that the generated managed-object stubs
//! (`vim_rs::mo::*`) can use it directly: each request is counted, and a request that fails
//! because the session expired (`NotAuthenticated`) is retried once after a fresh login.
//!
//! The password is kept out of every `Debug`, `Display` and log output.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use vim_rs::core::client::{
    BoxFuture, Client, ClientBuilder, Error as VimError, PropertyValue, Result as VimResult,
    Transport as WireTransport, TransportMode, VimClient,
};
use vim_rs::mo::SessionManager;
use vim_rs::types::struct_enum::StructType;
use vim_rs::types::structs::ServiceContent;

/// Without a bound a black-holed address would hang `terraform plan` for minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a caller keeps trying to find out what a call whose answer was lost did, by default.
pub const DEFAULT_FIND_OUT: Duration = Duration::from_secs(60);

/// How long a call may go without a byte of its answer. Without a bound, an answer that never
/// comes (vCenter, or something in between, took the request and went silent) hangs
/// `terraform plan` for good: every reader of a plan waits on the one inventory load. Past it the
/// call fails as a lost answer: a read reports it, a change is found out (`vm_ops`).
/// `VSPHEREIPAM_ANSWER_TIMEOUT` overrides it. Task waits poll in 10 s steps, well inside it.
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

fn answer_timeout() -> Duration {
    let Ok(raw) = std::env::var("VSPHEREIPAM_ANSWER_TIMEOUT") else {
        return DEFAULT_ANSWER_TIMEOUT;
    };
    match humantime::parse_duration(raw.trim()) {
        Ok(d) if !d.is_zero() => d,
        _ => {
            tracing::warn!(
                value = %raw,
                "VSPHEREIPAM_ANSWER_TIMEOUT is not a duration such as \"90s\" or \"5m\"; the default applies"
            );
            DEFAULT_ANSWER_TIMEOUT
        }
    }
}

/// Which vSphere API wire format to use (`api_transport` in the provider configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// Try VI/JSON (vCenter 8.0U1+) and fall back to SOAP.
    #[default]
    Auto,
    Soap,
    Json,
}

impl Transport {
    /// Parses the provider's `api_transport` value (`auto`, `soap`, `json`; case-insensitive).
    pub fn parse(value: &str) -> Option<Transport> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Some(Transport::Auto),
            "soap" => Some(Transport::Soap),
            "json" => Some(Transport::Json),
            _ => None,
        }
    }

    fn mode(self) -> TransportMode {
        match self {
            Transport::Auto => TransportMode::Auto,
            Transport::Soap => TransportMode::Soap,
            Transport::Json => TransportMode::Json,
        }
    }
}

/// Everything needed to open a vCenter session.
#[derive(Clone)]
pub struct ConnectOptions {
    /// "host", "host:port", "https://host[:port]", optionally ending in "/sdk".
    pub server: String,
    pub user: String,
    pub password: String,
    /// Skip TLS certificate and host name verification.
    pub allow_unverified_ssl: bool,
    pub transport: Transport,
}

// Written by hand so that the password can never reach a log line or a diagnostic.
impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("server", &self.server)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("allow_unverified_ssl", &self.allow_unverified_ssl)
            .field("transport", &self.transport)
            .finish()
    }
}

/// Why [`connect`] failed, split by the provider setting the user has to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "cannot reach vCenter at {server}: {reason}. Check `vsphere_server` (host name, port) \
         and that this machine can connect to it"
    )]
    Unreachable { server: String, reason: String },
    #[error(
        "the TLS certificate of {server} is not trusted: {reason}. Install a certificate signed \
         by a trusted CA on vCenter (or add its CA to this machine's trust store), or set \
         `allow_unverified_ssl = true`"
    )]
    UntrustedCertificate { server: String, reason: String },
    #[error("vCenter rejected the login of user \"{user}\". Check `user` and `password`")]
    InvalidLogin { user: String },
    #[error("{0}")]
    Other(String),
}

/// A logged-in vCenter session. Clones share the session, the counter and the re-login lock.
#[derive(Clone)]
pub struct VsphereClient {
    session: Arc<VimSession>,
}

impl fmt::Debug for VsphereClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VsphereClient")
            .field("server", &self.session.server)
            .field("user", &self.session.user)
            .field("instance_uuid", &self.session.instance_uuid)
            .field("calls", &self.calls())
            .finish()
    }
}

impl VsphereClient {
    /// Number of vCenter round trips made through this session, login included.
    pub fn calls(&self) -> u64 {
        self.session.calls.load(Ordering::Relaxed)
    }

    /// The session's inventory view slot with the current login generation (crate-internal).
    pub(crate) fn inventory_view(&self) -> (&tokio::sync::Mutex<Option<(u64, String)>>, u64) {
        (
            &self.session.inventory_view,
            self.session.generation.load(Ordering::SeqCst),
        )
    }

    /// `ServiceContent.about.instanceUuid`: the prefix of wire ids.
    pub fn instance_uuid(&self) -> &str {
        &self.session.instance_uuid
    }

    /// How long to keep trying to find out the outcome of a call whose answer was lost (the
    /// connection broke after the request was sent), with fresh connections, before giving up
    /// and reporting the outcome as unknown.
    pub fn find_out_budget(&self) -> Duration {
        Duration::from_millis(self.session.find_out_ms.load(Ordering::Relaxed))
    }

    pub fn set_find_out_budget(&self, budget: Duration) {
        let ms = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX);
        self.session.find_out_ms.store(ms, Ordering::Relaxed);
    }

    /// The normalized "host[:port]" the session talks to.
    pub fn server(&self) -> &str {
        &self.session.server
    }

    pub fn service_content(&self) -> &ServiceContent {
        self.session.vim.service_content()
    }

    /// A handle for the generated stubs (`vim_rs::mo::X::new(client.vim(), id)`) and helpers
    /// such as `TaskTracker`; requests made through it are counted and survive session expiry.
    pub fn vim(&self) -> Arc<dyn VimClient> {
        self.session.clone()
    }

    /// Logs out. Other clones become unusable; later calls fail with `NotAuthenticated` and
    /// will log in again.
    pub fn close(&self) -> BoxFuture<'_, Result<(), VimError>> {
        Box::pin(async move {
            self.session.calls.fetch_add(1, Ordering::Relaxed);
            self.session.vim.close().await
        })
    }

    /// Ends the vCenter session but keeps the client usable: the next request gets
    /// `NotAuthenticated` and logs in again. Lets tests exercise session expiry without waiting
    /// for vCenter's idle timeout.
    pub fn end_session(&self) -> BoxFuture<'_, Result<(), VimError>> {
        Box::pin(async move {
            let Some(sm) = self.service_content().session_manager.as_ref() else {
                return Ok(());
            };
            SessionManager::new(self.vim(), &sm.value).logout().await
        })
    }
}

/// Opens a session: builds the HTTP client, logs in once and reads the vCenter instance UUID.
pub fn connect(opts: &ConnectOptions) -> BoxFuture<'_, Result<VsphereClient, ConnectError>> {
    Box::pin(connect_once(opts))
}

async fn connect_once(opts: &ConnectOptions) -> Result<VsphereClient, ConnectError> {
    let server = normalize_server(&opts.server)?;
    let http = http_client(opts.allow_unverified_ssl)?;
    let started = std::time::Instant::now();
    let vim = ClientBuilder::new(&server)
        .http_client(http)
        .basic_authn(&opts.user, &opts.password)
        .app_details(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
        .transport(opts.transport.mode())
        .build()
        .await
        .map_err(|e| classify(&e, &server, &opts.user))?;
    let wire = VimClient::transport(&*vim);
    let instance_uuid = vim
        .service_content()
        .about
        .instance_uuid
        .clone()
        .unwrap_or_default();
    tracing::debug!(
        server = %server,
        user = %opts.user,
        transport = ?wire,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "logged in to vCenter"
    );
    let session = VimSession {
        calls: AtomicU64::new(login_round_trips(opts.transport, wire)),
        vim,
        server,
        user: opts.user.clone(),
        password: opts.password.clone(),
        instance_uuid,
        generation: AtomicU64::new(0),
        relogin: tokio::sync::Mutex::new(()),
        inventory_view: tokio::sync::Mutex::new(None),
        find_out_ms: AtomicU64::new(DEFAULT_FIND_OUT.as_millis() as u64),
    };
    Ok(VsphereClient {
        session: Arc::new(session),
    })
}

/// `vim_rs` builds the URLs itself from "host[:port]", so strip what users commonly paste.
pub fn normalize_server(raw: &str) -> Result<String, ConnectError> {
    let mut s = raw.trim();
    for scheme in ["https://", "http://"] {
        if s.len() >= scheme.len() && s[..scheme.len()].eq_ignore_ascii_case(scheme) {
            s = &s[scheme.len()..];
        }
    }
    let s = s.trim_end_matches('/');
    let s = s.strip_suffix("/sdk").unwrap_or(s).trim_end_matches('/');
    if s.is_empty() || s.contains('/') || s.contains(char::is_whitespace) {
        return Err(ConnectError::Unreachable {
            server: raw.trim().to_string(),
            reason: "not a host name, \"host:port\" or \"https://host[:port]\"".to_string(),
        });
    }
    Ok(s.to_string())
}

fn http_client(allow_unverified_ssl: bool) -> Result<reqwest::Client, ConnectError> {
    reqwest::Client::builder()
        // SOAP sessions live in the vmware_soap_session cookie.
        .cookie_store(true)
        .tls_danger_accept_invalid_certs(allow_unverified_ssl)
        .tls_danger_accept_invalid_hostnames(allow_unverified_ssl)
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(answer_timeout())
        .tcp_keepalive(Duration::from_secs(60))
        .build()
        .map_err(|e| ConnectError::Other(format!("cannot set up the HTTP client: {e}")))
}

/// Requests `ClientBuilder::build` made: there is no hook inside it, so count them from the
/// known sequence (Hello probe for auto, Hello for JSON, service content, Login).
fn login_round_trips(requested: Transport, used: WireTransport) -> u64 {
    let probe = u64::from(requested == Transport::Auto);
    match used {
        WireTransport::Json => probe + 3,
        WireTransport::Soap => probe + 2,
    }
}

/// Maps a login failure to the setting the user has to fix.
fn classify(err: &VimError, server: &str, user: &str) -> ConnectError {
    match err {
        VimError::MethodFault(fault) if fault.type_ == Some(StructType::InvalidLogin) => {
            ConnectError::InvalidLogin {
                user: user.to_string(),
            }
        }
        VimError::ReqwestError(re) => classify_http(re, server),
        other => ConnectError::Other(format!(
            "login to vCenter at {server} failed: {}",
            describe_vim_error(other)
        )),
    }
}

fn classify_http(err: &reqwest::Error, server: &str) -> ConnectError {
    let reason = error_chain(err);
    if looks_like_certificate_problem(&reason) {
        return ConnectError::UntrustedCertificate {
            server: server.to_string(),
            reason,
        };
    }
    if err.is_connect() || err.is_timeout() {
        return ConnectError::Unreachable {
            server: server.to_string(),
            reason,
        };
    }
    if let Some(status) = err.status() {
        return ConnectError::Other(format!(
            "{server} answered HTTP {status}: is it a vCenter (check `vsphere_server`, \
             `api_transport`)? {reason}"
        ));
    }
    ConnectError::Other(format!("talking to vCenter at {server} failed: {reason}"))
}

/// rustls and the platform verifier report through io errors; their text is the only
/// stable signal that survives the hyper/reqwest wrapping.
pub fn looks_like_certificate_problem(reason: &str) -> bool {
    let lower = reason.to_ascii_lowercase();
    [
        "certificate",
        "unknownissuer",
        "notvalidforname",
        "badsignature",
        "self-signed",
        "self signed",
        "cert verify",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// The error and its sources joined with ": ", skipping parts that repeat the previous one.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

/// A readable one-line description of a `vim_rs` error (fault type and message, or HTTP chain).
pub fn describe_vim_error(err: &VimError) -> String {
    match err {
        VimError::MethodFault(fault) => {
            let kind = fault.type_.map(|t| t.as_str()).unwrap_or("MethodFault");
            match fault.fault_message.as_ref().and_then(|m| m.first()) {
                Some(msg) => format!("{kind}: {}", msg.message.as_deref().unwrap_or(&msg.key)),
                None => kind.to_string(),
            }
        }
        VimError::ReqwestError(re) => error_chain(&**re),
        other => other.to_string(),
    }
}

/// True when the request may have reached vCenter but its answer did not come back (a broken
/// connection, a timeout, an HTTP error from something in between): what the call did is
/// unknown. A SOAP fault is vCenter's own answer, so its outcome is known.
pub fn is_lost_answer(err: &VimError) -> bool {
    matches!(err, VimError::ReqwestError(_))
}

/// True for the fault vCenter returns when the session cookie/key is no longer valid.
pub fn is_not_authenticated(err: &VimError) -> bool {
    matches!(err, VimError::MethodFault(f) if f.type_ == Some(StructType::NotAuthenticated))
}

/// The shared state behind [`VsphereClient`]; implements [`VimClient`] around `vim_rs`'s client.
struct VimSession {
    vim: Arc<Client>,
    server: String,
    user: String,
    password: String,
    instance_uuid: String,
    calls: AtomicU64,
    /// Bumped on every re-login so that tasks failing together log in only once.
    generation: AtomicU64,
    relogin: tokio::sync::Mutex<()>,
    /// The inventory's ContainerView and the login generation it was made in: kept for the
    /// session so a reload costs one call; logout destroys it.
    inventory_view: tokio::sync::Mutex<Option<(u64, String)>>,
    /// [`VsphereClient::find_out_budget`] in milliseconds.
    find_out_ms: AtomicU64,
}

impl VimSession {
    /// Runs one request, counting it; on `NotAuthenticated` logs in again and retries once.
    async fn call<'a, T, F>(&'a self, request: F) -> VimResult<T>
    where
        F: Fn() -> BoxFuture<'a, VimResult<T>>,
    {
        let generation = self.generation.load(Ordering::Acquire);
        self.calls.fetch_add(1, Ordering::Relaxed);
        match request().await {
            Err(e) if is_not_authenticated(&e) => {
                tracing::info!(server = %self.server, "vCenter session expired, logging in again");
                self.login_again(generation).await?;
                self.calls.fetch_add(1, Ordering::Relaxed);
                request().await
            }
            other => other,
        }
    }

    /// Logs in unless another task already did since `seen_generation`.
    async fn login_again(&self, seen_generation: u64) -> VimResult<()> {
        let _guard = self.relogin.lock().await;
        if self.generation.load(Ordering::Acquire) != seen_generation {
            return Ok(());
        }
        let Some(sm) = self.vim.service_content().session_manager.as_ref() else {
            return Err(VimError::ParseError(
                "vCenter has no SessionManager".to_string(),
            ));
        };
        let handle: Arc<dyn VimClient> = self.vim.clone();
        self.calls.fetch_add(1, Ordering::Relaxed);
        SessionManager::new(handle, &sm.value)
            .login(&self.user, &self.password, None)
            .await?;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

impl VimClient for VimSession {
    fn service_content(&self) -> &ServiceContent {
        self.vim.service_content()
    }

    fn transport(&self) -> WireTransport {
        VimClient::transport(&*self.vim)
    }

    fn api_release(&self) -> String {
        self.vim.api_release()
    }

    fn invoke<'a>(
        &'a self,
        svc: &'a str,
        mo_type: &'a str,
        mo_id: &'a str,
        method_name: &'a str,
        params: Option<&'a (dyn miniserde::Serialize + Send + Sync)>,
    ) -> BoxFuture<'a, VimResult<Bytes>> {
        Box::pin(
            self.call(move || {
                VimClient::invoke(&*self.vim, svc, mo_type, mo_id, method_name, params)
            }),
        )
    }

    fn invoke_optional<'a>(
        &'a self,
        svc: &'a str,
        mo_type: &'a str,
        mo_id: &'a str,
        method_name: &'a str,
        params: Option<&'a (dyn miniserde::Serialize + Send + Sync)>,
    ) -> BoxFuture<'a, VimResult<Option<Bytes>>> {
        Box::pin(self.call(move || {
            VimClient::invoke_optional(&*self.vim, svc, mo_type, mo_id, method_name, params)
        }))
    }

    fn invoke_void<'a>(
        &'a self,
        svc: &'a str,
        mo_type: &'a str,
        mo_id: &'a str,
        method_name: &'a str,
        params: Option<&'a (dyn miniserde::Serialize + Send + Sync)>,
    ) -> BoxFuture<'a, VimResult<()>> {
        Box::pin(self.call(move || {
            VimClient::invoke_void(&*self.vim, svc, mo_type, mo_id, method_name, params)
        }))
    }

    fn fetch_property_raw<'a>(
        &'a self,
        svc: &'a str,
        mo_type: &'a str,
        mo_id: &'a str,
        property: &'a str,
    ) -> BoxFuture<'a, VimResult<Option<PropertyValue>>> {
        Box::pin(
            self.call(move || {
                VimClient::fetch_property_raw(&*self.vim, svc, mo_type, mo_id, property)
            }),
        )
    }

    fn close(&self) -> BoxFuture<'_, VimResult<()>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        VimClient::close(&*self.vim)
    }
}
