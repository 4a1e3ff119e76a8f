//! The WebAuthn relying party (passkeys), over kanidm's `webauthn-rs-core` (pure Rust): the
//! settings resolved and checked once at start, the options a browser is given, and the
//! verification of its answers. Everything of the library's types stays in this file; the
//! layers above see JSON values and strings.
//!
//! Algorithms: ES256 (-7) and RS256 (-257), the two every platform authenticator offers.
//! EdDSA (-8) is not offered: the library parses Ed25519 keys but does not verify their
//! signatures.

use crate::config::Config;
use std::time::Duration;
use url::Url;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, AuthenticationState, COSEAlgorithm, Credential,
    PublicKeyCredential, RegisterPublicKeyCredential, RegistrationState, UserVerificationPolicy,
};
use webauthn_rs_core::WebauthnCore;

/// The relying party of this deployment (`BATON_WEBAUTHN_*`).
#[derive(Debug)]
pub struct RelyingParty {
    core: WebauthnCore,
    rp_id: String,
}

/// A verified new credential, ready to store.
#[derive(Debug)]
pub struct NewCredential {
    /// Base64url.
    pub credential_id: String,
    /// JSON, as stored.
    pub credential: String,
    pub sign_count: i64,
}

/// A verified assertion: the credential as it is now (JSON, to store) and its counter.
#[derive(Debug)]
pub struct Asserted {
    pub credential: String,
    pub sign_count: i64,
}

/// Why an answer was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The signature counter did not grow: a copy of the authenticator may exist.
    CounterWentBack,
    /// Anything else, in words.
    Invalid(String),
}

/// The base64url (unpadded) form of bytes, as WebAuthn's JSON has them.
pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn why(e: webauthn_rs_core::error::WebauthnError) -> Refused {
    use webauthn_rs_core::error::WebauthnError as E;
    match e {
        E::CredentialPossibleCompromise => Refused::CounterWentBack,
        other => {
            let text = other.to_string();
            let mut chars = text.chars();
            let first = chars.next().map(|c| c.to_lowercase().to_string());
            Refused::Invalid(first.unwrap_or_default() + chars.as_str())
        }
    }
}

fn invalid(what: &str) -> Refused {
    Refused::Invalid(what.to_owned())
}

