//! The browser shell: pumps `baton-core`'s `RefreshMachine` with one timer, `fetch`, storage,
//! Web Locks and BroadcastChannel.
//!
//! State lives in `Rc<RefCell<Inner>>`. No borrow is ever held across an `.await`, and user
//! callbacks (event listeners) run from a fresh microtask, never inside a borrow or a lock.

use crate::http::{self, Call};
use crate::js;
use crate::storage::{self, Kind, Store, Stored};
use baton_core::{
    Action, ClientError, Config, ErrorCode, Event, Grant, GrantSource, RefreshMachine,
    RefreshOutcome, Retry401, SignOutReason, TokenAnswer, WaiterId,
};
use js_sys::{Function, Object, Promise};
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::Duration;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};

/// Validated `Baton.create` options.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) base_url: String,
    pub(crate) storage: Kind,
    pub(crate) cookie: bool,
    pub(crate) margin: Duration,
    pub(crate) cross_tab: bool,
    pub(crate) auth_timeout_ms: u32,
    pub(crate) request_timeout_ms: u32,
    pub(crate) storage_key: String,
}

struct Waiter {
    resolve: Function,
    reject: Function,
}

pub(crate) struct Inner {
    pub(crate) machine: RefreshMachine,
    pub(crate) opts: Options,
    store: Store,
    /// The current session (mirrors storage); `None` when signed out.
    pub(crate) state: Option<Stored>,
    pub(crate) device_id: String,
    /// Few at a time: a Vec is smaller than a HashMap in the wasm.
    waiters: Vec<(u64, Waiter)>,
    next_waiter: u64,
    timer: Option<gloo_timers::callback::Timeout>,
    timer_deadline: Option<baton_core::Instant>,
    channel: Option<web_sys::BroadcastChannel>,
    channel_handler: Option<Closure<dyn FnMut(JsValue)>>,
    /// The wake-up listeners: the function that removes them, and their callback.
    watch: Option<(Function, Closure<dyn FnMut()>)>,
    emit: Function,
    pub(crate) disposed: bool,
    pub(crate) last_refresh_ms: Option<f64>,
    /// The session the last refresh was for (its refresh token, or its access token in cookie
    /// mode) and that refresh's `Idempotency-Key`. Retries of that refresh send the same key,
    /// so a rotation whose answer was lost is handed out again instead of looking like theft.
    /// Kept in memory only: a thief copying storage does not get it.
    refresh_key: Option<(String, String)>,
    /// The tabs' consistent store (IndexedDB, from the npm package), when available: unlike
    /// localStorage, what one tab wrote before releasing the refresh lock is what the next
    /// holder reads.
    shared: Option<Object>,
    /// The last write to `shared`, awaited before the refresh lock is released.
    shared_write: Option<Promise>,
}

pub(crate) type Shared = Rc<RefCell<Inner>>;

impl Inner {
    fn waiter_id(&mut self) -> u64 {
        self.next_waiter += 1;
        self.next_waiter
    }

    fn persist(&mut self) {
        let Some(s) = &self.state else { return };
        let key = self.opts.storage_key.clone();
        if !self.store.write(&key, &s.value) {
            web_sys::console::warn_1(&"baton-auth: could not write the session to storage".into());
        }
        self.shared_write = shared_call(&self.shared, "set", &key, &s.value);
        if let Some(ch) = &self.channel {
            let msg = Object::new();
            js::set(&msg, "type", "session");
            js::set(&msg, "session", &s.value);
            let _ = ch.post_message(&msg);
        }
    }

    fn clear_persisted(&mut self) {
        let key = self.opts.storage_key.clone();
        self.store.remove(&key);
        self.shared_write = shared_call(&self.shared, "del", &key, &JsValue::UNDEFINED);
        if let Some(ch) = &self.channel {
            let msg = Object::new();
            js::set(&msg, "type", "signout");
            let _ = ch.post_message(&msg);
        }
    }

