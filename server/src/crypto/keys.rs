//! Access tokens (EdDSA JWT) and refresh tokens (session id + generation + MAC).

use super::keystore::{self, new_signing_key, OpenKey, Sealer};
use crate::config::Config;
use crate::store::Store;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::SigningKey;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::RngCore;
use sha2::Sha256;

pub const ACCESS_TYP: &str = "at+jwt";

/// The signing keys and the refresh-token MAC key, shared by every instance through the
/// database (`keystore`).
pub struct Keys {
    ring: std::sync::RwLock<std::sync::Arc<Ring>>,
    sealer: Sealer,
    refresh_mac: [u8; 32],
    validation: Validation,
    /// This instance's access-token lifetime (ms): retired keys stay verifiable that long.
    access_ttl_ms: i64,
    /// Tokens whose signature and claims were verified, by their exact text, with the kid of
    /// the key that signed them: the same token is presented many times during its life, and
    /// only `exp` or its key leaving the ring can change its verdict.
    verified: std::sync::Mutex<std::collections::HashMap<String, (String, AccessClaims)>>,
}

/// The signing keys in use: the newest signs; older ones verify (and stay in the JWKS) until
/// every token they signed has expired.
struct Ring {
    signer_kid: String,
    /// The signing key, ready to sign: derived from its seed once, not per token (ring
    /// derives the public key, a scalar multiplication, whenever a pair is made).
    signer: ring::signature::Ed25519KeyPair,
    /// The access tokens' JOSE header for this key, base64url, with the `.` after it.
    header_b64: String,
    verifiers: std::collections::HashMap<String, DecodingKey>,
    /// `(kid, x)` of every verifying key, oldest first.
    published: Vec<(String, String)>,
}

/// Retired signing keys stay this long beyond the longest access-token lifetime (the
/// verifiers' leeway, clocks).
const RETIRE_MARGIN_MS: i64 = 10_000;

const VERIFIED_MAX: usize = 50_000;
const LEEWAY_SECS: i64 = 5;

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("kid", &self.ring().signer_kid)
            .finish_non_exhaustive()
    }
}

fn signing_key(seed_b64: &str) -> anyhow::Result<SigningKey> {
    let seed: [u8; 32] = STANDARD
        .decode(seed_b64)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("a stored signing key has the wrong length"))?;
    Ok(SigningKey::from_bytes(&seed))
}

impl Ring {
    /// From the stored keys (oldest first) at `now`, keeping retired keys for `keep_ms`.
    fn build(keys: &[OpenKey], keep_ms: i64, now: i64) -> anyhow::Result<Self> {
        let signing: Vec<&OpenKey> = keys
            .iter()
            .filter(|k| keystore::is_signing(&k.name))
            .collect();
        // The newest key whose time has come signs; a key rotated in is published (in the
        // JWKS and here) from the moment it is stored, and signs only from its `created_at`
        // (`BATON_KEY_PUBLISH_AHEAD` later), so verifiers know it before its first token.
        let Some(signer) = signing
            .iter()
            .rev()
            .find(|k| k.created_at <= now)
            .or(signing.first())
        else {
            anyhow::bail!("no signing key is stored");
        };
        let mut verifiers = std::collections::HashMap::new();
        let mut published = Vec::new();
        let mut pair = None;
        for (i, k) in signing.iter().enumerate() {
            // A key stops signing when the next one starts.
            let retired_at = signing.get(i + 1).map(|next| next.created_at);
            let current = std::ptr::eq(*k, *signer);
            if !current && retired_at.is_some_and(|t| t + keep_ms <= now) {
                continue;
            }
            let key = signing_key(&k.secret)?;
            let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
            verifiers.insert(k.kid.clone(), DecodingKey::from_ed_components(&x)?);
            published.push((k.kid.clone(), x));
            if current {
                let made = ring::signature::Ed25519KeyPair::from_seed_unchecked(key.as_bytes())
                    .map_err(|_| anyhow::anyhow!("a stored signing key is unusable"))?;
                pair = Some(made);
            }
        }
        let header = serde_json::json!({ "typ": ACCESS_TYP, "alg": "EdDSA", "kid": signer.kid });
        Ok(Self {
            signer_kid: signer.kid.clone(),
            signer: pair.ok_or_else(|| anyhow::anyhow!("no signing key"))?,
            header_b64: format!("{}.", URL_SAFE_NO_PAD.encode(header.to_string())),
            verifiers,
            published,
        })
    }
}

