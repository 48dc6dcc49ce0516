//! The walk: nix-env's `getDerivations` (what `nix-env -qaP` lists), except
//! that a failing attribute becomes an error event instead of stopping (or,
//! for `throw`/`assert`, silently dropping) the walk.
//!
//! The walk forces each attribute only far enough to know whether it is a
//! derivation (and drops an attribute set reached under a second name, as
//! nix-env does: it is listed under the lexicographically first one). The
//! visitor gets each derivation's attribute set and evaluates it
//! ([`query_drv`]: `drvPath` and the outputs) in the same evaluator, as it
//! is found. The top level can be walked one attribute at a time
//! ([`Walk::top`], [`Walk::walk_child`]) so that processes can share it.

use std::collections::HashSet;
use std::rc::Rc;

use ferrix_eval::{AttrSet, Error, Eval, Result, Symbol, Value};

/// One step of the walk.
pub enum Event {
    /// A derivation at this attribute path (not seen before under another name).
    Drv { attr: String, drv: Rc<AttrSet> },
    /// Evaluating the attribute failed.
    Failed { attr: String, error: Error },
}

/// What the walk reports events to; returns `false` to stop the walk.
pub trait Visitor {
    fn event(&mut self, ev: Event) -> bool;
}

/// nix-env's attribute-name filter (`[A-Za-z_][A-Za-z0-9-_+]*`).
fn valid_attr_name(n: &[u8]) -> bool {
    matches!(n.first(), Some(c) if c.is_ascii_alphabetic() || *c == b'_')
        && n.iter().all(|c| c.is_ascii_alphanumeric() || b"-_+".contains(c))
}

fn add_to_path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") }
}

pub struct Walk<'a> {
    ev: &'a Eval,
    auto_call: &'a dyn Fn(Value) -> Result<Value>,
    /// Derivations already listed, by identity (kept alive so an address is
    /// never reused by another set during the walk).
    done: HashSet<*const AttrSet>,
    keep: Vec<Rc<AttrSet>>,
    stopped: bool,
    visitor: &'a mut dyn Visitor,
}

/// The attributes of a set being walked: (attribute path, value) in walk
/// order, and whether it combines channels (its attributes are walked whole).
pub struct Top {
    pub children: Vec<(String, Value)>,
    combine: bool,
}

/// Whether to keep looking into a value (it is not a derivation).
enum Found {
    NotDrv(Value),
    Drv,
    Failed,
}

impl<'a> Walk<'a> {
    pub fn new(ev: &'a Eval, auto_call: &'a dyn Fn(Value) -> Result<Value>, visitor: &'a mut dyn Visitor) -> Self {
        Walk { ev, auto_call, done: HashSet::new(), keep: Vec::new(), stopped: false, visitor }
    }

    fn emit(&mut self, e: Event) {
        if self.stopped {
            return;
        }
        if !self.visitor.event(e) {
            self.stopped = true;
        }
    }

    /// nix-env's `getDerivation`: force `v`; a derivation is emitted (once).
    fn get_derivation(&mut self, v: &Value, attr: &str) -> Found {
        let r = (|| -> Result<Found> {
            let v = self.ev.force(v)?;
            let Value::Attrs(a) = &v else { return Ok(Found::NotDrv(v)) };
            if !self.ev.is_derivation(a)? {
                return Ok(Found::NotDrv(v));
            }
            if self.done.insert(Rc::as_ptr(a)) {
                self.keep.push(a.clone());
                self.emit(Event::Drv { attr: attr.to_string(), drv: a.clone() });
            }
            Ok(Found::Drv)
        })();
        r.unwrap_or_else(|error| {
            self.emit(Event::Failed { attr: attr.to_string(), error });
            Found::Failed
        })
    }

    /// The top level of the walk from `v`: its attributes, to be walked one
    /// by one with [`Walk::walk_child`], or `None` when `v` is not a set of
    /// attributes to look into (a derivation, a list, a failure...), in
    /// which case [`Walk::walk`] takes it whole. Emits nothing.
    pub fn top(&mut self, v: &Value, prefix: &str) -> Option<Top> {
        let v = (self.auto_call)(v.clone()).ok()?;
        let v = self.ev.force(&v).ok()?;
        let Value::Attrs(a) = &v else { return None };
        if self.ev.is_derivation(a).ok()? {
            return None;
        }
        let combine = a.get(Symbol::new("_combineChannels")).is_some();
        let children = a
            .sorted_by_name()
            .into_iter()
            .filter(|attr| valid_attr_name(attr.name.as_bytes()))
            .map(|attr| (add_to_path(prefix, &attr.name.as_str()), attr.value.clone()))
            .collect();
        Some(Top { children, combine })
    }

