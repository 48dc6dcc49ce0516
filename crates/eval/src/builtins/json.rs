//! JSON and TOML: toJSON, fromJSON, fromTOML.

use crate::error::{Error, Result};
use crate::ir::{Pos, Span};
use crate::symbol::{sym, Symbol};
use crate::value::{Attr, AttrSet, PrimOpDef, Value};
use crate::{Coerce, Context, Eval};

pub static DEFS: &[PrimOpDef] = &[
    PrimOpDef { name: "toJSON", arity: 1, func: to_json, forces: &[] },
    PrimOpDef { name: "fromJSON", arity: 1, func: from_json, forces: &[] },
    PrimOpDef { name: "fromTOML", arity: 1, func: from_toml, forces: &[] },
];

fn json_string(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    // copy runs that need no escape whole
    let mut run = 0;
    for (i, &c) in s.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            c if c < 0x20 => {
                out.extend_from_slice(&s[run..i]);
                run = i + 1;
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&s[run..i]);
        out.extend_from_slice(esc);
        run = i + 1;
    }
    out.extend_from_slice(&s[run..]);
    out.push(b'"');
}

/// Write a scalar (null, Boolean, integer, string) straight out; `false`
/// for anything else.
#[inline]
fn scalar_json(v: &Value, ctx: &mut Context, out: &mut Vec<u8>) -> Result<bool> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        Value::String(s) => {
            s.collect_context(ctx);
            if let Err(e) = std::str::from_utf8(&s.bytes) {
                let i = e.valid_up_to();
                return Err(Error::eval(format!(
                    "JSON serialization error: [json.exception.type_error.316] invalid UTF-8 byte at index {i}: 0x{:02X}",
                    s.bytes[i]
                )));
            }
            json_string(out, &s.bytes);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Serialise a value as JSON (forcing it), collecting string context.
pub fn to_json_bytes(ev: &Eval, v: &Value, ctx: &mut Context, copy_to_store: bool, out: &mut Vec<u8>) -> Result<()> {
    to_json_at(ev, v, ctx, copy_to_store, out, Span::NONE)
}

/// [`to_json_bytes`] of a value found at `pos` (C++ Nix's printValueAsJSON
/// passes down the position of the attribute a value came from, or the
/// call's: "while evaluating list element" frames are shown there).
fn to_json_at(ev: &Eval, v: &Value, ctx: &mut Context, copy_to_store: bool, out: &mut Vec<u8>, pos: Span) -> Result<()> {
    let v = ev.force(v)?;
    if scalar_json(&v, ctx, out)? {
        return Ok(());
    }
    stacker::maybe_grow(64 * 1024, 1024 * 1024, || -> Result<()> {
        let depth = ev.call_depth.get();
        if depth >= ev.opts.max_call_depth {
            return Err(Error::new(crate::ErrorKind::StackOverflow, "stack overflow; max-call-depth exceeded"));
        }
        ev.call_depth.set(depth + 1);
        let r = (|| -> Result<()> {
            match &v {
                Value::Float(f) => {
                    // like nlohmann::json: shortest round-trip representation
                    if f.is_finite() {
                        let mut b = ryu::Buffer::new();
                        let s = b.format(*f);
                        let s = s.strip_suffix(".0").unwrap_or(s);
                        out.extend_from_slice(s.as_bytes());
                    } else {
                        out.extend_from_slice(b"null");
                    }
                }
                Value::Path(_) => {
                    let s = ev.coerce_to_string(&v, ctx, Coerce { more: false, copy_to_store })?;
                    json_string(out, &s);
                }
                Value::Attrs(a) => {
                    if let Some(attr) = a.get_attr(sym::to_string()) {
                        let pos: Pos = attr.pos;
                        let r = ev
                            .force(&attr.value)
                            .and_then(|f| ev.call(&f, v.clone(), pos.span()))
                            .and_then(|r| ev.force(&r))
                            .map_err(|e| e.while_("while calling the `__toString` attribute", pos))?;
                        let using = "while using the result of the `__toString` attribute";
                        let s = match &r {
                            Value::Attrs(ra) if ra.get(sym::to_string()).is_some() || ra.get(sym::out_path()).is_some() => ev
                                .coerce_to_string(&r, ctx, Coerce { more: false, copy_to_store })
                                .map_err(|e| e.while_(using, pos))?,
                            Value::String(_) | Value::Path(_) => ev
                                .coerce_to_string(&r, ctx, Coerce { more: false, copy_to_store })
                                .map_err(|e| e.while_(using, pos))?,
                            Value::Attrs(_) => {
                                return Err(Error::eval(format!(
                                    "`__toString` must return a string, but got a set: {}",
                                    crate::print::print_error_value(&r)
                                ))
                                .at(pos)
                                .while_(using, pos));
                            }
                            other => {
                                return Err(Error::eval(format!(
                                    "`__toString` should return a string, but got {}",
                                    crate::show_value_short(other)
                                ))
                                .at(pos)
                                .while_(using, pos));
                            }
                        };
                        json_string(out, &s);
                        return Ok(());
                    }
                    if let Some(attr) = a.get_attr(sym::out_path()) {
                        return to_json_at(ev, &attr.value, ctx, copy_to_store, out, attr.pos.span())
                            .map_err(|e| e.while_("while using the `outPath` attribute", attr.pos));
                    }
                    out.push(b'{');
                    for (i, attr) in a.sorted_by_name().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        json_string(out, attr.name.as_bytes());
                        out.push(b':');
                        to_json_at(ev, &attr.value, ctx, copy_to_store, out, attr.pos.span()).map_err(|e| {
                            e.while_(format!("while evaluating attribute '{}'", attr.name), attr.pos)
                        })?;
                    }
                    out.push(b'}');
                }
                Value::List(l) => {
                    out.push(b'[');
                    for (i, x) in l.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        to_json_at(ev, x, ctx, copy_to_store, out, pos)
                            .map_err(|e| e.while_(format!("while evaluating list element at index {i}"), pos))?;
                    }
                    out.push(b']');
                }
                other => {
                    return Err(Error::eval(format!("cannot convert {} to JSON", other.show_type())));
                }
            }
            Ok(())
        })();
        ev.call_depth.set(depth);
        r
    })
}

