//! DPoP proof keys for the tests: P-256 (ES256) by ring, Ed25519 (EdDSA) by ed25519-dalek,
//! each making RFC 9449 proofs as a browser would.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[derive(Debug)]
pub enum ProofKey {
    Es256(EcdsaKeyPair),
    Ed25519(ed25519_dalek::SigningKey),
}

/// What a proof claims; `Default` plus method and URL is a valid proof made now.
#[derive(Debug, Clone, Default)]
pub struct Claims<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub access_token: Option<&'a str>,
    /// Seconds added to now for `iat`.
    pub iat_offset: i64,
    pub jti: Option<&'a str>,
}

impl ProofKey {
    pub fn es256() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Self::Es256(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        )
    }

    pub fn ed25519() -> Self {
        Self::Ed25519(ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng))
    }

    pub fn jwk(&self) -> Value {
        match self {
            Self::Es256(k) => {
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "x": B64.encode(&p[1..33]), "y": B64.encode(&p[33..65])})
            }
            Self::Ed25519(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(k.verifying_key().as_bytes())})
            }
        }
    }

    /// The RFC 7638 thumbprint, computed here independently of the server.
    pub fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let canonical = match self {
            Self::Es256(_) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                jwk["x"].as_str().unwrap(),
                jwk["y"].as_str().unwrap()
            ),
            Self::Ed25519(_) => format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                jwk["x"].as_str().unwrap()
            ),
        };
        B64.encode(Sha256::digest(canonical.as_bytes()))
    }

    pub fn proof(&self, c: &Claims<'_>) -> String {
        let alg = match self {
            Self::Es256(_) => "ES256",
            Self::Ed25519(_) => "EdDSA",
        };
        let header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": self.jwk()});
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let jti = c
            .jti
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let mut claims =
            json!({"jti": jti, "htm": c.method, "htu": c.url, "iat": now + c.iat_offset});
        if let Some(t) = c.access_token {
            claims["ath"] = json!(B64.encode(Sha256::digest(t.as_bytes())));
        }
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature = match self {
            Self::Es256(k) => k
                .sign(&SystemRandom::new(), signing_input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            Self::Ed25519(k) => {
                use ed25519_dalek::Signer;
                k.sign(signing_input.as_bytes()).to_bytes().to_vec()
            }
        };
        format!("{signing_input}.{}", B64.encode(signature))
    }

    /// A proof for `POST` to a path of the test servers' public URL (`http://baton.test`).
    pub fn post(&self, path: &str) -> String {
        self.proof(&Claims {
            method: "POST",
            url: &format!("http://baton.test{path}"),
            ..Claims::default()
        })
    }
}
