//! Sign-in through identity providers, the policy: how long a flow and its one-time code live,
//! which return addresses are allowed, what an ID token must say, which account an identity
//! signs in (or links to, or makes), and when one may be unlinked. Pure: times are passed in.

use serde::Deserialize;

/// From the start to the callback: ten minutes, single use.
pub const FLOW_TTL_MS: i64 = 10 * 60 * 1000;
/// From the callback to the exchange: 60 seconds, single use.
pub const CODE_TTL_MS: i64 = 60 * 1000;
/// Clock difference allowed with the provider on `exp` and `iat`, seconds.
pub const LEEWAY_S: i64 = 60;

/// Why a flow ended without a sign-in: the `baton_error` the app's page receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The user (or the provider) declined.
    AccessDenied,
    /// The state is unknown, used, expired or another browser's.
    InvalidState,
    /// The provider's answer was refused (token exchange, ID token, user data).
    ProviderError,
    /// The provider does not vouch for the address, which is needed to link or make an account.
    EmailUnverified,
    /// No account has the address and registration is closed.
    RegistrationClosed,
    /// A link: the identity is another account's, or the account has one of this provider.
    IdentityTaken,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessDenied => "access_denied",
            Self::InvalidState => "invalid_state",
            Self::ProviderError => "provider_error",
            Self::EmailUnverified => "email_unverified",
            Self::RegistrationClosed => "registration_closed",
            Self::IdentityTaken => "identity_taken",
        }
    }
}

/// One entry of `BATON_REDIRECT_ALLOWLIST`: an exact origin and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    origin: String,
    path: String,
}

/// Parses `BATON_REDIRECT_ALLOWLIST` (comma-separated absolute http(s) URLs, no query or
/// fragment); the reason for the first bad entry.
pub fn allowlist(s: &str) -> Result<Vec<Allowed>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let u = url::Url::parse(e).map_err(|err| format!("`{e}`: {err}"))?;
            if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
                return Err(format!("`{e}` is not an http(s) URL"));
            }
            if u.query().is_some() || u.fragment().is_some() || !u.username().is_empty() {
                return Err(format!(
                    "`{e}`: an entry is an origin and a path, without query, fragment or user"
                ));
            }
            Ok(Allowed {
                origin: u.origin().ascii_serialization(),
                path: u.path().to_owned(),
            })
        })
        .collect()
}

/// `redirect_to` when its origin and path are exactly those of an entry (its query is kept,
/// a fragment or user name is refused); `None` otherwise.
pub fn redirect_allowed(list: &[Allowed], redirect_to: &str) -> Option<url::Url> {
    if redirect_to.len() > 2048 {
        return None;
    }
    let u = url::Url::parse(redirect_to).ok()?;
    if u.fragment().is_some() || !u.username().is_empty() || u.password().is_some() {
        return None;
    }
    let origin = u.origin().ascii_serialization();
    list.iter()
        .any(|a| a.origin == origin && a.path == u.path())
        .then_some(u)
}

/// `url` with `name=value` added to its query (any earlier `baton_*` parameter dropped).
pub fn with_param(url: &str, name: &str, value: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| !k.starts_with("baton_"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    u.set_query(None);
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in &kept {
            q.append_pair(k, v);
        }
        q.append_pair(name, value);
    }
    u.into()
}

/// The claims of an ID token that Baton checks (OpenID Connect Core §3.1.3.7).
#[derive(Debug, Clone, Deserialize)]
pub struct IdClaims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    #[serde(default)]
    pub aud: Audience,
    pub azp: Option<String>,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub nonce: Option<String>,
    pub email: Option<String>,
    pub email_verified: Option<Verified>,
}

/// `aud`: one string or a list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
    #[default]
    None,
}

/// `email_verified`: a boolean, or the string some providers send.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub enum Verified {
    Bool(bool),
    Text(Truth),
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Truth {
    True,
    False,
}

impl Verified {
    pub fn yes(v: Option<Self>) -> bool {
        matches!(v, Some(Self::Bool(true) | Self::Text(Truth::True)))
    }
}

/// What the ID token must say: who issued it, for whom, for which flow.
#[derive(Debug)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
}

