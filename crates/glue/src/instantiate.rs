//! Instantiation: find the derivations a value denotes, the way
//! nix-instantiate's `getDerivations` does, and name their `.drv` paths
//! (already written to the store sink by `derivationStrict`).

use std::collections::HashSet;

use ferrix_eval::{Error, Eval, Result, Symbol, Value};

use crate::derivation::force_string_noctx;

/// A derivation found in a value: its `.drv` path and wanted output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrvInfo {
    pub drv_path: String,
    pub output: String,
    /// The attribute path it was found at (`""` for the top level).
    pub attr_path: String,
}

impl DrvInfo {
    /// What nix-instantiate prints: the `.drv` path, plus `!<output>` when
    /// the output is not `out`.
    pub fn display(&self) -> String {
        if self.output == "out" { self.drv_path.clone() } else { format!("{}!{}", self.drv_path, self.output) }
    }
}

fn is_drv(ev: &Eval, v: &Value) -> Result<bool> {
    match v {
        Value::Attrs(a) => ev.is_derivation(a),
        _ => Ok(false),
    }
}

/// `getDerivation`: `Ok(true)` if `v` is not a derivation (keep looking).
fn get_derivation(ev: &Eval, v: &Value, path: &str, out: &mut Vec<DrvInfo>, done: &mut HashSet<usize>) -> Result<bool> {
    let v = ev.force(v)?;
    if !is_drv(ev, &v)? {
        return Ok(true);
    }
    let Value::Attrs(a) = &v else { unreachable!("is_drv checked") };
    if !done.insert(a.as_ptr() as usize) {
        return Ok(false);
    }
    let drv_path = match a.get(Symbol::new("drvPath")) {
        Some(d) => {
            let s = ev.force_string(d)?;
            s.to_str_lossy().into_owned()
        }
        None => return Err(Error::eval("derivation lacks a 'drvPath' attribute")),
    };
    let output = match a.get(Symbol::new("outputName")) {
        Some(o) => force_string_noctx(ev, o)?,
        None => String::new(),
    };
    if output.is_empty() {
        return Err(Error::eval(format!("derivation '{drv_path}' lacks an 'outputName' attribute")));
    }
    out.push(DrvInfo { drv_path, output, attr_path: path.to_string() });
    Ok(false)
}

fn add_to_path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") }
}

fn valid_attr_name(n: &[u8]) -> bool {
    matches!(n.first(), Some(c) if c.is_ascii_alphabetic() || *c == b'_')
        && n.iter().all(|c| c.is_ascii_alphanumeric() || b"-_+".contains(c))
}

/// nix-instantiate's `getDerivations`: a derivation, an attribute set of
/// them (recursing into sets with `recurseForDerivations = true`) or a list.
/// `auto_call` applies `--arg`s to functions.
pub fn get_derivations(
    ev: &Eval,
    v: &Value,
    auto_call: &dyn Fn(Value) -> Result<Value>,
) -> Result<Vec<DrvInfo>> {
    let mut out = Vec::new();
    let mut done = HashSet::new();
    walk(ev, v.clone(), "", auto_call, &mut out, &mut done)?;
    // every `.drv` returned is registered before its path is printed
    if let Ok(io) = crate::io::store_io(ev) {
        io.flush()?;
    }
    Ok(out)
}

fn walk(
    ev: &Eval,
    v: Value,
    prefix: &str,
    auto_call: &dyn Fn(Value) -> Result<Value>,
    out: &mut Vec<DrvInfo>,
    done: &mut HashSet<usize>,
) -> Result<()> {
    let v = ev.force(&auto_call(v)?)?;
    if !get_derivation(ev, &v, prefix, out, done)? {
        return Ok(());
    }
    match &v {
        Value::Attrs(a) => {
            let combine = a.get(Symbol::new("_combineChannels")).is_some();
            for attr in a.sorted_by_name() {
                if !valid_attr_name(attr.name.as_bytes()) {
                    continue;
                }
                let p2 = add_to_path(prefix, &attr.name.as_str());
                if combine {
                    walk(ev, attr.value.clone(), &p2, auto_call, out, done)?;
                } else if get_derivation(ev, &attr.value, &p2, out, done)? {
                    let x = ev.force(&attr.value)?;
                    if let Value::Attrs(inner) = &x
                        && let Some(r) = inner.get(Symbol::new("recurseForDerivations"))
                        && ev.force_bool(r)?
                    {
                        walk(ev, x.clone(), &p2, auto_call, out, done)?;
                    }
                }
            }
            Ok(())
        }
        Value::List(l) => {
            for (i, x) in l.iter().enumerate() {
                let p2 = add_to_path(prefix, &i.to_string());
                if get_derivation(ev, x, &p2, out, done)? {
                    walk(ev, x.clone(), &p2, auto_call, out, done)?;
                }
            }
            Ok(())
        }
        other => Err(Error::eval(format!(
            "expression does not evaluate to a derivation (or a set or list of those): {}",
            ferrix_eval::show_value_short(other)
        ))),
    }
}
