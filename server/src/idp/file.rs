//! The providers file (`BATON_PROVIDERS_FILE`, TOML): one `[providers.NAME]` table per
//! identity provider. A bad file stops the start with its line and the reason.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One provider as the file describes it, checked.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderSpec {
    /// The table's name: in URLs (`/auth/oauth/NAME/start`) and in the identities.
    pub name: String,
    /// Shown on buttons (`display_name`, default the name).
    pub display_name: String,
    pub kind: Kind,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for ProviderSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client secret is never printed.
        f.debug_struct("ProviderSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// OpenID Connect: discovery from `issuer`, ID token checked against its keys.
    Oidc { issuer: String },
    /// GitHub's OAuth 2.0 and its API's verified addresses; `web` and `api` are
    /// `https://github.com` and `https://api.github.com`, or a GitHub Enterprise Server's
    /// `base_url` and `base_url/api/v3`.
    Github { web: String, api: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    providers: BTreeMap<String, toml::Spanned<RawProvider>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    kind: String,
    client_id: String,
    client_secret: Option<String>,
    client_secret_file: Option<String>,
    issuer: Option<String>,
    base_url: Option<String>,
    scopes: Option<Vec<String>>,
    display_name: Option<String>,
}

/// Reads and checks the file at `path`.
pub fn load(path: &Path) -> Result<Vec<ProviderSpec>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("BATON_PROVIDERS_FILE {}: cannot read: {e}", path.display()))?;
    parse(&text, path.parent()).map_err(|e| format!("BATON_PROVIDERS_FILE {}: {e}", path.display()))
}

/// Checks a providers file's text; relative `client_secret_file` paths are taken from `dir`.
pub fn parse(text: &str, dir: Option<&Path>) -> Result<Vec<ProviderSpec>, String> {
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        // toml's message names the line and column; keep it on one line.
        e.to_string().lines().collect::<Vec<_>>().join(" ")
    })?;
    if raw.providers.is_empty() {
        return Err("no [providers.NAME] table".into());
    }
    raw.providers
        .into_iter()
        .map(|(name, spanned)| {
            let line = text[..spanned.span().start].matches('\n').count() + 1;
            spec(&name, spanned.into_inner(), dir)
                .map_err(|e| format!("line {line}: [providers.{name}]: {e}"))
        })
        .collect()
}

fn spec(name: &str, r: RawProvider, dir: Option<&Path>) -> Result<ProviderSpec, String> {
    let name_ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !name_ok {
        return Err("a provider's name is 1 to 32 of a-z, 0-9, - and _".into());
    }
    if r.client_id.trim().is_empty() {
        return Err("client_id is empty".into());
    }
    let client_secret = match (r.client_secret, r.client_secret_file) {
        (Some(s), None) => s,
        (None, Some(f)) => {
            let p = Path::new(&f);
            let p = match dir {
                Some(d) if p.is_relative() => d.join(p),
                _ => p.to_path_buf(),
            };
            std::fs::read_to_string(&p)
                .map_err(|e| format!("client_secret_file {}: cannot read: {e}", p.display()))?
                .trim()
                .to_owned()
        }
        (Some(_), Some(_)) => {
            return Err("set client_secret or client_secret_file, not both".into())
        }
        (None, None) => return Err("client_secret or client_secret_file is missing".into()),
    };
    if client_secret.is_empty() {
        return Err("the client secret is empty".into());
    }
    let (kind, default_scopes) = match r.kind.as_str() {
        "oidc" => {
            if r.base_url.is_some() {
                return Err(
                    "base_url is for kind = \"github\"; an OpenID provider has issuer".into(),
                );
            }
            let issuer = r.issuer.ok_or("issuer is missing (kind = \"oidc\")")?;
            let issuer = web_url(&issuer).map_err(|e| format!("issuer: {e}"))?;
            (
                Kind::Oidc { issuer },
                ["openid", "email", "profile"].as_slice(),
            )
        }
        "github" => {
            if r.issuer.is_some() {
                return Err("issuer is for kind = \"oidc\"; GitHub Enterprise has base_url".into());
            }
            let (web, api) = match r.base_url {
                None => (
                    "https://github.com".to_owned(),
                    "https://api.github.com".to_owned(),
                ),
                Some(b) => {
                    let b = web_url(&b).map_err(|e| format!("base_url: {e}"))?;
                    let api = format!("{b}/api/v3");
                    (b, api)
                }
            };
            (
                Kind::Github { web, api },
                ["read:user", "user:email"].as_slice(),
            )
        }
        other => return Err(format!("kind {other:?}: use \"oidc\" or \"github\"")),
    };
    let scopes = r
        .scopes
        .unwrap_or_else(|| default_scopes.iter().map(|s| (*s).to_owned()).collect());
    if matches!(kind, Kind::Oidc { .. }) && !scopes.iter().any(|s| s == "openid") {
        return Err("scopes must include \"openid\"".into());
    }
    if scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
        return Err("a scope is one word".into());
    }
    Ok(ProviderSpec {
        name: name.to_owned(),
        display_name: r.display_name.unwrap_or_else(|| name.to_owned()),
        kind,
        client_id: r.client_id,
        client_secret,
        scopes,
    })
}

