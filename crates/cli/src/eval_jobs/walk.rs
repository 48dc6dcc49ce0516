//! The walk: nix-env's `getDerivations` (what `nix-env -qaP` lists), except
//! that a failing attribute becomes an error event instead of stopping (or,
//! for `throw`/`assert`, silently dropping) the walk.
//!
//! The walk forces each attribute only far enough to know whether it is a
//! derivation. The visitor gets each derivation's attribute set, every time
//! it is reached (nix-env lists a set reached under a second name once, under
//! the first name in walk order; the caller applies that rule, by the set's
//! identity, because units of the walk may be done out of order), and
//! evaluates it ([`query_drv`]: `drvPath` and the outputs) in the same
//! evaluator. The walk can be cut into units: [`Walk::top`] gives the
//! attributes of a set, [`Walk::walk_child`] walks one of them, and with
//! [`Walk::split`] set, a `recurseForDerivations` set met by that call is not
//! walked but reported ([`Event::Expand`]) so its attributes can be walked
//! as units of their own, by any process.

use std::collections::HashSet;
use std::rc::Rc;

use ferrix_eval::{AttrSet, Error, Eval, Result, Symbol, Value};

/// One step of the walk.
pub enum Event {
    /// A derivation at this attribute path (possibly reached before under
    /// another name: the caller drops those by identity).
    Drv { attr: String, drv: AttrSet },
    /// A `recurseForDerivations` set at this attribute path, not walked (see
    /// [`Walk::split`]); its attributes, in walk order, are given by
    /// [`Walk::top`] of it, and it was cached in [`Walk::sets`].
    Expand { attr: String, top: Rc<Top> },
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
    /// Derivations reported, by identity (kept alive so an address is never
    /// reused by another set during the walk: the address is the set's
    /// identity for the caller).
    done: HashSet<*const ()>,
    keep: Vec<AttrSet>,
    stopped: bool,
    visitor: &'a mut dyn Visitor,
    /// When set, the next [`Walk::walk_child`] reports a set it would
    /// recurse into ([`Event::Expand`]) instead of walking it (only that
    /// call: sets met deeper inside are walked). Cleared by the call.
    pub split: bool,
    /// The sets reported by [`Event::Expand`] and those found by
    /// [`Walk::set_at`], by attribute path.
    pub sets: std::collections::HashMap<String, Rc<Top>>,
}

/// The attributes of a set being walked: (attribute path, value) in walk
/// order, and whether it combines channels (its attributes are walked whole).
pub struct Top {
    pub children: Vec<(String, Value)>,
    pub combine: bool,
    /// Position in `children` by attribute name (the last component of
    /// its path): units look their attribute up here, one per unit.
    by_name: std::collections::HashMap<Symbol, usize>,
}

impl Top {
    /// The attributes of `a` to walk, as attribute paths below `prefix`.
    fn of(a: &AttrSet, prefix: &str) -> Top {
        let attrs: Vec<_> = a.sorted_by_name().filter(|attr| valid_attr_name(attr.name.as_bytes())).collect();
        Top {
            combine: a.get(Symbol::new("_combineChannels")).is_some(),
            by_name: attrs.iter().enumerate().map(|(i, attr)| (attr.name, i)).collect(),
            children: attrs.into_iter().map(|attr| (add_to_path(prefix, &attr.name.as_str()), attr.value.clone())).collect(),
        }
    }

    /// The attribute named `name` (its attribute path ends with it).
    pub fn position(&self, name: &str) -> Option<usize> {
        self.by_name.get(&Symbol::new(name)).copied()
    }
}

/// Whether to keep looking into a value (it is not a derivation).
enum Found {
    NotDrv(Value),
    Drv,
    Failed,
}

impl<'a> Walk<'a> {
    pub fn new(ev: &'a Eval, auto_call: &'a dyn Fn(Value) -> Result<Value>, visitor: &'a mut dyn Visitor) -> Self {
        Walk { ev, auto_call, done: HashSet::new(), keep: Vec::new(), stopped: false, visitor, split: false, sets: Default::default() }
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
            if self.done.insert(a.as_ptr()) {
                self.keep.push(AttrSet::clone(a));
            }
            self.emit(Event::Drv { attr: attr.to_string(), drv: AttrSet::clone(a) });
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
        Some(Top::of(a, prefix))
    }

    /// Walk one attribute of a set (what [`Walk::walk`] does for it).
    pub fn walk_child(&mut self, top: &Top, i: usize) {
        let split = std::mem::take(&mut self.split);
        let Some((p2, value)) = top.children.get(i) else { return };
        if top.combine {
            return self.walk(value, p2);
        }
        let Found::NotDrv(x) = self.get_derivation(value, p2) else { return };
        let Value::Attrs(inner) = &x else { return };
        let Some(r) = inner.get(Symbol::new("recurseForDerivations")) else { return };
        match self.ev.force_bool(r) {
            // A plain set (no `__functor` for the walk to call first) can be
            // cut into units: each process reaches it again by selection.
            Ok(true) if split && inner.get(Symbol::new("__functor")).is_none() && !self.stopped => {
                let top = Rc::new(Top::of(inner, p2));
                self.sets.insert(p2.clone(), top.clone());
                self.emit(Event::Expand { attr: p2.clone(), top });
            }
            Ok(true) => self.walk(&x, p2),
            Ok(false) => {}
            Err(error) => self.emit(Event::Failed { attr: p2.clone(), error }),
        }
    }

    /// The set at attribute path `path` below a root whose attributes are
    /// `root` (walked from `prefix`): the set a unit's attribute belongs to.
    /// Every set on the way was reported by [`Event::Expand`] (here or in
    /// another process), so it is reached by selection alone.
    pub fn set_at(&mut self, root: &Rc<Top>, prefix: &str, path: &str) -> Result<Rc<Top>> {
        if path == prefix {
            return Ok(root.clone());
        }
        if path.len() <= prefix.len() {
            return Err(Error::eval(format!("attribute path '{path}' is not below '{prefix}'")));
        }
        if let Some(t) = self.sets.get(path) {
            return Ok(t.clone());
        }
        let (parent, name) = path.rsplit_once('.').unwrap_or(("", path));
        let parent = self.set_at(root, prefix, parent)?;
        let i = parent.position(name).ok_or_else(|| Error::eval(format!("attribute '{path}' not found")))?;
        let v = self.ev.force(&parent.children[i].1)?;
        let Value::Attrs(a) = &v else {
            return Err(Error::eval(format!("'{path}' is no longer an attribute set but {}", v.show_type())));
        };
        let top = Rc::new(Top::of(a, path));
        self.sets.insert(path.to_string(), top.clone());
        Ok(top)
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
                let top = Top::of(a, prefix);
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

/// An error's text for an error line.
pub fn error_text(e: &Error) -> String {
    ferrix_eval::error::filter_ansi(e.msg())
}

/// The JSON line for a failing attribute.
pub fn error_json(attr: &str, e: &Error) -> String {
    let msg = error_text(e);
    format!("{{\"attr\":{},\"error\":{}}}", serde_json::to_string(attr).expect("str"), serde_json::to_string(&msg).expect("str"))
}
