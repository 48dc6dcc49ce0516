//! List builtins.

use std::rc::Rc;

use crate::error::{Error, Result};
use crate::ir::Span;
use crate::symbol::{sym, Symbol};
use crate::value::{prefetching, Attr, AttrSet, List, PrimOpDef, Shared, Want, Thunk, Value};
use crate::Eval;

pub static DEFS: &[PrimOpDef] = &[
    PrimOpDef { name: "map", arity: 2, func: map, forces: &[(1, Want::Any)] },
    PrimOpDef { name: "filter", arity: 2, func: filter, forces: &[(1, Want::Any)] },
    PrimOpDef { name: "foldl'", arity: 3, func: foldl, forces: &[(0, Want::Function), (2, Want::Any)] },
    PrimOpDef { name: "genList", arity: 2, func: gen_list, forces: &[(1, Want::Any)] },
    PrimOpDef { name: "elem", arity: 2, func: elem, forces: &[(1, Want::Any)] },
    PrimOpDef { name: "elemAt", arity: 2, func: elem_at, forces: &[(0, Want::List), (1, Want::Any)] },
    PrimOpDef { name: "head", arity: 1, func: head, forces: &[(0, Want::Any)] },
    PrimOpDef { name: "tail", arity: 1, func: tail, forces: &[(0, Want::Any)] },
    PrimOpDef { name: "length", arity: 1, func: length, forces: &[(0, Want::Any)] },
    PrimOpDef { name: "concatLists", arity: 1, func: concat_lists, forces: &[(0, Want::Any)] },
    PrimOpDef { name: "concatMap", arity: 2, func: concat_map, forces: &[(0, Want::Function), (1, Want::Any)] },
    PrimOpDef { name: "all", arity: 2, func: all, forces: &[(0, Want::Function), (1, Want::Any)] },
    PrimOpDef { name: "any", arity: 2, func: any, forces: &[(0, Want::Function), (1, Want::Any)] },
    PrimOpDef { name: "sort", arity: 2, func: sort, forces: &[(1, Want::Any)] },
    PrimOpDef { name: "partition", arity: 2, func: partition, forces: &[] },
    PrimOpDef { name: "groupBy", arity: 2, func: group_by, forces: &[] },
];