    /// The session as `baton.session` shows it.
    pub(crate) fn session_value(&self) -> JsValue {
        let Some(s) = &self.state else {
            return JsValue::NULL;
        };
        let o = Object::new();
        js::set(&o, "userId", s.user_id.as_str());
        js::set(&o, "email", s.email.as_str());
        js::set(&o, "sessionId", s.session_id.as_str());
        js::set(
            &o,
            "expiresAt",
            s.received_at + s.expires_in as f64 * 1000.0,
        );
        js::set(&o, "refreshExpiresAt", s.refresh_expires_at);
        // The roles of the token response (`storage`'s `stored` keeps only strings), a copy.
        let roles = js::get(&s.value, "roles");
        let roles = if js_sys::Array::is_array(&roles) {
            js_sys::Array::from(&roles)
        } else {
            js_sys::Array::new()
        };
        js::set(&o, "roles", roles);
        o.into()
    }
}

fn grant_of(s: &Stored) -> Grant {
    Grant {
        access_token: s.access_token.clone(),
        expires_in: Duration::from_secs(s.expires_in),
        received_at: baton_core::Instant::from_millis(s.received_at as u64),
        skew_ms: s.skew_ms.map(|v| v as i64),
    }
}

/// The session of a token response (login, refresh), or `None` when it is not one.
fn stored_of(reply: &http::Reply, keep: Option<String>, browser: Option<String>) -> Option<Stored> {
    storage::from_value(&crate::platform::stored(
        &reply.body,
        reply.received_at,
        reply.skew_ms.map(|v| v as f64),
        keep,
        browser,
    ))
}

/// Creates the client: storage, device id, restored session, cross-tab channel, wake listeners.
pub(crate) async fn create(
    opts: Options,
    emit: Function,
    shared: JsValue,
) -> Result<Shared, JsValue> {
    let store = Store::open(opts.storage)
        .map_err(|m| js::client_error(ErrorCode::StorageUnavailable, &m))?;
    // Only a session in localStorage is shared by tabs.
    let shared = (opts.storage == Kind::Local && opts.cross_tab && shared.is_object())
        .then(|| Object::from(shared));
    // Rejected with the reason (no SubtleCrypto outside a secure context).
    let device_id = JsFuture::from(crate::platform::device_id())
        .await
        .map_err(|m| {
            js::client_error(
                ErrorCode::InvalidOptions,
                &m.as_string().unwrap_or_default(),
            )
        })?
        .as_string()
        .unwrap_or_default();
    let machine = RefreshMachine::new(
        Config {
            margin: opts.margin,
            ..Config::default()
        },
        crate::platform::random_u64(),
    );
    let inner = Inner {
        machine,
        opts,
        store,
        state: None,
        device_id,
        waiters: Vec::new(),
        next_waiter: 0,
        timer: None,
        timer_deadline: None,
        channel: None,
        channel_handler: None,
        watch: None,
        emit,
        disposed: false,
        last_refresh_ms: None,
        refresh_key: None,
        shared,
        shared_write: None,
    };
    let rc = Rc::new(RefCell::new(inner));
    restore(&rc);
    attach(&rc);
    pump(&rc);
    Ok(rc)
}

fn restore(rc: &Shared) {
    let mut i = rc.borrow_mut();
    let key = i.opts.storage_key.clone();
    let raw = i.store.read(&key);
    let Some(stored) = storage::read(&raw) else {
        // Unreadable, or left by a browser session that has ended: the tokens go.
        if !raw.is_undefined() {
            i.store.remove(&key);
        }
        return;
    };
    if stored.refresh_expires_at <= js_sys::Date::now() {
        i.store.remove(&key);
        return;
    }
    let grant = grant_of(&stored);
    i.state = Some(stored);
    i.machine
        .handle_session(js::now(), grant, GrantSource::Restored);
}

