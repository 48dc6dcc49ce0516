//! Parsing: source text to the arena syntax tree [`ast::Ast`] (fixed-size
//! nodes indexed by `u32`, child lists in side tables, text as byte ranges
//! into the source) that `crate::lower` lowers to IR.
//!
//! Two front ends build that tree. The hand-written lexer and
//! recursive-descent parser (`lexer`, `parser`) accept exactly what rnix 0.15
//! parses without errors and build the tree rnix would (same associativity,
//! same node offsets); on anything else they give up with [`Bail`], and rnix
//! runs instead (`from_rnix`): it gives the syntax error (its texts are the
//! ones the parse-fail tests pin), or converts its tree for the odd forms the
//! hand-written parser leaves to it (`|>`). rnix is thus the error path and
//! the oracle: `tests/parser_diff.rs` checks that both front ends build the
//! same tree for every `.nix` file of nixpkgs and the language tests.

pub(crate) mod ast;
mod from_rnix;
pub(crate) mod lexer;
pub(crate) mod parser;

use crate::error::Result;
use ast::{Ast, NodeId};

/// The fast parser does not handle this input (a syntax error, or a form
/// left to rnix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bail;

/// Parse `text` (registered as source `file`, for error positions): with the
/// hand-written parser, or with rnix where that one gives up.
pub(crate) fn parse(text: &str, file: u32) -> Result<(Ast, NodeId)> {
    match parse_fast(text) {
        Some(tree) => Ok(tree),
        None => from_rnix::parse(text, file),
    }
}

/// rnix alone (for the parser benchmark).
pub(crate) fn parse_rnix(text: &str, file: u32) -> Result<(Ast, NodeId)> {
    from_rnix::parse(text, file)
}

/// The hand-written parser alone; `None` when it gives up.
fn parse_fast(text: &str) -> Option<(Ast, NodeId)> {
    let toks = lexer::lex(text).ok()?;
    parser::parse(&toks).ok()
}

/// Whether the fast parser accepts `text` (for tests and fuzzing: it must
/// never panic, and must accept only what rnix accepts without errors).
pub fn fast_parser_accepts(text: &str) -> bool {
    parse_fast(text).is_some()
}

thread_local! {
    static BAIL_AT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

pub(crate) fn note_bail(offset: usize) {
    BAIL_AT.with(|b| b.set(offset));
}

/// Where the fast parser gave up on `text` (a byte offset), if it did: for
/// diagnosing the differential tests.
pub fn fast_parser_bail_offset(text: &str) -> Option<usize> {
    if fast_parser_accepts(text) { None } else { Some(BAIL_AT.with(|b| b.get())) }
}

/// Both front ends on `text`, for the
/// differential tests: the hand-written parser's tree (`None` when it gives
/// up) and rnix's tree or syntax error, trees as [`Ast::dump`] texts.
#[doc(hidden)]
pub fn parse_both(text: &str) -> (Option<String>, std::result::Result<String, String>) {
    let text = &crate::normalise_newlines(text);
    let fast = parse_fast(text).map(|(ast, root)| ast.dump(root));
    let rnix = match from_rnix::parse(text, u32::MAX) {
        Ok((ast, root)) => Ok(ast.dump(root)),
        Err(e) => Err(format!("{} at byte {}", e.0.msg, e.0.span.offset)),
    };
    (fast, rnix)
}

/// The string literals of `text` whose processed parts (escapes, `''`
/// indentation) differ from rnix's own processing, described; for the
/// differential tests (`text` must parse without errors).
#[doc(hidden)]
pub fn string_mismatches(text: &str) -> Vec<String> {
    from_rnix::string_mismatches(&crate::normalise_newlines(text))
}
