//! Control and reflection: throw/abort/tryEval, seq/deepSeq, trace, type
//! predicates, functionArgs, genericClosure.


use rustc_hash::FxHashSet;

use crate::error::{Error, ErrorKind, Result};
use crate::ir::Span;
use crate::symbol::{sym, Symbol};
use crate::value::{Attr, AttrSet, PrimOpDef, Want, Value};
use crate::{Coerce, Context, Eval};

pub static DEFS: &[PrimOpDef] = &[
    PrimOpDef { name: "throw", arity: 1, func: throw, forces: &[] },
    PrimOpDef { name: "abort", arity: 1, func: abort, forces: &[] },
    PrimOpDef { name: "tryEval", arity: 1, func: try_eval, forces: &[] },
    PrimOpDef { name: "seq", arity: 2, func: seq, forces: &[(0, Want::Any), (1, Want::Any)] },
    PrimOpDef { name: "deepSeq", arity: 2, func: deep_seq, forces: &[] },
    PrimOpDef { name: "trace", arity: 2, func: trace, forces: &[] },
    PrimOpDef { name: "traceVerbose", arity: 2, func: trace_verbose, forces: &[] },
    PrimOpDef { name: "warn", arity: 2, func: warn, forces: &[] },
    PrimOpDef { name: "addErrorContext", arity: 2, func: add_error_context, forces: &[(1, Want::Any)] },
    PrimOpDef { name: "break", arity: 1, func: break_, forces: &[] },
    PrimOpDef { name: "typeOf", arity: 1, func: type_of, forces: &[(0, Want::Any)] },
    PrimOpDef { name: "isNull", arity: 1, func: is_null, forces: &[(0, Want::Any)] },
    PrimOpDef { name: "isInt", arity: 1, func: is_int, forces: &[(0, Want::Any)] },
    PrimOpDef { name: "isFloat", arity: 1, func: is_float, forces: &[(0, Want::Any)] },
    PrimOpDef { name: "isBool", arity: 1, func: is_bool, forces: &[(0, Want::Any)] },
    PrimOpDef { name: "isString", arity: 1, func: is_string, forces: &[(0, Want::Any)] },
    PrimOpDef { name: "isPath", arity: 1, func: is_path, forces: &[(0, Want::Any)] },
    PrimOpDef { name: "isList", arity: 1, func: is_list, forces: &[(0, Want::Any)] },
    PrimOpDef { name: "isAttrs", arity: 1, func: is_attrs, forces: &[(0, Want::Any)] },
    PrimOpDef { name: "isFunction", arity: 1, func: is_function, forces: &[(0, Want::Any)] },
    PrimOpDef { name: "functionArgs", arity: 1, func: function_args, forces: &[] },
    PrimOpDef { name: "genericClosure", arity: 1, func: generic_closure, forces: &[] },
    PrimOpDef { name: "unsafeGetAttrPos", arity: 2, func: unsafe_get_attr_pos, forces: &[] },
];

/// Stands in for `derivation` when no `derivationStrict` is registered.
pub static NO_DERIVATION: PrimOpDef = PrimOpDef { name: "derivation", arity: 1, func: no_derivation, forces: &[] };

fn no_derivation(_: &Eval, _: &[Value], _: Span) -> Result<Value> {
    Err(Error::eval("derivations need the store: `derivation` is provided by the glue (ferrix-glue), not by ferrix-eval alone"))
}

fn msg(ev: &Eval, v: &Value) -> Result<String> {
    let mut ctx = Context::new();
    let s = ev.coerce_to_string(v, &mut ctx, Coerce { more: true, copy_to_store: false })?;
    Ok(String::from_utf8_lossy(&s).into_owned())
}

