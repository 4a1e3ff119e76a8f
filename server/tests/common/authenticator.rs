//! A software WebAuthn authenticator for the tests: makes credentials (attestation `none`)
//! and assertions as a platform authenticator would, byte for byte (authenticator data, COSE
//! keys in CBOR, client data JSON), with ES256 (p256) or RS256 (rsa) keys, with or without a
//! signature counter. Each field a test may want wrong is a field here.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ciborium::Value as Cbor;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub enum Key {
    Es256(p256::ecdsa::SigningKey),
    Rs256(Box<rsa::RsaPrivateKey>),
}

#[derive(Debug, Clone)]
pub struct Authenticator {
    pub key: Key,
    pub credential_id: Vec<u8>,
    /// The user handle it stored at registration (sent back with each assertion).
    pub user_handle: Vec<u8>,
    /// `None`: keeps no counter (always sends 0).
    pub counter: Option<u32>,
    /// The origin the "browser" reports, and the RP id whose hash goes in the data.
    pub origin: String,
    pub rp_id: String,
    /// The user-verified flag.
    pub uv: bool,
}

fn cbor_bytes(v: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

fn int(i: i64) -> Cbor {
    Cbor::Integer(i.into())
}

impl Authenticator {
    pub fn es256(origin: &str, rp_id: &str) -> Self {
        let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        Self::with(Key::Es256(key), origin, rp_id)
    }

    pub fn rs256(origin: &str, rp_id: &str) -> Self {
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        Self::with(Key::Rs256(Box::new(key)), origin, rp_id)
    }

    fn with(key: Key, origin: &str, rp_id: &str) -> Self {
        let mut id = vec![0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        Self {
            key,
            credential_id: id,
            user_handle: Vec::new(),
            counter: Some(0),
            origin: origin.to_owned(),
            rp_id: rp_id.to_owned(),
            uv: true,
        }
    }

    pub fn without_counter(mut self) -> Self {
        self.counter = None;
        self
    }

    pub fn id(&self) -> String {
        B64.encode(&self.credential_id)
    }

    fn cose_key(&self) -> Cbor {
        match &self.key {
            Key::Es256(k) => {
                let point = k.verifying_key().to_encoded_point(false);
                Cbor::Map(vec![
                    (int(1), int(2)),
                    (int(3), int(-7)),
                    (int(-1), int(1)),
                    (int(-2), Cbor::Bytes(point.x().unwrap().to_vec())),
                    (int(-3), Cbor::Bytes(point.y().unwrap().to_vec())),
                ])
            }
            Key::Rs256(k) => {
                use rsa::traits::PublicKeyParts;
                Cbor::Map(vec![
                    (int(1), int(3)),
                    (int(3), int(-257)),
                    (int(-1), Cbor::Bytes(k.n().to_bytes_be())),
                    (int(-2), Cbor::Bytes(k.e().to_bytes_be())),
                ])
            }
        }
    }

    fn flags(&self, attested: bool) -> u8 {
        let mut f = 0x01; // user present
        if self.uv {
            f |= 0x04;
        }
        if attested {
            f |= 0x40;
        }
        f
    }

    fn next_count(&mut self) -> u32 {
        match &mut self.counter {
            Some(c) => {
                *c += 1;
                *c
            }
            None => 0,
        }
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        json!({"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }

    /// `navigator.credentials.create()` with these creation options: RegistrationResponseJSON.
    pub fn create(&mut self, options: &Value) -> Value {
        self.user_handle = B64.decode(options["user"]["id"].as_str().unwrap()).unwrap();
        let client_data =
            self.client_data("webauthn.create", options["challenge"].as_str().unwrap());
        let count = self.next_count();
        let mut auth_data = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags(true));
        auth_data.extend_from_slice(&count.to_be_bytes());
        auth_data.extend_from_slice(&[0u8; 16]); // AAGUID
        auth_data.extend_from_slice(&(self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&self.credential_id);
        auth_data.extend_from_slice(&cbor_bytes(&self.cose_key()));
        let attestation = Cbor::Map(vec![
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(vec![])),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
        ]);
        json!({
            "id": self.id(),
            "rawId": self.id(),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": B64.encode(&client_data),
                "attestationObject": B64.encode(cbor_bytes(&attestation)),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        })
    }

    /// `navigator.credentials.get()` with these request options: AuthenticationResponseJSON.
    pub fn get(&mut self, options: &Value) -> Value {
        let client_data = self.client_data("webauthn.get", options["challenge"].as_str().unwrap());
        let count = self.next_count();
        self.assertion(&client_data, count)
    }

    /// An assertion with the counter value given (to replay an old one, say).
    pub fn assertion(&self, client_data: &[u8], count: u32) -> Value {
        let mut auth_data = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags(false));
        auth_data.extend_from_slice(&count.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(client_data));
        let signature = match &self.key {
            Key::Es256(k) => {
                use p256::ecdsa::signature::Signer;
                let s: p256::ecdsa::Signature = k.sign(&signed);
                s.to_der().as_bytes().to_vec()
            }
            Key::Rs256(k) => {
                let digest = Sha256::digest(&signed);
                k.sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest).unwrap()
            }
        };
        json!({
            "id": self.id(),
            "rawId": self.id(),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": B64.encode(client_data),
                "authenticatorData": B64.encode(&auth_data),
                "signature": B64.encode(&signature),
                "userHandle": B64.encode(&self.user_handle),
            },
            "clientExtensionResults": {},
        })
    }

    /// The client data a `get` for `options` would carry.
    pub fn client_data_for(&self, options: &Value) -> Vec<u8> {
        self.client_data("webauthn.get", options["challenge"].as_str().unwrap())
    }
}
