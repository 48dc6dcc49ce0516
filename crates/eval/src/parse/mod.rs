//! Parsing: source text to the arena syntax tree [`ast::Ast`] (fixed-size
//! nodes indexed by `u32`, child lists in side tables, text as byte ranges
//! into the source) that `crate::lower` lowers to IR.
//!
//! Two front ends build that tree. The hand-written lexer and
//! recursive-descent parser (`lexer`, `parser`) accept exactly what rnix 0.15
//! parses without errors and build the tree rnix would (same associativity,
//! same node offsets); on anything else they give up with [`Bail`], and rnix
//! runs instead (`from_rnix`): it converts its tree for the odd forms the
//! hand-written parser leaves to it (`|>`), and where it fails too, the
//! hand-written parser's first failure is the syntax error, in C++ Nix's
//! words (see [`parse`]). rnix is thus also the oracle: `tests/parser_diff.rs`
//! checks that both front ends build the same tree for every `.nix` file of
//! nixpkgs and the language tests.

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
///
/// A syntax error both reject is worded as C++ Nix's parser words it
/// (`unexpected 'else', expecting 'then'`) where the hand-written parser
/// found it; rnix's own wording stays for the errors that are not an
/// unexpected token (a path with a trailing slash, duplicate formals, too
/// deep a nesting) and for input the hand-written lexer gives up on.
pub(crate) fn parse(text: &str, file: u32) -> Result<(Ast, NodeId)> {
    let ours = match lexer::lex_upto_failure(text) {
        Ok(toks) => match parser::parse(&toks) {
            Ok(tree) => return Ok(tree),
            Err(e) => e,
        },
        // the tokens up to where the lexer gave up: the parser finds the
        // error there (the end of the input, or an invalid token) or before
        Err((mut toks, at)) => {
            if at < text.len() {
                toks.push(lexer::Token { kind: lexer::Tok::Invalid, start: at as u32, end: at as u32 + 1 });
            }
            parser::parse(&toks).err().flatten()
        }
    };
    let ours_error = |e: &parser::SyntaxError| {
        let offset = e.token.map_or(text.len() as u32, |t| t.start);
        crate::Error::parse(e.message(), crate::ir::Span { file, offset })
    };
    if let Some(e) = ours.filter(|e| e.rnix_lax) {
        return Err(ours_error(&e));
    }
    from_rnix::parse(text, file).map_err(|e| match ours {
        Some(ours) if e.0.msg.starts_with("syntax error, unexpected") => ours_error(&ours),
        _ => e,
    })
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