/// `builtins.tryEval (throw "x")` → `{ success = false; value = false; }`
fn throw(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    Err(Error::throw(msg(ev, &a[0])?))
}
fn abort(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    Err(Error::new(ErrorKind::Abort, format!("evaluation aborted with the following error message: '{}'", msg(ev, &a[0])?)))
}
/// `builtins.tryEval 1` → `{ success = true; value = 1; }`
fn try_eval(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    match ev.force(&a[0]) {
        Ok(v) => Ok(Value::attrs_from([(sym::success(), Value::Bool(true)), (sym::value(), v)])),
        Err(e) if matches!(e.kind(), ErrorKind::Throw | ErrorKind::Assert) => {
            Ok(Value::attrs_from([(sym::success(), Value::Bool(false)), (sym::value(), Value::Bool(false))]))
        }
        Err(e) => Err(e),
    }
}
/// `builtins.seq 1 2` → `2`
fn seq(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    ev.force(&a[0])?;
    ev.force(&a[1])
}
/// `builtins.deepSeq [ 1 ] 2` → `2`
fn deep_seq(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    ev.force_deep(&a[0])?;
    ev.force(&a[1])
}
fn trace(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let v = ev.force(&a[0])?;
    match &v {
        Value::String(s) => eprintln!("trace: {}", crate::error::filter_ansi(&s.to_str_lossy())),
        _ => eprintln!("trace: {}", crate::print::print_value_trace(&v)),
    }
    ev.force(&a[1])
}
fn trace_verbose(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    ev.force(&a[1])
}
/// `builtins.warn`'s line(s) as C++ Nix prints them: the lines of the
/// message after its first hang under the "evaluation warning: " prefix,
/// except that a message starting with a line break is printed as it is,
/// below the bare prefix.
fn warning_text(msg: &str) -> String {
    const PREFIX: &str = "evaluation warning:";
    if msg.starts_with('\n') {
        return format!("{PREFIX}{msg}");
    }
    let hang = format!("\n{}", " ".repeat(PREFIX.len() + 1));
    format!("{PREFIX} {}", msg.replace('\n', &hang))
}

fn warn(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let v = ev.force(&a[0])?;
    match &v {
        Value::String(s) => eprintln!("{}", warning_text(&crate::error::filter_ansi(&s.to_str_lossy()))),
        _ => {
            return Err(Error::eval(format!(
                "expected a string but found {}",
                crate::show_value_short(&v)
            )));
        }
    }
    if ev.opts.abort_on_warn {
        // not catchable by tryEval, like C++ Nix's EvalBaseError
        return Err(Error::new(
            crate::ErrorKind::Abort,
            "aborting to reveal stack trace of warning, as abort-on-warn is set",
        ));
    }
    ev.force(&a[1])
}
fn add_error_context(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    match ev.force(&a[1]) {
        Ok(v) => Ok(v),
        Err(e) => match msg(ev, &a[0]) {
            Ok(m) => Err(e.while_always(m, Span::NONE)),
            Err(_) => Err(e),
        },
    }
}
fn break_(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    ev.force(&a[0])
}
/// `builtins.typeOf 1` → `"int"`
fn type_of(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    Ok(Value::str(ev.force(&a[0])?.type_name()))
}
fn is_null(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::Null)))
}
fn is_int(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::Int(_))))
}
fn is_float(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::Float(_))))
}
fn is_bool(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::Bool(_))))
}
fn is_string(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::String(_))))
}
fn is_path(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::Path(_))))
}
fn is_list(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::List(_))))
}
fn is_attrs(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::Attrs(_))))
}
fn is_function(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    Ok(Value::Bool(ev.force(&a[0])?.is_function()))
}
/// `builtins.functionArgs ({ a, b ? 1 }: a)` → `{ a = false; b = true; }`
fn function_args(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let f = ev.force(&a[0])?;
    match &f {
        Value::Lambda(c) => match &c.lambda.formals {
            Some(fs) => Ok(Value::attrs(AttrSet::from_unsorted(
                fs.entries
                    .iter()
                    .map(|e| Attr { name: e.name, value: Value::Bool(e.default.is_some()), pos: e.pos.into() })
                    .collect(),
            ))),
            None => Ok(Value::attrs(AttrSet::default())),
        },
        Value::PrimOp(_) | Value::PrimOpApp(_) => Ok(Value::attrs(AttrSet::default())),
        _ => Err(Error::eval("'functionArgs' requires a function")),
    }
}

#[derive(PartialEq, Eq, Hash)]
enum Key {
    Int(i64),
    Str(Box<[u8]>),
}