/// An `https://` URL, or `http://` on a loopback host (a provider on this machine); without
/// query or fragment, and its trailing `/` dropped.
fn web_url(s: &str) -> Result<String, String> {
    let u = url::Url::parse(s).map_err(|e| format!("`{s}`: {e}"))?;
    let loopback = match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if !(u.scheme() == "https" || (u.scheme() == "http" && loopback)) {
        return Err(format!(
            "`{s}` must be https:// (http:// only on this machine)"
        ));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(format!("`{s}` may not have a query or fragment"));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_file_parses_with_defaults() {
        let text = r#"
[providers.google]
kind = "oidc"
issuer = "https://accounts.google.com/"
client_id = "id-1"
client_secret = "s"

[providers.gh]
kind = "github"
client_id = "id-2"
client_secret = "t"
base_url = "http://127.0.0.1:9000"
display_name = "GitHub"
"#;
        let list = parse(text, None).unwrap();
        assert_eq!(list.len(), 2);
        let gh = &list[0];
        assert_eq!(gh.name, "gh");
        assert_eq!(
            gh.kind,
            Kind::Github {
                web: "http://127.0.0.1:9000".into(),
                api: "http://127.0.0.1:9000/api/v3".into()
            }
        );
        assert_eq!(gh.scopes, ["read:user", "user:email"]);
        let g = &list[1];
        assert_eq!(
            g.kind,
            Kind::Oidc {
                issuer: "https://accounts.google.com".into()
            }
        );
        assert_eq!(g.scopes, ["openid", "email", "profile"]);
        assert!(!format!("{g:?}").contains("\"s\""));
    }

    #[test]
    fn the_documented_example_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/examples");
        let list = load(&dir.join("providers.toml")).unwrap();
        let names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["github", "google"]);
        assert_eq!(list[1].client_secret, "example-google-secret");
    }

    #[test]
    fn bad_files_name_the_line_and_reason() {
        let cases = [
            ("[providers.a]\nkind = \"oidc\"\nclient_id = \"x\"\nclient_secret = \"y\"\n", "line 1", "issuer is missing"),
            ("\n[providers.a]\nkind = \"saml\"\nclient_id = \"x\"\nclient_secret = \"y\"\n", "line 2", "kind"),
            ("[providers.a]\nkind = \"oidc\"\nissuer = \"http://id.example\"\nclient_id = \"x\"\nclient_secret = \"y\"\n", "line 1", "https"),
            ("[providers.a]\nkind = \"github\"\nclient_id = \"x\"\n", "line 1", "client_secret"),
            ("[providers.A]\nkind = \"github\"\nclient_id = \"x\"\nclient_secret = \"y\"\n", "line 1", "name"),
            ("[providers.a]\nkind = \"github\"\nclient_id = \"x\"\nclient_secret = \"y\"\ncolour = 1\n", "line 5", "colour"),
            ("[providers.a]\nkind = \"oidc\"\nissuer = \"https://i\"\nclient_id = \"x\"\nclient_secret = \"y\"\nscopes = [\"email\"]\n", "line 1", "openid"),
            ("[providers.a\n", "line 1", ""),
            ("", "", "no [providers.NAME]"),
        ];
        for (text, line, why) in cases {
            let e = parse(text, None).unwrap_err();
            assert!(e.contains(line) && e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn secrets_come_from_files_relative_to_the_providers_file() {
        let dir = std::env::temp_dir().join(format!("baton-providers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("secret"), "from-file\n").unwrap();
        let text = "[providers.a]\nkind = \"github\"\nclient_id = \"x\"\nclient_secret_file = \"secret\"\n";
        let list = parse(text, Some(&dir)).unwrap();
        assert_eq!(list[0].client_secret, "from-file");
        let text =
            "[providers.a]\nkind = \"github\"\nclient_id = \"x\"\nclient_secret_file = \"gone\"\n";
        assert!(parse(text, Some(&dir)).unwrap_err().contains("gone"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
