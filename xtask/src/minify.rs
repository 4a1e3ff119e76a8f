//! Shrinking the shipped JavaScript: short wasm import/export names (with the glue rewritten
//! to match) and terser.

use crate::util::{output, run};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

/// Renames the wasm's imports, exports and import module to short names with
/// `wasm-opt --minify-imports-and-exports-and-modules`, and returns the wasm-bindgen glue
/// rewritten to the new names. Fails if any import of the mapping is missing from the glue.
pub(crate) fn names(bin: &Path, features: &[&str], wasm: &Path, glue: &Path) -> Result<String> {
    let out = Command::new(bin.join("wasm-opt"))
        .arg("--minify-imports-and-exports-and-modules")
        .args(features)
        // The last pass: the features section is for tools, browsers ignore it.
        .arg("--strip-target-features")
        .arg(wasm)
        .arg("-o")
        .arg(wasm)
        .output()
        .context("running wasm-opt")?;
    if !out.status.success() {
        bail!("wasm-opt --minify-imports-and-exports-and-modules failed");
    }
    let map: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("wasm-opt's name mapping is not JSON")?;
    let text = output(Command::new(bin.join("wasm-dis")).arg(wasm)).context("wasm-dis failed")?;
    let mut modules: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("(import \""))
        .filter_map(|l| l.split('"').next())
        .collect();
    modules.sort_unstable();
    modules.dedup();
    let [module] = modules.as_slice() else {
        bail!("expected one import module after minifying, found {modules:?}");
    };
    let mut js = std::fs::read_to_string(glue)?;
    // Imports the wasm takes straight from a `module = ...` file are merged into the one module.
    let mut direct = String::new();
    for entry in map["imports"].as_array().context("no imports in mapping")? {
        let (from, old, new) = (str_at(entry, 0)?, str_at(entry, 1)?, str_at(entry, 2)?);
        if from != "./baton_client_bg.js" {
            let ns = namespace_of(&js, from)
                .with_context(|| format!("no `import * as` of {from} in the glue"))?;
            direct.push_str(&format!("{new}: {ns}.{old},"));
            continue;
        }
        // In the glue each import is an object key: `name: function(...)`.
        if !replace_ident(&mut js, old, new, Some(':')) {
            bail!("import {old} not found in the wasm-bindgen glue");
        }
    }
    let head = "const import0 = {\n        __proto__: null,";
    if !js.contains(head) {
        bail!("import object not found in the wasm-bindgen glue");
    }
    js = js.replacen(head, &format!("{head}{direct}"), 1);
    for entry in map["exports"].as_array().context("no exports in mapping")? {
        let (old, new) = (str_at(entry, 0)?, str_at(entry, 1)?);
        replace_ident(
            &mut js,
            &format!("wasm.{old}"),
            &format!("wasm.{new}"),
            None,
        );
    }
    let from = "\"./baton_client_bg.js\": import0";
    if !js.contains(from) {
        bail!("import module object not found in the wasm-bindgen glue");
    }
    Ok(shorten_messages(
        &js.replace(from, &format!("\"{module}\": import0")),
    ))
}

/// The glue's warnings in fewer words (the package ships them in every download).
fn shorten_messages(js: &str) -> String {
    const SHORTER: [(&str, &str); 2] = [
        (
            "`WebAssembly.instantiateStreaming` failed because your server does not serve Wasm \
             with `application/wasm` MIME type. Falling back to `WebAssembly.instantiate` which \
             is slower. Original error:\\n",
            "baton-auth: serve the .wasm as application/wasm (slower fallback used):",
        ),
        (
            "using deprecated parameters for the initialization function; pass a single object \
             instead",
            "baton-auth: deprecated init parameters",
        ),
    ];
    SHORTER
        .iter()
        .fold(js.to_owned(), |js, (long, short)| js.replace(long, short))
}

/// The name of the glue's `import * as <name> from "<module>"`.
fn namespace_of(js: &str, module: &str) -> Option<String> {
    js.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("import * as ")?;
        let (name, from) = rest.split_once(" from ")?;
        (from.trim_end_matches(';').trim_matches(['"', '\'']) == module).then(|| name.to_owned())
    })
}

fn str_at(v: &serde_json::Value, i: usize) -> Result<&str> {
    v[i].as_str().context("malformed name mapping")
}

/// Replaces whole identifiers `old` (optionally only where followed by `then`); returns whether
/// any was replaced.
fn replace_ident(js: &mut String, old: &str, new: &str, then: Option<char>) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    let mut out = String::with_capacity(js.len());
    let mut rest = js.as_str();
    let mut found = false;
    while let Some(pos) = rest.find(old) {
        let before = rest[..pos].chars().last().or_else(|| out.chars().last());
        let after = rest[pos + old.len()..].chars().next();
        let boundary = !before.is_some_and(is_ident)
            && !after.is_some_and(is_ident)
            && then.is_none_or(|t| after == Some(t));
        out.push_str(&rest[..pos]);
        if boundary {
            out.push_str(new);
            found = true;
        } else {
            out.push_str(old);
        }
        rest = &rest[pos + old.len()..];
    }
    out.push_str(rest);
    *js = out;
    found
}

/// Bundles an ES module and what it imports into one ES module with rolldown.
pub(crate) fn bundle(bin: &Path, entry: &Path, out: &Path) -> Result<()> {
    run(Command::new(bin.join("rolldown"))
        .arg(entry)
        .args(["--format", "esm", "--platform", "browser", "--file"])
        .arg(out))
}

/// Minifies an ES module with terser.
pub(crate) fn js(bin: &Path, input: &Path, out: &Path) -> Result<()> {
    run(Command::new(bin.join("terser"))
        .arg(input)
        .args(["--module", "--ecma", "2020", "--mangle", "--compress"])
        .arg("passes=3,ecma=2020,unsafe_arrows=true")
        .arg("-o")
        .arg(out))
}

#[cfg(test)]
mod tests {
    use super::replace_ident;

    #[test]
    fn shortens_the_glue_warnings() {
        let glue = "console.warn(\"using deprecated parameters for the initialization function; \
                    pass a single object instead\")";
        assert_eq!(
            super::shorten_messages(glue),
            "console.warn(\"baton-auth: deprecated init parameters\")"
        );
    }

    #[test]
    fn replaces_whole_identifiers_only() {
        let mut s = "a: 1, ab: 2, xa: 3, wasm.a(), wasm.ab()".to_owned();
        assert!(replace_ident(&mut s, "a", "Z", Some(':')));
        assert_eq!(s, "Z: 1, ab: 2, xa: 3, wasm.a(), wasm.ab()");
        assert!(replace_ident(&mut s, "wasm.a", "wasm.q", None));
        assert_eq!(s, "Z: 1, ab: 2, xa: 3, wasm.q(), wasm.ab()");
        assert!(!replace_ident(&mut s, "nope", "x", None));
    }
}
