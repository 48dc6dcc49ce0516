//! Builtins that need no store, in families (one file each). Each family
//! exports `DEFS`, a table of [`PrimOpDef`]s; [`core()`] collects them all.
//! A builtin is a plain function `fn(&Eval, &[Value], Span) -> Result<Value>`
//! receiving exactly `arity` unforced arguments.

use crate::value::PrimOpDef;

pub mod arith;
pub mod attrs;
pub mod control;
pub mod flake;
pub mod hash;
pub mod io;
pub mod json;
pub mod list;
pub mod string;
pub mod xml;

/// All core builtins.
pub fn core() -> Vec<&'static PrimOpDef> {
    let families: &[&'static [PrimOpDef]] =
        &[arith::DEFS, attrs::DEFS, control::DEFS, flake::DEFS, hash::DEFS, io::DEFS, json::DEFS, list::DEFS, string::DEFS, xml::DEFS];
    families.iter().flat_map(|f| f.iter()).collect()
}
