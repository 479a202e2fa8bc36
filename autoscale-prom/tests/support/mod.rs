//! An in-process, scripted HTTP(S) server on 127.0.0.1 for the client's fault tests, a throwaway PKI, and log
//! capture.
#![allow(dead_code)] // each test file uses a different part of the support module

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Frame, Incoming};
use hyper::header::HeaderMap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// What the server answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A JSON body with this status.
    Json(u16, String),
    /// Any status, content type and body.
    Raw {
        status: u16,
        content_type: Option<&'static str>,
        body: Vec<u8>,
    },
    /// Wait, then answer.
    Slow(Duration, Box<Reply>),
    /// Close the connection without answering.
    Drop,
    /// Announce `declared` bytes, send `body`, then break the connection.
    Truncated { declared: usize, body: Vec<u8> },
    /// A chunked JSON response of `chunks` chunks of `chunk_size` bytes (no Content-Length).
    Stream { chunks: usize, chunk_size: usize },
    /// A redirect.
    Redirect(u16, String),
}

impl Reply {
    /// A successful instant-vector answer with one unlabelled sample.
    pub fn value(v: &str) -> Reply {
        Reply::Json(
            200,
            format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1700000000,"{v}"]}}]}}}}"#
            ),
        )
    }

    /// A Prometheus error body.
    pub fn api_error(status: u16, error_type: &str, error: &str) -> Reply {
        Reply::Json(
            status,
            serde_json::json!({"status": "error", "errorType": error_type, "error": error})
                .to_string(),
        )
    }

    /// A plain-text error, as a proxy sends one.
    pub fn text(status: u16, body: &str) -> Reply {
        Reply::Raw {
            status,
            content_type: Some("text/plain; charset=utf-8"),
            body: body.as_bytes().to_vec(),
        }
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: String,
    /// Whether the TLS client presented a certificate.
    pub client_cert: bool,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("<binary>").to_owned())
    }

    /// The decoded form parameters, from the query string (GET) or the body (POST).
    pub fn params(&self) -> Vec<(String, String)> {
        let raw = if self.method == "POST" {
            self.body.clone()
        } else {
            self.query.clone().unwrap_or_default()
        };
        url::form_urlencoded::parse(raw.as_bytes())
            .into_owned()
            .collect()
    }

    pub fn param(&self, name: &str) -> Option<String> {
        self.params()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<Reply>,
    seen: Vec<Seen>,
}

/// A scripted server. Replies are used in order; the last one repeats.
pub struct Server {
    pub addr: SocketAddr,
    pub url: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub async fn start(script: Vec<Reply>) -> Server {
        Self::start_with(script, None).await
    }

    pub async fn start_tls(script: Vec<Reply>, tls: Arc<rustls::ServerConfig>) -> Server {
        Self::start_with(script, Some(TlsAcceptor::from(tls))).await
    }

    async fn start_with(script: Vec<Reply>, tls: Option<TlsAcceptor>) -> Server {
        assert!(!script.is_empty(), "a script needs at least one reply");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let state = Arc::new(Mutex::new(State {
            script: script.into(),
            seen: Vec::new(),
        }));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&shared);
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            // A failed handshake is part of some tests: the client sees it, the server moves on.
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let client_cert = stream.get_ref().1.peer_certificates().is_some();
                            serve(TokioIo::new(stream), state, client_cert).await;
                        }
                        None => serve(TokioIo::new(stream), state, false).await,
                    }
                });
            }
        });
        Server {
            addr,
            url: format!("{scheme}://127.0.0.1:{}", addr.port()),
            state,
            task,
        }
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Requests to the query endpoints so far.
    pub fn queries(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.starts_with("/api/v1/query"))
            .collect()
    }
}

async fn serve<I>(io: TokioIo<I>, state: Arc<Mutex<State>>, client_cert: bool)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| handle(req, Arc::clone(&state), client_cert));
    let _ = http1::Builder::new().serve_connection(io, service).await;
}

