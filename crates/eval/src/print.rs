//! Printing values the way `nix-instantiate --eval` does, plus the short
//! forms used inside error messages.

use std::fmt::Write as _;

use rustc_hash::FxHashSet;

use crate::ir::Span;
use crate::value::{Shared, Value};

/// `file:line:col` of a span.
pub fn pos_string(span: Span) -> String {
    match crate::source::get(span.file) {
        Some((name, text)) if !span.is_none() => {
            let (l, c) = crate::source::line_col(&text, span.offset as usize);
            format!("{name}:{l}:{c}")
        }
        _ => "«none»".into(),
    }
}

/// Format a float like C++ `ostream << double` (`%g`, 6 significant digits).
pub fn fmt_float(x: f64) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan".into() } else { "nan".into() };
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf".into() } else { "inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sci = format!("{:.5e}", x);
    let (mant, exp) = sci.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("exponent digits");
    if !(-4..6).contains(&exp) {
        let mut m = mant.to_string();
        if m.contains('.') {
            while m.ends_with('0') {
                m.pop();
            }
            if m.ends_with('.') {
                m.pop();
            }
        }
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (5 - exp).max(0) as usize;
        let mut s = format!("{:.*}", decimals, x);
        if s.contains('.') {
            while s.ends_with('0') {
                s.pop();
            }
            if s.ends_with('.') {
                s.pop();
            }
        }
        s
    }
}

/// A string literal with Nix escapes.
pub fn escape_string(out: &mut String, s: &[u8]) {
    out.push('"');
    let text = String::from_utf8_lossy(s);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Is `s` a plain identifier (so an attribute name needs no quotes)?
pub fn is_plain_ident(s: &[u8]) -> bool {
    if s.is_empty() {
        return false;
    }
    let first = s[0];
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return false;
    }
    if !s.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'\'' || c == b'-') {
        return false;
    }
    // (C++ Nix's reserved keywords: `or` is none, it prints bare)
    !matches!(s, b"if" | b"then" | b"else" | b"assert" | b"with" | b"let" | b"in" | b"rec" | b"inherit")
}

/// Print like `nix-instantiate --eval`: values that are still thunks print
/// as `<CODE>`, repeated sets/lists as `«repeated»`.
pub fn print_value(v: &Value) -> String {
    let mut out = String::new();
    let mut seen = FxHashSet::default();
    print_ambiguous(&mut out, v, &mut seen, 0, "<CODE>");
    out
}

/// Like [`print_value`] but unevaluated thunks show as `«thunk»` (how
/// `builtins.trace` prints).
pub fn print_value_trace(v: &Value) -> String {
    let mut out = String::new();
    let mut seen = FxHashSet::default();
    print_ambiguous(&mut out, v, &mut seen, 0, "«thunk»");
    out
}

/// `via` identifies the heap cell the value was reached through (a thunk),
/// standing in for C++ Nix's `Value*`: small lists (up to two elements) are
/// stored inside the Value there, so their identity is the cell's.
fn print_ambiguous(out: &mut String, v: &Value, seen: &mut FxHashSet<usize>, via: usize, thunk: &str) {
    stacker::maybe_grow(64 * 1024, 1024 * 1024, || print_ambiguous_inner(out, v, seen, via, thunk))
}

fn print_ambiguous_inner(out: &mut String, v: &Value, seen: &mut FxHashSet<usize>, via: usize, thunk: &str) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&fmt_float(*f)),
        Value::String(s) => escape_string(out, &s.bytes),
        Value::Path(p) => out.push_str(&p.to_str_lossy()),
        Value::Attrs(a) => {
            if !a.is_empty() && !seen.insert(a.as_ptr() as usize) {
                out.push_str("«repeated»");
                return;
            }
            out.push_str("{ ");
            for attr in a.sorted_by_name() {
                let name = attr.name.as_bytes();
                if is_plain_ident(name) {
                    out.push_str(&String::from_utf8_lossy(name));
                } else {
                    escape_string(out, name);
                }
                out.push_str(" = ");
                print_ambiguous(out, &attr.value, seen, 0, thunk);
                out.push_str("; ");
            }
            out.push('}');
        }
        Value::List(l) => {
            let key = if l.len() <= 2 { via } else { Shared::as_ptr(l) as usize };
            if !l.is_empty() && key != 0 && !seen.insert(key) {
                out.push_str("«repeated»");
                return;
            }
            out.push_str("[ ");
            for x in l.iter() {
                print_ambiguous(out, x, seen, 0, thunk);
                out.push(' ');
            }
            out.push(']');
        }
        Value::Lambda(_) => out.push_str("<LAMBDA>"),
        Value::PrimOp(_) => out.push_str("<PRIMOP>"),
        Value::PrimOpApp(_) => out.push_str("<PRIMOP-APP>"),
        Value::Thunk(t) => match t.value() {
            Some(v) => print_ambiguous(out, v, seen, t.as_ptr(), thunk),
            None => out.push_str(thunk),
        },
    }
}

