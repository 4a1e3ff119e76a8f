//! `baton-server`: login, rotating refresh tokens with reuse detection, sessions, audit log and
//! metrics, over SQLite or PostgreSQL. `main.rs` only parses the config and calls [`run`].
//!
//! The layers, each importing only those below it:
//!
//! - `app`: the composition root (state, router, middleware, background tasks, serving);
//! - `api`: HTTP, one file per area;
//! - `signin`: one file per way to prove who you are, each ending in `session::start`;
//! - `session`: start, refresh (the rotation rules), end;
//! - `audit`, `throttle`, `dpop`: what requests record, count and prove;
//! - `state`: `AppState`'s fields;
//! - `crypto`, `mail`, `idp`, `limits`: keys and passwords, SMTP, identity providers' HTTP,
//!   the rate-limit windows;
//! - `store`: every SQL statement, one file per table;
//! - `rules`: pure policy, the clock passed in;
//! - `config`, `error`, `clock`, `logs`, `metrics`: the foundation.

pub mod api;
pub mod app;
pub mod audit;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod dpop;
pub mod error;
pub mod idp;
pub mod limits;
pub mod logs;
pub mod mail;
pub mod metrics;
pub mod rules;
pub mod session;
pub mod signin;
pub mod state;
pub mod store;
pub mod throttle;

pub use app::background::{purge, spawn as spawn_background, KEY_RELOAD};
pub use app::router::app;
pub use app::serve;
pub use app::{migrate, rotate_keys, run};
pub use clock::now_ms;
pub use state::AppState;