/// BroadcastChannel for other tabs' sessions and sign-outs; page lifecycle events for wake-ups.
fn attach(rc: &Shared) {
    let weak = Rc::downgrade(rc);
    let (cross_tab, name) = {
        let i = rc.borrow();
        (
            i.opts.cross_tab,
            js::cat(&["baton-auth:", &i.opts.storage_key]),
        )
    };
    if cross_tab {
        let w = weak.clone();
        let handler = Closure::<dyn FnMut(JsValue)>::new(move |data: JsValue| {
            if let Some(rc) = w.upgrade() {
                on_message(&rc, &data);
            }
        });
        let ch = crate::platform::channel(&name, handler.as_ref());
        let mut i = rc.borrow_mut();
        i.channel = ch;
        i.channel_handler = Some(handler);
    }
    let wake = Closure::<dyn FnMut()>::new(move || {
        if let Some(rc) = weak.upgrade() {
            if !rc.borrow().disposed {
                rc.borrow_mut().machine.handle_wake(js::now());
                pump(&rc);
            }
        }
    });
    let stop = crate::platform::watch(wake.as_ref());
    rc.borrow_mut().watch = Some((stop, wake));
}

fn on_message(rc: &Shared, data: &JsValue) {
    if rc.borrow().disposed {
        return;
    }
    match js::get_str(data, "type").as_deref() {
        Some("session") => {
            if let Some(stored) =
                storage::from_value(&js::get(data, "session")).and_then(storage::alive)
            {
                adopt(rc, stored);
            }
        }
        Some("signout") => {
            let mut i = rc.borrow_mut();
            i.machine
                .handle_sign_out(js::now(), SignOutReason::OtherTab);
            i.state = None;
        }
        _ => return,
    }
    pump(rc);
}

/// Takes over a session another tab wrote, if the machine accepts it as newer.
fn adopt(rc: &Shared, stored: Stored) {
    let mut i = rc.borrow_mut();
    let token = stored.access_token.clone();
    i.machine
        .handle_session(js::now(), grant_of(&stored), GrantSource::OtherTab);
    if i.machine.access_token() == Some(token.as_str()) {
        i.state = Some(stored);
    }
}

/// Drains the machine's actions: releases waiters, starts refreshes, persists, re-arms the
/// timer; then dispatches events from a fresh microtask.
pub(crate) fn pump(rc: &Shared) {
    let mut releases = Vec::new();
    let mut refreshes = Vec::new();
    let mut events = Vec::new();
    {
        let mut i = rc.borrow_mut();
        while let Some(action) = i.machine.poll_action() {
            match action {
                Action::StartRefresh { attempt } => refreshes.push(attempt),
                Action::Release { waiter, result } => {
                    if let Some(pos) = i.waiters.iter().position(|(id, _)| *id == waiter.0) {
                        releases.push((i.waiters.swap_remove(pos).1, result));
                    }
                }
                Action::Emit(e) => events.push(event_value(&i, e)),
                Action::Persist => i.persist(),
                Action::ClearPersisted => {
                    i.state = None;
                    i.clear_persisted();
                }
            }
        }
        if !i.machine.has_session() {
            i.state = None;
        }
        rearm(&mut i, rc);
    }
    for (w, result) in releases {
        let _ = match result {
            Ok(token) => w.resolve.call1(&JsValue::NULL, &JsValue::from_str(&token)),
            Err(e) => w
                .reject
                .call1(&JsValue::NULL, &js::error_value(&e, &describe(&e))),
        };
    }
    for attempt in refreshes {
        spawn_local(refresh_task(rc.clone(), attempt));
    }
    if !events.is_empty() {
        let emit = rc.borrow().emit.clone();
        spawn_local(async move {
            for (name, detail) in events {
                let _ = emit.call2(&JsValue::NULL, &JsValue::from_str(name), &detail);
            }
        });
    }
}

fn describe(e: &ClientError) -> String {
    crate::platform::describe(&e.code)
}

