//! Email addresses as account identities: one spelling per mailbox, so look-alikes cannot make
//! a second account that displays like the first, and logins and lockout keys match whatever
//! form the address was typed in.
//!
//! An address is trimmed, brought to Unicode NFKC (full-width letters, ligatures and other
//! compatibility forms become their plain letters), its local part case-folded (lower case,
//! plus `ß` → `ss` and final sigma → sigma) and its domain lower-cased (as IDNA maps domains:
//! `ß` stays, `straße.de` and `strasse.de` are different domains), and NFKC again. Only a bare
//! address is accepted: no display name, quotes, brackets, comments or second address. Addresses containing invisible characters
//! (zero-width spaces and joiners, soft hyphens, bidirectional controls, variation selectors
//! and the rest of Unicode's default-ignorable code points), control characters or whitespace
//! are refused, as are implausible shapes.

use unicode_normalization::UnicodeNormalization;

/// The canonical form of `email`, or `None` when it is not an acceptable address.
pub fn normalize(email: &str) -> Option<String> {
    let raw = email.trim();
    if raw
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || invisible(c))
    {
        return None;
    }
    // Split on the last `@` as typed (NFKC may turn a full-width `＠` into one).
    let raw: String = raw.nfkc().collect();
    let (local, domain) = raw.rsplit_once('@')?;
    let mut folded = String::with_capacity(raw.len() + 2);
    for c in local.chars().flat_map(char::to_lowercase) {
        match c {
            'ß' => folded.push_str("ss"),
            'ς' => folded.push('σ'),
            c => folded.push(c),
        }
    }
    folded.push('@');
    // The domain is lower-cased only, as IDNA maps it (`straße.de` is not `strasse.de`).
    folded.extend(domain.chars().flat_map(char::to_lowercase));
    let e: String = folded.nfkc().collect();
    // NFKC can itself produce characters refused above (e.g. from compatibility spaces).
    if e.chars()
        .any(|c| c.is_control() || c.is_whitespace() || invisible(c))
    {
        return None;
    }
    let (local, domain) = e.split_once('@')?;
    // A bare address only: none of the characters that make a display name, a group, a
    // comment, a quoted or bracketed part or a second address (`victim<evil@evil.test>`).
    let special = |c: char| "<>()[]\\,;:\"`".contains(c);
    let plausible = e.len() <= 254
        && !e.chars().any(special)
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@');
    plausible.then_some(e)
}

/// Unicode's Default_Ignorable_Code_Point: characters that render as nothing.
fn invisible(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn one_spelling_per_mailbox() {
        let plain = Some("alice@example.com".to_owned());
        assert_eq!(normalize("alice@example.com"), plain);
        assert_eq!(normalize("  Alice@Example.COM "), plain);
        // Full-width letters and the full-width at sign.
        assert_eq!(normalize("ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ"), plain);
        assert_eq!(
            normalize("STRASSE@example.com"),
            normalize("straße@example.com")
        );
        assert_eq!(
            normalize("ﬁne@example.com").as_deref(),
            Some("fine@example.com")
        );
    }

    #[test]
    fn invisible_and_control_characters_are_refused() {
        for bad in [
            "ali\u{200B}ce@example.com",
            "ali\u{00AD}ce@example.com",
            "ali\u{200D}ce@example.com",
            "alice\u{202E}@example.com",
            "alice@exa\u{FEFF}mple.com",
            "ali\u{0007}ce@example.com",
            "ali ce@example.com",
            "alice@exa\u{3000}mple.com",
            "alice\u{FE0F}@example.com",
        ] {
            assert_eq!(normalize(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_the_local_part_is_case_folded() {
        assert_eq!(
            normalize("Straße@Straße.DE").as_deref(),
            Some("strasse@straße.de")
        );
        assert_ne!(normalize("x@straße.de"), normalize("x@strasse.de"));
    }

    #[test]
    fn only_bare_addresses_are_accepted() {
        for bad in [
            "victim<evil@evil.test>",
            "Victim <evil@evil.test>",
            "<evil@evil.test>",
            "\"v\"@example.com",
            "a,b@example.com",
            "a(comment)@example.com",
            "a@[127.0.0.1]",
            "a;b@example.com",
            "a:b@example.com",
            ".a@example.com",
            "a.@example.com",
            "a..b@example.com",
        ] {
            assert_eq!(normalize(bad), None, "{bad:?}");
        }
        assert!(normalize("first.last+tag@example.com").is_some());
    }

    #[test]
    fn implausible_shapes_are_refused() {
        for bad in [
            "",
            "no-at-sign",
            "a@b",
            "@c.io",
            "a@.io",
            "a@b.",
            "a@b@c.io",
        ] {
            assert_eq!(normalize(bad), None, "{bad:?}");
        }
        assert!(normalize(&format!("{}@example.com", "a".repeat(65))).is_none());
    }
}
