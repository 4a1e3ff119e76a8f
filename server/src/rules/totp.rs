//! Time-based one-time passwords (RFC 6238: HMAC-SHA-1, 6 digits, 30 s steps), recovery codes,
//! and the step-up window. Pure: the time is passed in.

/// Seconds per step.
pub const STEP_SECS: i64 = 30;
/// Steps of clock drift accepted either way.
pub const DRIFT_STEPS: i64 = 1;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Recovery codes in a set.
pub const RECOVERY_CODES: usize = 10;
/// How long an `mfa_token` (a sign-in waiting for its second factor) lives.
pub const MFA_TOKEN_TTL_MS: i64 = 5 * 60 * 1000;

/// The time step of unix ms `now`.
pub fn step_of(now_ms: i64) -> i64 {
    now_ms.div_euclid(1000).div_euclid(STEP_SECS)
}

/// The code of `secret` at time step `step` (RFC 4226 dynamic truncation).
pub fn code_at(secret: &[u8], step: i64) -> u32 {
    use ring::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = hmac::sign(&key, &step.to_be_bytes());
    let h = mac.as_ref();
    let offset = (h[h.len() - 1] & 0x0f) as usize;
    let bin = (u32::from(h[offset]) & 0x7f) << 24
        | u32::from(h[offset + 1]) << 16
        | u32::from(h[offset + 2]) << 8
        | u32::from(h[offset + 3]);
    bin % 10u32.pow(DIGITS)
}

/// Why a code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not six digits, or no step within the drift has this code.
    Wrong,
    /// The code of a step already used (or older): a replay inside its window.
    Replayed,
}

/// The step a presented code matches at `now`, within ±`DRIFT_STEPS`, and only a step after
/// `last_step` (the last one accepted for this factor): a code works once.
pub fn check(
    secret: &[u8],
    code: &str,
    now_ms: i64,
    last_step: Option<i64>,
) -> Result<i64, Refused> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refused::Wrong);
    }
    let want: u32 = code.parse().map_err(|_| Refused::Wrong)?;
    let now = step_of(now_ms);
    // Every step in the window is computed, so the time taken says nothing about which one.
    let mut matched = None;
    for step in now - DRIFT_STEPS..=now + DRIFT_STEPS {
        if constant_eq(code_at(secret, step), want) && matched.is_none() {
            matched = Some(step);
        }
    }
    let step = matched.ok_or(Refused::Wrong)?;
    if last_step.is_some_and(|last| step <= last) {
        return Err(Refused::Replayed);
    }
    Ok(step)
}

fn constant_eq(a: u32, b: u32) -> bool {
    (a ^ b) == 0
}

/// RFC 4648 base32 without padding, as authenticator apps read secrets.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The `otpauth://` URL authenticator apps import (often as a QR code).
pub fn otpauth_url(issuer: &str, account: &str, secret_b32: &str) -> String {
    let enc = |s: &str| -> String {
        form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret_b32}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(issuer),
        enc(account),
        enc(issuer)
    )
}

/// A recovery code as typed: lower case, without spaces or dashes.
pub fn normalize_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// A recovery code shown to the user (`xxxxx-xxxxx`, base32 in lower case: 50 bits) from 7
/// random bytes.
pub fn recovery_code(random: &[u8; 7]) -> String {
    let s = base32(random).to_lowercase();
    format!("{}-{}", &s[..5], &s[5..10])
}

/// The session's assurance level at `now`: 2 while a step-up lasts, else the one of its
/// sign-in.
pub fn aal(base: i64, step_up_until: Option<i64>, now_ms: i64) -> i64 {
    if step_up_until.is_some_and(|t| t > now_ms) {
        2
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 (8 digits there; the last 6 here).
    #[test]
    fn rfc_6238_vectors() {
        let secret = b"12345678901234567890";
        for (t, code) in [
            (59_i64, 94_287_082_u32),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            assert_eq!(code_at(secret, t / 30), code % 1_000_000, "t = {t}");
        }
    }

    #[test]
    fn drift_of_one_step_and_no_replay() {
        let secret = b"12345678901234567890";
        let now = 1_111_111_111_000;
        let step = step_of(now);
        let at = |s: i64| format!("{:06}", code_at(secret, s));
        assert_eq!(check(secret, &at(step), now, None), Ok(step));
        assert_eq!(check(secret, &at(step - 1), now, None), Ok(step - 1));
        assert_eq!(check(secret, &at(step + 1), now, None), Ok(step + 1));
        assert_eq!(check(secret, &at(step - 2), now, None), Err(Refused::Wrong));
        assert_eq!(check(secret, &at(step + 2), now, None), Err(Refused::Wrong));
        // Once a step is used, it and older ones are replays.
        assert_eq!(
            check(secret, &at(step), now, Some(step)),
            Err(Refused::Replayed)
        );
        assert_eq!(
            check(secret, &at(step - 1), now, Some(step)),
            Err(Refused::Replayed)
        );
        assert_eq!(check(secret, &at(step + 1), now, Some(step)), Ok(step + 1));
        for bad in ["", "12345", "1234567", "abcdef", "12 456"] {
            assert_eq!(
                check(secret, bad, now, None),
                Err(Refused::Wrong),
                "{bad:?}"
            );
        }
        assert_eq!(
            check(secret, &format!(" {} ", at(step)), now, None),
            Ok(step)
        );
    }

    #[test]
    fn base32_and_the_otpauth_url() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(
            base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        let url = otpauth_url("Acme Corp", "ann@example.com", "ABC");
        assert_eq!(
            url,
            "otpauth://totp/Acme%20Corp:ann%40example.com?secret=ABC&issuer=Acme%20Corp&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn recovery_codes_read_back_whatever_the_typing() {
        let code = recovery_code(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(code.len(), 11);
        assert_eq!(&code[5..6], "-");
        assert_eq!(
            normalize_recovery_code(&code.to_uppercase().replace('-', " ")),
            code.replace('-', "")
        );
    }

    #[test]
    fn a_step_up_lasts_its_window() {
        assert_eq!(aal(1, Some(1000), 999), 2);
        assert_eq!(aal(1, Some(1000), 1000), 1);
        assert_eq!(aal(1, None, 5), 1);
        assert_eq!(aal(2, None, 5), 2);
    }
}
