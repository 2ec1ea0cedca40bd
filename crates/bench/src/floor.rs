//! `dream-bench floor`: the least a proxy hop built on actix-web costs. actix-web serves, hyper's
//! pooled client forwards (the gateway's two crates, with its server settings), and nothing
//! else happens: no token, rate limit, route table, request id, metrics or header rule. `make
//! bench` runs each hop's operation through it beside the gateway and nginx, so that the report
//! tells what actix-web and hyper cost from what the gateway adds to them.

use std::net::SocketAddr;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use futures_util::StreamExt;
use http_body_util::BodyExt;

#[derive(clap::Args)]
pub struct FloorArgs {
    /// Where to listen, e.g. 127.0.0.1:9091.
    #[arg(long)]
    listen: SocketAddr,
    /// The upstream every request goes to, e.g. 127.0.0.1:9082 (plain HTTP).
    #[arg(long)]
    upstream: SocketAddr,
    /// HTTP workers (default: `HTTP_WORKERS`, else one per core, as the gateway).
    #[arg(long, env = "HTTP_WORKERS")]
    workers: Option<usize>,
}

/// Headers that belong to one hop, in either direction.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<web::Bytes>,
>;

thread_local! {
    /// One client per worker thread, as the gateway keeps (a pooled connection's task runs on
    /// the runtime that opened it).
    static CLIENT: Client = {
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.set_nodelay(true);
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(64)
            .build(http)
    };
}

/// Serves until killed.
pub fn serve(args: FloorArgs) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(args.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    serve_on(listener, args.upstream, workers)
}

fn serve_on(
    listener: std::net::TcpListener,
    upstream: SocketAddr,
    workers: usize,
) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(upstream))
                .default_service(web::to(forward))
        })
        // The gateway's server settings (service-kit's `serve_http`): Nagle off on every
        // connection, idle connections kept 75 s, the write buffer flushed at 4 KiB.
        .on_connect(|conn, _| {
            if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = tcp.set_nodelay(true);
            }
        })
        .keep_alive(std::time::Duration::from_secs(75))
        .h1_write_buffer_size(4 * 1024)
        .workers(workers.max(1))
        .listen(listener)?
        .run()
        .await
    })?;
    Ok(())
}

async fn forward(
    req: HttpRequest,
    body: web::Bytes,
    upstream: web::Data<SocketAddr>,
) -> HttpResponse {
    match ask(&req, body, **upstream).await {
        Ok(res) => res,
        Err(e) => HttpResponse::BadGateway().body(e.to_string()),
    }
}

async fn ask(
    req: &HttpRequest,
    body: web::Bytes,
    upstream: SocketAddr,
) -> anyhow::Result<HttpResponse> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut out = hyper::Request::new(http_body_util::Full::new(body));
    *out.method_mut() = hyper::Method::from_bytes(req.method().as_str().as_bytes())?;
    *out.uri_mut() = format!("http://{upstream}{path}").parse()?;
    for (name, value) in req.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            out.headers_mut().append(
                hyper::header::HeaderName::from_bytes(name.as_str().as_bytes())?,
                hyper::header::HeaderValue::from_bytes(value.as_bytes())?,
            );
        }
    }
    let res = CLIENT.with(Client::clone).request(out).await?;
    let mut back = HttpResponse::build(StatusCode::from_u16(res.status().as_u16())?);
    for (name, value) in res.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            back.append_header((
                HeaderName::from_bytes(name.as_str().as_bytes())?,
                HeaderValue::from_bytes(value.as_bytes())?,
            ));
        }
    }
    let length = hyper::body::Body::size_hint(res.body()).exact();
    let body = res
        .into_body()
        .into_data_stream()
        .map(|chunk| chunk.map_err(std::io::Error::other));
    Ok(match length {
        Some(n) => back.body(actix_web::body::SizedStream::new(n, body)),
        None => back.streaming(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Through the floor, a request reaches the upstream with its path, query, method, headers
    /// and body, and its answer comes back byte for byte, status and headers included.
    #[test]
    fn a_request_goes_through_unchanged() -> anyhow::Result<()> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let upstream = std::net::TcpListener::bind("127.0.0.1:0")?;
        let upstream_addr = upstream.local_addr()?;
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(|| {
                    App::new().default_service(web::to(
                        |req: HttpRequest, body: web::Bytes| async move {
                            let seen = format!(
                                "{} {} {} {}",
                                req.method(),
                                req.uri(),
                                req.headers()
                                    .get("x-probe")
                                    .map_or("-", |v| v.to_str().unwrap_or("?")),
                                String::from_utf8_lossy(&body),
                            );
                            HttpResponse::Created()
                                .insert_header(("x-back", "yes"))
                                .body(seen)
                        },
                    ))
                })
                .workers(1)
                .listen(upstream)?
                .run();
                server.await
            })
        });
        let floor = std::net::TcpListener::bind("127.0.0.1:0")?;
        let listen = floor.local_addr()?;
        std::thread::spawn(move || serve_on(floor, upstream_addr, 1));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let client = reqwest::Client::new();
            let mut answer = None;
            for _ in 0..100 {
                match client
                    .post(format!("http://{listen}/a/b?c=d"))
                    .header("x-probe", "through")
                    .body("payload")
                    .send()
                    .await
                {
                    Ok(r) => {
                        answer = Some(r);
                        break;
                    }
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                }
            }
            let answer = answer.ok_or_else(|| anyhow::anyhow!("the floor never answered"))?;
            assert_eq!(answer.status(), 201);
            assert_eq!(answer.headers()["x-back"], "yes");
            assert_eq!(answer.text().await?, "POST /a/b?c=d through payload");
            Ok(())
        })
    }
}