/// `map (x: x + 1) [ 1 2 ]` → `[ 2 3 ]`
fn map(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let l = ev.force_list(&a[1])?;
    if l.is_empty() {
        return Ok(Value::from_list(l));
    }
    let f = ev.force_function(&a[0])?;
    let n = l.len();
    let src = Rc::new((f, l));
    Ok(Value::list((0..n).map(|i| Thunk::apply_elem(&src, i)).collect()))
}
/// `builtins.filter (x: x > 1) [ 1 2 3 ]` → `[ 2 3 ]`
fn filter(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    // C++ Nix's order: the list first, and an empty list needs no function
    let l = ev.force_list(&a[1])?;
    if l.is_empty() {
        return ev.force(&a[1]);
    }
    let f = ev.force_function(&a[0])?;
    let mut out = Vec::new();
    for x in prefetching(&l) {
        if ev.force_bool(&ev.call(&f, x.clone(), Span::NONE)?).map_err(|e| ret_frame(e, "the filtering function passed to builtins.filter", &f))? {
            out.push(x.clone());
        }
    }
    if out.len() == l.len() {
        return Ok(Value::from_list(l));
    }
    Ok(grown_list(out))
}
/// `builtins.foldl' (a: b: a + b) 0 [ 1 2 3 ]` → `6`
fn foldl(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    // C++ Nix's order: the function first, then the list
    let f = ev.force_function(&a[0])?;
    let l = ev.force_list(&a[2])?;
    if l.is_empty() {
        return ev.force(&a[1]);
    }
    let mut acc = a[1].clone();
    for x in prefetching(&l) {
        acc = ev.call2(&f, acc, x.clone(), Span::NONE)?;
    }
    ev.force(&acc)
}
/// `builtins.genList (x: x * 2) 3` → `[ 0 2 4 ]`
fn gen_list(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let n = ev.force_int(&a[1])?;
    if n < 0 {
        return Err(Error::eval(format!("cannot create list of size {n}")));
    }
    if n == 0 {
        return Ok(Value::list(Vec::new()));
    }
    let f = ev.force_function(&a[0])?;
    let f = Rc::new(f);
    Ok(Value::list((0..n).map(|i| Thunk::apply_int(&f, i)).collect()))
}
/// `builtins.elem 2 [ 1 2 ]` → `true`
fn elem(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let l = ev.force_list(&a[1])?;
    for x in prefetching(&l) {
        if ev.equal(&a[0], x)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}
/// `builtins.elemAt [ 1 2 ] 1` → `2`
fn elem_at(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let l = ev.force_list(&a[0])?;
    let i = ev.force_int(&a[1])?;
    if i < 0 || i as usize >= l.len() {
        return Err(Error::eval(format!("'builtins.elemAt' called with index {i} on a list of size {}", l.len())));
    }
    ev.force(&l[i as usize])
}
/// `builtins.head [ 1 2 ]` → `1`
fn head(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let l = ev.force_list(&a[0])?;
    match l.first() {
        Some(x) => ev.force(x),
        None => Err(Error::eval("'builtins.head' called on an empty list")),
    }
}
/// `builtins.tail [ 1 2 ]` → `[ 2 ]`
fn tail(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let l = ev.force_list(&a[0])?;
    if l.is_empty() {
        return Err(Error::eval("'builtins.tail' called on an empty list"));
    }
    // shares `l`'s elements (see `List`)
    Ok(Value::from_list(Shared::new(List::suffix(&l, 1))))
}
/// `builtins.length [ 1 2 ]` → `2`
fn length(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    Ok(Value::Int(ev.force_list(&a[0])?.len() as i64))
}
/// `builtins.concatLists [ [ 1 ] [ 2 ] ]` → `[ 1 2 ]`
fn concat_lists(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let l = ev.force_list(&a[0])?;
    let mut out = Vec::new();
    for x in prefetching(&l) {
        let x = ev.force(x)?;
        out.extend_from_slice(
            &ev.force_list(&x)
                .map_err(|e| e.while_("while evaluating a value of the list passed to builtins.concatLists", Span::NONE))?,
        );
    }
    Ok(Value::list(out))
}
/// `builtins.concatMap (x: [ x x ]) [ 1 2 ]` → `[ 1 1 2 2 ]`
fn concat_map(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let f = ev.force_function(&a[0])?;
    let l = ev.force_list(&a[1])?;
    let mut out = Vec::new();
    for x in prefetching(&l) {
        let r = ev.call(&f, x.clone(), Span::NONE)?;
        let part = ev.force_list(&r).map_err(|e| ret_frame(e, "the function passed to builtins.concatMap", &f))?;
        // the call's own list (usually a fresh literal) gives up its elements
        drop(r);
        List::append_to(part, &mut out);
    }
    Ok(grown_list(out))
}
/// `builtins.all (x: x > 0) [ 1 2 ]` → `true`
fn all(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let f = ev.force_function(&a[0])?;
    let l = ev.force_list(&a[1])?;
    for x in prefetching(&l) {
        if !ev.force_bool(&ev.call(&f, x.clone(), Span::NONE)?).map_err(|e| ret_frame(e, "the function passed to builtins.all", &f))? {
            return Ok(Value::Bool(false));
        }
    }
    Ok(Value::Bool(true))
}
/// `builtins.any (x: x > 1) [ 1 2 ]` → `true`
fn any(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let f = ev.force_function(&a[0])?;
    let l = ev.force_list(&a[1])?;
    for x in prefetching(&l) {
        if ev.force_bool(&ev.call(&f, x.clone(), Span::NONE)?).map_err(|e| ret_frame(e, "the function passed to builtins.any", &f))? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}
/// `builtins.sort builtins.lessThan [ 3 1 2 ]` → `[ 1 2 3 ]`
fn sort(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    // C++ Nix's order: the list first, and an empty list needs no function
    let l = ev.force_list(&a[1])?;
    if l.is_empty() {
        return ev.force(&a[1]);
    }
    let f = ev.force_function(&a[0])?;
    let mut v: Vec<Value> = l.iter().cloned().collect();
    for x in &v {
        ev.force(x)?;
    }
    let is_lt = matches!(&f, Value::PrimOp(p) if p.name == "lessThan");
    let lt = |p: &Value, q: &Value| -> Result<bool> {
        if is_lt {
            ev.less_than(p, q)
        } else {
            let r = ev.call2(&f, p.clone(), q.clone(), Span::NONE)?;
            ev.force_bool(&r).map_err(|e| ret_frame(e, "the sorting function passed to builtins.sort", &f))
        }
    };
    // A stable merge sort with a fallible comparator; unlike slice::sort_by
    // it cannot panic when the comparator is not a strict weak order.
    let mut buf = v.clone();
    let n = v.len();
    let mut width = 1;
    while width < n {
        let mut i = 0;
        while i < n {
            let mid = (i + width).min(n);
            let hi = (i + 2 * width).min(n);
            let (mut a, mut b, mut k) = (i, mid, i);
            while a < mid && b < hi {
                // take from the right only if it is strictly less (stability)
                if lt(&v[b], &v[a])? {
                    buf[k] = v[b].clone();
                    b += 1;
                } else {
                    buf[k] = v[a].clone();
                    a += 1;
                }
                k += 1;
            }
            while a < mid {
                buf[k] = v[a].clone();
                a += 1;
                k += 1;
            }
            while b < hi {
                buf[k] = v[b].clone();
                b += 1;
                k += 1;
            }
            i += 2 * width;
        }
        std::mem::swap(&mut v, &mut buf);
        width *= 2;
    }
    Ok(Value::list(v))
}
/// `builtins.partition (x: x > 1) [ 1 2 ]` → `{ right = [ 2 ]; wrong = [ 1 ]; }`
fn partition(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let f = ev.force_function(&a[0])?;
    let (mut r, mut w) = (Vec::new(), Vec::new());
    for x in ev.force_list(&a[1])?.iter() {
        if ev.force_bool(&ev.call(&f, x.clone(), Span::NONE)?).map_err(|e| ret_frame(e, "the partition function passed to builtins.partition", &f))? {
            r.push(x.clone())
        } else {
            w.push(x.clone())
        }
    }
    Ok(Value::attrs_from([(sym::right(), Value::list(r)), (sym::wrong(), Value::list(w))]))
}
/// `builtins.groupBy (x: x) [ "a" "b" "a" ]` → `{ a = [ "a" "a" ]; b = [ "b" ]; }`
fn group_by(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let f = ev.force_function(&a[0])?;
    let mut groups: rustc_hash::FxHashMap<Symbol, Vec<Value>> = Default::default();
    let mut order = Vec::new();
    for x in ev.force_list(&a[1])?.iter() {
        let k = ev.force_string(&ev.call(&f, x.clone(), Span::NONE)?).map_err(|e| ret_frame(e, "the grouping function passed to builtins.groupBy", &f))?;
        let s = Symbol::of_string(k.as_bytes());
        groups
            .entry(s)
            .or_insert_with(|| {
                order.push(s);
                Vec::new()
            })
            .push(x.clone());
    }
    let attrs = order
        .into_iter()
        .map(|s| Attr { name: s, value: Value::list(groups.remove(&s).unwrap_or_default()), pos: crate::ir::Pos::NONE })
        .collect();
    Ok(Value::attrs(AttrSet::from_unsorted(attrs)))
}

/// A list built by pushing: a large one gives back its spare capacity
/// (it lives as long as the list; doubling leaves up to half unused).
pub(crate) fn grown_list(mut v: Vec<Value>) -> Value {
    if v.capacity() - v.len() > v.len() / 8 + 4 {
        v.shrink_to_fit();
    }
    Value::list(v)
}

/// "while evaluating the return value of WHAT": C++ Nix's context for a
/// callback result of the wrong type (concatMap also points at the lambda).
#[cold]
fn ret_frame(e: Error, what: &str, f: &Value) -> Error {
    let pos = match f {
        Value::Lambda(c) if what.ends_with("concatMap") => c.lambda.pos,
        _ => Span::NONE,
    };
    e.while_(format!("while evaluating the return value of {what}"), pos)
}
