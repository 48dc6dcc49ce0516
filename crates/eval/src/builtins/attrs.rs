//! Attribute-set builtins.


use std::rc::Rc;

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::ir::{Pos, Span};
use crate::symbol::{sym, Symbol};
use crate::value::{prefetching, Attr, AttrSet, PrimOpDef, Want, Thunk, Value};
use crate::builtins::list::grown_list;
use crate::Eval;

pub static DEFS: &[PrimOpDef] = &[
    PrimOpDef { name: "attrNames", arity: 1, func: attr_names, forces: &[(0, Want::Any)] },
    PrimOpDef { name: "attrValues", arity: 1, func: attr_values, forces: &[(0, Want::Any)] },
    PrimOpDef { name: "getAttr", arity: 2, func: get_attr, forces: &[(0, Want::String), (1, Want::Any)] },
    PrimOpDef { name: "hasAttr", arity: 2, func: has_attr, forces: &[(0, Want::String), (1, Want::Any)] },
    PrimOpDef { name: "removeAttrs", arity: 2, func: remove_attrs, forces: &[(0, Want::Attrs), (1, Want::Any)] },
    PrimOpDef { name: "intersectAttrs", arity: 2, func: intersect_attrs, forces: &[(0, Want::Attrs), (1, Want::Any)] },
    PrimOpDef { name: "catAttrs", arity: 2, func: cat_attrs, forces: &[(0, Want::String), (1, Want::Any)] },
    PrimOpDef { name: "mapAttrs", arity: 2, func: map_attrs, forces: &[(1, Want::Any)] },
    PrimOpDef { name: "listToAttrs", arity: 1, func: list_to_attrs, forces: &[(0, Want::Any)] },
    PrimOpDef { name: "zipAttrsWith", arity: 2, func: zip_attrs_with, forces: &[(0, Want::Function), (1, Want::Any)] },
];