/// `builtins.toJSON { a = [ 1 ]; }` → `"{\"a\":[1]}"`
fn to_json(ev: &Eval, a: &[Value], pos: Span) -> Result<Value> {
    let mut out = Vec::new();
    let mut ctx = Context::new();
    to_json_at(ev, &a[0], &mut ctx, true, &mut out, pos)?;
    Ok(Value::string_ctx(out, ctx))
}

/// Builds Nix values straight from the JSON parser (no intermediate
/// document). Errors that are not JSON syntax errors (NUL bytes, unsigned
/// overflow) are kept in `err` while parsing goes on, so a syntax error
/// anywhere still wins, as when the document was parsed first.
#[derive(Clone, Copy)]
struct Json<'a> {
    err: &'a std::cell::RefCell<Option<Error>>,
}

impl Json<'_> {
    #[cold]
    fn fail(&self, e: Error) -> Value {
        self.err.borrow_mut().get_or_insert(e);
        Value::Null
    }
    fn string(&self, s: &str) -> Value {
        if s.contains('\0') {
            return self.fail(Error::eval(crate::lower::nul_message(s)));
        }
        Value::str(s)
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Json<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Json<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, b: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> std::result::Result<Value, E> {
        Ok(Value::Int(i))
    }
    fn visit_u64<E>(self, n: u64) -> std::result::Result<Value, E> {
        Ok(match i64::try_from(n) {
            Ok(i) => Value::Int(i),
            Err(_) => self.fail(Error::eval(format!("unsigned json number {n} outside of Nix integer range"))),
        })
    }
    fn visit_f64<E>(self, f: f64) -> std::result::Result<Value, E> {
        Ok(Value::Float(f))
    }
    fn visit_str<E>(self, s: &str) -> std::result::Result<Value, E> {
        Ok(self.string(s))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::list(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut attrs = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(name) = map.next_key_seed(JsonKey(self))? {
            let value = map.next_value_seed(self)?;
            attrs.push(Attr { name, value, pos: crate::ir::Pos::NONE });
        }
        // by symbol, a later duplicate key winning (a stable sort keeps
        // equal names in document order; dedup_by hands the later first)
        attrs.sort_by_key(|a| a.name);
        attrs.dedup_by(|later, kept| {
            if later.name == kept.name {
                std::mem::swap(later, kept);
                true
            } else {
                false
            }
        });
        Ok(Value::attrs(AttrSet::from_sorted(attrs)))
    }
}

/// An object key, interned as it is read.
struct JsonKey<'a>(Json<'a>);

impl<'de> serde::de::DeserializeSeed<'de> for JsonKey<'_> {
    type Value = Symbol;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Symbol, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for JsonKey<'_> {
    type Value = Symbol;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E>(self, s: &str) -> std::result::Result<Symbol, E> {
        if s.contains('\0') {
            self.0.fail(Error::eval(crate::lower::nul_message(s)));
        }
        Ok(Symbol::new(s))
    }
}

