//! The fast front end: a hand-written lexer and recursive-descent parser
//! into a compact arena syntax tree ([`ast::Ast`]: fixed-size nodes indexed
//! by `u32`, child lists in side tables, text as byte ranges into the
//! source), lowered to the same IR as the rnix pipeline in `crate::lower`.
//!
//! It accepts exactly what rnix 0.15 parses without errors and builds the
//! tree rnix would (same associativity, same node offsets). On anything else
//! it gives up with [`Bail`], and `crate::lower::parse_and_lower` runs the
//! rnix pipeline instead, which then produces today's result (the syntax
//! error text, or the IR for the odd forms the fast parser leaves to rnix,
//! such as `a or` as an application or `|>`). rnix is thus the oracle and
//! the error path; `tests/parser_diff.rs` checks that both pipelines agree
//! on every `.nix` file of nixpkgs and the language tests.

pub(crate) mod ast;
pub(crate) mod lexer;
pub(crate) mod lower;
pub(crate) mod parser;

use crate::error::Result;
use crate::ir::*;
use crate::lower::{LowerCtx, Scope};

/// The fast parser does not handle this input (a syntax error, or a form
/// left to rnix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bail;

/// Parse and lower with the fast parser; `None` when it gives up.
pub(crate) fn parse_and_lower(text: &str, cx: &LowerCtx<'_>) -> Option<Result<Expr>> {
    let toks = lexer::lex(text).ok()?;
    let (ast, root) = parser::parse(&toks).ok()?;
    drop(toks);
    let base_canon = (crate::lower::canon_path(cx.base_dir) == cx.base_dir).then_some(cx.base_dir);
    let mut l = lower::Lowerer { cx, src: text, ast: &ast, scopes: Vec::new(), base_canon };
    if let Some(names) = cx.scope {
        l.scopes.push(Scope::Frame(names.iter().enumerate().map(|(i, n)| (*n, i as u32)).collect()));
    }
    Some(l.expr(root))
}

