//! A fault-injecting front for tests, between the provider and the simulator (or a store).
//!
//! [`FaultProxy::https`] terminates TLS (a throwaway certificate: point the provider at
//! [`FaultProxy::server`] with `allow_unverified_ssl`), reads each HTTP request, names it by its
//! SOAP method (`CloneVM_Task`) and forwards it to the upstream HTTPS server. On command it
//! lets requests through, drops a connection after a request got through (the upstream ran the
//! call and answered; the answer never reaches the client: a real broken connection, not a
//! fault message), delays answers, and refuses new connections for a while (each is accepted
//! and closed at once). [`FaultProxy::tcp`] relays bytes as they are (in front of PostgreSQL,
//! say) and can refuse new connections, cut the open ones, and go silent on a connection that
//! sends given bytes (a server that took a statement and never answers).
//!
//! The proxy runs on a runtime of its own, so synchronous tests drive it directly.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to requests, changed by the test at any time.
#[derive(Default)]
struct Rules {
    /// SOAP method → answers still to drop, and how long to refuse connections after a drop.
    drops: HashMap<String, (usize, Duration)>,
    /// SOAP method → how long to hold its answers.
    delays: HashMap<String, Duration>,
    /// New connections are refused until then.
    refuse_until: Option<Instant>,
    /// Requests seen per SOAP method (or "GET /path").
    seen: HashMap<String, usize>,
    /// Answers dropped per SOAP method.
    dropped: HashMap<String, usize>,
    /// Connections refused.
    refused: usize,
    /// A relayed connection whose client sends these bytes goes silent: they and everything
    /// after are held, the connection stays open.
    silence_on: Option<Vec<u8>>,
    /// Connections silenced so far.
    silenced: usize,
}

impl Rules {
    fn refusing(&self) -> bool {
        self.refuse_until.is_some_and(|t| Instant::now() < t)
    }
}