/// `builtins.genericClosure { startSet = [ { key = 1; } ]; operator = x: [ ]; }`
fn generic_closure(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    use crate::print::print_error_value as show;
    let args = ev.force_attrs(&a[0])?;
    let in_args = "in the attrset passed as argument to builtins.genericClosure";
    let start = args
        .get(Symbol::new("startSet"))
        .ok_or_else(|| Error::eval("attribute 'startSet' missing").while_(in_args, Span::NONE))?;
    let op = args
        .get(Symbol::new("operator"))
        .ok_or_else(|| Error::eval("attribute 'operator' missing").while_(in_args, Span::NONE))?;
    let start = ev.force_list(start).map_err(|e| {
        e.while_("while evaluating the 'startSet' attribute passed as argument to builtins.genericClosure", Span::NONE)
    })?;
    let op = ev.force_function(op).map_err(|e| {
        e.while_("while evaluating the 'operator' attribute passed as argument to builtins.genericClosure", Span::NONE)
    })?;
    let mut work: std::collections::VecDeque<Value> = start.iter().cloned().collect();
    let mut seen_fast: FxHashSet<Key> = FxHashSet::default();
    let mut seen_slow: Vec<(Value, Value)> = Vec::new();
    let mut out = Vec::new();
    let mut first: Option<(Value, Value)> = None;
    while let Some(item) = work.pop_front() {
        let item = ev.force(&item)?;
        let in_elem = || format!("in genericClosure element {}", show(&item));
        let e = ev.force_attrs(&item).map_err(|e| e.while_(in_elem(), Span::NONE))?;
        let key = e
            .get(sym::key())
            .ok_or_else(|| Error::eval("attribute 'key' missing").while_(in_elem(), Span::NONE))?;
        let key = ev.force(key).map_err(|e| e.while_(in_elem(), Span::NONE))?;
        let comparing = |err: Error, other: &Value| {
            err.while_(format!("with element {}", show(other)), Span::NONE)
                .while_(format!("while comparing element {}", show(&item)), Span::NONE)
        };
        match &first {
            None => first = Some((key.clone(), item.clone())),
            Some((f, f_item)) => {
                let comparable = matches!(key, Value::Int(_) | Value::Float(_) | Value::String(_) | Value::Path(_) | Value::List(_));
                let num = |v: &Value| matches!(v, Value::Int(_) | Value::Float(_));
                if !comparable {
                    return Err(comparing(
                        Error::eval(format!(
                            "cannot compare {} with {}; values of that type are incomparable (values are {} and {})",
                            f.show_type(),
                            key.show_type(),
                            show(f),
                            show(&key)
                        )),
                        f_item,
                    ));
                }
                if f.type_name() != key.type_name() && !(num(f) && num(&key)) {
                    return Err(comparing(
                        Error::eval(format!(
                            "cannot compare {} with {}; values are {} and {}",
                            key.show_type(),
                            f.show_type(),
                            show(&key),
                            show(f)
                        )),
                        f_item,
                    ));
                }
            }
        }
        let new = match &key {
            Value::Int(i) => seen_fast.insert(Key::Int(*i)),
            Value::String(s) => seen_fast.insert(Key::Str(s.bytes.into())),
            _ => {
                let mut found = false;
                for (k, k_item) in &seen_slow {
                    if k.type_name() != key.type_name() {
                        return Err(comparing(
                            Error::eval(format!(
                                "cannot compare {} with {}",
                                crate::show_value_short(k),
                                crate::show_value_short(&key)
                            )),
                            k_item,
                        ));
                    }
                    if ev.equal(k, &key).map_err(|e| comparing(e, k_item))? {
                        found = true;
                        break;
                    }
                }
                if !found {
                    seen_slow.push((key.clone(), item.clone()));
                }
                !found
            }
        };
        if !new {
            continue;
        }
        out.push(item.clone());
        let calling = || format!("while calling operator on genericClosure element {}", show(&item));
        let next = ev.call(&op, item.clone(), Span::NONE).map_err(|e| e.while_(calling(), Span::NONE))?;
        let next = ev.force_list(&next).map_err(|e| {
            e.while_("while evaluating the return value of the `operator` passed to builtins.genericClosure", Span::NONE)
                .while_(calling(), Span::NONE)
        })?;
        work.extend(next.iter().cloned());
    }
    Ok(Value::list(out))
}

fn unsafe_get_attr_pos(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let name = ev.force_string(&a[0])?;
    let set = ev.force_attrs(&a[1])?;
    match set.get_attr(Symbol::of_string(name.as_bytes())) {
        Some(attr) => Ok(ev.pos_value(attr.pos.span())),
        None => Ok(Value::Null),
    }
}