type Reply_ = Response<BoxBody<Bytes, io::Error>>;

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
    client_cert: bool,
) -> Result<Reply_, io::Error> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let reply = {
        let mut state = state.lock().unwrap();
        state.seen.push(Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts.headers.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
            client_cert,
        });
        if state.script.len() > 1 {
            state.script.pop_front().unwrap()
        } else {
            state.script.front().unwrap().clone()
        }
    };
    respond(reply).await
}

fn full(body: impl Into<Bytes>) -> BoxBody<Bytes, io::Error> {
    http_body_util::Full::new(body.into())
        .map_err(|e: Infallible| match e {})
        .boxed()
}

async fn respond(mut reply: Reply) -> Result<Reply_, io::Error> {
    while let Reply::Slow(delay, next) = reply {
        tokio::time::sleep(delay).await;
        reply = *next;
    }
    let mut builder = Response::builder();
    let body = match reply {
        Reply::Json(status, body) => {
            builder = builder
                .status(status)
                .header("content-type", "application/json");
            full(body)
        }
        Reply::Raw {
            status,
            content_type,
            body,
        } => {
            builder = builder.status(status);
            if let Some(ct) = content_type {
                builder = builder.header("content-type", ct);
            }
            full(body)
        }
        Reply::Drop => return Err(io::Error::other("scripted: drop the connection")),
        Reply::Truncated { declared, body } => {
            builder = builder
                .status(200)
                .header("content-type", "application/json")
                .header("content-length", declared);
            BoxBody::new(Chunks {
                remaining: VecDeque::from([Bytes::from(body)]),
                // Fail a moment later, so the head and the first bytes are surely on the wire.
                then_fail: Some(Box::pin(tokio::time::sleep(Duration::from_millis(50)))),
            })
        }
        Reply::Stream { chunks, chunk_size } => {
            builder = builder
                .status(200)
                .header("content-type", "application/json");
            BoxBody::new(Chunks {
                remaining: (0..chunks)
                    .map(|_| Bytes::from(vec![b' '; chunk_size]))
                    .collect(),
                then_fail: None,
            })
        }
        Reply::Redirect(status, location) => {
            builder = builder.status(status).header("location", location);
            full(Bytes::new())
        }
        Reply::Slow(..) => unreachable!(),
    };
    Ok(builder.body(body).unwrap())
}

/// A body of preset chunks, optionally failing after the last one (a connection cut mid-answer).
struct Chunks {
    remaining: VecDeque<Bytes>,
    then_fail: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if let Some(chunk) = self.remaining.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        match self.then_fail.as_mut() {
            Some(sleep) => sleep
                .as_mut()
                .poll(cx)
                .map(|()| Some(Err(io::Error::other("scripted: cut")))),
            None => Poll::Ready(None),
        }
    }
}

/// A throwaway PKI: a CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, with
/// the PEM files the client configuration names.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca_file: std::path::PathBuf,
    pub client_cert_file: std::path::PathBuf,
    pub client_key_file: std::path::PathBuf,
    ca_der: rustls::pki_types::CertificateDer<'static>,
    server_der: rustls::pki_types::CertificateDer<'static>,
    server_key_der: Vec<u8>,
}

impl Pki {
    pub fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "autoscale test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();

        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "autoscale");
        let client = client_params.signed_by(&client_key, &ca).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        Pki {
            ca_file: write("ca.pem", ca.pem()),
            client_cert_file: write("client.pem", client.pem()),
            client_key_file: write("client.key", client_key.serialize_pem()),
            ca_der: ca.der().clone(),
            server_der: server.der().clone(),
            server_key_der: server_key.serialize_der(),
            dir,
        }
    }

    /// The server's TLS configuration; with `require_client_cert`, only clients with a certificate from
    /// this CA are let in.
    pub fn server_config(&self, require_client_cert: bool) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca_der.clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(self.server_key_der.clone().into());
        Arc::new(
            builder
                .with_single_cert(vec![self.server_der.clone()], key)
                .unwrap(),
        )
    }
}

/// Log lines captured while the guard lives (on this thread: use a current-thread runtime).
pub struct Logs {
    buffer: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Logs {
    pub fn capture() -> Logs {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&buffer);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || LogWriter(Arc::clone(&writer)))
            .finish();
        Logs {
            buffer,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