/// A running proxy; dropping it stops it and closes every connection.
pub struct FaultProxy {
    addr: SocketAddr,
    rules: Arc<Mutex<Rules>>,
    cut: watch::Sender<u64>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FaultProxy {
    /// A TLS-terminating SOAP proxy in front of `upstream` ("https://127.0.0.1:PORT", any
    /// path is ignored), whose certificate is not checked (it is the test's own).
    pub fn https(upstream: &str) -> FaultProxy {
        let base = {
            let rest = upstream
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            format!("https://{}", rest.split('/').next().unwrap_or(rest))
        };
        let client = reqwest::Client::builder()
            .tls_danger_accept_invalid_certs(true)
            .build()
            .expect("proxy upstream client");
        let tls = tls_acceptor();
        FaultProxy::start(move |stream, rules, cut| {
            let (client, base, tls) = (client.clone(), base.clone(), tls.clone());
            async move {
                let Ok(stream) = tls.accept(stream).await else {
                    return;
                };
                // Ending (a dropped answer, the client gone, a cut) drops the stream without
                // a response, which closes the connection.
                tokio::select! {
                    _ = serve(stream, &client, &base, &rules) => {}
                    _ = cut.wait() => {}
                }
            }
        })
    }

    /// A byte relay in front of `upstream` (e.g. PostgreSQL's port).
    pub fn tcp(upstream: SocketAddr) -> FaultProxy {
        FaultProxy::start(move |stream, rules, cut| async move {
            let Ok(up) = TcpStream::connect(upstream).await else {
                return;
            };
            let (mut from_client, mut to_client) = stream.into_split();
            let (mut from_up, mut to_up) = up.into_split();
            let upward = async {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match from_client.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let chunk = &buf[..n];
                    let silenced = {
                        let mut rules = rules.lock().unwrap();
                        let hit = rules
                            .silence_on
                            .as_ref()
                            .is_some_and(|needle| chunk.windows(needle.len()).any(|w| w == needle));
                        rules.silenced += usize::from(hit);
                        hit
                    };
                    if silenced {
                        // Held until the client gives up (or the test cuts the connection).
                        while let Ok(1..) = from_client.read(&mut buf).await {}
                        return;
                    }
                    if to_up.write_all(chunk).await.is_err() {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = upward => {}
                _ = tokio::io::copy(&mut from_up, &mut to_client) => {}
                _ = cut.wait() => {}
            }
        })
    }

    /// From now on a connection whose client sends `needle` (say, part of a statement's SQL)
    /// goes silent: it stays open, and nothing more passes in either direction.
    pub fn silence_on(&self, needle: &str) {
        self.rules.lock().unwrap().silence_on = Some(needle.as_bytes().to_vec());
    }

    /// Connections silenced so far.
    pub fn silenced(&self) -> usize {
        self.rules.lock().unwrap().silenced
    }

    fn start<H, F>(handle: H) -> FaultProxy
    where
        H: Fn(TcpStream, Arc<Mutex<Rules>>, CutSignal) -> F + Send + 'static,
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("proxy listener");
        let addr = listener.local_addr().expect("proxy address");
        let rules = Arc::new(Mutex::new(Rules::default()));
        let (cut, _) = watch::channel(0u64);
        let (accept_rules, accept_cut) = (rules.clone(), cut.clone());
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                {
                    let mut rules = accept_rules.lock().unwrap();
                    if rules.refusing() {
                        rules.refused += 1;
                        drop(stream);
                        continue;
                    }
                }
                let _ = stream.set_nodelay(true);
                let signal = CutSignal(accept_cut.subscribe());
                tokio::spawn(handle(stream, accept_rules.clone(), signal));
            }
        });
        FaultProxy {
            addr,
            rules,
            cut,
            runtime: Some(runtime),
        }
    }

    /// "127.0.0.1:PORT", for `vsphere_server` (or a store URL's host and port).
    pub fn server(&self) -> String {
        self.addr.to_string()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The next `count` requests calling `method` reach the upstream and run there; their
    /// answers are dropped with the connection.
    pub fn drop_answer(&self, method: &str, count: usize) {
        self.drop_answer_then_refuse(method, count, Duration::ZERO);
    }

    /// Like [`drop_answer`](Self::drop_answer), and each drop also refuses new connections
    /// for `refuse`: the upstream looks unreachable right after the call went through.
    pub fn drop_answer_then_refuse(&self, method: &str, count: usize, refuse: Duration) {
        self.rules
            .lock()
            .unwrap()
            .drops
            .insert(method.to_string(), (count, refuse));
    }

    /// Holds the answers to `method` for `delay` (zero ends it).
    pub fn delay(&self, method: &str, delay: Duration) {
        self.rules
            .lock()
            .unwrap()
            .delays
            .insert(method.to_string(), delay);
    }

    /// Refuses new connections for `how_long` (zero ends it); requests on open connections are
    /// dropped unanswered meanwhile.
    pub fn refuse_for(&self, how_long: Duration) {
        self.rules.lock().unwrap().refuse_until = Some(Instant::now() + how_long);
    }

    /// Whether new connections are being refused now.
    pub fn refusing(&self) -> bool {
        self.rules.lock().unwrap().refusing()
    }

    /// Closes every open connection.
    pub fn cut_all(&self) {
        self.cut.send_modify(|g| *g += 1);
    }

    /// Requests seen that called `method`.
    pub fn seen(&self, method: &str) -> usize {
        self.rules
            .lock()
            .unwrap()
            .seen
            .get(method)
            .copied()
            .unwrap_or(0)
    }

    /// Answers to `method` that were dropped.
    pub fn dropped(&self, method: &str) -> usize {
        self.rules
            .lock()
            .unwrap()
            .dropped
            .get(method)
            .copied()
            .unwrap_or(0)
    }

    /// Connections refused so far.
    pub fn refused(&self) -> usize {
        self.rules.lock().unwrap().refused
    }

    /// Back to letting everything through (counters stay).
    pub fn clear(&self) {
        let mut rules = self.rules.lock().unwrap();
        rules.drops.clear();
        rules.delays.clear();
        rules.refuse_until = None;
        rules.silence_on = None;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.cut_all();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Resolves when the test cuts every connection (or the proxy stops).
struct CutSignal(watch::Receiver<u64>);

impl CutSignal {
    async fn wait(mut self) {
        let _ = self.0.changed().await;
    }
}

/// One HTTP/1.1 request as read from the client.
struct Incoming {
    method: String,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// Reads one request (headers, then a `Content-Length` body); `None` at the end of the stream
/// or on anything this proxy does not speak.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> Option<Incoming> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(head) = req.parse(buf).ok()? {
            let method = req.method?.to_string();
            let path = req.path?.to_string();
            let headers: Vec<(String, Vec<u8>)> = req
                .headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                .collect();
            let length: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < head + length {
                if read_more(stream, buf).await? == 0 {
                    return None;
                }
            }
            let body = buf[head..head + length].to_vec();
            buf.drain(..head + length);
            return Some(Incoming {
                method,
                path,
                headers,
                body,
            });
        }
        if read_more(stream, buf).await? == 0 {
            return None;
        }
    }
}

