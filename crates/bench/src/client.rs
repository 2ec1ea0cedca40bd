//! The load's HTTP/1.1, on hyper: what a request costs the generator is CPU the two cores do
//! not give the services it measures, so the load spends as little as a lean client does.
//!
//! - The closed loop: each worker has a connection of its own, driven by the worker's task
//!   itself ([`Connection`]): a request is written, and its answer read, without handing
//!   either to another task, and without a pool to check out from.
//! - The open loop: hyper-util's pooled client, since its requests overlap.
//!
//! Plain `http://` only: the load runs against this machine's own listeners.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// How long one request may take, answer included, before it counts as an error (and its
/// connection is dropped).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the load goes: a base URL, `http://host:port`.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port`, for the open loop's absolute URIs.
    base: String,
    authority: String,
    host: HeaderValue,
}

impl Target {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let url = url.trim_end_matches('/');
        let uri: hyper::Uri = url.parse()?;
        anyhow::ensure!(
            uri.scheme_str() == Some("http"),
            "{url}: the load speaks plain http only"
        );
        anyhow::ensure!(
            uri.path_and_query().is_none_or(|p| p.as_str() == "/"),
            "{url}: a base URL is a scheme, a host and a port, no path"
        );
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow::anyhow!("{url}: no host"))?
            .as_str()
            .to_owned();
        Ok(Self {
            base: url.to_owned(),
            host: HeaderValue::from_str(&authority)?,
            authority,
        })
    }
}

/// One request of the load: `path` is the path and query (`/api/v1/…`).
#[derive(Debug)]
pub struct Call {
    pub method: Method,
    pub path: String,
    /// `Bearer …`, made once per session.
    pub token: Option<HeaderValue>,
    pub json: Option<Bytes>,
}

impl Call {
    pub fn get(path: String, token: Option<HeaderValue>) -> Self {
        Self {
            method: Method::GET,
            path,
            token,
            json: None,
        }
    }

    /// The request: origin-form (`/path`, with `Host`) on a connection of its own, absolute
    /// for the pooled client.
    fn request(self, target: &Target, absolute: bool) -> anyhow::Result<Request<Full<Bytes>>> {
        let uri = if absolute {
            format!("{}{}", target.base, self.path)
        } else {
            self.path
        };
        let mut req = Request::builder()
            .method(self.method)
            .uri(uri)
            .header(HOST, target.host.clone());
        if let Some(token) = self.token {
            req = req.header(AUTHORIZATION, token);
        }
        let body = match self.json {
            Some(json) => {
                req = req.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                json
            }
            None => Bytes::new(),
        };
        Ok(req.body(Full::new(body))?)
    }
}

/// A bearer token as the header carries it.
pub fn bearer(token: &str) -> anyhow::Result<HeaderValue> {
    Ok(HeaderValue::from_str(&format!("Bearer {token}"))?)
}

type Driver = Pin<Box<http1::Connection<TokioIo<TcpStream>, Full<Bytes>>>>;

/// A closed-loop worker's connection, (re)made when needed.
pub struct Connection {
    target: Target,
    live: Option<Live>,
}

struct Live {
    sender: http1::SendRequest<Full<Bytes>>,
    /// hyper's side of the connection (reading, writing), polled by whoever awaits an
    /// exchange on it; `None` once it has ended (the peer closed it).
    driver: Option<Driver>,
}

impl Connection {
    pub fn new(target: Target) -> Self {
        Self { target, live: None }
    }

    /// Sends `call` and reads its whole answer: whether it succeeded (a 2xx, read to its end,
    /// in time). A failed exchange leaves the connection to be made again.
    pub async fn exchange(&mut self, call: Call) -> bool {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.try_exchange(call)).await {
            Ok(Ok(ok)) => ok,
            Ok(Err(_)) | Err(_) => {
                let never_connected = self.live.is_none();
                self.live = None;
                if never_connected {
                    // Refused: not a busy loop of refusals while the server is away.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                false
            }
        }
    }

