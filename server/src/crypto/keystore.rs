//! Server keys at rest: sealing with `BATON_KEY_ENCRYPTION_KEY`, loading, and rotation of the
//! access-token signing key.
//!
//! `server_keys` holds the refresh-token MAC key and the Ed25519 signing keys. Whoever reads
//! them can mint every session's refresh token and sign access tokens, so with an encryption key
//! set every secret is stored sealed with XChaCha20-Poly1305 (`enc:v1:` + base64 of a random
//! 24-byte nonce and the ciphertext; the row's name is authenticated with it, so a sealed secret
//! cannot be moved to another row). Plain secrets found at start are sealed then. A sealed
//! secret that does not open (key missing or wrong) stops the server with a clear message.
//!
//! Signing keys are named `signing:<kid>` (the first one, from before rotation existed, is
//! `access_signing_ed25519`); the newest signs. `baton-server keys rotate` adds one; every
//! instance reloads the keys every few seconds.

use crate::store::{KeyRow, Store};
use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::SigningKey;
use rand::RngCore;
use sha2::{Digest, Sha256};

const SEALED: &str = "enc:v1:";
/// The MAC key of refresh tokens.
pub const REFRESH_MAC: &str = "refresh_mac";
/// The first signing key's name in databases made before rotation existed.
pub const LEGACY_SIGNING: &str = "access_signing_ed25519";
/// The first signing key's name (one row, however many instances start at once).
pub const FIRST_SIGNING: &str = "signing:first";
const SIGNING_PREFIX: &str = "signing:";

/// Whether a row holds a signing key.
pub fn is_signing(name: &str) -> bool {
    name == LEGACY_SIGNING || name.starts_with(SIGNING_PREFIX)
}

/// Seals and opens stored secrets; without an encryption key, stores them plain.
pub struct Sealer {
    cipher: Option<XChaCha20Poly1305>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("encrypting", &self.cipher.is_some())
            .finish()
    }
}

impl Sealer {
    /// From the settings: the key itself (base64 of 32 bytes), or a file holding it.
    pub fn from_settings(
        key: Option<&str>,
        file: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let text = match (key, file) {
            (Some(_), Some(_)) => {
                bail!("set BATON_KEY_ENCRYPTION_KEY or BATON_KEY_ENCRYPTION_KEY_FILE, not both")
            }
            (Some(k), None) => Some(k.to_owned()),
            (None, Some(path)) => Some(std::fs::read_to_string(path).with_context(|| {
                format!(
                    "cannot read BATON_KEY_ENCRYPTION_KEY_FILE {}",
                    path.display()
                )
            })?),
            (None, None) => None,
        };
        let Some(text) = text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) else {
            return Ok(Self { cipher: None });
        };
        let bytes = STANDARD
            .decode(&text)
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "BATON_KEY_ENCRYPTION_KEY must be the base64 of 32 random bytes \
                 (for example: openssl rand -base64 32)"
                )
            })?;
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes)
            .map_err(|_| anyhow::anyhow!("BATON_KEY_ENCRYPTION_KEY has the wrong length"))?;
        Ok(Self {
            cipher: Some(cipher),
        })
    }

    pub fn encrypts(&self) -> bool {
        self.cipher.is_some()
    }

    /// The stored form of `plain` for the row `name`.
    pub fn seal(&self, name: &str, plain: &str) -> anyhow::Result<String> {
        let Some(cipher) = &self.cipher else {
            return Ok(plain.to_owned());
        };
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| anyhow::anyhow!("sealing a key failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{SEALED}{}", STANDARD.encode(out)))
    }

    /// The plain secret of a stored row.
    pub fn open(&self, name: &str, stored: &str) -> anyhow::Result<String> {
        let Some(body) = stored.strip_prefix(SEALED) else {
            return Ok(stored.to_owned());
        };
        let Some(cipher) = &self.cipher else {
            bail!(
                "the server keys in the database are encrypted: set BATON_KEY_ENCRYPTION_KEY \
                 (or BATON_KEY_ENCRYPTION_KEY_FILE) to the key they were encrypted with"
            );
        };
        let raw = STANDARD.decode(body).context("a sealed key is corrupt")?;
        if raw.len() < 24 {
            bail!("a sealed key is corrupt");
        }
        let (nonce, sealed) = raw.split_at(24);
        let plain = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| {
                anyhow::anyhow!(
                    "the server keys in the database cannot be decrypted with this \
                     BATON_KEY_ENCRYPTION_KEY (a different key sealed them)"
                )
            })?;
        String::from_utf8(plain).context("a sealed key is corrupt")
    }
}

/// A key with its secret opened.
#[derive(Debug, Clone)]
pub struct OpenKey {
    pub name: String,
    pub kid: String,
    pub secret: String,
    pub created_at: i64,
}

/// Every stored key, opened; plain ones are sealed on the way when an encryption key is set.
/// `at_start`: a database slow to answer is waited for (a start); otherwise its error comes
/// back at once (a reload, tried again at the next one).
pub async fn load(store: &Store, sealer: &Sealer, at_start: bool) -> anyhow::Result<Vec<OpenKey>> {
    let rows = if at_start {
        crate::store::at_start(|| store.keys()).await?
    } else {
        store.keys().await?
    };
    let mut out = Vec::with_capacity(rows.len());
    for KeyRow {
        name,
        kid,
        secret,
        created_at,
    } in rows
    {
        let plain = sealer.open(&name, &secret)?;
        if sealer.encrypts() && !secret.starts_with(SEALED) {
            let sealed = sealer.seal(&name, &plain)?;
            if store.reseal_key(&name, &secret, &sealed).await? {
                tracing::info!(key = %name, "stored key encrypted with BATON_KEY_ENCRYPTION_KEY");
            }
        }
        out.push(OpenKey {
            name,
            kid,
            secret: plain,
            created_at,
        });
    }
    Ok(out)
}

/// Stores a key under `name` unless one exists (several instances starting at once agree).
pub async fn ensure(
    store: &Store,
    sealer: &Sealer,
    name: &str,
    kid: &str,
    plain: &str,
    now: i64,
) -> anyhow::Result<()> {
    store
        .insert_key(name, kid, &sealer.seal(name, plain)?, now)
        .await?;
    Ok(())
}

/// Adds a new signing key (`baton-server keys rotate`) that signs from `signs_from` (unix ms)
/// and is published from now on; returns its kid.
pub async fn rotate(store: &Store, sealer: &Sealer, signs_from: i64) -> anyhow::Result<String> {
    // Opening every key first refuses to rotate with a missing or wrong encryption key.
    load(store, sealer, true).await?;
    let (kid, seed) = new_signing_key();
    let name = format!("{SIGNING_PREFIX}{kid}");
    if !store
        .insert_key(&name, &kid, &sealer.seal(&name, &seed)?, signs_from)
        .await?
    {
        bail!("a key named {name} exists already");
    }
    Ok(kid)
}

/// A fresh Ed25519 signing key: `(kid, base64 seed)`.
pub fn new_signing_key() -> (String, String) {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    (
        kid_for(&SigningKey::from_bytes(&seed)),
        STANDARD.encode(seed),
    )
}

pub fn kid_for(key: &SigningKey) -> String {
    let digest = Sha256::digest(key.verifying_key().as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..12])
}
