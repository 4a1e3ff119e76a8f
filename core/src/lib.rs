//! `baton-core`: everything Baton's client and server share that needs no I/O and no clock.
//!
//! - [`wire`]: the JSON shapes of the HTTP contract and the stable error codes.
//! - [`time`]: millisecond instants supplied by the caller, HTTP-date and `Retry-After` parsing.
//! - [`machine`]: the sans-IO [`RefreshMachine`] that drives proactive, single-flight refresh.
//! - [`backoff`]: jittered exponential backoff with a deterministic generator.
//! - `dpop` (feature `dpop`): the check of DPoP proofs (RFC 9449), for servers.

pub mod backoff;
#[cfg(feature = "dpop")]
pub mod dpop;
pub mod machine;
pub mod time;
pub mod wire;

pub use machine::{
    Action, ClientError, Config, Event, Grant, GrantSource, RefreshMachine, RefreshOutcome,
    Retry401, SignOutReason, TokenAnswer, WaiterId,
};
pub use time::Instant;
pub use wire::{
    AccessClaims, Confirmation, ErrorBody, ErrorCode, ErrorDetail, TokenResponse, User,
};