fn event_value(i: &Inner, e: Event) -> (&'static str, JsValue) {
    let detail = Object::new();
    let name = match e {
        Event::SignedIn => {
            js::set(&detail, "session", i.session_value());
            "signedIn"
        }
        Event::Refreshed { source } => {
            js::set(&detail, "session", i.session_value());
            let from = if source == GrantSource::OtherTab {
                "otherTab"
            } else {
                "local"
            };
            js::set(&detail, "source", from);
            if let Some(ms) = i
                .last_refresh_ms
                .filter(|_| source != GrantSource::OtherTab)
            {
                js::set(&detail, "latencyMs", ms);
            }
            "refreshed"
        }
        Event::SignedOut { reason } => {
            let r = match reason {
                SignOutReason::Logout => "logout",
                SignOutReason::OtherTab => "otherTab",
                SignOutReason::SessionEnded => "sessionEnded",
            };
            js::set(&detail, "reason", r);
            "signedOut"
        }
        Event::SessionExpired { code } => {
            js::set(&detail, "code", code.as_str());
            "sessionExpired"
        }
        Event::Error(e) => {
            return ("error", js::error_value(&e, &describe(&e)));
        }
        Event::TokenRejected => "tokenRejected",
    };
    (name, detail.into())
}

/// One timer for the machine's next deadline, replaced only when the deadline changes.
fn rearm(i: &mut Inner, rc: &Shared) {
    let deadline = if i.disposed {
        None
    } else {
        i.machine.poll_timeout()
    };
    if deadline == i.timer_deadline && (deadline.is_none() || i.timer.is_some()) {
        return;
    }
    i.timer = None;
    i.timer_deadline = deadline;
    let Some(d) = deadline else { return };
    let delay = d
        .as_millis()
        .saturating_sub(js::now().as_millis())
        .min(i32::MAX as u64) as u32;
    let weak: Weak<RefCell<Inner>> = Rc::downgrade(rc);
    i.timer = Some(gloo_timers::callback::Timeout::new(delay, move || {
        // Leave the timer's own callback before touching (and possibly replacing) the timer.
        spawn_local(async move {
            if let Some(rc) = weak.upgrade() {
                {
                    let mut i = rc.borrow_mut();
                    i.timer = None;
                    i.timer_deadline = None;
                    i.machine.handle_timeout(js::now());
                }
                pump(&rc);
            }
        });
    }));
}

/// Registers a waiter and returns the promise its `Release` settles.
fn waiter_promise(rc: &Shared, id: u64) -> Promise {
    Promise::new(&mut |resolve, reject| {
        rc.borrow_mut()
            .waiters
            .push((id, Waiter { resolve, reject }));
    })
}

fn token_from(v: Result<JsValue, JsValue>) -> Result<String, JsValue> {
    v.and_then(|t| t.as_string().ok_or(JsValue::NULL))
}

/// An access token valid for at least the margin (refreshing first when needed).
pub(crate) async fn access_token(rc: &Shared, forced: bool) -> Result<String, JsValue> {
    let (id, answer) = {
        let mut i = rc.borrow_mut();
        if i.disposed {
            return Err(js::client_error(
                ErrorCode::Disposed,
                "this Baton instance was disposed",
            ));
        }
        let id = i.waiter_id();
        let now = js::now();
        let answer = if forced {
            i.machine.request_refresh(now, WaiterId(id))
        } else {
            i.machine.request_token(now, WaiterId(id))
        };
        (id, answer)
    };
    match answer {
        TokenAnswer::Ready(t) => {
            pump(rc);
            Ok(t)
        }
        TokenAnswer::Fail(e) => {
            pump(rc);
            Err(js::error_value(&e, &describe(&e)))
        }
        TokenAnswer::Wait => {
            let p = waiter_promise(rc, id);
            pump(rc);
            token_from(JsFuture::from(p).await)
        }
    }
}

/// After a 401 with `failed`: the token to retry with, or `None` to give up.
pub(crate) async fn token_after_401(rc: &Shared, failed: &str) -> Option<String> {
    let (id, r) = {
        let mut i = rc.borrow_mut();
        let id = i.waiter_id();
        (
            id,
            i.machine
                .handle_request_401(js::now(), failed, WaiterId(id)),
        )
    };
    match r {
        Retry401::RetryWith(t) => Some(t),
        Retry401::GiveUp(_) => None,
        Retry401::Wait => {
            let p = waiter_promise(rc, id);
            pump(rc);
            JsFuture::from(p).await.ok().and_then(|v| v.as_string())
        }
    }
}

