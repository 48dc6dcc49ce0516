//! Flake references without fetching: `parseFlakeRef` and `flakeRefToString`.
//!
//! A flake reference is a URL-like string (`github:NixOS/nixpkgs/23.05?dir=lib`,
//! `path:/x`, `git+https://…?ref=main`, `nixpkgs/branch`) or the attribute set
//! C++ Nix's `FlakeRef::toAttrs` gives for it. Only the syntax is handled here:
//! nothing is looked up or fetched, and relative paths are made absolute
//! against the current directory without searching for `flake.nix`.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::ir::Span;
use crate::symbol::Symbol;
use crate::value::{PrimOpDef, Value};
use crate::Eval;

pub static DEFS: &[PrimOpDef] = &[
    PrimOpDef { name: "parseFlakeRef", arity: 1, func: parse_flake_ref, forces: &[] },
    PrimOpDef { name: "flakeRefToString", arity: 1, func: flake_ref_to_string, forces: &[] },
];

/// An attribute of a flake reference (C++ Nix's `fetchers::Attr`).
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Str(String),
    Int(u64),
    Bool(bool),
}

type Attrs = BTreeMap<String, Attr>;

/// `builtins.parseFlakeRef "github:NixOS/nixpkgs/23.05?dir=lib"` →
/// `{ dir = "lib"; owner = "NixOS"; ref = "23.05"; repo = "nixpkgs"; type = "github"; }`
fn parse_flake_ref(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let s = ev.force_string(&a[0])?;
    let s = s.to_str_lossy().into_owned();
    let attrs = parse(&s)?;
    Ok(Value::attrs_from(attrs.into_iter().map(|(k, v)| {
        let v = match v {
            Attr::Str(s) => Value::str(&s),
            Attr::Int(i) => Value::Int(i as i64),
            Attr::Bool(b) => Value::Bool(b),
        };
        (Symbol::new(&k), v)
    })))
}

/// `builtins.flakeRefToString { type = "github"; owner = "NixOS"; repo = "nixpkgs"; }`
/// → `"github:NixOS/nixpkgs"`
fn flake_ref_to_string(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let set = ev.force_attrs(&a[0])?;
    let mut attrs = Attrs::new();
    for at in set.sorted_by_name() {
        let name = String::from_utf8_lossy(at.name.as_bytes()).into_owned();
        let v = ev.force(&at.value)?;
        let v = match &v {
            Value::String(s) => Attr::Str(s.to_str_lossy().into_owned()),
            Value::Int(i) if *i < 0 => {
                return Err(Error::eval(format!("negative value given for flake ref attr {name}: {i}")));
            }
            Value::Int(i) => Attr::Int(*i as u64),
            Value::Bool(b) => Attr::Bool(*b),
            other => {
                return Err(Error::eval(format!(
                    "flake reference attribute sets representation expected, but attribute '{name}' is {}",
                    other.show_type()
                )));
            }
        };
        attrs.insert(name, v);
    }
    Ok(Value::str(&to_string(&attrs)?))
}

fn is_id(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(x) if x.is_ascii_alphabetic()) && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == '-')
}
fn is_rev(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}
fn is_ref(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['-', '/'])
        && !s.ends_with(['/', '.'])
        && !s.contains("..")
        && !s.contains("//")
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+@".contains(c))
}

fn percent_decode(s: &str) -> Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
            match h {
                Some(x) => {
                    out.push(x);
                    i += 3;
                }
                None => return Err(Error::eval(format!("invalid URI parameter '{s}'"))),
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn percent_encode(s: &str, keep: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$'()*,;:@".contains(&b) || keep.as_bytes().contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn parse_query(q: &str) -> Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for part in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        m.insert(percent_decode(k)?, percent_decode(v)?);
    }
    Ok(m)
}

fn query_string(q: &BTreeMap<String, String>) -> String {
    q.iter().map(|(k, v)| format!("{}={}", percent_encode(k, ""), percent_encode(v, "/"))).collect::<Vec<_>>().join("&")
}

