//! Wire types of the HTTP API (docs/api.md), shared by `baton-server` and `baton-client`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Every error code Baton emits. The strings are stable: never renamed, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    // Server codes (docs/api.md).
    ValidationFailed,
    EmailTaken,
    RegistrationClosed,
    InvalidCredentials,
    AccountLocked,
    RateLimited,
    RefreshTokenInvalid,
    RefreshTokenReused,
    SessionExpired,
    SessionRevoked,
    DeviceMismatch,
    CsrfCheckFailed,
    TokenMissing,
    TokenInvalid,
    TokenExpired,
    TokenRevoked,
    DpopProofInvalid,
    InvalidCode,
    EmailUnavailable,
    UserDisabled,
    InsufficientScope,
    MfaTokenInvalid,
    StepUpRequired,
    PasskeyInvalid,
    PasskeysUnavailable,
    RedirectNotAllowed,
    NotFound,
    Forbidden,
    Unavailable,
    InvalidRequest,
    PayloadTooLarge,
    MethodNotAllowed,
    UnsupportedMediaType,
    Internal,
    // Client codes (baton-auth).
    NetworkError,
    Timeout,
    SessionMissing,
    StorageUnavailable,
    InvalidOptions,
    Disposed,
}

impl ErrorCode {
    /// All codes, for exhaustive round-trip checks and documentation.
    pub const ALL: [ErrorCode; 40] = [
        Self::ValidationFailed,
        Self::EmailTaken,
        Self::RegistrationClosed,
        Self::InvalidCredentials,
        Self::AccountLocked,
        Self::RateLimited,
        Self::RefreshTokenInvalid,
        Self::RefreshTokenReused,
        Self::SessionExpired,
        Self::SessionRevoked,
        Self::DeviceMismatch,
        Self::CsrfCheckFailed,
        Self::TokenMissing,
        Self::TokenInvalid,
        Self::TokenExpired,
        Self::TokenRevoked,
        Self::DpopProofInvalid,
        Self::InvalidCode,
        Self::EmailUnavailable,
        Self::UserDisabled,
        Self::InsufficientScope,
        Self::MfaTokenInvalid,
        Self::StepUpRequired,
        Self::PasskeyInvalid,
        Self::PasskeysUnavailable,
        Self::RedirectNotAllowed,
        Self::NotFound,
        Self::Forbidden,
        Self::Unavailable,
        Self::InvalidRequest,
        Self::PayloadTooLarge,
        Self::MethodNotAllowed,
        Self::UnsupportedMediaType,
        Self::Internal,
        Self::NetworkError,
        Self::Timeout,
        Self::SessionMissing,
        Self::StorageUnavailable,
        Self::InvalidOptions,
        Self::Disposed,
    ];

    #[inline(always)]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ValidationFailed => "validation_failed",
            Self::EmailTaken => "email_taken",
            Self::RegistrationClosed => "registration_closed",
            Self::InvalidCredentials => "invalid_credentials",
            Self::AccountLocked => "account_locked",
            Self::RateLimited => "rate_limited",
            Self::RefreshTokenInvalid => "refresh_token_invalid",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::SessionExpired => "session_expired",
            Self::SessionRevoked => "session_revoked",
            Self::DeviceMismatch => "device_mismatch",
            Self::CsrfCheckFailed => "csrf_check_failed",
            Self::TokenMissing => "token_missing",
            Self::TokenInvalid => "token_invalid",
            Self::TokenExpired => "token_expired",
            Self::TokenRevoked => "token_revoked",
            Self::DpopProofInvalid => "dpop_proof_invalid",
            Self::InvalidCode => "invalid_code",
            Self::EmailUnavailable => "email_unavailable",
            Self::UserDisabled => "user_disabled",
            Self::InsufficientScope => "insufficient_scope",
            Self::MfaTokenInvalid => "mfa_token_invalid",
            Self::StepUpRequired => "step_up_required",
            Self::PasskeyInvalid => "passkey_invalid",
            Self::PasskeysUnavailable => "passkeys_unavailable",
            Self::RedirectNotAllowed => "redirect_not_allowed",
            Self::NotFound => "not_found",
            Self::Forbidden => "forbidden",
            Self::Unavailable => "unavailable",
            Self::InvalidRequest => "invalid_request",
            Self::PayloadTooLarge => "payload_too_large",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Internal => "internal",
            Self::NetworkError => "network_error",
            Self::Timeout => "timeout",
            Self::SessionMissing => "session_missing",
            Self::StorageUnavailable => "storage_unavailable",
            Self::InvalidOptions => "invalid_options",
            Self::Disposed => "disposed",
        }
    }

    /// Whether a client may succeed by trying the same thing again later.
    #[inline(always)]
    pub const fn retryable(self) -> bool {
        matches!(
            self,
            Self::RateLimited
                | Self::AccountLocked
                | Self::Unavailable
                | Self::EmailUnavailable
                | Self::NetworkError
                | Self::Timeout
                | Self::Internal
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The string is not one of Baton's codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCode;

impl FromStr for ErrorCode {
    type Err = UnknownCode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or(UnknownCode)
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse()
            .map_err(|_| serde::de::Error::custom("unknown error code"))
    }
}

/// `{"error": {"code", "message"}}`, plus `retry_after` for 429 and 503.
///
/// The code is a plain string so a client passes through codes newer than itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.as_str().to_owned(),
                message: message.into(),
                retry_after: None,
            },
            retry_after: None,
        }
    }

    /// Sets `retry_after` both at the top level and inside `error`, so either reading works.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self.error.retry_after = Some(secs);
        self
    }
}

