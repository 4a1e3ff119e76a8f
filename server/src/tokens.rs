//! Access tokens (EdDSA JWT) and refresh tokens (session id + generation + MAC).

use crate::db::Store;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const ACCESS_TYP: &str = "at+jwt";

/// The signing key and the refresh-token MAC key, shared by every instance through the database.
pub struct Keys {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_x: String,
    refresh_mac: [u8; 32],
    validation: Validation,
    /// Tokens whose signature and claims were verified, by their exact text: the same token is
    /// presented many times during its life, and only `exp` can change its verdict.
    verified: std::sync::Mutex<std::collections::HashMap<String, AccessClaims>>,
}

const VERIFIED_MAX: usize = 50_000;
const LEEWAY_SECS: i64 = 5;

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub sid: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

/// Why an access token was refused (logged at debug; clients get a stable code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessError {
    Expired,
    Invalid,
}

impl Keys {
    /// Loads the keys, creating and storing them on the first start.
    pub async fn load(store: &Store, issuer: &str, audience: &str) -> anyhow::Result<Self> {
        let now = crate::now_ms();
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        let fresh = SigningKey::from_bytes(&seed);
        let fresh_kid = kid_for(&fresh);
        let (kid, secret) = store
            .key_or_insert(
                "access_signing_ed25519",
                &fresh_kid,
                &STANDARD.encode(seed),
                now,
            )
            .await?;
        let seed: [u8; 32] = STANDARD
            .decode(secret)?
            .try_into()
            .map_err(|_| anyhow::anyhow!("stored signing key has the wrong length"))?;
        let signing = SigningKey::from_bytes(&seed);
        let der = signing.to_pkcs8_der()?;
        let public_x = URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes());

        let mut mac = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut mac);
        let (_, mac_secret) = store
            .key_or_insert("refresh_mac", "refresh", &STANDARD.encode(mac), now)
            .await?;
        let refresh_mac: [u8; 32] = STANDARD
            .decode(mac_secret)?
            .try_into()
            .map_err(|_| anyhow::anyhow!("stored refresh key has the wrong length"))?;

        // The algorithm is pinned: a token claiming any other `alg` is refused.
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECS as u64;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.validate_exp = true;

        Ok(Self {
            kid,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            decoding: DecodingKey::from_ed_components(&public_x)?,
            public_x,
            refresh_mac,
            validation,
            verified: Default::default(),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS document.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "x": self.public_x,
                "kid": self.kid,
                "alg": "EdDSA",
                "use": "sig",
            }]
        })
    }

    pub fn sign_access(&self, claims: &AccessClaims) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(ACCESS_TYP.to_owned());
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }

    /// Verifies signature, `alg`, `typ`, `kid`, `iss`, `aud` and `exp` (5 s leeway).
    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, AccessError> {
        let now = crate::now_ms() / 1000;
        let cached = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned();
        if let Some(claims) = cached {
            return if claims.exp + LEEWAY_SECS < now {
                Err(AccessError::Expired)
            } else {
                Ok(claims)
            };
        }
        let claims = self.verify_uncached(token)?;
        let mut map = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= VERIFIED_MAX {
            map.clear();
        }
        map.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    fn verify_uncached(&self, token: &str) -> Result<AccessClaims, AccessError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AccessError::Invalid)?;
        if header.alg != Algorithm::EdDSA
            || header.typ.as_deref() != Some(ACCESS_TYP)
            || header.kid.as_deref() != Some(self.kid.as_str())
        {
            return Err(AccessError::Invalid);
        }
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AccessError::Expired,
                _ => AccessError::Invalid,
            })
    }

    /// A refresh token: `base64url(session uuid (16) ‖ generation (8, BE) ‖ HMAC (32))`.
    /// The MAC covers the per-session nonce, so the token cannot be derived from the row alone.
    pub fn refresh_token(&self, session_id: &uuid::Uuid, generation: i64, nonce: &str) -> String {
        let mut buf = Vec::with_capacity(56);
        buf.extend_from_slice(session_id.as_bytes());
        buf.extend_from_slice(&generation.to_be_bytes());
        buf.extend_from_slice(&self.refresh_mac(session_id, generation, nonce));
        URL_SAFE_NO_PAD.encode(buf)
    }

    /// Splits a refresh token into `(session id, generation, mac)` without checking the MAC.
    pub fn parse_refresh(token: &str) -> Option<(uuid::Uuid, i64, [u8; 32])> {
        if token.len() != 75 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
        let sid = uuid::Uuid::from_slice(&raw[..16]).ok()?;
        let generation = i64::from_be_bytes(raw[16..24].try_into().ok()?);
        let mac = raw[24..56].try_into().ok()?;
        Some((sid, generation, mac))
    }

    /// Constant-time check of a refresh token's MAC.
    pub fn refresh_mac_ok(
        &self,
        session_id: &uuid::Uuid,
        generation: i64,
        nonce: &str,
        mac: &[u8; 32],
    ) -> bool {
        self.mac(session_id, generation, nonce)
            .verify_slice(mac)
            .is_ok()
    }

    fn refresh_mac(&self, session_id: &uuid::Uuid, generation: i64, nonce: &str) -> [u8; 32] {
        self.mac(session_id, generation, nonce)
            .finalize()
            .into_bytes()
            .into()
    }

    fn mac(&self, session_id: &uuid::Uuid, generation: i64, nonce: &str) -> Hmac<Sha256> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.refresh_mac)
            .expect("HMAC accepts any key length");
        m.update(b"baton-refresh-v1");
        m.update(session_id.as_bytes());
        m.update(&generation.to_be_bytes());
        m.update(nonce.as_bytes());
        m
    }
}

fn kid_for(key: &SigningKey) -> String {
    let digest = Sha256::digest(key.verifying_key().as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..12])
}

/// A random 256-bit value, base64url (session nonces).
pub fn random_nonce() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}
