//! TLS termination on the data-plane listener (rustls, ALPN h2 and http/1.1).

mod common;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

async fn tls_connect(
    addr: std::net::SocketAddr,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(fixture("ca-cert.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test]
async fn terminates_tls_with_http1_and_h2() {
    let upstream = format!("http://127.0.0.1:{}", common::closed_port());
    let extra = format!(
        "[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"",
        fixture("tls-cert.pem"),
        fixture("tls-key.pem")
    );
    // `[server.tls]` must come after the plain `[server]` keys: put it at the end.
    let toml = format!(
        "{}\n{extra}\n",
        common::passthrough_config(&upstream, "", "")
    );
    let p = common::start(&toml).await;

    // HTTP/1.1 over TLS: the proxy answers (502 since the upstream is closed).
    let tls = tls_connect(p.data_addr, b"http/1.1").await;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/v1/models")
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 502);
    assert!(resp.headers().contains_key("x-request-id"));

    // h2 over TLS via ALPN.
    let tls = tls_connect(p.data_addr, b"h2").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("https://localhost/v1/models")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 502);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("upstream_connect_error"));
    p.shutdown().await;
}

#[test]
fn bad_tls_files_are_config_errors() {
    let toml = "[server.tls]\ncert_file = \"/nonexistent/cert.pem\"\nkey_file = \"/nonexistent/key.pem\"\n";
    let err = parapet::config::load_str(toml, std::path::Path::new("t.toml"), &[], &|_| None)
        .unwrap_err();
    assert_eq!(err.0[0].field, "server.tls");
    assert!(err.0[0].message.contains("cert_file"), "{err}");
}
