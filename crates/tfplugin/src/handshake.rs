//! The launch as go-plugin does it, and the server's life until Terraform stops it.
//!
//! Before the handshake line only the launch work runs (environment checks, key and
//! certificate, the listening socket): Terraform waits for that line at every command. The
//! async runtime and the provider's services start after it; Terraform's connection waits in
//! the socket's backlog meanwhile.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, Notify};
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status};

use crate::proto::plugin as gp;
use crate::proto::tfplugin6::provider_server::ProviderServer;
use crate::provider::DynamicProvider;
use crate::server::ProviderService;
use crate::tls::ServerTls;

pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

/// Terraform sends up to this much in one message (large states); gRPC's default is 4 MiB.
const MAX_MESSAGE: usize = 256 << 20;

/// Whether Terraform (or something acting like it) started this process.
pub fn started_by_terraform() -> bool {
    std::env::var_os(MAGIC_COOKIE_KEY).is_some()
}

/// Why the plugin could not start serving.
#[derive(Debug)]
pub enum LaunchError {
    /// No (or a wrong) magic cookie: a person ran the binary.
    NotStartedByTerraform,
    /// Terraform offered protocol versions that do not include 6.
    NoProtocol6(String),
    Tls(String),
    Io(std::io::Error),
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchError::NotStartedByTerraform => write!(
                f,
                "This program is a Terraform provider plugin: Terraform starts it when a \
                 configuration uses the provider. Run `terraform init` and `terraform plan` in \
                 your configuration instead of running the plugin directly."
            ),
            LaunchError::NoProtocol6(offered) => write!(
                f,
                "This provider speaks Terraform plugin protocol 6 only, and this Terraform offers \
                 protocol version(s) {offered:?}. Use Terraform 1.0 or later."
            ),
            LaunchError::Tls(e) => write!(f, "cannot set up the plugin's TLS: {e}"),
            LaunchError::Io(e) => write!(f, "cannot serve the plugin: {e}"),
        }
    }
}

impl std::error::Error for LaunchError {}

impl From<std::io::Error> for LaunchError {
    fn from(e: std::io::Error) -> Self {
        LaunchError::Io(e)
    }
}

enum Listener {
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixListener, PathBuf),
    #[allow(dead_code)]
    Tcp(std::net::TcpListener),
}

impl Listener {
    #[cfg(unix)]
    fn bind() -> std::io::Result<Listener> {
        let dir = std::env::var_os("PLUGIN_UNIX_SOCKET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mut last = None;
        for attempt in 0..16u32 {
            let path = dir.join(format!(
                "plugin-{}-{:08x}",
                std::process::id(),
                nanos.wrapping_add(attempt)
            ));
            match std::os::unix::net::UnixListener::bind(&path) {
                Ok(l) => return Ok(Listener::Unix(l, path)),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no free socket name")))
    }

    #[cfg(not(unix))]
    fn bind() -> std::io::Result<Listener> {
        Ok(Listener::Tcp(std::net::TcpListener::bind("127.0.0.1:0")?))
    }

    /// `network|address` of the handshake line.
    fn address(&self) -> std::io::Result<String> {
        Ok(match self {
            #[cfg(unix)]
            Listener::Unix(_, path) => format!("unix|{}", path.display()),
            Listener::Tcp(l) => format!("tcp|{}", l.local_addr()?),
        })
    }
}

/// Serves `provider` (resource types prefixed `<name>_`) to the Terraform that started this
/// process; returns when Terraform shuts the plugin down or on SIGINT/SIGTERM, after the
/// calls in flight have answered.
pub fn serve(name: &str, provider: impl DynamicProvider) -> Result<(), LaunchError> {
    if std::env::var(MAGIC_COOKIE_KEY).ok().as_deref() != Some(MAGIC_COOKIE_VALUE) {
        return Err(LaunchError::NotStartedByTerraform);
    }
    if let Ok(offered) = std::env::var("PLUGIN_PROTOCOL_VERSIONS") {
        if !offered.split(',').any(|v| v.trim() == "6") {
            return Err(LaunchError::NoProtocol6(offered));
        }
    }
    let tls = match std::env::var("PLUGIN_CLIENT_CERT") {
        Ok(pem) if !pem.trim().is_empty() => Some(ServerTls::new(&pem).map_err(LaunchError::Tls)?),
        _ => None,
    };
    let listener = Listener::bind()?;
    let cert = tls
        .as_ref()
        .map(|t| base64::engine::general_purpose::STANDARD_NO_PAD.encode(&t.cert_der))
        .unwrap_or_default();
    let line = format!("1|6|{}|grpc|{cert}\n", listener.address()?);
    {
        let mut out = std::io::stdout().lock();
        out.write_all(line.as_bytes())?;
        out.flush()?;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let service = Arc::new(ProviderService::new(name, provider));
    let result = runtime.block_on(run(listener, tls.map(|t| t.config), service));
    runtime.shutdown_timeout(Duration::from_secs(5));
    result.map_err(LaunchError::Io)
}

trait Rw: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Rw for T {}

/// One accepted connection, whatever its transport.
struct Io(Box<dyn Rw>);

impl Connected for Io {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.get_mut().0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_shutdown(cx)
    }
}

/// go-plugin's `GRPCController`: Terraform's request to exit.
struct Controller(Arc<Notify>);

#[tonic::async_trait]
impl gp::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _: Request<gp::Empty>) -> Result<Response<gp::Empty>, Status> {
        self.0.notify_one();
        Ok(Response::new(gp::Empty {}))
    }
}

/// go-plugin's `GRPCStdio`: logs go to stderr directly, so the stream ends at once.
struct Stdio;

#[tonic::async_trait]
impl gp::grpc_stdio_server::GrpcStdio for Stdio {
    type StreamStdioStream =
        Pin<Box<dyn futures::Stream<Item = Result<gp::StdioData, Status>> + Send + 'static>>;
    async fn stream_stdio(
        &self,
        _: Request<()>,
    ) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(Box::pin(futures::stream::empty())))
    }
}