fn bad_url(url: &str) -> Error {
    Error::eval(format!("'{url}' is not a valid URL"))
}

/// Parse a flake reference into C++ Nix's attribute form (with `dir`).
pub fn parse(url: &str) -> Result<Attrs> {
    let (rest, fragment) = match url.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (url, None),
    };
    if fragment.is_some() {
        return Err(Error::eval(format!("unexpected fragment in flake reference '{url}'")));
    }
    let (base, query) = match rest.split_once('?') {
        Some((b, q)) => (b, parse_query(q)?),
        None => (rest, BTreeMap::new()),
    };
    let mut query = query;
    let dir = query.remove("dir");
    let mut attrs = Attrs::new();
    let scheme = base.split_once(':').map(|(s, _)| s).filter(|s| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) && s.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    });
    match scheme {
        None if base.starts_with('/') || base.starts_with('.') => {
            attrs.insert("type".into(), Attr::Str("path".into()));
            attrs.insert("path".into(), Attr::Str(absolute(base)));
            path_query(url, &mut attrs, query)?;
        }
        None => {
            indirect(url, base, &mut attrs)?;
            if !query.is_empty() {
                return Err(Error::eval(format!("unsupported input attribute '{}'", query.keys().next().unwrap_or(&String::new()))));
            }
        }
        Some(scheme) => {
            let body = &base[scheme.len() + 1..];
            match scheme {
                "flake" => {
                    indirect(url, body, &mut attrs)?;
                }
                "github" | "gitlab" | "sourcehut" => {
                    attrs.insert("type".into(), Attr::Str(scheme.into()));
                    let parts: Vec<&str> = body.split('/').collect();
                    let (owner, repo, rr) = match parts.as_slice() {
                        [o, r] => (*o, *r, None),
                        [o, r, x] => (*o, *r, Some(*x)),
                        _ => return Err(Error::eval(format!("URL '{url}' is invalid"))),
                    };
                    if owner.is_empty() || repo.is_empty() {
                        return Err(Error::eval(format!("URL '{url}' is invalid")));
                    }
                    attrs.insert("owner".into(), Attr::Str(owner.into()));
                    attrs.insert("repo".into(), Attr::Str(repo.into()));
                    if let Some(x) = rr {
                        let x = percent_decode(x)?;
                        if is_rev(&x) {
                            attrs.insert("rev".into(), Attr::Str(x));
                        } else if is_ref(&x) {
                            attrs.insert("ref".into(), Attr::Str(x));
                        } else {
                            return Err(Error::eval(format!("in URL '{url}', '{x}' is not a commit hash or branch/tag name")));
                        }
                    }
                    for (k, v) in query {
                        match k.as_str() {
                            "rev" | "ref" if attrs.contains_key("rev") || attrs.contains_key("ref") => {
                                return Err(Error::eval(format!("URL '{url}' already contains a ref or revision")));
                            }
                            "rev" | "ref" | "host" | "narHash" => {
                                attrs.insert(k, Attr::Str(v));
                            }
                            _ => return Err(Error::eval(format!("unsupported input attribute '{k}'"))),
                        }
                    }
                }
                "path" => {
                    attrs.insert("type".into(), Attr::Str("path".into()));
                    attrs.insert("path".into(), Attr::Str(percent_decode(body)?));
                    path_query(url, &mut attrs, query)?;
                }
                _ => {
                    let (kind, inner) = if let Some((k, _)) = scheme.split_once('+') {
                        (k, &base[k.len() + 1..])
                    } else if matches!(scheme, "http" | "https" | "file") {
                        (if has_tarball_ext(base) { "tarball" } else { "file" }, base)
                    } else {
                        return Err(Error::eval(format!("input '{url}' is unsupported")));
                    };
                    let kind = match kind {
                        "git" => "git",
                        "hg" => "hg",
                        "tarball" => "tarball",
                        "file" => "file",
                        _ => return Err(Error::eval(format!("input '{url}' is unsupported"))),
                    };
                    attrs.insert("type".into(), Attr::Str(kind.into()));
                    let mut rest_q = BTreeMap::new();
                    for (k, v) in query {
                        match (kind, k.as_str()) {
                            ("git", "shallow" | "submodules" | "allRefs" | "exportIgnore" | "verifyCommit") => {
                                attrs.insert(k, Attr::Bool(v == "1" || v == "true"));
                            }
                            ("git" | "hg", "rev" | "ref" | "narHash") | ("tarball" | "file", "narHash" | "rev") => {
                                attrs.insert(k, Attr::Str(v));
                            }
                            (_, "revCount" | "lastModified") => {
                                attrs.insert(k.clone(), Attr::Int(v.parse().map_err(|_| bad_url(url))?));
                            }
                            _ => {
                                rest_q.insert(k, v);
                            }
                        }
                    }
                    let mut u = inner.to_string();
                    if !rest_q.is_empty() {
                        u.push('?');
                        u.push_str(&query_string(&rest_q));
                    }
                    attrs.insert("url".into(), Attr::Str(u));
                }
            }
        }
    }
    if let Some(d) = dir.filter(|d| !d.is_empty()) {
        attrs.insert("dir".into(), Attr::Str(d));
    }
    Ok(attrs)
}