/// Runs one refresh: under the cross-tab Web Lock when available (bounded wait, then steal).
async fn refresh_task(rc: Shared, attempt: u64) {
    let (cross_tab, name, wait_ms) = {
        let i = rc.borrow();
        (
            i.opts.cross_tab,
            js::cat(&["baton-auth:refresh:", &i.opts.storage_key]),
            i.opts.auth_timeout_ms.saturating_add(2_000),
        )
    };
    let rc2 = rc.clone();
    let body = Closure::once_into_js(move || -> JsValue {
        crate::promise(async move {
            locked_refresh(&rc2, attempt).await;
            Ok(JsValue::UNDEFINED)
        })
        .into()
    });
    let run = if cross_tab {
        crate::platform::locked(&name, wait_ms, &body)
    } else {
        body.unchecked_into::<Function>()
            .call0(&JsValue::NULL)
            .map_or_else(|_| Promise::resolve(&JsValue::NULL), Promise::from)
    };
    let _ = JsFuture::from(run).await;
}

/// Inside the lock: re-read shared storage (another tab may have refreshed), else call the server.
async fn locked_refresh(rc: &Shared, attempt: u64) {
    if rc.borrow().disposed || rc.borrow().machine.refreshing_attempt() != Some(attempt) {
        return;
    }
    if take_newer_from_shared(rc).await {
        pump(rc);
        return;
    }
    let (url, body, device_id, cookie, timeout_ms, old_refresh, key, browser) = {
        let mut i = rc.borrow_mut();
        let refresh = i.state.as_ref().and_then(|s| s.refresh_token.clone());
        let browser = i.state.as_ref().and_then(|s| s.browser.clone());
        let of = i
            .state
            .as_ref()
            .map(|s| {
                s.refresh_token
                    .clone()
                    .unwrap_or_else(|| s.access_token.clone())
            })
            .unwrap_or_default();
        let key = match &i.refresh_key {
            Some((same, key)) if *same == of => key.clone(),
            _ => {
                let key = crate::platform::random_id();
                i.refresh_key = Some((of, key.clone()));
                key
            }
        };
        let body = refresh.as_ref().map(|t| {
            let o = Object::new();
            js::set(&o, "refresh_token", t.as_str());
            JsValue::from(o)
        });
        (
            js::cat(&[&i.opts.base_url, "/auth/refresh"]),
            body,
            i.device_id.clone(),
            i.opts.cookie,
            i.opts.auth_timeout_ms,
            refresh,
            key,
            browser,
        )
    };
    let started = js_sys::Date::now();
    let result = http::call(Call {
        url,
        body,
        bearer: None,
        device_id: &device_id,
        credentials: cookie,
        timeout_ms,
        key: Some(&key),
    })
    .await;
    let mut fresh = None;
    let outcome = match result {
        Ok(reply) if reply.status == 200 => {
            match stored_of(&reply, if cookie { None } else { old_refresh }, browser) {
                Some(stored) => {
                    let grant = grant_of(&stored);
                    fresh = Some(stored);
                    RefreshOutcome::Success(grant)
                }
                None => RefreshOutcome::Failed {
                    error: ClientError::new(ErrorCode::Internal, 200),
                    retry_after: None,
                },
            }
        }
        Ok(reply) => http::refresh_outcome(&reply),
        Err(error) => RefreshOutcome::Failed {
            error,
            retry_after: None,
        },
    };
    {
        let mut i = rc.borrow_mut();
        i.last_refresh_ms = Some(js_sys::Date::now() - started);
        let token = fresh.as_ref().map(|s| s.access_token.clone());
        if let Some(s) = fresh {
            // Installed before the machine emits `Persist`, so that writes the new session.
            let previous = i.state.replace(s);
            i.machine.handle_refresh_result(js::now(), attempt, outcome);
            if i.machine.access_token() != token.as_deref() {
                i.state = previous;
            }
        } else {
            i.machine.handle_refresh_result(js::now(), attempt, outcome);
        }
    }
    pump(rc);
    // The next holder of the refresh lock must find this session: wait until the shared
    // store has it before the lock is released.
    let write = rc.borrow_mut().shared_write.take();
    if let Some(w) = write {
        let _ = JsFuture::from(w).await;
    }
}