/// `builtins.attrNames { b = 1; a = 2; }` → `[ "a" "b" ]`
fn attr_names(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let s = ev.force_attrs(&a[0])?;
    Ok(Value::list(s.sorted_by_name().map(|x| Value::sym_string(x.name)).collect()))
}
/// `builtins.attrValues { b = 1; a = 2; }` → `[ 2 1 ]`
fn attr_values(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let s = ev.force_attrs(&a[0])?;
    Ok(Value::list(s.sorted_by_name().map(|x| x.value.clone()).collect()))
}
fn sym_of(ev: &Eval, v: &Value) -> Result<Symbol> {
    Ok(Symbol::of_string(ev.force_string(v)?.as_bytes()))
}
/// `builtins.getAttr "a" { a = 1; }` → `1`
fn get_attr(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let n = sym_of(ev, &a[0])?;
    let s = ev.force_attrs(&a[1])?;
    match s.get(n) {
        Some(v) => ev.force(v),
        None => Err(crate::missing_attr(n, &s).while_("in the attribute set under consideration", Span::NONE)),
    }
}
/// `builtins.hasAttr "a" { a = 1; }` → `true`
fn has_attr(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let n = sym_of(ev, &a[0])?;
    Ok(Value::Bool(ev.force_attrs(&a[1])?.get(n).is_some()))
}
/// `removeAttrs { a = 1; b = 2; } [ "a" ]` → `{ b = 2; }`
fn remove_attrs(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let s = ev.force_attrs(&a[0])?;
    let l = ev.force_list(&a[1])?;
    let mut names = Vec::with_capacity(l.len());
    for x in l.iter() {
        names.push(sym_of(ev, x)?);
    }
    names.sort();
    let attrs: Vec<Attr> = s.attrs().iter().filter(|x| names.binary_search(&x.name).is_err()).cloned().collect();
    Ok(Value::attrs(AttrSet::from_sorted(attrs)))
}
/// `builtins.intersectAttrs { a = 1; } { a = 2; b = 3; }` → `{ a = 2; }`
fn intersect_attrs(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let x = ev.force_attrs(&a[0])?;
    let y = ev.force_attrs(&a[1])?;
    // Walk the smaller set and look names up in the larger: callPackage
    // intersects a handful of formals with the whole package set. Both are
    // sorted by symbol, so the result comes out sorted either way.
    // (`len` and `get_attr` do not flatten a layered set; iterating does.)
    let attrs = if x.len() < y.len() {
        x.attrs().iter().filter_map(|a| y.get_attr(a.name).cloned()).collect()
    } else {
        y.attrs().iter().filter(|b| x.get(b.name).is_some()).cloned().collect()
    };
    Ok(Value::attrs(AttrSet::from_sorted(attrs)))
}
/// `builtins.catAttrs "a" [ { a = 1; } { b = 0; } ]` → `[ 1 ]`
fn cat_attrs(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let n = sym_of(ev, &a[0])?;
    let l = ev.force_list(&a[1])?;
    let mut out = Vec::new();
    for x in prefetching(&l) {
        let x = ev.force(x)?;
        let x = ev.force_attrs(&x).map_err(|e| {
            e.while_("while evaluating an element in the list passed as second argument to builtins.catAttrs", Span::NONE)
        })?;
        if let Some(v) = x.get(n) {
            out.push(v.clone());
        }
    }
    Ok(Value::list(out))
}
/// `builtins.mapAttrs (n: v: v + 1) { a = 1; }` → `{ a = 2; }`
fn map_attrs(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let s = ev.force_attrs(&a[1])?;
    if s.is_empty() {
        return Ok(Value::attrs(s));
    }
    // The function is not forced here (C++ Nix applies it lazily; nixpkgs'
    // idris package set passes `self.x` of the fixpoint being built).
    // The new values share the function and the set (one block each).
    let src = Rc::new((a[0].clone(), s));
    let names = src.1.attrs();
    // like C++ Nix: mapped attributes have no position
    // (`unsafeGetAttrPos` gives null; nixpkgs' module tests rely on it)
    let set = AttrSet::from_fn(names.len(), |i| Attr { name: names[i].name, pos: Pos::NONE, value: Thunk::apply_attr(&src, i, false) });
    Ok(Value::attrs(set))
}
/// `builtins.listToAttrs [ { name = "a"; value = 1; } ]` → `{ a = 1; }`
fn list_to_attrs(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let l = ev.force_list(&a[0])?;
    let mut attrs = Vec::with_capacity(l.len());
    for x in prefetching(&l) {
        let x = ev.force(x)?;
        let e = ev
            .force_attrs(&x)
            .map_err(|e| e.while_("while evaluating an element of the list passed to builtins.listToAttrs", Span::NONE))?;
        let pair = "in a {name=...; value=...;} pair";
        let n = e.get_attr(sym::name()).ok_or_else(|| Error::eval("attribute 'name' missing").while_(pair, Span::NONE))?;
        let n = ev
            .force_string(&n.value)
            .map(|s| {
                let name = Symbol::of_string(s.as_bytes());
                Value::offer_sym_string(name, &s);
                name
            })
            .map_err(|err| {
                err.at(n.pos).while_("while evaluating the `name` attribute of an element of the list passed to builtins.listToAttrs", n.pos)
            })?;
        let v = e.get_attr(sym::value()).ok_or_else(|| Error::eval("attribute 'value' missing").while_(pair, Span::NONE))?;
        attrs.push(Attr { name: n, value: v.value.clone(), pos: v.pos });
    }
    // first occurrence wins; from_unsorted keeps the first of equal names
    Ok(Value::attrs(AttrSet::from_unsorted(attrs)))
}
/// `builtins.zipAttrsWith (n: vs: vs) [ { a = 1; } { a = 2; } ]` → `{ a = [ 1 2 ]; }`
fn zip_attrs_with(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let f = ev.force_function(&a[0])?;
    let l = ev.force_list(&a[1])?;
    let mut groups: FxHashMap<Symbol, Vec<Value>> = FxHashMap::default();
    for x in prefetching(&l) {
        let x = ev.force(x)?;
        let x = ev.force_attrs(&x).map_err(|e| {
            e.while_("while evaluating a value of the list passed as second argument to builtins.zipAttrsWith", Span::NONE)
        })?;
        for attr in x.attrs() {
            groups.entry(attr.name).or_default().push(attr.value.clone());
        }
    }
    // the lists of values, as a set the result's thunks share with `f`
    let mut lists: Vec<Attr> =
        groups.into_iter().map(|(name, vs)| Attr { name, pos: Pos::NONE, value: grown_list(vs) }).collect();
    lists.sort_unstable_by_key(|x| x.name);
    let src = Rc::new((f, AttrSet::from_sorted(lists)));
    let names = src.1.attrs();
    let set = AttrSet::from_fn(names.len(), |i| Attr { name: names[i].name, pos: Pos::NONE, value: Thunk::apply_attr(&src, i, true) });
    Ok(Value::attrs(set))
}