    /// Walk one attribute of the top level (what [`Walk::walk`] does for it).
    pub fn walk_child(&mut self, top: &Top, i: usize) {
        let Some((p2, value)) = top.children.get(i) else { return };
        if top.combine {
            return self.walk(value, p2);
        }
        let Found::NotDrv(x) = self.get_derivation(value, p2) else { return };
        let Value::Attrs(inner) = &x else { return };
        let Some(r) = inner.get(Symbol::new("recurseForDerivations")) else { return };
        match self.ev.force_bool(r) {
            Ok(true) => self.walk(&x, p2),
            Ok(false) => {}
            Err(error) => self.emit(Event::Failed { attr: p2.clone(), error }),
        }
    }

    /// nix-env's `getDerivations` below `prefix`.
    pub fn walk(&mut self, v: &Value, prefix: &str) {
        let v = match (self.auto_call)(v.clone()) {
            Ok(v) => v,
            Err(error) => return self.emit(Event::Failed { attr: prefix.to_string(), error }),
        };
        let v = match self.get_derivation(&v, prefix) {
            Found::NotDrv(v) => v,
            Found::Drv | Found::Failed => return,
        };
        match &v {
            Value::Attrs(a) => {
                let top = Top {
                    combine: a.get(Symbol::new("_combineChannels")).is_some(),
                    children: a
                        .sorted_by_name()
                        .into_iter()
                        .filter(|attr| valid_attr_name(attr.name.as_bytes()))
                        .map(|attr| (add_to_path(prefix, &attr.name.as_str()), attr.value.clone()))
                        .collect(),
                };
                for i in 0..top.children.len() {
                    if self.stopped {
                        return;
                    }
                    self.walk_child(&top, i);
                }
            }
            Value::List(l) => {
                for (i, x) in l.iter().enumerate() {
                    if self.stopped {
                        return;
                    }
                    let p2 = add_to_path(prefix, &i.to_string());
                    if let Found::NotDrv(_) = self.get_derivation(x, &p2) {
                        self.walk(x, &p2);
                    }
                }
            }
            other => self.emit(Event::Failed {
                attr: prefix.to_string(),
                error: Error::eval(format!(
                    "expression does not evaluate to a derivation (or a set or list of those): {}",
                    ferrix_eval::show_value_short(other)
                )),
            }),
        }
    }
}

/// What one derivation line says.
pub struct DrvLine {
    pub name: String,
    pub system: String,
    pub drv_path: String,
    pub outputs: Vec<(String, String)>,
}

fn string_attr(ev: &Eval, a: &AttrSet, name: &str) -> Result<Option<String>> {
    match a.get(Symbol::new(name)) {
        Some(v) => Ok(Some(ev.force_string(v)?.to_str_lossy().into_owned())),
        None => Ok(None),
    }
}

/// Force what a derivation line needs: name, system, `drvPath` and the path
/// of every output (nix's `DrvInfo` queries).
pub fn query_drv(ev: &Eval, a: &AttrSet) -> Result<DrvLine> {
    let name = string_attr(ev, a, "name")?.ok_or_else(|| Error::eval("derivation name missing"))?;
    let system = string_attr(ev, a, "system")?.unwrap_or_else(|| "unknown".into());
    let drv_path = string_attr(ev, a, "drvPath")?.ok_or_else(|| Error::eval("derivation lacks a 'drvPath' attribute"))?;
    let mut outputs = Vec::new();
    match a.get(Symbol::new("outputs")) {
        Some(list) => {
            for o in ev.force_list(list)?.iter() {
                let o = ev.force_str_nocontext(o)?;
                let sub = a
                    .get(Symbol::new(&o))
                    .ok_or_else(|| Error::eval(format!("derivation lacks output '{o}'")))?;
                let sub = ev.force_attrs(sub)?;
                let p = string_attr(ev, &sub, "outPath")?
                    .ok_or_else(|| Error::eval(format!("output '{o}' lacks an 'outPath' attribute")))?;
                outputs.push((o, p));
            }
        }
        None => {
            let p = string_attr(ev, a, "outPath")?.ok_or_else(|| Error::eval("derivation lacks an 'outPath' attribute"))?;
            outputs.push(("out".into(), p));
        }
    }
    Ok(DrvLine { name, system, drv_path, outputs })
}

/// The JSON line for a derivation.
pub fn drv_json(attr: &str, d: &DrvLine) -> String {
    let s = |x: &str| serde_json::to_string(x).expect("strings serialise");
    let outs: Vec<String> = d.outputs.iter().map(|(n, p)| format!("{}:{}", s(n), s(p))).collect();
    format!(
        "{{\"attr\":{},\"name\":{},\"system\":{},\"drvPath\":{},\"outputs\":{{{}}}}}",
        s(attr),
        s(&d.name),
        s(&d.system),
        s(&d.drv_path),
        outs.join(",")
    )
}

/// The JSON line for a failing attribute.
pub fn error_json(attr: &str, e: &Error) -> String {
    let msg = ferrix_eval::error::filter_ansi(e.msg());
    format!("{{\"attr\":{},\"error\":{}}}", serde_json::to_string(attr).expect("str"), serde_json::to_string(&msg).expect("str"))
}
