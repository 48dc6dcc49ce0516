//! Arithmetic, comparison and bit operations.

use crate::error::{Error, Result};
use crate::ir::{BinOp, Span};
use crate::value::{PrimOpDef, Value};
use crate::Eval;

pub static DEFS: &[PrimOpDef] = &[
    PrimOpDef { name: "add", arity: 2, func: add, forces: &[] },
    PrimOpDef { name: "sub", arity: 2, func: sub, forces: &[] },
    PrimOpDef { name: "mul", arity: 2, func: mul, forces: &[] },
    PrimOpDef { name: "div", arity: 2, func: div, forces: &[] },
    PrimOpDef { name: "lessThan", arity: 2, func: less_than, forces: &[] },
    PrimOpDef { name: "bitAnd", arity: 2, func: bit_and, forces: &[] },
    PrimOpDef { name: "bitOr", arity: 2, func: bit_or, forces: &[] },
    PrimOpDef { name: "bitXor", arity: 2, func: bit_xor, forces: &[] },
    PrimOpDef { name: "floor", arity: 1, func: floor, forces: &[] },
    PrimOpDef { name: "ceil", arity: 1, func: ceil, forces: &[] },
];

fn num(ev: &Eval, v: &Value) -> Result<Value> {
    match ev.force(v)? {
        x @ (Value::Int(_) | Value::Float(_)) => Ok(x),
        other => Err(Error::eval(format!("expected an integer but found {}", crate::show_value_short(&other)))),
    }
}

/// `builtins.add 1 2` → `3`
fn add(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    ev.arith(BinOp::Add, num(ev, &a[0])?, num(ev, &a[1])?)
}
/// `builtins.sub 3 1` → `2`
fn sub(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    ev.arith(BinOp::Sub, num(ev, &a[0])?, num(ev, &a[1])?)
}
/// `builtins.mul 2 3` → `6`
fn mul(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    ev.arith(BinOp::Mul, num(ev, &a[0])?, num(ev, &a[1])?)
}
/// `builtins.div 7 2` → `3`
fn div(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let x = ev.force(&a[0])?;
    let y = ev.force(&a[1])?;
    div_values(x, y)
}

/// `/` and `builtins.div`, checked in C++ Nix's order: the divisor (as a
/// float), division by zero, then the dividend.
pub(crate) fn div_values(x: Value, y: Value) -> Result<Value> {
    let as_float = |v: &Value| match v {
        Value::Int(i) => Ok(*i as f64),
        Value::Float(f) => Ok(*f),
        _ => Err(Error::eval(format!("expected a float but found {}", crate::show_value_short(v)))),
    };
    let f2 = as_float(&y)?;
    if f2 == 0.0 {
        return Err(Error::eval("division by zero"));
    }
    if matches!(x, Value::Float(_)) || matches!(y, Value::Float(_)) {
        return Ok(Value::Float(as_float(&x)? / f2));
    }
    let (Value::Int(i1), Value::Int(i2)) = (&x, &y) else {
        return Err(Error::eval(format!("expected an integer but found {}", crate::show_value_short(&x))));
    };
    match i1.checked_div(*i2) {
        Some(r) => Ok(Value::Int(r)),
        None => Err(Error::eval(format!("integer overflow in dividing {i1} / {i2}"))),
    }
}
/// `builtins.lessThan 1 2` → `true`
fn less_than(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    Ok(Value::Bool(ev.less_than(&a[0], &a[1])?))
}
/// `builtins.bitAnd 6 3` → `2`
fn bit_and(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    Ok(Value::Int(ev.force_int(&a[0])? & ev.force_int(&a[1])?))
}
/// `builtins.bitOr 6 3` → `7`
fn bit_or(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    Ok(Value::Int(ev.force_int(&a[0])? | ev.force_int(&a[1])?))
}
/// `builtins.bitXor 6 3` → `5`
fn bit_xor(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    Ok(Value::Int(ev.force_int(&a[0])? ^ ev.force_int(&a[1])?))
}

fn round(ev: &Eval, v: &Value, f: fn(f64) -> f64, what: &str) -> Result<Value> {
    let x = match num(ev, v) {
        Ok(x) => x,
        Err(e) => return Err(Error::eval(e.msg().replacen("expected an integer", "expected a float", 1)).with_trace_of(e)),
    };
    match x {
        Value::Int(i) => Ok(Value::Int(i)),
        Value::Float(x) => {
            let r = f(x);
            if !(-9.223372036854776e18..9.223372036854776e18).contains(&r) {
                return Err(Error::eval(format!("while evaluating the first argument passed to builtins.{what}: value {x} is out of the integer range")));
            }
            Ok(Value::Int(r as i64))
        }
        _ => unreachable!(),
    }
}
/// `builtins.floor 1.5` → `1`
fn floor(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    round(ev, &a[0], f64::floor, "floor")
}
/// `builtins.ceil 1.5` → `2`
fn ceil(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    round(ev, &a[0], f64::ceil, "ceil")
}