fn has_tarball_ext(u: &str) -> bool {
    [".zip", ".tar", ".tgz", ".tar.gz", ".tar.xz", ".tar.bz2", ".tar.zst"].iter().any(|e| u.ends_with(e))
}

fn absolute(p: &str) -> String {
    if p.starts_with('/') {
        return crate::canon_path(p);
    }
    let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| "/".into());
    crate::canon_path(&format!("{cwd}/{p}"))
}

fn path_query(url: &str, attrs: &mut Attrs, query: BTreeMap<String, String>) -> Result<()> {
    for (k, v) in query {
        match k.as_str() {
            "revCount" | "lastModified" => {
                attrs.insert(k.clone(), Attr::Int(v.parse().map_err(|_| bad_url(url))?));
            }
            "rev" | "narHash" => {
                attrs.insert(k, Attr::Str(v));
            }
            _ => return Err(Error::eval(format!("path URL '{url}' has invalid parameter '{k}'"))),
        }
    }
    Ok(())
}

fn indirect(url: &str, body: &str, attrs: &mut Attrs) -> Result<()> {
    let parts: Vec<&str> = body.split('/').collect();
    let id = parts[0];
    if !is_id(id) {
        return Err(Error::eval(format!("'{id}' is not a valid flake ID")));
    }
    attrs.insert("type".into(), Attr::Str("indirect".into()));
    attrs.insert("id".into(), Attr::Str(id.into()));
    match &parts[1..] {
        [] => {}
        [x] if is_rev(x) => {
            attrs.insert("rev".into(), Attr::Str(x.to_string()));
        }
        [x] if is_ref(x) => {
            attrs.insert("ref".into(), Attr::Str(x.to_string()));
        }
        [r, v] if is_ref(r) && is_rev(v) => {
            attrs.insert("ref".into(), Attr::Str(r.to_string()));
            attrs.insert("rev".into(), Attr::Str(v.to_string()));
        }
        _ => return Err(Error::eval(format!("'{url}' is not a valid URL"))),
    }
    Ok(())
}

fn attr_str(a: &Attr) -> String {
    match a {
        Attr::Str(s) => s.clone(),
        Attr::Int(i) => i.to_string(),
        Attr::Bool(b) => if *b { "1" } else { "0" }.to_string(),
    }
}

