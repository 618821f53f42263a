//! The subscription handshake: Meta's GET with `hub.mode`, `hub.verify_token`, `hub.challenge`
//! (DESIGN rule 1). It carries no body and no signature.

use subtle::ConstantTimeEq;

use crate::secret::SecretString;

/// The three query parameters, read raw (their names contain dots; never rewrite them).
#[derive(Debug, Default, Clone, Copy)]
pub struct VerificationQuery<'a> {
    pub mode: Option<&'a str>,
    pub verify_token: Option<&'a str>,
    pub challenge: Option<&'a str>,
}

/// Why a handshake was refused. The challenge is never echoed on refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerificationError {
    #[error("hub.mode must be \"subscribe\"")]
    Mode,
    #[error("hub.verify_token does not match WAHOOK_VERIFY_TOKEN: paste the same value in Meta's App Dashboard > WhatsApp > Configuration")]
    Token,
    #[error("hub.challenge is missing")]
    Challenge,
}

/// Returns the challenge to send back, byte for byte, when the handshake is valid.
pub fn verify<'a>(
    query: VerificationQuery<'a>,
    verify_token: &SecretString,
) -> Result<&'a str, VerificationError> {
    if query.mode != Some("subscribe") {
        return Err(VerificationError::Mode);
    }
    let token = query.verify_token.unwrap_or("");
    // Constant time: the token is a shared secret compared against attacker input.
    if !bool::from(token.as_bytes().ct_eq(verify_token.expose().as_bytes())) {
        return Err(VerificationError::Token);
    }
    // Meta calls it an int on one page and a string on another: treat it as opaque text.
    match query.challenge {
        Some(c) if !c.is_empty() => Ok(c),
        _ => Err(VerificationError::Challenge),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q<'a>(
        mode: Option<&'a str>,
        token: Option<&'a str>,
        challenge: Option<&'a str>,
    ) -> VerificationQuery<'a> {
        VerificationQuery {
            mode,
            verify_token: token,
            challenge,
        }
    }

    fn token() -> SecretString {
        SecretString::new("my-verify-token")
    }

    #[test]
    fn a_valid_handshake_returns_the_challenge_unchanged() {
        for challenge in [
            "1158201444",
            "0042",
            "abc DEF+/=",
            "99999999999999999999999",
        ] {
            assert_eq!(
                verify(
                    q(Some("subscribe"), Some("my-verify-token"), Some(challenge)),
                    &token()
                ),
                Ok(challenge)
            );
        }
    }

    #[test]
    fn wrong_token_or_mode_is_refused() {
        assert_eq!(
            verify(
                q(Some("subscribe"), Some("my-verify-tokeN"), Some("1")),
                &token()
            ),
            Err(VerificationError::Token)
        );
        assert_eq!(
            verify(q(Some("subscribe"), None, Some("1")), &token()),
            Err(VerificationError::Token)
        );
        assert_eq!(
            verify(
                q(Some("unsubscribe"), Some("my-verify-token"), Some("1")),
                &token()
            ),
            Err(VerificationError::Mode)
        );
        assert_eq!(
            verify(q(None, Some("my-verify-token"), Some("1")), &token()),
            Err(VerificationError::Mode)
        );
        assert_eq!(
            verify(
                q(Some("subscribe"), Some("my-verify-token"), None),
                &token()
            ),
            Err(VerificationError::Challenge)
        );
    }
}
