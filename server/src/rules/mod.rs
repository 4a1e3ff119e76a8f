//! Pure rules, the clock passed in: nothing here reads the time, the database or a request.

pub mod account;
pub mod codes;
pub mod email;
pub mod lockout;
pub mod oauth;
pub mod passkey;
pub mod spent;
pub mod totp;
