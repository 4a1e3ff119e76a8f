//! The ways to prove who you are, one file each (`password`, `email_code`, `recovery`), every
//! one ending in `session::start::start`; `account` creates and verifies accounts for them,
//! `mail` is what the methods proven by mail share. No method imports another.

pub mod account;
pub mod email_code;
pub mod mail;
pub mod password;
pub mod recovery;
