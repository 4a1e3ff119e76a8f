//! The shared state of one server instance: its fields, nothing else. It is built by
//! `app::AppState::new` (the composition root); the layers below this one never name it.

use crate::config::Config;
use crate::crypto::keys::Keys;
use crate::crypto::password::PasswordHasher;
use crate::limits::Limits;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::store::dpop_proofs::ReplayCache;
use crate::store::revocation::RevocationView;
use crate::store::rotator::Rotator;
use crate::store::session_cache::SessionCache;
use crate::store::Store;
use std::sync::Arc;

/// Shared state of one server instance.
#[derive(Debug, Clone)]
pub struct AppState {
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
}
