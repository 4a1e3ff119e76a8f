//! `baton-core`: everything Baton's client and server share that needs no I/O and no clock.
//!
//! - [`wire`]: the JSON shapes of the HTTP contract and the stable error codes.
//! - [`time`]: millisecond instants supplied by the caller, HTTP-date and `Retry-After` parsing.
//! - [`machine`]: the sans-IO [`RefreshMachine`] that drives proactive, single-flight refresh.
//! - [`backoff`]: jittered exponential backoff with a deterministic generator.

pub mod backoff;
pub mod machine;
pub mod time;
pub mod wire;

pub use machine::{
    Action, ClientError, Config, Event, Grant, GrantSource, RefreshMachine, RefreshOutcome,
    Retry401, SignOutReason, TokenAnswer, WaiterId,
};
pub use time::Instant;
pub use wire::{AccessClaims, ErrorBody, ErrorCode, ErrorDetail, TokenResponse, User};