/// Whether the fast parser accepts `text` (for tests and fuzzing: it must
/// never panic, and must accept only what rnix accepts without errors).
pub fn fast_parser_accepts(text: &str) -> bool {
    lexer::lex(text).ok().and_then(|t| parser::parse(&t).ok()).is_some()
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

/// A canonical text form of an IR tree, for comparing the two pipelines.
pub fn dump(e: &Expr) -> String {
    let mut out = String::new();
    dump_into(e, &mut out);
    out
}

fn span(s: Span, out: &mut String) {
    use std::fmt::Write;
    let _ = write!(out, "@{}:{}", s.file, s.offset);
}

fn name(n: &AttrName, out: &mut String) {
    match n {
        AttrName::Static(s) => out.push_str(&format!("{:?}", s.as_bytes())),
        AttrName::Dynamic(e, p, t) => {
            out.push_str("dyn(");
            dump_into(e, out);
            span(*p, out);
            out.push_str(&format!(" {t:?})"));
        }
    }
}

fn parts(ps: &[StrPart], out: &mut String) {
    for p in ps {
        match p {
            StrPart::Lit(b) => out.push_str(&format!("lit{b:?} ")),
            StrPart::Interp(e, p) => {
                out.push_str("interp(");
                dump_into(e, out);
                span(*p, out);
                out.push_str(") ");
            }
        }
    }
}

fn dump_into(e: &Expr, out: &mut String) {
    use crate::value::Value;
    use std::fmt::Write;
    match e {
        Expr::Const(v) => match v {
            Value::Int(i) => {
                let _ = write!(out, "int {i}");
            }
            Value::Float(f) => {
                let _ = write!(out, "float {:x}", f.to_bits());
            }
            Value::String(s) => {
                let _ = write!(out, "str {:?} {:?}", s.as_bytes(), s.context);
            }
            Value::Path(s) => {
                let _ = write!(out, "path {:?}", s.as_bytes());
            }
            other => {
                let _ = write!(out, "const {other:?}");
            }
        },
        Expr::Var { depth, slot } => {
            let _ = write!(out, "var {depth} {slot}");
        }
        Expr::Global(g) => {
            let _ = write!(out, "global {g}");
        }
        Expr::WithVar { name, withs, pos } => {
            let _ = write!(out, "withvar {:?} {withs:?}", name.as_bytes());
            span(*pos, out);
        }
        Expr::Attrs(a) => {
            let _ = write!(out, "attrs rec={} {{", a.rec);
            for d in &a.attrs {
                let _ = write!(out, "{:?}", d.name.as_bytes());
                span(d.pos, out);
                out.push('=');
                dump_into(&d.value, out);
                out.push_str("; ");
            }
            out.push_str("dyn: ");
            for d in &a.dynamic {
                dump_into(&d.name, out);
                span(d.pos, out);
                out.push('=');
                dump_into(&d.value, out);
                out.push_str("; ");
            }
            out.push_str("hidden: ");
            for h in &a.hidden {
                dump_into(h, out);
                out.push_str("; ");
            }
            out.push('}');
        }
        Expr::List(items) => {
            out.push('[');
            for i in items.iter() {
                dump_into(i, out);
                out.push_str(", ");
            }
            out.push(']');
        }
        Expr::Lambda(l) => {
            let _ = write!(out, "lambda name={:?} arg={:?}", l.name.map(|n| n.as_bytes()), l.arg.map(|n| n.as_bytes()));
            span(l.pos, out);
            if let Some(f) = &l.formals {
                let _ = write!(out, " formals(ellipsis={} at={:?}: ", f.ellipsis, f.at.map(|n| n.as_bytes()));
                for fe in &f.entries {
                    let _ = write!(out, "{:?}", fe.name.as_bytes());
                    span(fe.pos, out);
                    if let Some(d) = &fe.default {
                        out.push_str(" ? ");
                        dump_into(d, out);
                    }
                    out.push_str(", ");
                }
                out.push(')');
            }
            out.push_str(" body(");
            dump_into(&l.body, out);
            out.push(')');
        }
        Expr::Apply { f, args, pos } => {
            out.push_str("apply(");
            dump_into(f, out);
            for a in args.iter() {
                out.push_str(" | ");
                dump_into(a, out);
            }
            out.push(')');
            span(*pos, out);
        }
        Expr::Select { e, path, default, pos } => {
            out.push_str("select(");
            dump_into(e, out);
            out.push_str(" . ");
            for n in path.iter() {
                name(n, out);
                out.push(' ');
            }
            if let Some(d) = default {
                out.push_str(" or ");
                dump_into(d, out);
            }
            out.push(')');
            span(*pos, out);
        }
        Expr::HasAttr { e, path, pos } => {
            out.push_str("has(");
            dump_into(e, out);
            out.push_str(" ? ");
            for n in path.iter() {
                name(n, out);
                out.push(' ');
            }
            out.push(')');
            span(*pos, out);
        }
        Expr::Let { binds, body } => {
            out.push_str("let(");
            for b in binds.iter() {
                dump_into(b, out);
                out.push_str("; ");
            }
            out.push_str(" in ");
            dump_into(body, out);
            out.push(')');
        }
        Expr::With { ns, body } => {
            out.push_str("with(");
            dump_into(ns, out);
            out.push_str("; ");
            dump_into(body, out);
            out.push(')');
        }
        Expr::If { cond, then, else_, pos } => {
            out.push_str("if(");
            dump_into(cond, out);
            out.push_str(" then ");
            dump_into(then, out);
            out.push_str(" else ");
            dump_into(else_, out);
            out.push(')');
            span(*pos, out);
        }
        Expr::Assert { cond, body, text, pos } => {
            let _ = write!(out, "assert({text:?} ");
            dump_into(cond, out);
            out.push_str("; ");
            dump_into(body, out);
            out.push(')');
            span(*pos, out);
        }
        Expr::Bin { op, l, r, pos, lpos, rpos } => {
            let _ = write!(out, "bin({op:?} ");
            dump_into(l, out);
            span(*lpos, out);
            out.push_str(", ");
            dump_into(r, out);
            span(*rpos, out);
            out.push(')');
            span(*pos, out);
        }
        Expr::Not(e, p) => {
            out.push_str("not(");
            dump_into(e, out);
            out.push(')');
            span(*p, out);
        }
        Expr::Neg(e, p) => {
            out.push_str("neg(");
            dump_into(e, out);
            out.push(')');
            span(*p, out);
        }
        Expr::Interp { parts: ps, pos } => {
            out.push_str("interp(");
            parts(ps, out);
            out.push(')');
            span(*pos, out);
        }
        Expr::PathInterp { parts: ps, pos } => {
            out.push_str("pathinterp(");
            parts(ps, out);
            out.push(')');
            span(*pos, out);
        }
        Expr::SearchPath { path, pos } => {
            let _ = write!(out, "search({path:?})");
            span(*pos, out);
        }
        Expr::CurPos(p) => {
            out.push_str("curpos");
            span(*p, out);
        }
    }
}
