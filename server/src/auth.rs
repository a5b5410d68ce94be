//! HS256 JWT bearer authentication as in the reference example server: the `sub` claim is
//! the user id. Tokens are never logged or echoed.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::timefmt::now_ms;

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    iat: i64,
    nbf: i64,
    iss: String,
}

pub fn issue_token(secret: &str, user: &str, ttl_secs: i64) -> Result<String, String> {
    let now = now_ms() / 1000;
    let claims = Claims {
        sub: user.trim().to_string(),
        exp: now.saturating_add(ttl_secs),
        iat: now,
        nbf: now,
        iss: "oversqlite-server".into(),
    };
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| format!("cannot sign token: {e}"))
}

/// Why a bearer token was refused; logged (never the token itself), not sent to clients,
/// which get the reference's plain "Invalid token".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    Expired,
    NotYetValid,
    BadSignature,
    WrongAlgorithm,
    MissingClaim,
    BlankSubject,
    Malformed,
}

impl TokenRefusal {
    pub fn reason(self) -> &'static str {
        match self {
            TokenRefusal::Expired => "expired",
            TokenRefusal::NotYetValid => "not yet valid (nbf in the future)",
            TokenRefusal::BadSignature => "bad signature",
            TokenRefusal::WrongAlgorithm => "wrong algorithm (HS256 expected)",
            TokenRefusal::MissingClaim => "missing required claim (exp or sub)",
            TokenRefusal::BlankSubject => "blank sub claim",
            TokenRefusal::Malformed => "malformed",
        }
    }
}

/// The user id of a valid, unexpired HS256 token with a non-blank `sub`, or why not.
pub fn verify_token(secret: &str, token: &str) -> Result<String, TokenRefusal> {
    use jsonwebtoken::errors::ErrorKind;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_nbf = true;
    // No grace period, like the reference's golang-jwt validation.
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "sub"]);
    let data = decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(|e| match e.kind() {
        ErrorKind::ExpiredSignature => TokenRefusal::Expired,
        ErrorKind::ImmatureSignature => TokenRefusal::NotYetValid,
        ErrorKind::InvalidSignature => TokenRefusal::BadSignature,
        ErrorKind::InvalidAlgorithm => TokenRefusal::WrongAlgorithm,
        ErrorKind::MissingRequiredClaim(_) => TokenRefusal::MissingClaim,
        _ => TokenRefusal::Malformed,
    })?;
    let user = data.claims.sub.trim().to_string();
    if user.is_empty() {
        return Err(TokenRefusal::BlankSubject);
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_only_with_their_secret() {
        let token = issue_token("s1", " alice ", 60).unwrap();
        assert_eq!(verify_token("s1", &token), Ok("alice".to_string()));
        assert_eq!(verify_token("s2", &token), Err(TokenRefusal::BadSignature));
        let expired = issue_token("s1", "alice", -120).unwrap();
        assert_eq!(verify_token("s1", &expired), Err(TokenRefusal::Expired));
        assert_eq!(verify_token("s1", "garbage"), Err(TokenRefusal::Malformed));
        let blank = issue_token("s1", " ", 60).unwrap();
        assert_eq!(verify_token("s1", &blank), Err(TokenRefusal::BlankSubject));
    }
}