/// `user`: `{id, email, created_at}`; `created_at` is unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    pub id: String,
    pub email: String,
    pub created_at: i64,
    /// The user proved they receive mail at `email`.
    #[serde(default)]
    pub email_verified: bool,
    /// The roles an administrator gave the user (empty: none).
    #[serde(default)]
    pub roles: Vec<String>,
}

/// The claims of an access token (docs/api.md, "Access tokens").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The issuer (the Baton server's URL).
    pub iss: String,
    /// The audience (`BATON_AUDIENCE`).
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// The session id.
    pub sid: String,
    /// The token's unique id.
    pub jti: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// The user proved they receive mail at their address (as known when the session was
    /// loaded; `/auth/me` is always current).
    #[serde(default)]
    pub email_verified: bool,
    /// The roles an administrator gave the user, as known when the token was issued (a
    /// change shows in every token issued after it).
    #[serde(default)]
    pub roles: Vec<String>,
    /// How the user signed in (RFC 8176: `pwd`, `email`, `otp`, `recovery`).
    #[serde(default)]
    pub amr: Vec<String>,
    /// The authentication assurance level: 2 with a second factor (at sign-in, or a step-up
    /// that lasts), else 1.
    #[serde(default = "one")]
    pub aal: u8,
    /// The key a DPoP-bound session's tokens are bound to (RFC 9449): only requests with a
    /// proof signed by that key may use the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

fn one() -> u8 {
    1
}

impl AccessClaims {
    /// Whether an administrator gave the user `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// `cnf` of a DPoP-bound access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Confirmation {
    /// The RFC 7638 SHA-256 thumbprint (base64url) of the proof key.
    pub jkt: String,
}

/// The token response of login and refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    /// Seconds from now; the client computes expiry from its own receive time plus this.
    pub expires_in: u64,
    /// Unix seconds (server clock).
    pub expires_at: i64,
    /// Absent when the session's refresh token travels in the `baton_refresh` cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub refresh_expires_in: u64,
    pub session_id: String,
    pub user: User,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_string() {
        for code in ErrorCode::ALL {
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(code));
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
    }

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
    }

    #[test]
    fn unknown_code_is_rejected() {
        assert_eq!("no_such_code".parse::<ErrorCode>(), Err(UnknownCode));
        assert!(serde_json::from_str::<ErrorCode>("\"nope\"").is_err());
    }

    #[test]
    fn error_body_shape_matches_contract() {
        let body = ErrorBody::new(ErrorCode::RateLimited, "slow down").with_retry_after(7);
        let v: serde_json::Value = serde_json::to_value(&body).unwrap();
        assert_eq!(v["error"]["code"], "rate_limited");
        assert_eq!(v["error"]["message"], "slow down");
        assert_eq!(v["retry_after"], 7);
        let plain = serde_json::to_value(ErrorBody::new(ErrorCode::NotFound, "x")).unwrap();
        assert!(plain.get("retry_after").is_none());
        let back: ErrorBody = serde_json::from_value(v).unwrap();
        assert_eq!(back, body);
    }

    #[test]
    fn token_response_without_refresh_token_round_trips() {
        let json = r#"{"access_token":"a","token_type":"Bearer","expires_in":900,
            "expires_at":1700000900,"refresh_expires_in":604800,"session_id":"s",
            "user":{"id":"u","email":"e@x.io","created_at":1700000000}}"#;
        let t: TokenResponse = serde_json::from_str(json).unwrap();
        assert_eq!(t.refresh_token, None);
        assert_eq!(t.expires_in, 900);
        let again = serde_json::to_value(&t).unwrap();
        assert!(again.get("refresh_token").is_none());
    }
}
