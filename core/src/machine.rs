//! The sans-IO refresh state machine.
//!
//! Inputs are `handle_*` / `request_*` calls that carry `now`; outputs are polled with
//! [`RefreshMachine::poll_action`] and [`RefreshMachine::poll_timeout`]. The machine never reads a
//! clock and never performs I/O, so tests drive it with a simulated clock and the browser shell
//! (`baton-client`) only pumps it: one timer for `poll_timeout`, `fetch` for `StartRefresh`.
//!
//! Rules it enforces:
//! - expiry is the local receive time plus `expires_in`; the server's `exp` is never compared
//!   with the local clock;
//! - the refresh is due at expiry minus the margin (at most half the token's life);
//! - one refresh at a time: callers that need one while it runs wait for its result
//!   (`Phase::Refreshing { waiters }`);
//! - a transient failure never discards a still-valid access token; only a definite rejection
//!   of the refresh (HTTP 401) ends the session.

use crate::backoff::{Backoff, Rng};
use crate::time::Instant;
use crate::wire::ErrorCode;
use std::collections::VecDeque;
use std::time::Duration;

/// Identifies one caller waiting for a token; chosen by the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WaiterId(pub u64);

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Refresh this long before the access token expires (capped at half its life).
    pub margin: Duration,
    pub backoff: Backoff,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            margin: Duration::from_secs(60),
            backoff: Backoff::default(),
        }
    }
}

/// An access token as the client received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub access_token: String,
    pub expires_in: Duration,
    /// Local time the response arrived (or, for a restored session, arrived originally).
    pub received_at: Instant,
    /// Server clock minus local clock from the response's `Date` header, when known.
    pub skew_ms: Option<i64>,
}

/// Where a grant came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantSource {
    /// This tab logged in.
    Login,
    /// Loaded from storage when the client starts.
    Restored,
    /// Another tab logged in or refreshed and shared the result.
    OtherTab,
}

/// An error handed to callers; `code` is the server's code passed through, or a client code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    pub code: String,
    /// HTTP status, 0 when no response arrived.
    pub status: u16,
    pub retryable: bool,
}

impl ClientError {
    // Inlined, with `ErrorCode::as_str`, so that a build carries only the names of the codes
    // it raises: the wasm client would otherwise ship every server code's name.
    #[inline(always)]
    pub fn new(code: ErrorCode, status: u16) -> Self {
        Self {
            code: code.as_str().to_owned(),
            status,
            retryable: code.retryable(),
        }
    }
}

/// What the shell reports after performing a `StartRefresh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    Success(Grant),
    /// A definite 401 from the refresh endpoint: the session is over.
    Rejected(ClientError),
    /// Network error, timeout, 5xx, 429 or another refusal; `retry_after` from the server wins
    /// over the backoff schedule.
    Failed {
        error: ClientError,
        retry_after: Option<Duration>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignOutReason {
    /// `logout()` in this tab.
    Logout,
    /// Another tab signed out.
    OtherTab,
    /// The server ended the session (expired, revoked, reuse detected).
    SessionEnded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    SignedIn,
    Refreshed {
        source: GrantSource,
    },
    SignedOut {
        reason: SignOutReason,
    },
    SessionExpired {
        code: String,
    },
    Error(ClientError),
    /// The API answered 401 to the retry of a request with a fresh access token: it refuses
    /// valid tokens (a misconfigured backend), and refreshing again would not help.
    TokenRejected,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Perform `POST /auth/refresh` and report with `handle_refresh_result(attempt, ..)`.
    StartRefresh {
        attempt: u64,
    },
    /// Answer a waiting caller.
    Release {
        waiter: WaiterId,
        result: Result<String, ClientError>,
    },
    Emit(Event),
    /// The session changed in this tab: write it to storage and tell the other tabs.
    Persist,
    /// The session ended in this tab: remove it from storage and tell the other tabs.
    ClearPersisted,
}

/// Immediate answer to a token request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenAnswer {
    Ready(String),
    /// Queued: a `Release` for this waiter follows.
    Wait,
    Fail(ClientError),
}