/// Calls `shared.<method>(key[, value])`; its promise, if it returned one.
fn shared_call(
    shared: &Option<Object>,
    method: &str,
    key: &str,
    value: &JsValue,
) -> Option<Promise> {
    crate::platform::shared(shared.as_ref()?, method, key, value)
}

/// Inside the refresh lock: adopts a newer session another tab stored. Reads the shared store
/// when there is one (consistent across tabs: localStorage can still show the old session right
/// after the lock changed hands, which made two tabs refresh the same token); falls back to
/// localStorage when the shared store has nothing or fails.
async fn take_newer_from_shared(rc: &Shared) -> bool {
    let read = {
        let i = rc.borrow();
        shared_call(&i.shared, "get", &i.opts.storage_key, &JsValue::UNDEFINED)
    };
    if let Some(read) = read {
        if let Ok(v) = JsFuture::from(read).await {
            let ours = rc.borrow().state.clone();
            let theirs = storage::read(&v);
            if let (Some(ours), Some(theirs)) = (ours, theirs) {
                if theirs.received_at > ours.received_at {
                    adopt(rc, theirs);
                    return true;
                }
                return false;
            }
        }
    }
    take_newer_from_storage(rc)
}

/// True when storage holds a newer session than ours (adopted), or shows a sign-out elsewhere.
fn take_newer_from_storage(rc: &Shared) -> bool {
    let (raw, ours) = {
        let i = rc.borrow();
        if i.store.kind() == Kind::Memory {
            return false;
        }
        (i.store.read(&i.opts.storage_key), i.state.clone())
    };
    let Some(ours) = ours else { return false };
    match storage::read(&raw) {
        Some(stored) if stored.received_at > ours.received_at => {
            adopt(rc, stored);
            true
        }
        Some(_) => false,
        None => {
            let mut i = rc.borrow_mut();
            i.machine
                .handle_sign_out(js::now(), SignOutReason::OtherTab);
            i.state = None;
            true
        }
    }
}

/// One plain POST to the server (login, register, logout, logout-all); network failures and
/// timeouts become error values, HTTP errors stay a `Reply`.
#[inline(never)]
async fn api(
    rc: &Shared,
    path: &str,
    body: Option<JsValue>,
    bearer: Option<String>,
) -> Result<http::Reply, JsValue> {
    let (url, device_id, cookie, timeout_ms) = endpoint(rc, path)?;
    http::call(Call {
        url,
        body,
        bearer: bearer.as_deref(),
        device_id: &device_id,
        credentials: cookie,
        timeout_ms,
        key: None,
    })
    .await
    .map_err(|e| js::error_value(&e, &describe(&e)))
}

/// Signs in by posting `body` to `path` (`/auth/login`, `/auth/otp/verify`,
/// `/auth/magic-link/verify`, which answer alike) and installs the session.
pub(crate) async fn sign_in(
    rc: &Shared,
    path: &str,
    body: Object,
    remember_me: bool,
) -> Result<JsValue, JsValue> {
    js::set(&body, "remember_me", remember_me);
    let cookie = rc.borrow().opts.cookie;
    js::set(
        &body,
        "refresh_transport",
        if cookie { "cookie" } else { "body" },
    );
    let reply = api(rc, path, Some(body.into()), None).await?;
    if reply.status != 200 {
        return Err(reply_error_value(&reply));
    }
    // The account has a second factor: no session yet; the caller finishes it.
    if js::get(&reply.body, "mfa_required").as_bool() == Some(true) {
        return Ok(reply.body);
    }
    // Without remember-me, a session kept in localStorage ends with the browser session.
    let browser = (!remember_me && rc.borrow().opts.storage == Kind::Local)
        .then(|| crate::platform::browser_session(true))
        .flatten();
    let stored = stored_of(&reply, None, browser)
        .ok_or_else(|| js::client_error(ErrorCode::Internal, "unexpected login response"))?;
    let session = {
        let mut i = rc.borrow_mut();
        let grant = grant_of(&stored);
        i.state = Some(stored);
        i.machine
            .handle_session(js::now(), grant, GrantSource::Login);
        i.session_value()
    };
    pump(rc);
    Ok(session)
}

