//! `X-Hub-Signature-256`: proof that a POST comes from Meta (DESIGN rule 2).
//!
//! Meta signs the exact body bytes with HMAC-SHA256 keyed by the app secret. We verify those bytes as
//! received (after API Gateway's base64, which the adapter undoes) and never a re-serialised parse: a
//! serializer changes `\u00e9` to `é` or `\/` to `/` and every accented message would fail (see
//! docs/whatsapp-platform.md §2 for the public bugs this avoids). Two secrets may be configured while
//! the app secret is rotated.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::secret::SecretString;

type HmacSha256 = Hmac<Sha256>;

/// The header Meta signs with. HTTP header names are case-insensitive; `http::HeaderMap` lowercases.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Why a POST was refused. Each message says what was wrong and what to check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Hub-Signature-256 header: only Meta's signed POSTs are accepted")]
    Missing,
    #[error("malformed X-Hub-Signature-256 header: expected sha256=<64 hex characters>")]
    Malformed,
    #[error("X-Hub-Signature-256 does not match the body: check that WAHOOK_APP_SECRET is the App Secret of the Meta app that owns this webhook (App Dashboard > Settings > Basic), and that nothing between Meta and this function re-encodes the body")]
    Mismatch,
}

/// Why a set of app secrets cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureConfigError {
    #[error("no app secret configured: set WAHOOK_APP_SECRET (or WAHOOK_APP_SECRET_ARN / WAHOOK_APP_SECRET_PARAM)")]
    NoSecret,
    #[error("an app secret is blank: a blank key would accept forged signatures; set the App Secret from App Dashboard > Settings > Basic")]
    Blank,
    #[error("at most two app secrets (current and previous, during rotation); got {0}")]
    TooMany(usize),
}

/// Checks signatures against one or two app secrets, keyed once at start-up.
#[derive(Clone)]
pub struct SignatureVerifier {
    // A keyed HMAC is cloned per check: the key schedule is paid once, not per request.
    keyed: Vec<HmacSha256>,
}

impl std::fmt::Debug for SignatureVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SignatureVerifier({} secret(s), [redacted])",
            self.keyed.len()
        )
    }
}

impl SignatureVerifier {
    pub fn new(secrets: &[SecretString]) -> Result<Self, SignatureConfigError> {
        if secrets.is_empty() {
            return Err(SignatureConfigError::NoSecret);
        }
        if secrets.len() > 2 {
            return Err(SignatureConfigError::TooMany(secrets.len()));
        }
        if secrets.iter().any(SecretString::is_blank) {
            return Err(SignatureConfigError::Blank);
        }
        let keyed = secrets
            .iter()
            .map(|s| {
                HmacSha256::new_from_slice(s.expose().as_bytes())
                    .expect("HMAC accepts keys of any length")
            })
            .collect();
        Ok(Self { keyed })
    }

