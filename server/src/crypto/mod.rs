//! Secrets: the JWT signing keys and refresh-token MAC (`keys`), their storage sealed at rest
//! and rotation (`keystore`), password hashing (`password`).

pub mod keys;
pub mod keystore;
pub mod password;
pub mod webauthn;