/// Posts `body` to `path` without a session (register, asking for a sign-in code): the
/// answer's body on success, its error otherwise.
pub(crate) async fn post(rc: &Shared, path: &str, body: JsValue) -> Result<JsValue, JsValue> {
    let reply = api(rc, path, Some(body), None).await?;
    if !(200..300).contains(&reply.status) {
        return Err(reply_error_value(&reply));
    }
    Ok(reply.body)
}

/// Revokes this session on the server (best effort) and signs out here and in other tabs.
pub(crate) async fn logout(rc: &Shared) -> Result<JsValue, JsValue> {
    let (access, refresh) = {
        let i = rc.borrow();
        match &i.state {
            Some(s) => (Some(s.access_token.clone()), s.refresh_token.clone()),
            None => (None, None),
        }
    };
    if access.is_some() {
        let body = refresh.map(|t| {
            let o = Object::new();
            js::set(&o, "refresh_token", t);
            JsValue::from(o)
        });
        if let Err(e) = api(rc, "/auth/logout", body, access).await {
            let code = js::get_str(&e, "code").unwrap_or_default();
            web_sys::console::warn_1(
                &js::cat(&["baton-auth: logout could not reach the server: ", &code]).into(),
            );
        }
    }
    rc.borrow_mut()
        .machine
        .handle_sign_out(js::now(), SignOutReason::Logout);
    pump(rc);
    Ok(JsValue::UNDEFINED)
}

/// Revokes every session of the user; signs out here only once the server confirmed.
pub(crate) async fn logout_all(rc: &Shared) -> Result<JsValue, JsValue> {
    let token = access_token(rc, false).await?;
    let reply = api(rc, "/auth/logout-all", None, Some(token)).await?;
    if reply.status != 204 && reply.status != 401 {
        return Err(reply_error_value(&reply));
    }
    rc.borrow_mut()
        .machine
        .handle_sign_out(js::now(), SignOutReason::Logout);
    pump(rc);
    Ok(JsValue::UNDEFINED)
}

fn endpoint(rc: &Shared, path: &str) -> Result<(String, String, bool, u32), JsValue> {
    let i = rc.borrow();
    if i.disposed {
        return Err(js::client_error(
            ErrorCode::Disposed,
            "this Baton instance was disposed",
        ));
    }
    Ok((
        js::cat(&[&i.opts.base_url, path]),
        i.device_id.clone(),
        i.opts.cookie,
        i.opts.auth_timeout_ms,
    ))
}

fn reply_error_value(reply: &http::Reply) -> JsValue {
    let e = http::reply_error(reply);
    let v = js::error_value(&e, &js::message_of(&reply.body, &describe(&e)));
    if let Some(ra) = reply.retry_after {
        js::set(v.unchecked_ref(), "retryAfter", ra.as_millis() as f64 / 1e3);
    }
    v
}

/// An API answered 401 to `token`, which came fresh from a refresh: the machine stops
/// refreshing for that token and tells the app (`tokenRejected`).
pub(crate) fn retry_refused(rc: &Shared, token: &str) {
    rc.borrow_mut().machine.handle_retry_401(token);
    pump(rc);
}

/// Releases timers, listeners and the channel; pending callers get `disposed`.
pub(crate) fn dispose(rc: &Shared) {
    {
        let mut i = rc.borrow_mut();
        if i.disposed {
            return;
        }
        i.disposed = true;
        i.machine.handle_dispose();
    }
    pump(rc);
    let mut i = rc.borrow_mut();
    i.timer = None;
    i.timer_deadline = None;
    if let Some((stop, _wake)) = i.watch.take() {
        let _ = stop.call0(&JsValue::NULL);
    }
    if let Some(ch) = i.channel.take() {
        ch.close();
    }
    i.channel_handler = None;
}
