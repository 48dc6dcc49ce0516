//! Fetchers: `builtins.fetchurl` and `builtins.fetchTarball` for `file://`,
//! `http://` (and, without TLS support, nothing else).
//!
//! As in C++ Nix 2.8: `fetchurl` stores the file flat under the URL's base
//! name (a `fixed:out:sha256` path whatever `sha256` says); `fetchTarball`
//! unpacks the archive (gzip, xz, bzip2, zstd or plain tar, detected from the
//! first bytes), requires exactly one top-level entry and stores that entry
//! recursively as `source`. A given `sha256` is checked ("hash mismatch in
//! file downloaded from …"). Fetched content stays in a temporary directory
//! for the rest of the evaluation, so reading it back (`import
//! (fetchTarball …)`) works on every [`crate::StoreSink`].

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use ferrix_eval::{Error, Eval, Result, Span, Value};
use ferrix_formats::hash::Encoding;
use ferrix_formats::{CAHash, CaMethod, HashAlgo, Hasher, NixHash, StorePath};

use crate::derivation::force_string_noctx;
use crate::io::{base_name, nar_hash_filtered, store_io, Fetched};

/// `builtins.fetchurl "http://127.0.0.1:8000/hello.txt"` → `"/nix/store/…-hello.txt"`
pub fn fetchurl(ev: &Eval, a: &[Value], pos: Span) -> Result<Value> {
    fetch(ev, &a[0], pos, "fetchurl", false)
}

/// `builtins.fetchTarball { url = "file:///tmp/src.tar.gz"; sha256 = "…"; }` → `"/nix/store/…-source"`
pub fn fetch_tarball(ev: &Eval, a: &[Value], pos: Span) -> Result<Value> {
    fetch(ev, &a[0], pos, "fetchTarball", true)
}

fn fetch(ev: &Eval, arg: &Value, pos: Span, who: &str, unpack: bool) -> Result<Value> {
    let v = ev.force(arg)?;
    let mut url = None;
    let mut name = None;
    let mut expected = None;
    if let Value::Attrs(attrs) = &v {
        for attr in attrs.attrs() {
            let n = attr.name.as_str().into_owned();
            match n.as_str() {
                "url" => url = Some(force_string_noctx(ev, &attr.value)?),
                "name" => name = Some(force_string_noctx(ev, &attr.value)?),
                "sha256" => {
                    let s = force_string_noctx(ev, &attr.value)?;
                    expected = Some(if s.is_empty() {
                        NixHash::from_digest(HashAlgo::Sha256, &[0; 32]).expect("32 bytes")
                    } else {
                        NixHash::parse(&s, Some(HashAlgo::Sha256)).map_err(|e| Error::eval(e.to_string()).at(attr.pos))?
                    });
                }
                _ => return Err(Error::eval(format!("unsupported argument '{n}' to '{who}'")).at(attr.pos)),
            }
        }
    } else {
        url = Some(force_string_noctx(ev, &v)?);
    }
    let url = url.ok_or_else(|| Error::eval("'url' argument required").at(pos))?;
    let given_name = name.is_some();
    let name = match name {
        Some(n) if !n.is_empty() => n,
        _ if unpack => "source".to_string(),
        _ => base_name(&url).to_string(),
    };
    if let Some(problem) = bad_name(&name) {
        let advice = if given_name {
            format!("Please change the value for the 'name' attribute passed to '{who}', so that it can create a valid store path.")
        } else if matches!(v, Value::Attrs(_)) {
            format!("Please add a valid 'name' attribute to the argument for '{who}', so that it can create a valid store path.")
        } else {
            format!("Please pass an attribute set with 'url' and 'name' attributes to '{who}',  so that it can create a valid store path.")
        };
        return Err(Error::eval(format!("invalid store path name when fetching URL '{url}': {problem}. {advice}")));
    }
    let io = store_io(ev)?;
    let key = (url.clone(), name.clone(), unpack);
    let cached = io.fetch_cache.borrow().get(&key).cloned();
    let (sp, hash) = match cached {
        Some(x) => x,
        None => {
            let r = download_and_add(ev, &url, &name, unpack)?;
            io.fetch_cache.borrow_mut().insert(key, r.clone());
            r
        }
    };
    if let Some(e) = &expected
        && *e != hash
    {
        return Err(Error::eval(format!(
            "hash mismatch in file downloaded from '{url}':\n  specified: {}\n  got:       {}",
            e.to_typed(Encoding::Nix32),
            hash.to_typed(Encoding::Nix32)
        )));
    }
    Ok(crate::context::store_path_value(&io.store_dir, &sp))
}

