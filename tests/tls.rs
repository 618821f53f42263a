//! Real TLS handshakes through the clients wahook builds: the AWS SDK's default HTTPS client and the
//! Graph client (`wahook::tls::https_client_builder`), both rustls on aws-lc-rs. Every other test
//! speaks plain HTTP to moto and the Meta simulator, so this is the one place a broken TLS set-up (no
//! crypto provider, no roots, a dependency bump that drops the post-quantum preference) shows before
//! it reaches AWS or Meta.
//!
//! The certificates in `fixtures/tls` are test-only, valid 2000–2126, made by `fixtures/tls/make.py`:
//! a CA (trusted here through SSL_CERT_FILE, as the system bundle is in Lambda), a certificate it
//! signed for localhost and 127.0.0.1, one it signed for another name, and a self-signed one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_config::Region;
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/tls")
        .join(name)
}

/// An HTTPS server on 127.0.0.1 that answers every request with `body` (JSON, read by both the SDK and
/// the Graph client), one request per connection. Returns its port and the key-exchange group of each
/// handshake it completed.
async fn serve(cert: &str, key: &str, body: &'static str) -> (u16, Groups) {
    let certs = vec![CertificateDer::from_pem_file(fixture(cert)).expect("the certificate")];
    let key = PrivateKeyDer::from_pem_file(fixture(key)).expect("the key");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("a server configuration");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let groups = Groups::default();
    let seen = groups.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                // A refused handshake is the client's doing, and what the untrusted case expects.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let group = tls
                    .get_ref()
                    .1
                    .negotiated_key_exchange_group()
                    .map(|g| g.name());
                seen.0.lock().unwrap().push(format!("{group:?}"));
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, groups)
}

/// The key-exchange groups a test server negotiated, one per handshake.
#[derive(Clone, Default)]
struct Groups(Arc<std::sync::Mutex<Vec<String>>>);

impl Groups {
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

async fn dynamo_at(port: u16) -> aws_sdk_dynamodb::Client {
    let sdk = wahook::aws::sdk_loader()
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("https://localhost:{port}"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tls"))
        .load()
        .await;
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    )
}

/// Every call is bounded: a handshake that hangs fails the test instead of the CI job.
async fn bounded<T>(what: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), what)
        .await
        .expect("no answer in 20 s")
}

const GRAPH_ANSWER: &str = r#"{"messaging_product":"whatsapp","contacts":[{"input":"15550123456","wa_id":"15550123456"}],"messages":[{"id":"wamid.over-tls"}],"TableNames":["over-tls"]}"#;

// One test: the trusted roots are read once per process, from SSL_CERT_FILE set here first.
#[tokio::test]
async fn the_sdk_and_the_graph_client_talk_only_to_servers_whose_certificate_is_trusted_and_named()
{
    std::env::set_var("SSL_CERT_FILE", fixture("ca.pem"));
    std::env::remove_var("SSL_CERT_DIR");
    // A proxy on the test machine would be asked to reach 127.0.0.1 for us: not what is tested.
    for proxy in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        std::env::remove_var(proxy);
    }
    assert_eq!(wahook::tls::trusted_root_count(), 1, "the test CA alone");

    let (trusted, handshakes) = serve("localhost.pem", "localhost.key", GRAPH_ANSWER).await;
    let (wrong_name, _) = serve("other-name.pem", "other-name.key", GRAPH_ANSWER).await;
    let (untrusted, _) = serve("untrusted.pem", "untrusted.key", GRAPH_ANSWER).await;

    // The AWS SDK: a real operation over TLS to a server it trusts.
    let tables = bounded(dynamo_at(trusted).await.list_tables().send())
        .await
        .expect("ListTables over TLS");
    assert_eq!(tables.table_names(), ["over-tls"]);

    // The Graph client, as the sender builds it: a send over TLS, by name and by address.
    for host in ["localhost", "127.0.0.1"] {
        let accepted = bounded(graph_at(host, trusted).send(&number(), &message()))
            .await
            .unwrap_or_else(|e| panic!("a send over TLS to {host}: {e:?}"));
        assert_eq!(accepted.wamid.as_str(), "wamid.over-tls");
    }
    // Both clients chose the post-quantum hybrid, since this server offers it.
    let groups = handshakes.all();
    assert_eq!(groups.len(), 3, "one handshake per call: {groups:?}");
    assert!(
        groups.iter().all(|g| g == "Some(X25519MLKEM768)"),
        "post-quantum key exchange on every connection: {groups:?}"
    );

    // Neither talks to a server whose certificate no trusted root signed, nor to one whose
    // certificate is trusted but names another host.
    for (port, why) in [
        (untrusted, "UnknownIssuer"),
        (wrong_name, "not valid for name"),
    ] {
        let refused = bounded(dynamo_at(port).await.list_tables().send())
            .await
            .expect_err("the SDK must refuse this certificate");
        let chain = DisplayErrorContext(&refused).to_string();
        assert!(chain.contains(why), "the SDK's error names {why}: {chain}");
        let refused = bounded(graph_at("localhost", port).send(&number(), &message()))
            .await
            .expect_err("the Graph client must refuse this certificate");
        let text = format!("{refused:?}");
        assert!(
            text.contains(why),
            "the Graph client's error names {why}: {text}"
        );
        // A refused handshake carried nothing: the sender may safely try again later.
        assert!(
            matches!(refused, wahook::graph::GraphError::NotSent(_)),
            "a refused handshake is NotSent: {text}"
        );
    }
}

fn graph_at(host: &str, port: u16) -> wahook::graph::GraphClient {
    wahook::graph::GraphClient::new(
        wahook::graph::GraphConfig {
            base_url: format!("https://{host}:{port}"),
            ..Default::default()
        },
        wahook::secret::SecretString::new("token"),
    )
    .expect("a Graph client over TLS with a trusted root")
}

fn number() -> wahook::domain::ids::PhoneNumberId {
    wahook::domain::ids::PhoneNumberId::parse("106540352242922").unwrap()
}

fn message() -> serde_json::Value {
    serde_json::json!({"messaging_product": "whatsapp", "to": "15550123456", "type": "text", "text": {"body": "hola"}})
}
