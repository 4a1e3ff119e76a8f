//! Passkey policy: how long a ceremony lives, how many passkeys an account may hold, the names
//! users give them, and whether a signature counter moved the right way. Pure.

/// A registration or sign-in ceremony lives 5 minutes, single use.
pub const CEREMONY_TTL_MS: i64 = 5 * 60 * 1000;
/// Passkeys per account.
pub const MAX_PASSKEYS: i64 = 20;
/// Characters in a passkey's name.
pub const NAME_MAX: usize = 64;

/// Whether a ceremony made at `expires_at` is still live at `now`.
pub fn live(expires_at: i64, now: i64) -> bool {
    now < expires_at
}

/// The name a passkey gets: the one asked for (trimmed), else `Passkey N` after the account's
/// `count` passkeys; refused when empty after trimming, too long, or with control characters.
pub fn name(asked: Option<&str>, count: i64) -> Result<String, &'static str> {
    let Some(asked) = asked else {
        return Ok(format!("Passkey {}", count + 1));
    };
    let name = asked.trim();
    if name.is_empty() {
        return Err("a passkey's name may not be empty");
    }
    if name.chars().count() > NAME_MAX {
        return Err("a passkey's name has at most 64 characters");
    }
    if name.chars().any(char::is_control) {
        return Err("a passkey's name may not hold control characters");
    }
    Ok(name.to_owned())
}

/// What a signature counter says (WebAuthn §6.1.1): authenticators without one always send
/// 0; one that keeps a counter must send more than the last value seen.
#[derive(Debug, PartialEq, Eq)]
pub enum Counter {
    /// The authenticator keeps no counter.
    Absent,
    Grew,
    /// Not above the last value: a copy of the authenticator may exist.
    WentBack,
}

pub fn counter(stored: i64, presented: i64) -> Counter {
    if stored == 0 && presented == 0 {
        Counter::Absent
    } else if presented > stored {
        Counter::Grew
    } else {
        Counter::WentBack
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(name(None, 0).unwrap(), "Passkey 1");
        assert_eq!(name(None, 3).unwrap(), "Passkey 4");
        assert_eq!(name(Some("  Laptop "), 0).unwrap(), "Laptop");
        assert!(name(Some("   "), 0).is_err());
        assert!(name(Some("a\u{7}b"), 0).is_err());
        assert!(name(Some(&"é".repeat(64)), 0).is_ok());
        assert!(name(Some(&"é".repeat(65)), 0).is_err());
    }

    #[test]
    fn counters() {
        assert_eq!(counter(0, 0), Counter::Absent);
        assert_eq!(counter(0, 1), Counter::Grew);
        assert_eq!(counter(5, 6), Counter::Grew);
        assert_eq!(counter(5, 5), Counter::WentBack);
        assert_eq!(counter(5, 0), Counter::WentBack);
        assert_eq!(counter(5, 4), Counter::WentBack);
    }

    #[test]
    fn ceremony_lifetime() {
        assert!(live(1_000 + CEREMONY_TTL_MS, 1_000));
        assert!(live(1_000 + CEREMONY_TTL_MS, 1_000 + CEREMONY_TTL_MS - 1));
        assert!(!live(1_000 + CEREMONY_TTL_MS, 1_000 + CEREMONY_TTL_MS));
    }
}