/// Why `name` cannot be a store path name, if it cannot.
fn bad_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("name must not be empty".into());
    }
    if name.len() > 211 {
        return Some(format!("name '{name}' must be no longer than 211 characters"));
    }
    if name.starts_with('.') {
        return Some(format!("name '{name}' is not valid"));
    }
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "+-._?=".contains(*c)))
        .map(|c| format!("name '{name}' contains illegal character '{c}'"))
}

/// Download `url` into a fresh temporary directory, unpack it if asked, add
/// it to the store; returns the store path and the hash `sha256` is checked
/// against (flat file hash or NAR hash).
fn download_and_add(ev: &Eval, url: &str, name: &str, unpack: bool) -> Result<(StorePath, NixHash)> {
    let io = store_io(ev)?;
    let tmp = tempfile::Builder::new()
        .prefix("ferrix-fetch-")
        .tempdir()
        .map_err(|e| Error::eval(format!("creating a temporary directory: {e}")))?;
    let file = tmp.path().join("download");
    download(url, &file)?;
    let (root, method, hash) = if unpack {
        let dir = tmp.path().join("unpack");
        unpack_archive(&file, &dir).map_err(|e| Error::eval(format!("unpacking tarball '{url}': {e}")))?;
        let members: Vec<_> = std::fs::read_dir(&dir)
            .and_then(|d| d.collect::<std::io::Result<Vec<_>>>())
            .map_err(|e| Error::eval(format!("reading unpacked '{url}': {e}")))?;
        if members.len() != 1 {
            return Err(Error::eval(format!("tarball '{url}' contains an unexpected number of top-level files")));
        }
        let top = members[0].path();
        let top_s = top.to_string_lossy().into_owned();
        let hash = nar_hash_filtered(&top_s, HashAlgo::Sha256, &mut |_, _| Ok(true))?;
        (top, CaMethod::Recursive, hash)
    } else {
        let hash = hash_file(&file).map_err(|e| Error::eval(format!("reading downloaded '{url}': {e}")))?;
        (file, CaMethod::Flat, hash)
    };
    let ca = CAHash::new(method, hash.clone());
    let sp = io.store_dir.make_ca_path(name, &ca).map_err(|e| Error::eval(e.to_string()))?;
    io.sink.add_host_path(&sp, &root, &ca, None).map_err(Error::eval)?;
    io.register(&sp, Default::default());
    io.fetched.borrow_mut().insert(sp.clone(), Fetched { root, _dir: tmp });
    Ok((sp, hash))
}

fn hash_file(p: &Path) -> std::io::Result<NixHash> {
    let mut f = std::fs::File::open(p)?;
    let mut h = Hasher::new(HashAlgo::Sha256);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

/// Fetch `url` (`file://…`, `http://…`) into the file `dest`.
pub fn download(url: &str, dest: &Path) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| Error::eval(format!("unable to download '{url}': {e}"));
    if let Some(p) = url.strip_prefix("file://") {
        let p = percent_decode(p);
        std::fs::copy(&p, dest).map_err(|e| fail(&format!("reading '{p}': {e}")))?;
        return Ok(());
    }
    if !url.starts_with("http://") {
        return Err(fail(&"only file:// and http:// URLs are supported"));
    }
    let resp = ureq::get(url).call().map_err(|e| fail(&e))?;
    let mut body = resp.into_body();
    let mut out = std::fs::File::create(dest).map_err(|e| fail(&e))?;
    std::io::copy(&mut body.as_reader(), &mut out).map_err(|e| fail(&e))?;
    Ok(())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(x) = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unpack a (possibly compressed) tar archive into `dest`, detecting the
/// compression from its magic bytes.
pub fn unpack_archive(archive: &Path, dest: &Path) -> std::io::Result<()> {
    let mut r = BufReader::new(std::fs::File::open(archive)?);
    let head = r.fill_buf()?.to_vec();
    let inner: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(r))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(xz2::bufread::XzDecoder::new_multi_decoder(r))
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2::bufread::MultiBzDecoder::new(r))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(r)?)
    } else {
        Box::new(r)
    };
    std::fs::create_dir_all(dest)?;
    let mut ar = tar::Archive::new(inner);
    ar.set_preserve_permissions(false);
    ar.set_preserve_mtime(false);
    ar.set_overwrite(true);
    ar.unpack(dest)
}