/// Checks an ID token's claims (its signature checked before) at `now_s` (unix seconds): the
/// issuer, the audience (and `azp` when it has several, or says one), expiry and issue time
/// with `LEEWAY_S`, the nonce of this flow, a subject. The subject, or the reason.
pub fn check_id_token(c: &IdClaims, e: &Expected<'_>, now_s: i64) -> Result<String, String> {
    if c.iss.as_deref() != Some(e.issuer) {
        return Err(format!(
            "the ID token's issuer is {:?}, not {:?}",
            c.iss.as_deref().unwrap_or(""),
            e.issuer
        ));
    }
    let audiences: Vec<&str> = match &c.aud {
        Audience::One(a) => vec![a.as_str()],
        Audience::Many(list) => list.iter().map(String::as_str).collect(),
        Audience::None => Vec::new(),
    };
    if !audiences.contains(&e.client_id) {
        return Err("the ID token is not for this client (aud)".into());
    }
    if (audiences.len() > 1 || c.azp.is_some()) && c.azp.as_deref() != Some(e.client_id) {
        return Err("the ID token was issued to another party (azp)".into());
    }
    match c.exp {
        Some(exp) if now_s < exp + LEEWAY_S => {}
        Some(_) => return Err("the ID token has expired".into()),
        None => return Err("the ID token has no expiry".into()),
    }
    if c.iat.is_some_and(|iat| iat > now_s + LEEWAY_S) {
        return Err("the ID token was issued in the future (iat)".into());
    }
    if c.nonce.as_deref() != Some(e.nonce) {
        return Err("the ID token's nonce is not this flow's".into());
    }
    match c.sub.as_deref() {
        Some(s) if !s.is_empty() && s.len() <= 255 => Ok(s.to_owned()),
        _ => Err("the ID token has no usable subject".into()),
    }
}

/// Which account a sign-in through a provider ends in.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolve<'a> {
    /// The identity is linked to this account.
    SignIn(&'a str),
    /// Link the identity to the account with the address, then sign in; `prove`: the
    /// account's address was never proven, so what was set up while it was not ends first.
    Link {
        user_id: &'a str,
        prove: bool,
    },
    /// Make an account for the address (proven by the provider).
    Create,
    Refuse(Refusal),
}

/// The account of an address, as `resolve` needs it.
#[derive(Debug, Clone, Copy)]
pub struct ByAddress<'a> {
    pub user_id: &'a str,
    pub email_verified: bool,
}

/// Decides the account: a known identity signs in its account; a new one is linked to the
/// account with its address only when the provider says the address is verified, and makes
/// an account only then and while registration is open.
pub fn resolve<'a>(
    linked_to: Option<&'a str>,
    provider_verified: bool,
    by_address: Option<ByAddress<'a>>,
    registration_open: bool,
) -> Resolve<'a> {
    if let Some(user_id) = linked_to {
        return Resolve::SignIn(user_id);
    }
    if !provider_verified {
        return Resolve::Refuse(Refusal::EmailUnverified);
    }
    match by_address {
        Some(a) => Resolve::Link {
            user_id: a.user_id,
            prove: !a.email_verified,
        },
        None if registration_open => Resolve::Create,
        None => Resolve::Refuse(Refusal::RegistrationClosed),
    }
}

/// The ways to sign in an account has besides the identity being unlinked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OtherWays {
    /// It has a password.
    pub password: bool,
    pub passkeys: i64,
    /// Identities at other providers.
    pub identities: i64,
    /// Its address is proven (an emailed code signs it in where mail is set up).
    pub email_verified: bool,
}