async fn read_more<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> Option<usize> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await.ok()?;
    buf.extend_from_slice(&chunk[..n]);
    Some(n)
}

/// Serves the requests of one client connection until it ends or an answer is dropped.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    client: &reqwest::Client,
    base: &str,
    rules: &Mutex<Rules>,
) {
    let mut buf = Vec::new();
    while let Some(request) = read_request(&mut stream, &mut buf).await {
        // While the upstream looks unreachable, a request on a connection opened before gets
        // nowhere either (the client's pooled keep-alive connections must not reach it).
        if rules.lock().unwrap().refusing() {
            return;
        }
        let Some(answer) = forward(client, base, rules, request).await else {
            return;
        };
        if stream.write_all(&answer).await.is_err() || stream.flush().await.is_err() {
            return;
        }
    }
}

/// Runs one request against the upstream and applies the rules to its answer: the bytes to
/// send back, or `None` to close the connection without an answer.
async fn forward(
    client: &reqwest::Client,
    base: &str,
    rules: &Mutex<Rules>,
    request: Incoming,
) -> Option<Vec<u8>> {
    let name = match soap_method(&request.body) {
        Some(m) => m,
        None => format!("{} {}", request.method, request.path),
    };
    *rules.lock().unwrap().seen.entry(name.clone()).or_default() += 1;
    let method = reqwest::Method::from_bytes(request.method.as_bytes()).ok()?;
    let mut upstream = client.request(method, format!("{base}{}", request.path));
    for (key, value) in &request.headers {
        if !hop_by_hop(key) && key != "content-length" {
            upstream = upstream.header(key.as_str(), value.as_slice());
        }
    }
    let (status, headers, body) = match upstream.body(request.body).send().await {
        Ok(answer) => {
            let status = answer.status();
            let headers = answer.headers().clone();
            (status, headers, answer.bytes().await.ok()?.to_vec())
        }
        Err(e) => (
            reqwest::StatusCode::BAD_GATEWAY,
            reqwest::header::HeaderMap::new(),
            format!("proxy: upstream failed: {e}").into_bytes(),
        ),
    };
    let (drop_it, delay) = {
        let mut rules = rules.lock().unwrap();
        let mut drop_it = false;
        let mut refuse = Duration::ZERO;
        if let Some((left, then_refuse)) = rules.drops.get_mut(&name) {
            if *left > 0 {
                *left -= 1;
                drop_it = true;
                refuse = *then_refuse;
            }
        }
        if drop_it {
            *rules.dropped.entry(name.clone()).or_default() += 1;
            if refuse > Duration::ZERO {
                rules.refuse_until = Some(Instant::now() + refuse);
            }
        }
        (drop_it, rules.delays.get(&name).copied())
    };
    if drop_it {
        return None;
    }
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (key, value) in &headers {
        if !hop_by_hop(key.as_str()) && key != "content-length" {
            out.extend_from_slice(key.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(&body);
    Some(out)
}

fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "host"
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "upgrade"
            | "proxy-connection"
    )
}

/// The local name of the first element inside the SOAP Body.
pub fn soap_method(body: &[u8]) -> Option<String> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut in_body = false;
    loop {
        match reader.read_event().ok()? {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                let local = e.local_name();
                let name: &str = local.as_ref();
                let name = name.to_string();
                if in_body {
                    return Some(name);
                }
                in_body = name == "Body";
            }
            quick_xml::events::Event::Eof => return None,
            _ => {}
        }
    }
}

/// A TLS acceptor with a fresh self-signed certificate for 127.0.0.1 and localhost.
fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("proxy certificate");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        cert.key_pair.serialize_der(),
    ));
    // Both crypto providers are linked (reqwest brings aws-lc-rs): name one.
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .expect("proxy TLS config");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
