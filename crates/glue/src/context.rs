//! String context elements as the evaluator stores them (`getContext` key
//! encoding), parsed into store paths.

use ferrix_eval::{Error, Result};
use ferrix_formats::{StoreDir, StorePath};

/// One element of a string's context.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ContextElem {
    /// A plain store path (`/nix/store/…`).
    Opaque(StorePath),
    /// A derivation and everything it needs (`=/nix/store/….drv`).
    DrvDeep(StorePath),
    /// One output of a derivation (`!out!/nix/store/….drv`).
    Built { drv: StorePath, output: String },
}

/// Parse a context element.
pub fn parse(dir: &StoreDir, e: &str) -> Result<ContextElem> {
    let bad = |p: &str, err: String| Error::eval(format!("invalid string context element '{p}': {err}"));
    let path = |p: &str| -> Result<StorePath> {
        dir.parse(p).map(|r| r.to_owned()).map_err(|err| bad(e, err.to_string()))
    };
    if let Some(p) = e.strip_prefix('=') {
        Ok(ContextElem::DrvDeep(path(p)?))
    } else if let Some(rest) = e.strip_prefix('!') {
        let (out, p) = rest.split_once('!').ok_or_else(|| bad(e, "missing '!'".into()))?;
        Ok(ContextElem::Built { drv: path(p)?, output: out.to_string() })
    } else {
        Ok(ContextElem::Opaque(path(e)?))
    }
}