/// Whether an identity may be unlinked: some other way to sign in must remain.
pub fn may_unlink(w: OtherWays, mail_sign_in: bool) -> bool {
    w.password || w.passkeys > 0 || w.identities > 0 || (mail_sign_in && w.email_verified)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: serde_json::Value) -> IdClaims {
        serde_json::from_value(json).unwrap()
    }

    const E: Expected<'static> = Expected {
        issuer: "https://id.example",
        client_id: "baton",
        nonce: "n-1",
    };

    fn good() -> serde_json::Value {
        serde_json::json!({"iss": "https://id.example", "sub": "u1", "aud": "baton",
            "exp": 1_000, "iat": 900, "nonce": "n-1"})
    }

    #[test]
    fn a_good_id_token_gives_its_subject() {
        assert_eq!(check_id_token(&claims(good()), &E, 950), Ok("u1".into()));
        let mut many = good();
        many["aud"] = serde_json::json!(["baton", "other"]);
        many["azp"] = "baton".into();
        assert_eq!(check_id_token(&claims(many), &E, 950), Ok("u1".into()));
    }

    #[test]
    fn id_tokens_are_refused_for_each_wrong_claim() {
        let cases: [(&str, serde_json::Value); 8] = [
            ("iss", "https://other.example".into()),
            ("aud", "other".into()),
            ("aud", serde_json::json!(["baton", "other"])),
            ("azp", "other".into()),
            ("exp", 880.into()),
            ("iat", 1_100.into()),
            ("nonce", "n-2".into()),
            ("sub", "".into()),
        ];
        for (claim, value) in cases {
            let mut c = good();
            c[claim] = value;
            assert!(check_id_token(&claims(c), &E, 950).is_err(), "{claim}");
        }
        for claim in ["iss", "exp", "nonce", "sub", "aud"] {
            let mut c = good();
            c.as_object_mut().unwrap().remove(claim);
            assert!(check_id_token(&claims(c), &E, 950).is_err(), "{claim}");
        }
        // Within the leeway: accepted; past it: refused.
        assert!(check_id_token(&claims(good()), &E, 1_000 + LEEWAY_S - 1).is_ok());
        assert!(check_id_token(&claims(good()), &E, 1_000 + LEEWAY_S).is_err());
    }

    #[test]
    fn email_verified_may_be_a_string() {
        let mut c = good();
        c["email_verified"] = "true".into();
        assert!(Verified::yes(claims(c.clone()).email_verified));
        c["email_verified"] = false.into();
        assert!(!Verified::yes(claims(c).email_verified));
    }

    #[test]
    fn redirects_match_origin_and_path_exactly() {
        let list = allowlist("https://app.example/done, http://127.0.0.1:5173/").unwrap();
        assert!(redirect_allowed(&list, "https://app.example/done").is_some());
        assert!(redirect_allowed(&list, "https://app.example/done?next=%2Forders").is_some());
        assert!(redirect_allowed(&list, "http://127.0.0.1:5173/").is_some());
        for bad in [
            "https://app.example/done/",
            "https://app.example/other",
            "https://app.example.evil/done",
            "http://app.example/done",
            "https://app.example:444/done",
            "https://evil@app.example/done",
            "https://app.example/done#x",
            "//app.example/done",
            "javascript:alert(1)",
        ] {
            assert!(redirect_allowed(&list, bad).is_none(), "{bad}");
        }
        assert!(allowlist("app.example/done").is_err());
        assert!(allowlist("https://app.example/done?x=1").is_err());
        assert!(allowlist("ftp://app.example/").is_err());
    }

    #[test]
    fn params_replace_earlier_baton_ones() {
        assert_eq!(
            with_param(
                "https://a.example/cb?next=1&baton_code=old",
                "baton_code",
                "new"
            ),
            "https://a.example/cb?next=1&baton_code=new"
        );
    }

    #[test]
    fn accounts_are_linked_only_on_a_verified_address() {
        let a = Some(ByAddress {
            user_id: "u",
            email_verified: false,
        });
        assert_eq!(resolve(Some("x"), false, None, false), Resolve::SignIn("x"));
        assert_eq!(
            resolve(None, false, a, true),
            Resolve::Refuse(Refusal::EmailUnverified)
        );
        assert_eq!(
            resolve(None, false, None, true),
            Resolve::Refuse(Refusal::EmailUnverified)
        );
        assert_eq!(
            resolve(None, true, a, false),
            Resolve::Link {
                user_id: "u",
                prove: true
            }
        );
        assert_eq!(resolve(None, true, None, true), Resolve::Create);
        assert_eq!(
            resolve(None, true, None, false),
            Resolve::Refuse(Refusal::RegistrationClosed)
        );
    }

    #[test]
    fn the_last_way_to_sign_in_stays() {
        let none = OtherWays::default();
        assert!(!may_unlink(none, true));
        let proven = OtherWays {
            email_verified: true,
            ..none
        };
        assert!(may_unlink(proven, true));
        assert!(!may_unlink(proven, false));
        for w in [
            OtherWays {
                password: true,
                ..none
            },
            OtherWays {
                passkeys: 1,
                ..none
            },
            OtherWays {
                identities: 1,
                ..none
            },
        ] {
            assert!(may_unlink(w, false));
        }
    }
}