/// The claims of access tokens: one type for the server that signs them and for
/// `baton-verify`, which checks them in other services.
pub use baton_core::AccessClaims;

/// Why an access token was refused (logged at debug; clients get a stable code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessError {
    Expired,
    Invalid,
}

impl Keys {
    /// Loads the keys, creating and storing them on the first start.
    pub async fn load(store: &Store, sealer: Sealer, config: &Config) -> anyhow::Result<Self> {
        let now = crate::clock::now_ms();
        if !sealer.encrypts() {
            tracing::warn!(
                "server keys are stored unencrypted in the database: set \
                 BATON_KEY_ENCRYPTION_KEY to encrypt them"
            );
        }
        let mut keys = keystore::load(store, &sealer, true).await?;
        if !keys.iter().any(|k| keystore::is_signing(&k.name)) {
            // One name for the first key: instances starting at once on a fresh database
            // store one key between them, not one each.
            let (kid, seed) = new_signing_key();
            let name = keystore::FIRST_SIGNING;
            keystore::ensure(store, &sealer, name, &kid, &seed, now).await?;
        }
        if !keys.iter().any(|k| k.name == keystore::REFRESH_MAC) {
            let mut mac = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut mac);
            let name = keystore::REFRESH_MAC;
            keystore::ensure(store, &sealer, name, "refresh", &STANDARD.encode(mac), now).await?;
        }
        keys = keystore::load(store, &sealer, true).await?;
        let mac_secret = keys
            .iter()
            .find(|k| k.name == keystore::REFRESH_MAC)
            .map(|k| k.secret.clone())
            .ok_or_else(|| anyhow::anyhow!("the refresh MAC key is missing"))?;
        let refresh_mac: [u8; 32] = STANDARD
            .decode(mac_secret)?
            .try_into()
            .map_err(|_| anyhow::anyhow!("stored refresh key has the wrong length"))?;
        let access_ttl_ms = config.access_ttl.as_millis() as i64;
        let longest = crate::store::at_start(|| store.longest_live_access_ttl(now)).await?;
        let keep = longest.unwrap_or(0).max(access_ttl_ms) + RETIRE_MARGIN_MS;
        let ring = Ring::build(&keys, keep, now)?;

        // The algorithm is pinned: a token claiming any other `alg` is refused.
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECS as u64;
        validation.set_issuer(&[config.issuer()]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.validate_exp = true;

        Ok(Self {
            ring: std::sync::RwLock::new(std::sync::Arc::new(ring)),
            sealer,
            refresh_mac,
            validation,
            access_ttl_ms,
            verified: Default::default(),
        })
    }

    /// How long a retired signing key must keep verifying: the longest access-token lifetime
    /// any instance issues with, and a margin.
    async fn keep_ms(store: &Store, own_ttl_ms: i64, now: i64) -> anyhow::Result<i64> {
        let longest = store.longest_live_access_ttl(now).await?.unwrap_or(0);
        Ok(longest.max(own_ttl_ms) + RETIRE_MARGIN_MS)
    }

    /// Seals a secret to store (a second factor's), bound to `name`, as the server keys are
    /// sealed with `BATON_KEY_ENCRYPTION_KEY` (plain without it).
    pub fn seal(&self, name: &str, plain: &str) -> anyhow::Result<String> {
        self.sealer.seal(name, plain)
    }

    /// Opens a secret sealed by `seal` under the same `name`.
    pub fn open(&self, name: &str, stored: &str) -> anyhow::Result<String> {
        self.sealer.open(name, stored)
    }

