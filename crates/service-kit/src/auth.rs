//! Access tokens: short-lived JWTs signed with Ed25519 (EdDSA). Only the auth service holds the
//! private key and mints them; every service verifies them with the public key.

use std::future::{Ready, ready};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;

/// The development key pair in `deploy/dev-keys` (public: never for production).
pub const DEV_PRIVATE_KEY_PEM: &str = include_str!("../../../deploy/dev-keys/jwt-ed25519.pem");
pub const DEV_PUBLIC_KEY_PEM: &str = include_str!("../../../deploy/dev-keys/jwt-ed25519.pub.pem");

const ISSUER: &str = "dream-auth";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    /// The refresh-token family this access token came from (logout ends the family).
    pub sid: Uuid,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("invalid Ed25519 key: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("refusing to use the public development key pair with DREAM_ENV=production")]
    DevKeyInProduction,
    #[error(
        "refusing to use the public development key pair while listening on {0}, which other \
         machines can reach: set JWT_PUBLIC_KEY_PEM/JWT_PRIVATE_KEY_PEM, or HOST=127.0.0.1"
    )]
    DevKeyExposed(String),
}

/// Whether the public development key pair (anyone can mint tokens with it) may be used: only
/// in development, and only on a loopback address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevKeys {
    Allowed,
    Production,
    Exposed(String),
}

impl DevKeys {
    pub fn policy(production: bool, host: &str) -> Self {
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if production {
            DevKeys::Production
        } else if !loopback {
            DevKeys::Exposed(host.to_owned())
        } else {
            DevKeys::Allowed
        }
    }

    fn from_production(production: bool) -> Self {
        if production {
            DevKeys::Production
        } else {
            DevKeys::Allowed
        }
    }
}

/// Verification (and, in the auth service, signing) keys.
#[derive(Clone)]
pub struct TokenKeys(Arc<Keys>);

struct Keys {
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    validation: Validation,
    access_ttl: Duration,
    /// Tokens already verified, by their exact text. An Ed25519 verification costs tens of
    /// microseconds and every request is verified at the gateway and again at its service;
    /// a hit costs a hash lookup. Only tokens that passed full verification get in, and a hit
    /// still checks expiry.
    verified: moka::sync::Cache<Box<str>, Claims>,
}

/// Verified tokens kept per process (a few MB at most), and for how long at most.
const VERIFIED_CAPACITY: u64 = 20_000;
const VERIFIED_TTL: Duration = Duration::from_secs(60);

impl TokenKeys {
    /// Verification only, from a public key PEM.
    pub fn verifier(public_pem: &str, production: bool) -> Result<Self, KeyError> {
        Self::build(
            public_pem,
            None,
            &DevKeys::from_production(production),
            Duration::from_secs(900),
        )
    }

    /// Signing and verification, for the auth service.
    pub fn signer(
        public_pem: &str,
        private_pem: &str,
        production: bool,
        access_ttl: Duration,
    ) -> Result<Self, KeyError> {
        Self::build(
            public_pem,
            Some(private_pem),
            &DevKeys::from_production(production),
            access_ttl,
        )
    }

    /// From `JWT_PUBLIC_KEY_PEM` (and `JWT_PRIVATE_KEY_PEM` when `sign`), falling back to the
    /// development pair where `dev` allows it.
    pub fn from_env(sign: bool, dev: DevKeys, access_ttl: Duration) -> Result<Self, KeyError> {
        let public =
            std::env::var("JWT_PUBLIC_KEY_PEM").unwrap_or_else(|_| DEV_PUBLIC_KEY_PEM.to_owned());
        if sign {
            let private = std::env::var("JWT_PRIVATE_KEY_PEM")
                .unwrap_or_else(|_| DEV_PRIVATE_KEY_PEM.to_owned());
            Self::build(&public, Some(&private), &dev, access_ttl)
        } else {
            Self::build(&public, None, &dev, Duration::from_secs(900))
        }
    }