/// `builtins.fromJSON "[1]"` → `[ 1 ]`
fn from_json(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let s = ev.force_string(&a[0])?;
    let err = std::cell::RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(&s.bytes);
    let v = serde::de::DeserializeSeed::deserialize(Json { err: &err }, &mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| Error::eval(format!("while parsing JSON: {e}")))?;
    match err.into_inner() {
        Some(e) => Err(e),
        None => Ok(v),
    }
}

/// A TOML parse error. A decimal integer out of the 64-bit range is
/// worded and drawn as C++ Nix's TOML parser (toml11) does, pointing just
/// past the number; other errors keep the parser's own message.
fn toml_error(text: &str, e: &toml::de::Error) -> Error {
    if let Some(span) = e.span()
        && let Some((line_no, line, end_col)) = overflowing_integer(text, span)
    {
        let gutter = " ".repeat(line_no.to_string().len() + 2);
        return Error::eval(format!(
            "while parsing TOML: [error] toml::parse_dec_integer: too large integer: current max digits = 2^63\n --> fromTOML\n{gutter}|\n {line_no} | {line}\n{gutter}| {}^-- must be < 2^63\n",
            " ".repeat(end_col)
        ));
    }
    Error::eval(format!("while parsing TOML: {}", e.message()))
}

/// A decimal integer literal inside `span` that does not fit in an i64:
/// its line's number and text, and the column (0-based, in characters)
/// just past it.
fn overflowing_integer(text: &str, span: std::ops::Range<usize>) -> Option<(usize, &str, usize)> {
    let lit = text.get(span.clone())?;
    let skip = lit.len() - lit.trim_start().len();
    let digits = lit.trim();
    let body = digits.strip_prefix(['+', '-']).unwrap_or(digits);
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return None;
    }
    if digits.replace('_', "").parse::<i64>().is_ok() {
        return None;
    }
    let end = span.start + skip + digits.len();
    let line_start = text[..end].rfind('\n').map_or(0, |p| p + 1);
    let line_end = text[end..].find('\n').map_or(text.len(), |p| end + p);
    let line_no = text[..line_start].matches('\n').count() + 1;
    Some((line_no, text[line_start..line_end].trim_end_matches('\r'), text[line_start..end].chars().count()))
}

/// A TOML date/time as Nix prints it: fractional seconds padded to 3, 6 or 9 digits.
fn toml_timestamp(d: &toml::value::Datetime) -> String {
    let s = d.to_string();
    let Some(dot) = s.find('.') else { return s };
    let digits = s[dot + 1..].bytes().take_while(|b| b.is_ascii_digit()).count();
    let target: usize = if digits <= 3 { 3 } else if digits <= 6 { 6 } else { 9 };
    let mut out = s[..dot + 1 + digits.min(9)].to_string();
    out.extend(std::iter::repeat_n('0', target.saturating_sub(digits)));
    out.push_str(&s[dot + 1 + digits..]);
    out
}

fn from_toml_value(v: toml::Value, timestamps: bool) -> Result<Value> {
    Ok(match v {
        toml::Value::String(s) => {
            if s.contains('\0') {
                return Err(Error::eval(format!("while parsing TOML: error: {}", crate::lower::nul_message(&s))));
            }
            Value::str(&s)
        }
        toml::Value::Integer(i) => Value::Int(i),
        toml::Value::Float(f) => Value::Float(f),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => {
            if !timestamps {
                let _ = d;
                return Err(Error::eval("while parsing TOML: Dates and times are not supported"));
            }
            Value::attrs_from([
                (Symbol::new("_type"), Value::str("timestamp")),
                (sym::value(), Value::str(&toml_timestamp(&d))),
            ])
        }
        toml::Value::Array(a) => {
            Value::list(a.into_iter().map(|x| from_toml_value(x, timestamps)).collect::<Result<_>>()?)
        }
        toml::Value::Table(t) => {
            let mut attrs = Vec::with_capacity(t.len());
            for (k, v) in t {
                if k.contains('\0') {
                    return Err(Error::eval(format!("while parsing TOML: error: {}", crate::lower::nul_message(&k))));
                }
                attrs.push(Attr { name: Symbol::new(&k), value: from_toml_value(v, timestamps)?, pos: crate::ir::Pos::NONE });
            }
            Value::attrs(AttrSet::from_unsorted(attrs))
        }
    })
}

/// `builtins.fromTOML "a = 1"` → `{ a = 1; }`
fn from_toml(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let s = ev.force_string(&a[0])?;
    let text = String::from_utf8_lossy(&s.bytes);
    let t: toml::Table = text.parse().map_err(|e: toml::de::Error| toml_error(&text, &e))?;
    let timestamps = ev.opts.experimental.iter().any(|f| f == "parse-toml-timestamps");
    from_toml_value(toml::Value::Table(t), timestamps)
}
