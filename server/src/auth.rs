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

/// The user id of a valid, unexpired HS256 token with a non-blank `sub`.
pub fn verify_token(secret: &str, token: &str) -> Option<String> {
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
    .ok()?;
    let user = data.claims.sub.trim().to_string();
    (!user.is_empty()).then_some(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_only_with_their_secret() {
        let token = issue_token("s1", " alice ", 60).unwrap();
        assert_eq!(verify_token("s1", &token).as_deref(), Some("alice"));
        assert_eq!(verify_token("s2", &token), None);
        let expired = issue_token("s1", "alice", -120).unwrap();
        assert_eq!(verify_token("s1", &expired), None);
        assert_eq!(verify_token("s1", "garbage"), None);
    }
}
