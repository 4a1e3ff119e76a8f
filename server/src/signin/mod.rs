//! The ways to prove who you are, one file each (`password`, `email_code`, `recovery`, `passkey`,
//! `oauth`, `totp`), every
//! one ending in `session::start::start`; `account` creates and verifies accounts for them,
//! `mail` is what the methods proven by mail share. No method imports another. Beside them,
//! what is done to accounts once they exist: by their owners (`profile`, which proves the
//! password again through `password::prove`) and by administrators (`admin`).

pub mod account;
pub mod admin;
pub mod email_code;
pub mod mail;
pub mod oauth;
pub mod passkey;
pub mod password;
pub mod profile;
pub mod recovery;
pub mod totp;
