//! Hash formats: `convertHash`, `placeholder`, and the nix32 encoding.

use data_encoding::{BASE64, HEXLOWER_PERMISSIVE};

use crate::error::{Error, Result};
use crate::ir::Span;
use crate::symbol::Symbol;
use crate::value::{PrimOpDef, Value};
use crate::Eval;

pub static DEFS: &[PrimOpDef] = &[
    PrimOpDef { name: "convertHash", arity: 1, func: convert_hash, forces: &[] },
    PrimOpDef { name: "placeholder", arity: 1, func: placeholder, forces: &[] },
];

const NIX32: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Nix's base-32 encoding (as in store paths).
pub fn nix32_encode(hash: &[u8]) -> String {
    if hash.is_empty() {
        return String::new();
    }
    let len = (hash.len() * 8 - 1) / 5 + 1;
    let mut out = String::with_capacity(len);
    for n in (0..len).rev() {
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        let lo = u16::from(hash[i]) >> j;
        let hi = if i + 1 < hash.len() { u16::from(hash[i + 1]) << (8 - j) } else { 0 };
        out.push(NIX32[((lo | hi) & 0x1f) as usize] as char);
    }
    out
}

/// Decode Nix base-32 into `size` bytes.
pub fn nix32_decode(s: &str, size: usize) -> Option<Vec<u8>> {
    let mut hash = vec![0u8; size];
    let bytes = s.as_bytes();
    for n in 0..bytes.len() {
        let c = bytes[bytes.len() - n - 1];
        let digit = NIX32.iter().position(|&x| x == c)? as u16;
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        if i >= size {
            return None;
        }
        hash[i] |= (digit << j) as u8;
        let carry = digit >> (8 - j);
        if i + 1 < size {
            hash[i + 1] |= carry as u8;
        } else if carry != 0 {
            return None;
        }
    }
    Some(hash)
}

fn algo_size(algo: &str) -> Option<usize> {
    Some(match algo {
        "md5" => 16,
        "sha1" => 20,
        "sha256" => 32,
        "sha512" => 64,
        _ => return None,
    })
}

/// Parse a hash in any of Nix's formats (base16, nix32, base64, SRI,
/// optionally `algo:` prefixed). Returns (algorithm, digest).
pub fn parse_hash(s: &str, algo: Option<&str>) -> Result<(String, Vec<u8>)> {
    let bad = || Error::eval(format!("invalid hash '{s}'"));
    let (algo, body, sri) = if let Some((a, b)) = s.split_once(':') {
        (a.to_string(), b, false)
    } else if let Some((a, b)) = s.split_once('-').filter(|(a, _)| algo_size(a).is_some()) {
        (a.to_string(), b, true)
    } else {
        match algo {
            Some(a) => (a.to_string(), s, false),
            None => return Err(Error::eval(format!("hash '{s}' does not include a type, nor is the type otherwise known from context"))),
        }
    };
    let size = algo_size(&algo).ok_or_else(|| Error::eval(format!("unknown hash algorithm '{algo}', expect 'md5', 'sha1', 'sha256', or 'sha512'")))?;
    let digest = if sri {
        BASE64.decode(body.as_bytes()).map_err(|_| bad())?
    } else if body.len() == size * 2 {
        HEXLOWER_PERMISSIVE.decode(body.as_bytes()).map_err(|_| bad())?
    } else if body.len() == (size * 8 - 1) / 5 + 1 {
        nix32_decode(body, size).ok_or_else(bad)?
    } else if body.len() == size.div_ceil(3) * 4 {
        BASE64.decode(body.as_bytes()).map_err(|_| bad())?
    } else {
        return Err(bad());
    };
    if digest.len() != size {
        return Err(bad());
    }
    Ok((algo, digest))
}

/// Render a digest in a Nix hash format.
pub fn format_hash(algo: &str, digest: &[u8], format: &str) -> Result<String> {
    Ok(match format {
        "base16" => super::string::hex(digest),
        "nix32" | "base32" => nix32_encode(digest),
        "base64" => BASE64.encode(digest),
        "sri" => format!("{algo}-{}", BASE64.encode(digest)),
        other => {
            return Err(Error::eval(format!(
                "unknown hash format '{other}', expect 'base16', 'base32', 'nix32', 'base64', or 'sri'"
            )));
        }
    })
}

/// `builtins.convertHash { hash = "sha256-…"; toHashFormat = "nix32"; }`
fn convert_hash(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let args = ev.force_attrs(&a[0])?;
    let hash = args.get(Symbol::new("hash")).ok_or_else(|| Error::eval("attribute 'hash' missing"))?;
    let hash = ev.force_str_nocontext(hash)?;
    let algo = match args.get(Symbol::new("hashAlgo")) {
        Some(v) => Some(ev.force_str_nocontext(v)?),
        None => None,
    };
    let fmt = args.get(Symbol::new("toHashFormat")).ok_or_else(|| Error::eval("attribute 'toHashFormat' missing"))?;
    let fmt = ev.force_str_nocontext(fmt)?;
    if fmt == "base32" {
        // C++ Nix warns as it reads the format, before the hash
        eprintln!("warning: \"base32\" is a deprecated alias for hash format \"nix32\".");
    }
    let (algo, digest) = parse_hash(&hash, algo.as_deref())?;
    Ok(Value::str(&format_hash(&algo, &digest, &fmt)?))
}

/// `builtins.placeholder "out"` → `"/1rz4g4znpzjwh1xymhjpm42vipw92pr73vdgl6xs1hycac8kf2n9"`
fn placeholder(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let name = ev.force_str_nocontext(&a[0])?;
    let digest = super::string::hash_bytes("sha256", format!("nix-output:{name}").as_bytes())?;
    Ok(Value::str(&format!("/{}", nix32_encode(&digest))))
}