/// The URL form of a flake reference in attribute form (`FlakeRef::to_string`).
pub fn to_string(attrs: &Attrs) -> Result<String> {
    let mut attrs = attrs.clone();
    let ty = match attrs.remove("type") {
        Some(Attr::Str(t)) => t,
        Some(_) => return Err(Error::eval("attribute 'type' of a flake reference must be a string")),
        None => return Err(Error::eval("attribute 'type' is missing in a flake reference")),
    };
    let dir = attrs.remove("dir");
    let take_str = |attrs: &mut Attrs, k: &str| -> Result<Option<String>> {
        match attrs.remove(k) {
            None => Ok(None),
            Some(Attr::Str(s)) => Ok(Some(s)),
            Some(_) => Err(Error::eval(format!("attribute '{k}' of a flake reference must be a string"))),
        }
    };
    let need = |v: Option<String>, k: &str| v.ok_or_else(|| Error::eval(format!("attribute '{k}' is missing in a '{ty}' flake reference")));
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    let mut s = match ty.as_str() {
        "github" | "gitlab" | "sourcehut" => {
            let owner = need(take_str(&mut attrs, "owner")?, "owner")?;
            let repo = need(take_str(&mut attrs, "repo")?, "repo")?;
            let r = take_str(&mut attrs, "ref")?;
            let v = take_str(&mut attrs, "rev")?;
            let mut s = format!("{ty}:{owner}/{repo}");
            if let Some(x) = r.or(v) {
                s.push('/');
                s.push_str(&x);
            }
            s
        }
        "indirect" => {
            let id = need(take_str(&mut attrs, "id")?, "id")?;
            let mut s = format!("flake:{id}");
            for k in ["ref", "rev"] {
                if let Some(x) = take_str(&mut attrs, k)? {
                    s.push('/');
                    s.push_str(&x);
                }
            }
            s
        }
        "path" => format!("path:{}", need(take_str(&mut attrs, "path")?, "path")?),
        "git" | "hg" | "tarball" | "file" => {
            let url = need(take_str(&mut attrs, "url")?, "url")?;
            let (u, q) = match url.split_once('?') {
                Some((u, q)) => (u.to_string(), parse_query(q)?),
                None => (url.clone(), BTreeMap::new()),
            };
            query.extend(q);
            let plain_tarball = ty == "tarball" && has_tarball_ext(&u) && (u.starts_with("http:") || u.starts_with("https:") || u.starts_with("file:"));
            let plain_file = ty == "file" && !has_tarball_ext(&u) && (u.starts_with("http:") || u.starts_with("https:"));
            if plain_tarball || plain_file {
                u
            } else {
                format!("{ty}+{u}")
            }
        }
        other => return Err(Error::eval(format!("flake reference type '{other}' is not supported"))),
    };
    for (k, v) in attrs {
        query.insert(k, attr_str(&v));
    }
    if let Some(d) = dir {
        let d = attr_str(&d);
        if !d.is_empty() {
            query.insert("dir".into(), d);
        }
    }
    if !query.is_empty() {
        s.push('?');
        s.push_str(&query_string(&query));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn round_trip(url: &str) {
        let a = parse(url).expect("parses");
        assert_eq!(to_string(&a).expect("prints"), url);
    }

    #[test]
    fn flake_refs_round_trip() {
        round_trip("github:NixOS/nixpkgs/23.05?dir=lib");
        round_trip("github:NixOS/nixpkgs");
        round_trip("gitlab:o/r/0123456789abcdef0123456789abcdef01234567");
        round_trip("flake:nixpkgs/release-23.05");
        round_trip("path:/tmp/x?lastModified=5");
        round_trip("git+https://example.org/r.git?ref=main&shallow=1");
        round_trip("https://example.org/x.tar.gz");
        round_trip("tarball+https://example.org/x");
    }

    #[test]
    fn bad_flake_refs_fail() {
        for u in ["github:x", "github:a/b/c/d", "9x", "ftp://x", "github:a/b?foo=1"] {
            assert!(parse(u).is_err(), "{u}");
        }
    }
}
