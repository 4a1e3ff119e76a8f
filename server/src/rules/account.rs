//! What accounts may hold and how their management is asked for: roles, metadata, a disabled
//! account's end, list cursors, admin scopes, a fresh sign-in. Pure: the clock is passed in.

use std::time::Duration;

/// At most this many roles a user.
pub const MAX_ROLES: usize = 32;
/// A role: 1 to 64 characters of `A-Z a-z 0-9 _ . : -`.
pub const MAX_ROLE_LEN: usize = 64;
/// Metadata objects, as JSON text, at most this many bytes.
pub const MAX_METADATA: usize = 4096;
/// `disabled_until` of an account disabled "forever".
pub const FOREVER: i64 = i64::MAX;
/// Deleting an account without its password needs a sign-in this recent.
pub const FRESH_SIGN_IN: Duration = Duration::from_secs(300);
/// Page sizes of the admin lists.
pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 1000;

/// The roles, checked: each valid, no more than `MAX_ROLES`, duplicates dropped (first kept).
pub fn roles(list: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for r in list {
        let valid = (1..=MAX_ROLE_LEN).contains(&r.len())
            && r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
        if !valid {
            return Err(format!(
                "role {r:?} is not 1 to {MAX_ROLE_LEN} characters of A-Z, a-z, 0-9, _ . : -"
            ));
        }
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    if out.len() > MAX_ROLES {
        return Err(format!("at most {MAX_ROLES} roles"));
    }
    Ok(out)
}

/// A metadata value as stored: a JSON object of at most `MAX_METADATA` bytes.
pub fn metadata(field: &str, value: &serde_json::Value) -> Result<String, String> {
    if !value.is_object() {
        return Err(format!("{field} must be a JSON object"));
    }
    let text = value.to_string();
    if text.len() > MAX_METADATA {
        return Err(format!(
            "{field} is {} bytes as JSON: at most {MAX_METADATA}",
            text.len()
        ));
    }
    Ok(text)
}

/// `disabled_until` as asked: `null` (enabled), `"forever"`, or an RFC 3339 time; unix ms.
pub fn disabled_until(value: &serde_json::Value) -> Result<Option<i64>, String> {
    match value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) if s == "forever" => Ok(Some(FOREVER)),
        serde_json::Value::String(s) => parse_time(s).map(Some),
        _ => Err("disabled_until must be an RFC 3339 time, \"forever\" or null".into()),
    }
}

/// An RFC 3339 time (`2027-01-31T12:00:00Z`, with an offset or fractions) as unix ms.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let t = humantime::parse_rfc3339_weak(s)
        .ok()
        .or_else(|| {
            // With an offset: humantime reads only `Z`; shift by hand.
            let (base, sign, offset) = split_offset(s)?;
            let t = humantime::parse_rfc3339_weak(base).ok()?;
            let (h, m) = offset.split_once(':')?;
            let shift =
                Duration::from_secs(h.parse::<u64>().ok()? * 3600 + m.parse::<u64>().ok()? * 60);
            if sign == '+' {
                t.checked_sub(shift)
            } else {
                t.checked_add(shift)
            }
        })
        .ok_or_else(|| format!("{s:?} is not an RFC 3339 time (like 2027-01-31T12:00:00Z)"))?;
    let ms = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    };
    Ok(ms)
}

fn split_offset(s: &str) -> Option<(&str, char, &str)> {
    if s.len() < 6 {
        return None;
    }
    let (base, offset) = s.split_at(s.len() - 6);
    let mut chars = offset.chars();
    let sign = chars.next()?;
    if sign != '+' && sign != '-' {
        return None;
    }
    Some((base, sign, &offset[1..]))
}

/// Unix ms as RFC 3339 (seconds, UTC).
pub fn format_time(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Whether an account disabled until `until` may not sign in at `now`.
pub fn is_disabled(until: Option<i64>, now: i64) -> bool {
    until.is_some_and(|t| t > now)
}

/// `disabled_until` as answered: `null` when the account may sign in, `"forever"`, or the
/// time.
pub fn disabled_json(until: Option<i64>, now: i64) -> Option<String> {
    match until {
        Some(FOREVER) => Some("forever".into()),
        Some(t) if t > now => Some(format_time(t)),
        _ => None,
    }
}

/// A page size: 1 to `MAX_PAGE`, `DEFAULT_PAGE` when not given.
pub fn page(limit: Option<i64>) -> Result<i64, String> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(format!("limit must be 1 to {MAX_PAGE}")),
    }
}

/// The cursor after the user created at `created_at` (ms) with id `id`: opaque to clients.
pub fn user_cursor(created_at: i64, id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("u{created_at}.{id}"))
}

/// A cursor of `user_cursor`, read back.
pub fn read_user_cursor(c: &str) -> Result<(i64, String), String> {
    use base64::Engine;
    let bad = || "cursor is not one this server gave".to_owned();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (at, id) = text
        .strip_prefix('u')
        .and_then(|t| t.split_once('.'))
        .ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, id.to_owned()))
}

/// The cursor after the audit event `id`.
pub fn event_cursor(id: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("e{id}"))
}

pub fn read_event_cursor(c: &str) -> Result<i64, String> {
    use base64::Engine;
    let bad = || "cursor is not one this server gave".to_owned();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    text.strip_prefix('e')
        .and_then(|n| n.parse().ok())
        .ok_or_else(bad)
}