    async fn try_exchange(&mut self, call: Call) -> anyhow::Result<bool> {
        let mut req = call.request(&self.target, false)?;
        let mut retried = false;
        loop {
            let (live, reused) = self.ready().await?;
            match driving(&mut live.driver, live.sender.try_send_request(req)).await {
                Ok(res) => return read_through(res, &mut live.driver).await,
                // The server closed a kept-alive connection before the request was written
                // (hyper hands it back): sent once more, on a new connection, as a pooled
                // client would. Never a request that was written.
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused && !retried => {
                        retried = true;
                        self.live = None;
                        req = unsent;
                    }
                    _ => return Err(e.into_error().into()),
                },
            }
        }
    }

    /// The connection, ready for a request, and whether it served one before: made if there
    /// is none, or if the one there was has ended (the server closed it while it was idle,
    /// and hyper has read that close).
    async fn ready(&mut self) -> anyhow::Result<(&mut Live, bool)> {
        let reusable = match &mut self.live {
            Some(live) if live.driver.is_some() => {
                driving(&mut live.driver, live.sender.ready()).await.is_ok()
            }
            _ => false,
        };
        if !reusable {
            self.live = None;
            self.live = Some(connect(&self.target).await?);
        }
        self.live
            .as_mut()
            .map(|live| (live, reusable))
            .ok_or_else(|| anyhow::anyhow!("no connection"))
    }
}

/// A new connection, ready for its first request.
async fn connect(target: &Target) -> anyhow::Result<Live> {
    let tcp = TcpStream::connect(&target.authority).await?;
    tcp.set_nodelay(true)?;
    let (mut sender, driver) = http1::handshake(TokioIo::new(tcp)).await?;
    let mut driver = Some(Box::pin(driver));
    driving(&mut driver, sender.ready()).await?;
    Ok(Live { sender, driver })
}

/// `f`, with the connection's driver polled beside it until either ends.
async fn driving<F: Future>(driver: &mut Option<Driver>, f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    loop {
        let Some(d) = driver.as_mut() else {
            return f.await;
        };
        tokio::select! {
            biased;
            out = &mut f => return out,
            _ = d.as_mut() => *driver = None,
        }
    }
}

/// Reads an answer's body to its end (a client would), without keeping it.
async fn read_through(
    res: Response<Incoming>,
    driver: &mut Option<Driver>,
) -> anyhow::Result<bool> {
    let ok = res.status().is_success();
    let mut body = res.into_body();
    while let Some(frame) = driving(driver, body.frame()).await {
        frame?;
    }
    Ok(ok)
}

/// The open loop's client: pooled connections, as many as its requests in flight need.
#[derive(Clone)]
pub struct Pool {
    target: Target,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Pool {
    pub fn new(target: Target) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            target,
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// As [`Connection::exchange`].
    pub async fn exchange(&self, call: Call) -> bool {
        let exchange = async {
            let req = call.request(&self.target, true)?;
            let res = self.client.request(req).await?;
            read_through(res, &mut None).await
        };
        matches!(
            tokio::time::timeout(REQUEST_TIMEOUT, exchange).await,
            Ok(Ok(true))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_a_plain_http_base() {
        let t = Target::parse("http://127.0.0.1:9080/").unwrap();
        assert_eq!(t.base, "http://127.0.0.1:9080");
        assert_eq!(t.authority, "127.0.0.1:9080");
        assert!(Target::parse("https://127.0.0.1:9080").is_err());
        assert!(Target::parse("http://127.0.0.1:9080/api").is_err());
    }

    /// Against a real listener: answers read whole, a refusal counted, the connection made again
    /// after the server closed it.
    #[tokio::test]
    async fn a_connection_reads_answers_and_is_made_again_after_a_close() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut accepted = 0;
            // Each connection answers two requests (200 with a body, then 404), then closes.
            while let Ok((mut sock, _)) = listener.accept().await {
                accepted += 1;
                for status in ["200 OK", "404 Not Found"] {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        let n = sock.read(&mut buf).await.unwrap();
                        assert!(n > 0, "the client closed a connection it was to use");
                        seen.extend_from_slice(&buf[..n]);
                    }
                    let head = String::from_utf8_lossy(&seen).to_lowercase();
                    assert!(head.starts_with("get /x?y=1 http/1.1\r\n"), "{head}");
                    assert!(head.contains("authorization: bearer t"), "{head}");
                    let body = "z".repeat(20_000);
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    sock.write_all(answer.as_bytes()).await.unwrap();
                }
                if accepted == 2 {
                    break;
                }
            }
            accepted
        });
        let mut conn = Connection::new(Target::parse(&format!("http://{addr}")).unwrap());
        let call = || Call::get("/x?y=1".into(), Some(bearer("t").unwrap()));
        let mut outcomes = Vec::new();
        for n in 0..4 {
            if n == 2 {
                // The server has closed the first connection while it was idle.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            outcomes.push(conn.exchange(call()).await);
        }
        assert_eq!(outcomes, [true, false, true, false]);
        assert_eq!(server.await.unwrap(), 2);
        // The server is gone: a refusal, counted as a failure.
        assert!(!conn.exchange(call()).await);
    }
}