    fn build(
        public_pem: &str,
        private_pem: Option<&str>,
        dev: &DevKeys,
        access_ttl: Duration,
    ) -> Result<Self, KeyError> {
        let is_dev = |pem: &str, dev: &str| pem.trim() == dev.trim();
        if is_dev(public_pem, DEV_PUBLIC_KEY_PEM)
            || private_pem.is_some_and(|p| is_dev(p, DEV_PRIVATE_KEY_PEM))
        {
            match dev {
                DevKeys::Allowed => {}
                DevKeys::Production => return Err(KeyError::DevKeyInProduction),
                DevKeys::Exposed(host) => return Err(KeyError::DevKeyExposed(host.clone())),
            }
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.leeway = 5;
        Ok(Self(Arc::new(Keys {
            decoding: DecodingKey::from_ed_pem(public_pem.as_bytes())?,
            encoding: private_pem
                .map(|p| EncodingKey::from_ed_pem(p.as_bytes()))
                .transpose()?,
            validation,
            access_ttl,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                .time_to_live(VERIFIED_TTL)
                .build(),
        })))
    }

    pub fn access_ttl(&self) -> Duration {
        self.0.access_ttl
    }

    /// Mints an access token (auth service only: `None` without the private key).
    pub fn mint(&self, user: Uuid, session_family: Uuid) -> Option<String> {
        let key = self.0.encoding.as_ref()?;
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user,
            iat: now,
            exp: now + self.0.access_ttl.as_secs() as i64,
            iss: ISSUER.to_owned(),
            sid: session_family,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, key).ok()
    }

    /// Checks a token's signature, issuer and expiry (a token seen before skips the signature).
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        if let Some(claims) = self.0.verified.get(token) {
            return if claims.exp + self.0.validation.leeway as i64 >= Utc::now().timestamp() {
                Ok(claims)
            } else {
                self.0.verified.invalidate(token);
                Err(ApiError::InvalidToken)
            };
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.0.decoding, &self.0.validation)
            .map(|d| d.claims)
            .map_err(|_| ApiError::InvalidToken)?;
        self.0.verified.insert(token.into(), claims.clone());
        Ok(claims)
    }
}

/// The authenticated caller: a handler that takes it only runs with a valid access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthUser {
    pub id: Uuid,
    pub session_family: Uuid,
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(keys) = req.app_data::<web::Data<TokenKeys>>() else {
            return ready(Err(ApiError::internal(anyhow::anyhow!(
                "TokenKeys missing from app data"
            ))));
        };
        let token = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            });
        // Defence in depth: a logged-out session is refused here too, not only at the gateway.
        let revoked = |sid| {
            req.app_data::<web::Data<db_core::Revocations>>()
                .is_some_and(|r| r.is_revoked(sid))
        };
        ready(match token {
            None => Err(ApiError::Unauthorized),
            Some(t) => keys.verify(t.trim()).and_then(|c| {
                if revoked(c.sid) {
                    Err(ApiError::InvalidToken)
                } else {
                    Ok(AuthUser {
                        id: c.sub,
                        session_family: c.sid,
                    })
                }
            }),
        })
    }
}

/// The caller when an access token was sent, else `None`: for public operations that show a
/// signed-in user more (the catalogue with their own characters). A token that is sent is
/// checked exactly as [`AuthUser`] checks it: a bad one is refused, never taken as anonymous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaybeUser(pub Option<AuthUser>);

impl FromRequest for MaybeUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if !req
            .headers()
            .contains_key(actix_web::http::header::AUTHORIZATION)
        {
            return ready(Ok(MaybeUser(None)));
        }
        ready(
            AuthUser::from_request(req, payload)
                .into_inner()
                .map(|u| MaybeUser(Some(u))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(ttl: Duration) -> TokenKeys {
        TokenKeys::signer(DEV_PUBLIC_KEY_PEM, DEV_PRIVATE_KEY_PEM, false, ttl).unwrap()
    }

    #[test]
    fn a_verified_token_is_remembered_but_nothing_else_gets_in() {
        let k = keys(Duration::from_secs(900));
        let (user, family) = (Uuid::new_v4(), Uuid::new_v4());
        let token = k.mint(user, family).unwrap();
        assert_eq!(k.verify(&token).unwrap().sub, user);
        assert_eq!(k.0.verified.get(token.as_str()).map(|c| c.sub), Some(user));
        assert_eq!(k.verify(&token).unwrap().sid, family, "from the cache");
        // One character off, or another key's signature: verified in full, and refused.
        let mut forged = token.clone();
        forged.pop();
        forged.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(k.verify(&forged).is_err());
        let other = TokenKeys::signer(
            DEV_PUBLIC_KEY_PEM,
            DEV_PRIVATE_KEY_PEM,
            false,
            Duration::from_secs(900),
        )
        .unwrap();
        assert!(other.verify("not.a.token").is_err());
        assert!(other.0.verified.get("not.a.token").is_none());
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let k = keys(Duration::from_secs(900));
        let claims = Claims {
            sub: Uuid::new_v4(),
            iat: 0,
            exp: Utc::now().timestamp() - 60,
            iss: ISSUER.to_owned(),
            sid: Uuid::new_v4(),
        };
        // As if verified a while ago, when it was still valid.
        k.0.verified.insert("stale".into(), claims);
        assert!(k.verify("stale").is_err());
        assert!(k.0.verified.get("stale").is_none());
    }
}
