//! String context elements (the evaluator's interned [`ContextElem`]s, in
//! their `getContext` key encoding) parsed into store paths.

use ferrix_eval::{ContextElem, Error, Result};
use ferrix_formats::{StoreDir, StorePath};

/// One element of a string's context, parsed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Parsed {
    /// A plain store path (`/nix/store/…`).
    Opaque(StorePath),
    /// A derivation and everything it needs (`=/nix/store/….drv`).
    DrvDeep(StorePath),
    /// One output of a derivation (`!out!/nix/store/….drv`).
    Built { drv: StorePath, output: String },
}

/// Parse a context element.
pub fn parse(dir: &StoreDir, e: ContextElem) -> Result<Parsed> {
    let e = e.as_str();
    let bad = |p: &str, err: String| Error::eval(format!("invalid string context element '{p}': {err}"));
    let path = |p: &str| -> Result<StorePath> {
        dir.parse(p).map(|r| r.to_owned()).map_err(|err| bad(e, err.to_string()))
    };
    if let Some(p) = e.strip_prefix('=') {
        Ok(Parsed::DrvDeep(path(p)?))
    } else if let Some(rest) = e.strip_prefix('!') {
        let (out, p) = rest.split_once('!').ok_or_else(|| bad(e, "missing '!'".into()))?;
        Ok(Parsed::Built { drv: path(p)?, output: out.to_string() })
    } else {
        Ok(Parsed::Opaque(path(e)?))
    }
}

/// The store path of `path`'s string value with itself as context.
pub fn store_path_value(dir: &StoreDir, p: &StorePath) -> ferrix_eval::Value {
    let s = dir.display(p);
    let e = ContextElem::opaque(&s);
    ferrix_eval::Value::string_ctx(s.into_bytes(), e.into())
}
