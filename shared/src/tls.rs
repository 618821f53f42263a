//! TLS for the Graph API and media downloads: every reqwest client starts from
//! [`https_client_builder`], which hands it one shared rustls configuration.
//!
//! The provider is aws-lc-rs with post-quantum preference, as the AWS SDK's own client uses
//! (`default-https-client`): both offer the hybrid X25519MLKEM768 key exchange first, so traffic
//! recorded today (the access token, messages, phone numbers, secret values) is not left to a future
//! quantum computer, and fall back to X25519 or P-256 where the server has no ML-KEM. ring would make
//! each binary about 0.5–0.7 MB smaller zipped but has no ML-KEM (docs/performance.md, "Package size").
//!
//! Why one shared configuration: reading and parsing the system's certificates is most of what
//! building an HTTPS client costs at a cold start (about 17 M instructions on Debian, whose PEM bundle
//! and directory are decoded in constant time), and each reqwest client would read them again. The
//! SDK keeps its own cache of the same certificates, read when the first SDK client is built, so a
//! function that calls Graph reads them twice per cold start (about 3 ms of the sender's init here).
//! Mozilla's roots compiled in (`webpki-roots`) would save that, and were tried: they freeze the
//! trust list at build time (Lambda's runtime patches the system bundle without a redeploy) and
//! would have to be checked against the roots Meta's hosts chain to, which cannot be done from here.

use std::sync::{Arc, LazyLock};

use rustls::{ClientConfig, RootCertStore};

/// The system's trusted roots, read once per process. `SSL_CERT_FILE` / `SSL_CERT_DIR` replace the
/// system's locations when set; they do not add to them. Certificates that do not
/// parse are skipped, as every TLS client does.
static ROOTS: LazyLock<Arc<RootCertStore>> = LazyLock::new(|| {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(event = "tls_root_certificates_unreadable", error = %error,
            "a root certificate file could not be read (check SSL_CERT_FILE / SSL_CERT_DIR): {error}");
    }
    let mut store = RootCertStore::empty();
    let (_, skipped) = store.add_parsable_certificates(found.certs);
    if skipped > 0 {
        tracing::warn!(
            event = "tls_root_certificates_skipped",
            skipped,
            "{skipped} root certificates did not parse and are not trusted"
        );
    }
    if store.is_empty() {
        tracing::warn!(event = "tls_no_root_certificates",
            "no trusted root certificates: every TLS connection will fail; install ca-certificates, or point SSL_CERT_FILE at a PEM bundle");
    }
    Arc::new(store)
});

/// One client configuration: aws-lc-rs (post-quantum first), TLS 1.2 and 1.3, the system's roots,
/// HTTP/2 or 1.1 by ALPN.
static CLIENT_CONFIG: LazyLock<ClientConfig> = LazyLock::new(|| {
    let mut config = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("aws-lc-rs supports TLS 1.2 and 1.3")
    .with_root_certificates(Arc::clone(&ROOTS))
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
});

/// How many roots this process trusts. Zero means no HTTPS connection can succeed: a container
/// without `ca-certificates`, or `SSL_CERT_FILE` pointing at nothing.
pub fn trusted_root_count() -> usize {
    ROOTS.len()
}

/// A reqwest builder whose TLS is the shared configuration above. reqwest is built without a crypto
/// provider of its own, so a plain `reqwest::Client::new()` would panic when it set up TLS
/// (shared/tests/http_clients.rs finds one). The builder's own TLS options (`tls_version_min`,
/// extra root certificates, `danger_*`) do nothing on a preconfigured client: change them here.
pub fn https_client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().tls_backend_preconfigured(CLIENT_CONFIG.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_configuration_speaks_http2_and_http1_by_alpn() {
        assert_eq!(
            CLIENT_CONFIG.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn post_quantum_key_exchange_is_offered_first() {
        let first = CLIENT_CONFIG.crypto_provider().kx_groups[0].name();
        assert_eq!(first, rustls::NamedGroup::X25519MLKEM768);
    }

    #[test]
    fn a_reqwest_client_builds_without_a_process_wide_crypto_provider() {
        // No provider is installed anywhere in this crate; building must not need one.
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
        https_client_builder().build().expect("a client");
    }
}