async fn stopped(controller: Arc<Notify>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            controller.notified().await;
            return;
        };
        tokio::select! {
            _ = int.recv() => tracing::debug!("SIGINT: stopping after the calls in flight"),
            _ = term.recv() => tracing::debug!("SIGTERM: stopping after the calls in flight"),
            _ = controller.notified() => tracing::debug!("Terraform asked the plugin to shut down"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = controller.notified() => {}
        }
    }
}

async fn run(
    listener: Listener,
    tls: Option<Arc<rustls::ServerConfig>>,
    service: Arc<ProviderService>,
) -> std::io::Result<()> {
    let stop = Arc::new(Notify::new());
    let (mut health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("plugin", tonic_health::ServingStatus::Serving)
        .await;
    let (tx, rx) = mpsc::channel::<std::io::Result<Io>>(16);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let socket_path = match &listener {
        #[cfg(unix)]
        Listener::Unix(_, p) => Some(p.clone()),
        Listener::Tcp(_) => None,
    };
    let accepting = tokio::spawn(accept_loop(listener, acceptor, tx));

    let result = tonic::transport::Server::builder()
        .add_service(
            ProviderServer::new(service)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .add_service(health)
        .add_service(gp::grpc_controller_server::GrpcControllerServer::new(
            Controller(stop.clone()),
        ))
        .add_service(gp::grpc_stdio_server::GrpcStdioServer::new(Stdio))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            stopped(stop),
        )
        .await;
    accepting.abort();
    if let Some(path) = socket_path {
        let _ = std::fs::remove_file(path);
    }
    result.map_err(std::io::Error::other)
}

async fn accept_loop(
    listener: Listener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    tx: mpsc::Sender<std::io::Result<Io>>,
) {
    enum Async {
        #[cfg(unix)]
        Unix(tokio::net::UnixListener),
        Tcp(tokio::net::TcpListener),
    }
    let listener = match listener {
        #[cfg(unix)]
        Listener::Unix(l, _) => l
            .set_nonblocking(true)
            .and_then(|_| tokio::net::UnixListener::from_std(l))
            .map(Async::Unix),
        Listener::Tcp(l) => l
            .set_nonblocking(true)
            .and_then(|_| tokio::net::TcpListener::from_std(l))
            .map(Async::Tcp),
    };
    let listener = match listener {
        Ok(l) => l,
        Err(e) => {
            let _ = tx.send(Err(e)).await;
            return;
        }
    };
    loop {
        let accepted: std::io::Result<Box<dyn Rw>> = match &listener {
            #[cfg(unix)]
            Async::Unix(l) => l.accept().await.map(|(s, _)| Box::new(s) as Box<dyn Rw>),
            Async::Tcp(l) => l.accept().await.map(|(s, _)| {
                // gRPC answers are small writes: Nagle's algorithm would hold them back.
                let _ = s.set_nodelay(true);
                Box::new(s) as Box<dyn Rw>
            }),
        };
        let stream = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        match &acceptor {
            None => {
                if tx.send(Ok(Io(stream))).await.is_err() {
                    return;
                }
            }
            Some(acceptor) => {
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match acceptor.accept(stream).await {
                        Ok(tls) => {
                            let _ = tx.send(Ok(Io(Box::new(tls)))).await;
                        }
                        // Not the client certificate Terraform announced: refused.
                        Err(e) => tracing::warn!("refused a connection: {e}"),
                    }
                });
            }
        }
    }
}

/// Serves `service` in this process on a fresh Unix socket with the TLS a launch would set up
/// for `client_cert_pem`, and returns the handshake line it would print: for tests of the
/// wire that need no process.
#[cfg(all(test, unix))]
pub(crate) async fn serve_in_process(
    service: Arc<ProviderService>,
    client_cert_pem: &str,
) -> crate::client::Handshake {
    let tls = ServerTls::new(client_cert_pem).expect("server TLS");
    let listener = Listener::bind().expect("a socket");
    let cert = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&tls.cert_der);
    let line = format!("1|6|{}|grpc|{cert}", listener.address().expect("address"));
    tokio::spawn(run(listener, Some(tls.config), service));
    crate::client::Handshake::parse(&line).expect("handshake line")
}