/// What an admin token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    UsersRead,
    UsersWrite,
    SessionsWrite,
    AuditRead,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::UsersRead,
        Scope::UsersWrite,
        Scope::SessionsWrite,
        Scope::AuditRead,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::UsersRead => "users:read",
            Scope::UsersWrite => "users:write",
            Scope::SessionsWrite => "sessions:write",
            Scope::AuditRead => "audit:read",
        }
    }
}

/// A comma- or space-separated scope list, checked; in the order of `Scope::ALL`.
pub fn scopes(list: &str) -> Result<Vec<Scope>, String> {
    let mut out = Vec::new();
    for s in list
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let scope = Scope::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Scope::ALL.iter().map(|x| x.as_str()).collect();
                format!("unknown scope {s:?} (known: {})", known.join(", "))
            })?;
        if !out.contains(&scope) {
            out.push(scope);
        }
    }
    if out.is_empty() {
        return Err("at least one scope is needed".into());
    }
    out.sort_by_key(|s| Scope::ALL.iter().position(|x| x == s));
    Ok(out)
}

/// An admin token's name: 1 to 64 characters of `A-Z a-z 0-9 _ . -`.
pub fn token_name(name: &str) -> Result<(), String> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "token name {name:?} is not 1 to 64 characters of A-Z, a-z, 0-9, _ . -"
        ))
    }
}

/// Whether a session signed in at `signed_in_at` is recent enough at `now` to delete the
/// account without a password.
pub fn fresh_sign_in(signed_in_at: i64, now: i64) -> bool {
    now - signed_in_at <= FRESH_SIGN_IN.as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_checked_and_deduplicated() {
        let r = |v: &[&str]| roles(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            r(&["admin", "billing:read", "admin"]).unwrap(),
            ["admin", "billing:read"]
        );
        assert!(r(&[""]).is_err());
        assert!(r(&["a b"]).is_err());
        assert!(r(&[&"x".repeat(65)]).is_err());
        let many: Vec<String> = (0..33).map(|i| format!("r{i}")).collect();
        assert!(roles(&many).is_err());
        assert_eq!(roles(&many[..32]).unwrap().len(), 32);
    }

    #[test]
    fn metadata_is_an_object_of_at_most_4_kb() {
        use serde_json::json;
        assert_eq!(metadata("m", &json!({"a": 1})).unwrap(), r#"{"a":1}"#);
        assert!(metadata("m", &json!([1])).is_err());
        assert!(metadata("m", &json!("x")).is_err());
        let big = json!({ "a": "x".repeat(4090) });
        assert!(metadata("m", &big).is_err());
        let fits = json!({ "a": "x".repeat(4088) });
        assert_eq!(metadata("m", &fits).unwrap().len(), 4096);
    }

    #[test]
    fn disabled_until_reads_times_forever_and_null() {
        use serde_json::json;
        assert_eq!(disabled_until(&json!(null)).unwrap(), None);
        assert_eq!(disabled_until(&json!("forever")).unwrap(), Some(FOREVER));
        assert_eq!(
            disabled_until(&json!("2027-01-31T12:00:00Z")).unwrap(),
            Some(1_801_396_800_000)
        );
        assert_eq!(
            disabled_until(&json!("2027-01-31T13:30:00+01:30")).unwrap(),
            Some(1_801_396_800_000)
        );
        assert_eq!(
            disabled_until(&json!("2027-01-31T10:00:00-02:00")).unwrap(),
            Some(1_801_396_800_000)
        );
        assert!(disabled_until(&json!("tomorrow")).is_err());
        assert!(disabled_until(&json!(5)).is_err());
        let now = 1_801_396_800_000;
        assert!(is_disabled(Some(now + 1), now));
        assert!(!is_disabled(Some(now), now));
        assert!(!is_disabled(None, now));
        assert_eq!(
            disabled_json(Some(FOREVER), now).as_deref(),
            Some("forever")
        );
        assert_eq!(
            disabled_json(Some(now + 1000), now).as_deref(),
            Some("2027-01-31T12:00:01Z")
        );
        assert_eq!(disabled_json(Some(now - 1), now), None);
    }

    #[test]
    fn cursors_round_trip_and_refuse_strangers() {
        let c = user_cursor(1_700_000_000_123, "a.b-c");
        assert_eq!(
            read_user_cursor(&c).unwrap(),
            (1_700_000_000_123, "a.b-c".into())
        );
        assert!(read_user_cursor("nonsense!").is_err());
        assert!(read_user_cursor(&event_cursor(5)).is_err());
        assert_eq!(read_event_cursor(&event_cursor(42)).unwrap(), 42);
        assert!(read_event_cursor(&c).is_err());
        assert_eq!(page(None).unwrap(), 50);
        assert_eq!(page(Some(1000)).unwrap(), 1000);
        assert!(page(Some(0)).is_err());
        assert!(page(Some(1001)).is_err());
    }

    #[test]
    fn scopes_parse_in_a_fixed_order() {
        assert_eq!(
            scopes("audit:read,users:read users:read").unwrap(),
            [Scope::UsersRead, Scope::AuditRead]
        );
        assert!(scopes("").is_err());
        assert!(scopes("users:delete")
            .unwrap_err()
            .contains("known: users:read"));
        assert!(token_name("ci-bot").is_ok());
        assert!(token_name("ci bot").is_err());
        assert!(token_name("").is_err());
    }

    #[test]
    fn a_fresh_sign_in_is_five_minutes() {
        let now = 10_000_000;
        assert!(fresh_sign_in(now - 300_000, now));
        assert!(!fresh_sign_in(now - 300_001, now));
    }
}
