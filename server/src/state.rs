//! The shared state of one server instance: its fields, nothing else. It is built by
//! `app::AppState::new` (the composition root); the layers below this one never name it.

use crate::config::Config;
use crate::crypto::keys::Keys;
use crate::crypto::password::PasswordHasher;
use crate::crypto::webauthn::RelyingParty;
use crate::idp::Providers;
use crate::limits::Limits;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::store::dpop_proofs::ReplayCache;
use crate::store::revocation::RevocationView;
use crate::store::rotator::Rotator;
use crate::store::session_cache::SessionCache;
use crate::store::Store;
use std::sync::Arc;

/// Shared state of one server instance: one allocation behind an `Arc`, so the clone every
/// request and middleware takes is one reference count, not one per field.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn from_parts(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The fields of `AppState`.
#[derive(Debug)]
pub struct Shared {
    pub config: Arc<Config>,
    pub store: Store,
    pub keys: Arc<Keys>,
    pub revoked: Arc<RevocationView>,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<Limits>,
    pub session_cache: Arc<SessionCache>,
    pub rotator: Rotator,
    pub password: Arc<PasswordHasher>,
    pub dpop_replay: Arc<ReplayCache>,
    /// `BATON_SMTP_URL`'s mailer; `None`: the email endpoints answer 503.
    pub mailer: Option<Mailer>,
    /// The WebAuthn relying party (`BATON_WEBAUTHN_*`); `None`: the passkey endpoints answer 503.
    pub passkeys: Option<RelyingParty>,
    /// The identity providers of `BATON_PROVIDERS_FILE` (none: `/auth/oauth/*` answers 404).
    pub providers: Providers,
    /// `BATON_REDIRECT_ALLOWLIST`: where a provider sign-in may return.
    pub redirects: Vec<crate::rules::oauth::Allowed>,
}