impl RelyingParty {
    /// From the settings: `None` when no RP id is set or implied (passkeys are off); an error
    /// naming the setting when they do not fit together.
    pub fn from_config(config: &Config) -> Result<Option<Self>, String> {
        let public = config
            .public_url
            .as_deref()
            .map(|u| Url::parse(u).map_err(|e| format!("BATON_PUBLIC_URL: {e}")))
            .transpose()?;
        let rp_id = match (&config.webauthn_rp_id, &public) {
            (Some(id), _) => id.trim().to_ascii_lowercase(),
            (None, Some(u)) => u.host_str().unwrap_or_default().to_ascii_lowercase(),
            (None, None) => return Ok(None),
        };
        if rp_id.is_empty()
            || rp_id.parse::<std::net::IpAddr>().is_ok()
            || rp_id.contains(['/', ':', ' '])
        {
            return Err(format!(
                "BATON_WEBAUTHN_RP_ID: {rp_id:?} is not a domain (browsers take a host name such \
                 as example.com or localhost, never an IP address)"
            ));
        }
        let origins: Vec<Url> = match (&config.webauthn_origins, &public) {
            (Some(list), _) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Url::parse(s).map_err(|e| format!("BATON_WEBAUTHN_ORIGINS: {s:?}: {e}")))
                .collect::<Result<_, _>>()?,
            (None, Some(u)) => vec![Url::parse(&u.origin().ascii_serialization())
                .map_err(|e| format!("BATON_PUBLIC_URL: {e}"))?],
            (None, None) => {
                return Err(
                    "BATON_WEBAUTHN_ORIGINS: needed with BATON_WEBAUTHN_RP_ID when \
                     BATON_PUBLIC_URL is not set (the app's origins, e.g. https://app.example.com)"
                        .into(),
                )
            }
        };
        if origins.is_empty() {
            return Err("BATON_WEBAUTHN_ORIGINS: no origin given".into());
        }
        for o in &origins {
            let host = o.host_str().unwrap_or_default().to_ascii_lowercase();
            let on_rp = host == rp_id || host.ends_with(&format!(".{rp_id}"));
            // Browsers offer WebAuthn on https pages, and on http://localhost.
            let scheme_ok = matches!(o.scheme(), "https" | "http");
            if !on_rp || !scheme_ok || o.path() != "/" || o.query().is_some() {
                return Err(format!(
                    "BATON_WEBAUTHN_ORIGINS: {} is not an origin on the relying party id \
                     {rp_id} (https://{rp_id} or a subdomain of it, no path)",
                    o.as_str().trim_end_matches('/')
                ));
            }
        }
        let core = WebauthnCore::new_unsafe_experts_only(
            &config.webauthn_rp_name,
            &rp_id,
            origins,
            Duration::from_millis(crate::rules::passkey::CEREMONY_TTL_MS as u64),
            Some(false),
            Some(false),
        );
        Ok(Some(Self { core, rp_id }))
    }

    pub fn rp_id(&self) -> &str {
        &self.rp_id
    }

    /// `PublicKeyCredentialCreationOptionsJSON` for a new discoverable passkey of the user
    /// (`user_handle`, shown as `name`), none of `exclude` (credential ids, base64url); and the
    /// state to keep until the answer.
    pub fn register_options(
        &self,
        user_handle: &[u8],
        name: &str,
        exclude: &[String],
    ) -> Result<(serde_json::Value, String), Refused> {
        let exclude = exclude
            .iter()
            .filter_map(|id| {
                use base64::Engine;
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(id)
                    .ok()
            })
            .collect();
        let builder = self
            .core
            .new_challenge_register_builder(user_handle, name, name)
            .map_err(why)?
            .attestation(AttestationConveyancePreference::None)
            .user_verification_policy(UserVerificationPolicy::Required)
            .credential_algorithms(vec![COSEAlgorithm::ES256, COSEAlgorithm::RS256])
            .require_resident_key(true)
            .exclude_credentials(Some(exclude));
        let (options, state) = self
            .core
            .generate_challenge_register(builder)
            .map_err(why)?;
        let options = serde_json::to_value(options.public_key).map_err(|_| invalid("options"))?;
        let state = serde_json::to_string(&state).map_err(|_| invalid("state"))?;
        Ok((options, state))
    }

    /// Verifies a `RegistrationResponseJSON` against the kept state.
    pub fn register(
        &self,
        credential: &serde_json::Value,
        state: &str,
    ) -> Result<NewCredential, Refused> {
        let reg: RegisterPublicKeyCredential = serde_json::from_value(credential.clone())
            .map_err(|e| Refused::Invalid(format!("not a RegistrationResponseJSON: {e}")))?;
        let state: RegistrationState =
            serde_json::from_str(state).map_err(|_| invalid("the ceremony's state is damaged"))?;
        let cred = self
            .core
            .register_credential(&reg, &state, None)
            .map_err(why)?;
        if !cred.user_verified {
            return Err(invalid("the user was not verified"));
        }
        Ok(NewCredential {
            credential_id: b64url(cred.cred_id.as_ref()),
            sign_count: i64::from(cred.counter),
            credential: serde_json::to_string(&cred).map_err(|_| invalid("credential"))?,
        })
    }

    /// `PublicKeyCredentialRequestOptionsJSON` for a usernameless sign-in (no
    /// `allowCredentials`), user verification required; and the state to keep.
    pub fn login_options(&self) -> Result<(serde_json::Value, String), Refused> {
        let builder = self
            .core
            .new_challenge_authenticate_builder(Vec::new(), Some(UserVerificationPolicy::Required))
            .map_err(why)?;
        let (options, state) = self
            .core
            .generate_challenge_authenticate(builder)
            .map_err(why)?;
        let options = serde_json::to_value(options.public_key).map_err(|_| invalid("options"))?;
        let state = serde_json::to_string(&state).map_err(|_| invalid("state"))?;
        Ok((options, state))
    }

    /// Parses an `AuthenticationResponseJSON`: its credential id (base64url) and user handle.
    pub fn assertion(
        &self,
        credential: &serde_json::Value,
    ) -> Result<(String, Option<Vec<u8>>), Refused> {
        let rsp: PublicKeyCredential = serde_json::from_value(credential.clone())
            .map_err(|e| Refused::Invalid(format!("not an AuthenticationResponseJSON: {e}")))?;
        Ok((b64url(&rsp.raw_id), rsp.response.user_handle.clone()))
    }

    /// Verifies an assertion of the stored credential against the kept state: challenge,
    /// origin, RP id hash, user presence and verification, signature, counter.
    pub fn authenticate(
        &self,
        credential: &serde_json::Value,
        state: &str,
        stored: &str,
    ) -> Result<Asserted, Refused> {
        let rsp: PublicKeyCredential = serde_json::from_value(credential.clone())
            .map_err(|e| Refused::Invalid(format!("not an AuthenticationResponseJSON: {e}")))?;
        let state: AuthenticationState =
            serde_json::from_str(state).map_err(|_| invalid("the ceremony's state is damaged"))?;
        let mut cred: Credential =
            serde_json::from_str(stored).map_err(|_| invalid("the stored passkey is damaged"))?;
        let result = self
            .core
            .authenticate_single_credential(&rsp, &state, &cred)
            .map_err(why)?;
        if !result.user_verified() {
            return Err(invalid("the user was not verified"));
        }
        cred.counter = result.counter();
        cred.backup_state = result.backup_state();
        cred.backup_eligible = result.backup_eligible();
        Ok(Asserted {
            sign_count: i64::from(result.counter()),
            credential: serde_json::to_string(&cred).map_err(|_| invalid("credential"))?,
        })
    }
}