    /// Re-reads the stored keys: a key added by `baton-server keys rotate` (on any instance)
    /// signs here from the next reload on, and retired keys leave in time.
    pub async fn reload(&self, store: &Store) -> anyhow::Result<()> {
        let now = crate::clock::now_ms();
        let keys = keystore::load(store, &self.sealer, false).await?;
        let keep = Self::keep_ms(store, self.access_ttl_ms, now).await?;
        let ring = Ring::build(&keys, keep, now)?;
        let changed = {
            let old = self.ring();
            old.signer_kid != ring.signer_kid || old.published != ring.published
        };
        if changed {
            tracing::info!(kid = %ring.signer_kid, keys = ring.published.len(), "signing keys updated");
            *self.ring.write().unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::new(ring);
        }
        Ok(())
    }

    fn ring(&self) -> std::sync::Arc<Ring> {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The kid of the key that signs now.
    pub fn kid(&self) -> String {
        self.ring().signer_kid.clone()
    }

    /// The JWKS document: every key that may have signed a still-valid token.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .ring()
            .published
            .iter()
            .map(|(kid, x)| {
                serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": x,
                    "kid": kid,
                    "alg": "EdDSA",
                    "use": "sig",
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// A JWS (compact) of `claims` by the current signing key: EdDSA, `typ` `at+jwt`, its `kid`.
    pub fn sign_access(&self, claims: &AccessClaims) -> anyhow::Result<String> {
        let ring = self.ring();
        let claims = serde_json::to_vec(claims)?;
        let mut token = String::with_capacity(ring.header_b64.len() + claims.len() * 4 / 3 + 90);
        token.push_str(&ring.header_b64);
        URL_SAFE_NO_PAD.encode_string(&claims, &mut token);
        let signature = ring.signer.sign(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
        Ok(token)
    }

    /// Verifies signature, `alg`, `typ`, `kid`, `iss`, `aud` and `exp` (5 s leeway).
    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, AccessError> {
        let now = crate::clock::now_ms() / 1000;
        let cached = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned();
        if let Some((kid, claims)) = cached {
            // A key rotated out of the ring takes its tokens with it, cached or not.
            if !self.ring().verifiers.contains_key(&kid) {
                return Err(AccessError::Invalid);
            }
            return if claims.exp + LEEWAY_SECS < now {
                Err(AccessError::Expired)
            } else {
                Ok(claims)
            };
        }
        let (kid, claims) = self.verify_uncached(token)?;
        let mut map = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= VERIFIED_MAX {
            map.clear();
        }
        map.insert(token.to_owned(), (kid, claims.clone()));
        Ok(claims)
    }

    /// The kid that signed `token`, and its claims.
    fn verify_uncached(&self, token: &str) -> Result<(String, AccessClaims), AccessError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AccessError::Invalid)?;
        if header.alg != Algorithm::EdDSA || header.typ.as_deref() != Some(ACCESS_TYP) {
            return Err(AccessError::Invalid);
        }
        let ring = self.ring();
        let kid = header.kid.ok_or(AccessError::Invalid)?;
        let key = ring.verifiers.get(&kid).ok_or(AccessError::Invalid)?;
        jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)
            .map(|d| (kid, d.claims))
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

    /// HMAC-SHA256 (hex) of `value` under the server's secret, separated by `purpose`: how
    /// emailed codes and link tokens are stored (never as sent).
    pub fn secret_mac(&self, purpose: &str, value: &str) -> String {
        self.purpose_mac(purpose, value)
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Constant-time check of `value` against a stored `secret_mac`.
    pub fn secret_mac_ok(&self, purpose: &str, value: &str, stored_hex: &str) -> bool {
        let Some(stored) = (0..stored_hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(stored_hex.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()
        else {
            return false;
        };
        self.purpose_mac(purpose, value)
            .verify_slice(&stored)
            .is_ok()
    }

    fn purpose_mac(&self, purpose: &str, value: &str) -> Hmac<Sha256> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.refresh_mac)
            .expect("HMAC accepts any key length");
        m.update(b"baton-secret-v1\0");
        m.update(purpose.as_bytes());
        m.update(b"\0");
        m.update(value.as_bytes());
        m
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

/// A random 256-bit value, base64url (session nonces).
pub fn random_nonce() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}
