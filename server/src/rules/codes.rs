//! Emailed sign-in codes: their shape and lifetime (the clock is the caller's).

/// Tries of one code; the next is refused even when right.
pub const MAX_TRIES: i64 = 5;

/// A 6-digit code from 4 random bytes, uniform over 000000..=999999 (values past the
/// largest multiple of a million are drawn again by the caller: `None`).
pub fn code_from(random: u32) -> Option<String> {
    const LIMIT: u32 = u32::MAX - (u32::MAX % 1_000_000);
    (random < LIMIT).then(|| format!("{:06}", random % 1_000_000))
}

/// Six ASCII digits.
pub fn is_code(s: &str) -> bool {
    s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit())
}

/// When a code made at `now_ms` dies.
pub fn expires_at(now_ms: i64, ttl: std::time::Duration) -> i64 {
    now_ms.saturating_add(ttl.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_uniform() {
        assert_eq!(code_from(0).as_deref(), Some("000000"));
        assert_eq!(code_from(1_000_123).as_deref(), Some("000123"));
        assert_eq!(code_from(999_999).as_deref(), Some("999999"));
        // The top partial range would favour low codes: drawn again.
        assert_eq!(code_from(u32::MAX), None);
        assert_eq!(code_from(4_294_000_000), None);
        assert!(code_from(4_293_999_999).is_some());
        assert!(is_code("012345"));
        for bad in ["12345", "1234567", "12345a", "١٢٣٤٥٦", " 12345"] {
            assert!(!is_code(bad), "{bad}");
        }
        let ttl = std::time::Duration::from_secs(600);
        assert_eq!(expires_at(1_000, ttl), 601_000);
    }
}