/// The short form of a value used in error messages (`"foo"`, `{ a = 1; }`,
/// `«lambda @ file:1:2»`), abbreviated like modern Nix.
pub fn print_error_value(v: &Value) -> String {
    let mut p = ErrPrinter { out: String::new(), attrs: 0, items: 0 };
    p.print(v, 0);
    p.out
}

/// C++ Nix's printer with its options for values in error messages: sets
/// and lists nested ten deep print as `{ ... }` / `[ ... ]`, and at most
/// ten attributes and ten list items are printed in all (counted over the
/// whole value, an item after its own contents), the rest of each set or
/// list as `«N attributes elided»` / `«N items elided»`.
struct ErrPrinter {
    out: String,
    attrs: usize,
    items: usize,
}

const ERR_MAX_DEPTH: usize = 10;
const ERR_MAX_ATTRS: usize = 10;
const ERR_MAX_ITEMS: usize = 10;

impl ErrPrinter {
    /// `«3 items elided»`, `«1 attribute elided»`
    fn elided(&mut self, n: usize, what: &str) {
        let _ = write!(self.out, "«{n} {what}{} elided»", if n == 1 { "" } else { "s" });
    }

    fn print(&mut self, v: &Value, depth: usize) {
        match v {
            Value::Attrs(a) => {
                if depth >= ERR_MAX_DEPTH {
                    self.out.push_str("{ ... }");
                    return;
                }
                self.out.push('{');
                let sorted: Vec<&crate::value::Attr> = a.sorted_by_name().collect();
                for (shown, attr) in sorted.iter().enumerate() {
                    self.out.push(' ');
                    if self.attrs >= ERR_MAX_ATTRS {
                        self.elided(sorted.len() - shown, "attribute");
                        break;
                    }
                    let name = attr.name.as_bytes();
                    if is_plain_ident(name) {
                        self.out.push_str(&String::from_utf8_lossy(name));
                    } else {
                        escape_string(&mut self.out, name);
                    }
                    self.out.push_str(" = ");
                    self.print(&attr.value, depth + 1);
                    self.out.push(';');
                    self.attrs += 1;
                }
                self.out.push_str(" }");
            }
            Value::List(l) => {
                if depth >= ERR_MAX_DEPTH {
                    self.out.push_str("[ ... ]");
                    return;
                }
                self.out.push('[');
                for (shown, x) in l.iter().enumerate() {
                    self.out.push(' ');
                    if self.items >= ERR_MAX_ITEMS {
                        self.elided(l.len() - shown, "item");
                        break;
                    }
                    self.print(x, depth + 1);
                    self.items += 1;
                }
                self.out.push_str(" ]");
            }
            Value::Lambda(c) => {
                let _ = write!(self.out, "«lambda @ {}»", pos_string(c.lambda.pos));
            }
            Value::PrimOp(p) => {
                let _ = write!(self.out, "«primop {}»", p.name);
            }
            Value::PrimOpApp(p) => {
                let _ = write!(self.out, "«partially applied primop {}»", p.op.name);
            }
            Value::Thunk(t) => match t.value() {
                Some(v) => self.print(v, depth),
                None => self.out.push_str("«thunk»"),
            },
            other => print_ambiguous(&mut self.out, other, &mut FxHashSet::default(), 0, "«thunk»"),
        }
    }
}