    /// Verifies `header` (the value of `X-Hub-Signature-256`, if any) against the exact `body` bytes.
    pub fn verify(&self, header: Option<&[u8]>, body: &[u8]) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let expected = parse_header(header)?;
        // Every configured secret is tried, so timing does not reveal which one matched.
        let mut matched = false;
        for keyed in &self.keyed {
            let mut mac = keyed.clone();
            mac.update(body);
            matched |= mac.verify_slice(&expected).is_ok();
        }
        if matched {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

/// `sha256=<hex>`; Meta sends lowercase hex, uppercase is accepted too.
fn parse_header(value: &[u8]) -> Result<[u8; 32], SignatureError> {
    let value = value.trim_ascii();
    let hex_part = value
        .strip_prefix(b"sha256=")
        .ok_or(SignatureError::Malformed)?;
    // By hand rather than through `hex`: this runs on every delivery, and a fixed 64 digits need no
    // more than a table-free nibble per byte.
    if hex_part.len() != 64 {
        return Err(SignatureError::Malformed);
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex_part.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Ok(out)
}

fn nibble(digit: u8) -> Result<u8, SignatureError> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        b'A'..=b'F' => Ok(digit - b'A' + 10),
        _ => Err(SignatureError::Malformed),
    }
}

/// Computes the header value Meta would send for `body`. For tests, fixtures and the local simulator.
pub fn sign(secret: &SecretString, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[{"text":{"body":"J'ai mang\u00e9 des p\u00e2tes \ud83c\udf5d https:\/\/example.com"}}]}}]}]}"#;

    fn secret(s: &str) -> SecretString {
        SecretString::new(s)
    }

    fn verifier(secrets: &[&str]) -> SignatureVerifier {
        SignatureVerifier::new(&secrets.iter().map(|s| secret(s)).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn accepts_the_signature_meta_computes_over_the_exact_bytes() {
        let header = sign(&secret("app-secret"), BODY);
        assert_eq!(header.len(), "sha256=".len() + 64);
        verifier(&["app-secret"])
            .verify(Some(header.as_bytes()), BODY)
            .unwrap();
    }

    #[test]
    fn known_answer_from_an_independent_hmac() {
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"key",b"The quick brown fox jumps over the lazy dog",hashlib.sha256).hexdigest())'
        let body = b"The quick brown fox jumps over the lazy dog";
        let header = "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8";
        verifier(&["key"])
            .verify(Some(header.as_bytes()), body)
            .unwrap();
        assert_eq!(sign(&secret("key"), body), header);
    }

    #[test]
    fn a_signature_over_re_serialised_json_is_refused() {
        let parsed: serde_json::Value = serde_json::from_slice(BODY).unwrap();
        let reserialised = serde_json::to_vec(&parsed).unwrap();
        assert_ne!(reserialised, BODY, "serde_json writes é and / unescaped");
        let header = sign(&secret("app-secret"), &reserialised);
        assert_eq!(
            verifier(&["app-secret"]).verify(Some(header.as_bytes()), BODY),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_malformed_and_wrong_signatures_are_told_apart() {
        let v = verifier(&["app-secret"]);
        assert_eq!(v.verify(None, BODY), Err(SignatureError::Missing));
        let good = sign(&secret("app-secret"), BODY);
        for malformed in [
            "",
            "sha256=",
            "sha1=0123",
            "sha256=zz",
            &good[..good.len() - 2],
            &good.replace("sha256=", "SHA256="),
            &format!("{good}00"),
            &format!("{}g", &good[..good.len() - 1]),
            &format!("{}é", &good[..good.len() - 2]),
        ] {
            assert_eq!(
                v.verify(Some(malformed.as_bytes()), BODY),
                Err(SignatureError::Malformed),
                "{malformed}"
            );
        }
        let wrong = sign(&secret("another-secret"), BODY);
        assert_eq!(
            v.verify(Some(wrong.as_bytes()), BODY),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn uppercase_hex_and_surrounding_spaces_are_accepted() {
        let good = sign(&secret("app-secret"), BODY);
        let upper = format!(" sha256={} ", good["sha256=".len()..].to_uppercase());
        verifier(&["app-secret"])
            .verify(Some(upper.as_bytes()), BODY)
            .unwrap();
    }

    #[test]
    fn either_secret_verifies_during_rotation() {
        let v = verifier(&["new-secret", "old-secret"]);
        for s in ["new-secret", "old-secret"] {
            let h = sign(&secret(s), BODY);
            v.verify(Some(h.as_bytes()), BODY).unwrap();
        }
        let h = sign(&secret("neither"), BODY);
        assert_eq!(
            v.verify(Some(h.as_bytes()), BODY),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn blank_missing_or_too_many_secrets_are_refused_at_start_up() {
        assert_eq!(
            SignatureVerifier::new(&[]).unwrap_err(),
            SignatureConfigError::NoSecret
        );
        assert_eq!(
            SignatureVerifier::new(&[secret("  ")]).unwrap_err(),
            SignatureConfigError::Blank
        );
        assert_eq!(
            SignatureVerifier::new(&[secret("a"), secret("b"), secret("c")]).unwrap_err(),
            SignatureConfigError::TooMany(3)
        );
    }

    #[test]
    fn debug_does_not_leak_the_key() {
        let shown = format!("{:?}", verifier(&["super-secret-key"]));
        assert!(!shown.contains("super-secret"), "{shown}");
    }
}