/// What to do with a request that got a 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry401 {
    /// Someone already replaced the failed token: retry with this one, no refresh needed.
    RetryWith(String),
    /// A refresh runs; retry with the token the `Release` brings.
    Wait,
    GiveUp(ClientError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    access: String,
    received_at: Instant,
    expires_in: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingWaiter {
    id: WaiterId,
    /// A forced refresh wants a new token; a transient failure does not satisfy it.
    forced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Waiting for the refresh deadline.
    Idle,
    /// One refresh in flight; everyone who needs it waits here.
    Refreshing {
        attempt: u64,
        waiters: Vec<PendingWaiter>,
    },
    /// The last attempt failed; the next one is due at `until`.
    Backoff {
        until: Instant,
        last_error: ClientError,
    },
}

#[derive(Debug)]
pub struct RefreshMachine {
    config: Config,
    rng: Rng,
    token: Option<Token>,
    phase: Phase,
    failures: u32,
    next_attempt: u64,
    /// Attempts numbered below this belong to an earlier session and are ignored.
    session_first_attempt: u64,
    skew_ms: Option<i64>,
    refresh_count: u64,
    actions: VecDeque<Action>,
    /// The access token whose retry after a 401 got a 401 too: the API refuses it, so a 401
    /// for it refreshes nothing (one refresh per token generation on the 401 path).
    rejected: Option<String>,
}

impl RefreshMachine {
    /// `seed` feeds the backoff jitter (the shell passes a random number).
    pub fn new(config: Config, seed: u64) -> Self {
        Self {
            config,
            rng: Rng::new(seed),
            token: None,
            phase: Phase::Idle,
            failures: 0,
            next_attempt: 1,
            session_first_attempt: 1,
            skew_ms: None,
            rejected: None,
            refresh_count: 0,
            actions: VecDeque::new(),
        }
    }

    // ---- outputs -------------------------------------------------------------------------

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next instant at which `handle_timeout` must be called, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let token = self.token.as_ref()?;
        match &self.phase {
            Phase::Idle => Some(self.refresh_due(token)),
            Phase::Refreshing { .. } => None,
            Phase::Backoff { until, .. } => Some(*until),
        }
    }

    // ---- queries -------------------------------------------------------------------------

    pub fn has_session(&self) -> bool {
        self.token.is_some()
    }

    pub fn access_token(&self) -> Option<&str> {
        self.token.as_ref().map(|t| t.access.as_str())
    }

    /// Local instant at which the current access token expires.
    pub fn expires_at(&self) -> Option<Instant> {
        self.token.as_ref().map(Token::expiry)
    }

    /// When the next proactive refresh (or retry) is scheduled.
    pub fn next_refresh_at(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Refreshing { .. } => None,
            _ => self.poll_timeout(),
        }
    }

    /// The attempt number of the refresh in flight, if any.
    pub fn refreshing_attempt(&self) -> Option<u64> {
        match &self.phase {
            Phase::Refreshing { attempt, .. } => Some(*attempt),
            _ => None,
        }
    }

    pub fn is_refreshing(&self) -> bool {
        matches!(self.phase, Phase::Refreshing { .. })
    }

    /// Server clock minus local clock, estimated from the last `Date` header.
    pub fn skew_ms(&self) -> Option<i64> {
        self.skew_ms
    }

    /// Successful refreshes of the current session performed or adopted by this client.
    pub fn refresh_count(&self) -> u64 {
        self.refresh_count
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    // ---- inputs --------------------------------------------------------------------------

    /// A new access token: from login, from storage at start, or shared by another tab.
    pub fn handle_session(&mut self, now: Instant, grant: Grant, source: GrantSource) {
        let _ = now;
        if source == GrantSource::OtherTab {
            if let Some(current) = &self.token {
                // A late or duplicate broadcast must not replace a newer token.
                let incoming_expiry = grant.received_at.saturating_add(grant.expires_in);
                if current.access == grant.access_token || incoming_expiry < current.expiry() {
                    return;
                }
            }
        }
        let was_signed_in = self.token.is_some();
        if source != GrantSource::OtherTab {
            // A new session: results of attempts made for the old one are void.
            self.session_first_attempt = self.next_attempt;
            self.refresh_count = 0;
        }
        self.install(grant);
        let waiters = self.take_waiters();
        let token = self.token.as_ref().map(|t| t.access.clone());
        if let Some(token) = token {
            for w in waiters {
                self.release(w.id, Ok(token.clone()));
            }
        }
        match source {
            GrantSource::Login => {
                self.actions.push_back(Action::Persist);
                self.emit(Event::SignedIn);
            }
            GrantSource::Restored => self.emit(Event::SignedIn),
            GrantSource::OtherTab if was_signed_in => {
                self.refresh_count += 1;
                self.emit(Event::Refreshed {
                    source: GrantSource::OtherTab,
                });
            }
            GrantSource::OtherTab => self.emit(Event::SignedIn),
        }
    }

    /// The timer set from `poll_timeout` fired (possibly late).
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(token) = &self.token else { return };
        let due = match &self.phase {
            Phase::Idle => now >= self.refresh_due(token),
            Phase::Backoff { until, .. } => now >= *until,
            Phase::Refreshing { .. } => false,
        };
        if due {
            self.start_refresh(Vec::new());
        }
    }

    /// The page woke up (sleep, `visibilitychange`, `pageshow`, `online`, `focus`): timers may
    /// have been throttled or frozen, so check the deadline now.
    pub fn handle_wake(&mut self, now: Instant) {
        self.handle_timeout(now);
    }

    /// A caller wants an access token valid for at least the margin.
    pub fn request_token(&mut self, now: Instant, waiter: WaiterId) -> TokenAnswer {
        let Some(token) = &self.token else {
            return TokenAnswer::Fail(ClientError::new(ErrorCode::SessionMissing, 0));
        };
        if now < self.refresh_due(token) && !self.is_refreshing() {
            return TokenAnswer::Ready(token.access.clone());
        }
        match &mut self.phase {
            Phase::Refreshing { waiters, .. } => {
                waiters.push(PendingWaiter {
                    id: waiter,
                    forced: false,
                });
                TokenAnswer::Wait
            }
            Phase::Backoff { last_error, .. } => {
                // The server is struggling: serve the old token while it lives, fail fast after.
                if now < token.expiry() {
                    TokenAnswer::Ready(token.access.clone())
                } else {
                    TokenAnswer::Fail(last_error.clone())
                }
            }
            Phase::Idle => {
                self.start_refresh(vec![PendingWaiter {
                    id: waiter,
                    forced: false,
                }]);
                TokenAnswer::Wait
            }
        }
    }

    /// `refresh()`: a new token now, sharing a refresh already in flight.
    pub fn request_refresh(&mut self, now: Instant, waiter: WaiterId) -> TokenAnswer {
        let _ = now;
        if self.token.is_none() {
            return TokenAnswer::Fail(ClientError::new(ErrorCode::SessionMissing, 0));
        }
        let w = PendingWaiter {
            id: waiter,
            forced: true,
        };
        match &mut self.phase {
            Phase::Refreshing { waiters, .. } => waiters.push(w),
            _ => self.start_refresh(vec![w]),
        }
        TokenAnswer::Wait
    }

    /// A request made with `failed_token` got a 401. The shell retries at most once.
    ///
    /// At most one refresh per token generation comes from this path: while a failed refresh
    /// backs off (429 with `Retry-After`, 503, network) the caller gets its 401 back, and a
    /// token the API refused on a retry (`handle_retry_401`) refreshes nothing either.
    pub fn handle_request_401(
        &mut self,
        now: Instant,
        failed_token: &str,
        waiter: WaiterId,
    ) -> Retry401 {
        let Some(token) = &self.token else {
            return Retry401::GiveUp(ClientError::new(ErrorCode::SessionMissing, 401));
        };
        let w = PendingWaiter {
            id: waiter,
            forced: true,
        };
        if let Phase::Refreshing { waiters, .. } = &mut self.phase {
            waiters.push(w);
            return Retry401::Wait;
        }
        if token.access != failed_token {
            return Retry401::RetryWith(token.access.clone());
        }
        if self.rejected.as_deref() == Some(failed_token) {
            return Retry401::GiveUp(ClientError::new(ErrorCode::TokenInvalid, 401));
        }
        if let Phase::Backoff { until, last_error } = &self.phase {
            if now < *until {
                return Retry401::GiveUp(last_error.clone());
            }
        }
        self.start_refresh(vec![w]);
        Retry401::Wait
    }

    /// The one retry after a 401, made with `token` (fresh), got a 401 too: the API refuses
    /// valid tokens. Further 401s for this token go back to their callers without a refresh;
    /// `TokenRejected` is emitted once.
    pub fn handle_retry_401(&mut self, token: &str) {
        let current = self.token.as_ref().is_some_and(|t| t.access == token);
        if current && self.rejected.as_deref() != Some(token) {
            self.rejected = Some(token.to_owned());
            self.emit(Event::TokenRejected);
        }
    }

    /// The result of the refresh started by `StartRefresh { attempt }`.
    pub fn handle_refresh_result(&mut self, now: Instant, attempt: u64, outcome: RefreshOutcome) {
        if self.token.is_none() || attempt < self.session_first_attempt {
            return; // Signed out meanwhile: nothing may bring the session back.
        }
        let current = matches!(&self.phase, Phase::Refreshing { attempt: a, .. } if *a == attempt);
        match outcome {
            RefreshOutcome::Success(grant) => {
                // Even a superseded attempt's success is applied: it carries the newest
                // refresh token the server issued.
                self.install(grant);
                self.refresh_count += 1;
                let token = self
                    .token
                    .as_ref()
                    .map(|t| t.access.clone())
                    .unwrap_or_default();
                for w in self.take_waiters() {
                    self.release(w.id, Ok(token.clone()));
                }
                self.actions.push_back(Action::Persist);
                self.emit(Event::Refreshed {
                    source: GrantSource::Login,
                });
            }
            _ if !current => {} // A failure of an attempt someone else already settled.
            RefreshOutcome::Rejected(error) => self.end_session(error),
            RefreshOutcome::Failed { error, retry_after } => {
                let Some(token) = self.token.clone() else {
                    return;
                };
                let delay = match retry_after {
                    Some(d) => d,
                    None => {
                        let d = self.config.backoff.delay(self.failures, &mut self.rng);
                        // Retry before the access token runs out rather than after.
                        let remaining = token.expiry().since(now);
                        if remaining.is_zero() {
                            d
                        } else {
                            d.min(remaining)
                        }
                    }
                };
                self.failures = self.failures.saturating_add(1);
                let waiters = self.take_waiters();
                self.phase = Phase::Backoff {
                    until: now.saturating_add(delay),
                    last_error: error.clone(),
                };
                let still_valid = now < token.expiry();
                for w in waiters {
                    let result = if still_valid && !w.forced {
                        Ok(token.access.clone())
                    } else {
                        Err(error.clone())
                    };
                    self.release(w.id, result);
                }
                self.emit(Event::Error(error));
            }
        }
    }

    /// Signed out, in this tab (`Logout`) or in another one (`OtherTab`).
    pub fn handle_sign_out(&mut self, now: Instant, reason: SignOutReason) {
        let _ = now;
        if self.token.is_none() {
            return;
        }
        self.clear(ClientError::new(ErrorCode::SessionMissing, 0));
        if reason != SignOutReason::OtherTab {
            self.actions.push_back(Action::ClearPersisted);
        }
        self.emit(Event::SignedOut { reason });
    }

    /// The client is going away: every waiter is told so.
    pub fn handle_dispose(&mut self) {
        for w in self.take_waiters() {
            self.release(w.id, Err(ClientError::new(ErrorCode::Disposed, 0)));
        }
        self.token = None;
        self.phase = Phase::Idle;
    }

    // ---- internals -----------------------------------------------------------------------

    fn refresh_due(&self, token: &Token) -> Instant {
        let margin = self.config.margin.min(token.expires_in / 2);
        token
            .received_at
            .saturating_add(token.expires_in)
            .saturating_sub(margin)
    }

    fn install(&mut self, grant: Grant) {
        if grant.skew_ms.is_some() {
            self.skew_ms = grant.skew_ms;
        }
        self.token = Some(Token {
            access: grant.access_token,
            received_at: grant.received_at,
            expires_in: grant.expires_in,
        });
        self.failures = 0;
        if !matches!(self.phase, Phase::Refreshing { .. }) {
            self.phase = Phase::Idle;
        }
    }

    fn start_refresh(&mut self, waiters: Vec<PendingWaiter>) {
        let attempt = self.next_attempt;
        self.next_attempt += 1;
        self.phase = Phase::Refreshing { attempt, waiters };
        self.actions.push_back(Action::StartRefresh { attempt });
    }

    /// Takes the waiters out and leaves the phase `Idle`.
    fn take_waiters(&mut self) -> Vec<PendingWaiter> {
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Refreshing { waiters, .. } => waiters,
            _ => Vec::new(),
        }
    }

    fn end_session(&mut self, error: ClientError) {
        let code = error.code.clone();
        self.clear(error);
        self.actions.push_back(Action::ClearPersisted);
        self.emit(Event::SessionExpired { code });
        self.emit(Event::SignedOut {
            reason: SignOutReason::SessionEnded,
        });
    }

    fn clear(&mut self, error: ClientError) {
        for w in self.take_waiters() {
            self.release(w.id, Err(error.clone()));
        }
        self.token = None;
        self.failures = 0;
        self.session_first_attempt = self.next_attempt;
    }

    fn release(&mut self, waiter: WaiterId, result: Result<String, ClientError>) {
        self.actions.push_back(Action::Release { waiter, result });
    }

    fn emit(&mut self, event: Event) {
        self.actions.push_back(Action::Emit(event));
    }
}

impl Token {
    fn expiry(&self) -> Instant {
        self.received_at.saturating_add(self.expires_in)
    }
}

#[cfg(test)]
mod tests;
