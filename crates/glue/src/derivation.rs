//! `derivationStrict`: attribute set → [`Derivation`], following C++ Nix
//! 2.8's `prim_derivationStrict` (attribute order, coercions, fixed-output
//! rules, inputs from string contexts, hash-derivation-modulo).

use std::collections::{BTreeMap, BTreeSet};

use ferrix_eval::{Coerce, Context, Error, Eval, Result, Span, Symbol, Value};
use ferrix_formats::{fixed_output_ca, CAHash, CaMethod, Derivation, StorePath};

use crate::context::{self, ContextElem};
use crate::io::{store_io, StoreIO};

/// Force a string that must not carry context (C++ `forceStringNoCtx`).
pub fn force_string_noctx(ev: &Eval, v: &Value) -> Result<String> {
    let s = ev.force_string(v)?;
    if let Some(c) = &s.context {
        let first = c.iter().next().expect("non-empty context");
        let p = first.trim_start_matches('=');
        let p = if let Some(r) = p.strip_prefix('!') { r.split_once('!').map(|x| x.1).unwrap_or(r) } else { p };
        return Err(Error::eval(format!(
            "the string '{}' is not allowed to refer to a store path (such as '{p}')",
            s.to_str_lossy()
        )));
    }
    Ok(s.to_str_lossy().into_owned())
}

fn coerce_env(ev: &Eval, v: &Value, ctx: &mut Context) -> Result<Vec<u8>> {
    ev.coerce_to_string(v, ctx, Coerce { more: true, copy_to_store: true })
}

/// `builtins.derivationStrict { name = "x"; builder = "/bin/sh"; system = "x86_64-linux"; }`
/// → `{ drvPath = "/nix/store/…-x.drv"; out = "/nix/store/…-x"; }`
pub fn derivation_strict(ev: &Eval, a: &[Value], pos: Span) -> Result<Value> {
    let attrs = ev.force_attrs(&a[0])?;
    let name_attr = attrs.get_attr(Symbol::new("name")).ok_or_else(|| {
        Error::eval("attribute 'name' missing").while_("in the attrset passed as argument to builtins.derivationStrict", Span::NONE)
    })?;
    let drv_name = force_string_noctx(ev, &name_attr.value).map_err(|e| {
        e.while_("while evaluating the `name` attribute passed to builtins.derivationStrict", Span::NONE)
            .while_("while evaluating the derivation attribute 'name'", name_attr.pos)
    })?;
    let name_pos = name_attr.pos;
    derivation_strict_named(ev, &attrs, &drv_name, pos).map_err(|e| {
        e.while_(
            format!(
                "while evaluating derivation '{drv_name}'\n         whose name attribute is located at {}",
                ferrix_eval::print::pos_string(name_pos)
            ),
            Span::NONE,
        )
    })
}

fn derivation_strict_named(ev: &Eval, attrs: &ferrix_eval::AttrSet, drv_name: &str, pos: Span) -> Result<Value> {
    let drv_name = drv_name.to_string();
    if let Some(c) = drv_name.chars().find(|c| !(c.is_ascii_alphanumeric() || "+-._?=".contains(*c))) {
        return Err(Error::eval(format!(
            "invalid derivation name: name '{drv_name}' contains illegal character '{c}'. Please pass a different 'name'."
        ))
        .at(pos));
    }
    let get_bool = |n: &str| -> Result<bool> {
        match attrs.get(Symbol::new(n)) {
            Some(v) => ev.force_bool(v).map_err(|e| {
                e.while_(format!("while evaluating the `{n}` attribute passed to builtins.derivationStrict"), Span::NONE)
            }),
            None => Ok(false),
        }
    };
    let structured = get_bool("__structuredAttrs")?;
    let ignore_nulls = get_bool("__ignoreNulls")?;

    let mut ctx = Context::new();
    let mut env: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut args: Vec<Vec<u8>> = Vec::new();
    let mut json: Vec<u8> = Vec::new();
    let mut builder: Vec<u8> = Vec::new();
    let mut system: Vec<u8> = Vec::new();
    let mut output_hash: Option<String> = None;
    let mut output_hash_algo: Option<String> = None;
    let mut hash_mode: Option<CaMethod> = None;
    let mut outputs: Vec<String> = vec!["out".into()];

    let set_outputs = |ss: Vec<String>, outputs: &mut Vec<String>| -> Result<()> {
        let mut seen = BTreeSet::new();
        for o in &ss {
            if !seen.insert(o.clone()) {
                return Err(Error::eval(format!("duplicate derivation output '{o}'")));
            }
            // `drv` and `drvPath` would clash with the result's `drvPath`
            if o == "drv" || o == "drvPath" {
                return Err(Error::eval(format!("invalid derivation output name '{o}'")));
            }
        }
        if ss.is_empty() {
            return Err(Error::eval("derivation cannot have an empty set of outputs"));
        }
        *outputs = ss;
        Ok(())
    };
    let set_mode = |s: &str| -> Result<CaMethod> {
        match s {
            "recursive" => Ok(CaMethod::Recursive),
            "flat" => Ok(CaMethod::Flat),
            "text" => Ok(CaMethod::Text),
            _ => Err(Error::eval(format!("invalid value '{s}' for 'outputHashMode' attribute"))),
        }
    };

    for attr in attrs.sorted_by_name() {
        let key = attr.name.as_str().into_owned();
        if key == "__ignoreNulls" {
            continue;
        }
        let r: Result<()> = (|| {
            if ignore_nulls && matches!(ev.force(&attr.value)?, Value::Null) {
                return Ok(());
            }
            match key.as_str() {
                "__contentAddressed" => {
                    if ev.force_bool(&attr.value)? {
                        return Err(Error::eval(
                            "experimental Nix feature 'ca-derivations' is disabled; use '--extra-experimental-features ca-derivations' to override",
                        ));
                    }
                    return Ok(());
                }
                "__impure" => {
                    if ev.force_bool(&attr.value)? {
                        return Err(Error::eval(
                            "experimental Nix feature 'impure-derivations' is disabled; use '--extra-experimental-features impure-derivations' to override",
                        ));
                    }
                    return Ok(());
                }
                "args" => {
                    let l = ev.force_list(&attr.value)?;
                    for x in l.iter() {
                        args.push(
                            coerce_env(ev, x, &mut ctx)
                                .map_err(|e| e.while_("while evaluating an element of the argument list", Span::NONE))?,
                        );
                    }
                    return Ok(());
                }
                _ => {}
            }
            if structured {
                if key == "__structuredAttrs" {
                    return Ok(());
                }
                json.push(if json.is_empty() { b'{' } else { b',' });
                crate::json::string(&mut json, key.as_bytes());
                json.push(b':');
                crate::json::value(ev, &attr.value, &mut ctx, &mut json)?;
                match key.as_str() {
                    "builder" => {
                        let s = ev.force_string(&attr.value)?;
                        s.collect_context(&mut ctx);
                        builder = s.bytes.to_vec();
                    }
                    "system" => system = force_string_noctx(ev, &attr.value)?.into_bytes(),
                    "outputHash" => output_hash = Some(force_string_noctx(ev, &attr.value)?),
                    "outputHashAlgo" => output_hash_algo = Some(force_string_noctx(ev, &attr.value)?),
                    "outputHashMode" => hash_mode = Some(set_mode(&force_string_noctx(ev, &attr.value)?)?),
                    "outputs" => {
                        let l = ev.force_list(&attr.value)?;
                        let ss = l.iter().map(|x| force_string_noctx(ev, x)).collect::<Result<Vec<_>>>()?;
                        set_outputs(ss, &mut outputs)?;
                    }
                    _ => {}
                }
            } else {
                let s = coerce_env(ev, &attr.value, &mut ctx)?;
                let st = || String::from_utf8_lossy(&s).into_owned();
                match key.as_str() {
                    "builder" => builder = s.clone(),
                    "system" => system = s.clone(),
                    "outputHash" => output_hash = Some(st()),
                    "outputHashAlgo" => output_hash_algo = Some(st()),
                    "outputHashMode" => hash_mode = Some(set_mode(&st())?),
                    "outputs" => {
                        let ss = st().split([' ', '\t', '\n', '\r']).filter(|x| !x.is_empty()).map(String::from).collect();
                        set_outputs(ss, &mut outputs)?;
                    }
                    _ => {}
                }
                env.insert(key.clone().into_bytes(), s);
            }
            Ok(())
        })();
        r.map_err(|e| e.while_(format!("while evaluating attribute '{key}' of derivation '{drv_name}'"), attr.pos))?;
    }
    if structured {
        if json.is_empty() {
            json.push(b'{');
        }
        json.push(b'}');
        env.insert(b"__json".to_vec(), json);
    }

    let io = store_io(ev)?;
    let dir = io.store_dir.clone();

    let mut input_drvs: BTreeMap<StorePath, BTreeSet<String>> = BTreeMap::new();
    let mut input_srcs: BTreeSet<StorePath> = BTreeSet::new();
    for e in ctx.iter() {
        match context::parse(&dir, e)? {
            ContextElem::Opaque(p) => {
                input_srcs.insert(p);
            }
            ContextElem::Built { drv, output } => {
                input_drvs.entry(drv).or_default().insert(output);
            }
            ContextElem::DrvDeep(drv) => {
                for p in closure(io, &drv)? {
                    if p.is_derivation() {
                        let d = get_drv(io, &p)?;
                        input_drvs.insert(p.clone(), d.outputs.keys().cloned().collect());
                    }
                    input_srcs.insert(p);
                }
            }
        }
    }

    if builder.is_empty() {
        return Err(Error::eval("required attribute 'builder' missing"));
    }
    if system.is_empty() {
        return Err(Error::eval("required attribute 'system' missing"));
    }
    if drv_name.ends_with(".drv") {
        return Err(Error::eval("derivation names are not allowed to end in '.drv'").at(pos));
    }

    let mut drv = if let Some(h) = &output_hash {
        if outputs.len() != 1 || outputs[0] != "out" {
            return Err(Error::eval("multiple outputs are not supported in fixed-output derivations").at(pos));
        }
        let mode = hash_mode.unwrap_or(CaMethod::Flat);
        let mode_s = match mode {
            CaMethod::Recursive => "recursive",
            _ => "flat",
        };
        let ca = fixed_output_ca(h, output_hash_algo.as_deref(), Some(mode_s)).map_err(|e| Error::eval(e.to_string()).at(pos))?;
        Derivation::fixed_output(CAHash::new(mode, ca.hash))
    } else {
        Derivation::with_outputs(outputs.iter().map(|s| s.as_str()))
    };
    drv.input_drvs = input_drvs;
    drv.input_srcs = input_srcs;
    drv.system = system;
    drv.builder = builder;
    drv.args = args;
    drv.env = env;

    let finished = {
        let mut err = None;
        let r = drv.finish(&dir, &drv_name, &mut |p: &StorePath| match modulo_hash(io, p) {
            Ok(h) => Some(h),
            Err(e) => {
                err = Some(e);
                None
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        r.map_err(|e| Error::eval(e.to_string()).at(pos))?
    };
    let drv_path_s = dir.display(&finished.drv_path);
    register_drv(io, &finished.drv_path, &finished.derivation, &finished.aterm)?;
    // Its modulo hash is needed as soon as another derivation depends on it;
    // compute it now, while the parsed form is at hand.
    if !io.known.borrow().modulo.contains_key(&finished.drv_path) {
        let mut err = None;
        let h = finished.derivation.hash_modulo(&dir, false, &mut |q: &StorePath| match modulo_hash(io, q) {
            Ok(h) => Some(h),
            Err(e) => {
                err = Some(e);
                None
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        let h = h.map_err(|e| Error::eval(e.to_string()))?;
        io.known.borrow_mut().modulo.insert(finished.drv_path.clone(), h);
    }

    let mut pairs = vec![(
        Symbol::new("drvPath"),
        Value::string_ctx(drv_path_s.clone().into_bytes(), Context::from([format!("={drv_path_s}").into()])),
    )];
    for (o, out) in &finished.derivation.outputs {
        let p = out.path.as_ref().map(|p| dir.display(p)).unwrap_or_default();
        pairs.push((Symbol::new(o), Value::string_ctx(p.into_bytes(), Context::from([format!("!{o}!{drv_path_s}").into()]))));
    }
    Ok(Value::attrs_from(pairs))
}

/// Record a derivation made during evaluation and write it to the sink.
pub fn register_drv(io: &StoreIO, path: &StorePath, drv: &Derivation, aterm: &[u8]) -> Result<()> {
    let refs: BTreeSet<StorePath> = drv.input_srcs.iter().chain(drv.input_drvs.keys()).cloned().collect();
    {
        let known = io.known.borrow();
        if known.drvs.contains_key(path) {
            return Ok(());
        }
    }
    io.sink.add_derivation(path, aterm, &refs).map_err(Error::eval)?;
    let mut known = io.known.borrow_mut();
    known.refs.insert(path.clone(), refs);
    known.drvs.insert(path.clone(), aterm.into());
    Ok(())
}

/// A derivation by path: one made in this evaluation, or read from the
/// host's store directory.
pub fn get_drv(io: &StoreIO, p: &StorePath) -> Result<Derivation> {
    let ps = io.store_dir.display(p);
    if let Some(a) = io.known.borrow().drvs.get(p) {
        return Derivation::from_aterm(a, &io.store_dir).map_err(|e| Error::eval(format!("parsing derivation '{ps}': {e}")));
    }
    let bytes = std::fs::read(&ps).map_err(|e| Error::eval(format!("reading derivation '{ps}': {e}")))?;
    let d = Derivation::from_aterm(&bytes, &io.store_dir).map_err(|e| Error::eval(format!("parsing derivation '{ps}': {e}")))?;
    let refs: BTreeSet<StorePath> = d.input_srcs.iter().chain(d.input_drvs.keys()).cloned().collect();
    let mut known = io.known.borrow_mut();
    known.refs.insert(p.clone(), refs);
    known.drvs.insert(p.clone(), bytes.into());
    Ok(d)
}

/// `hashDerivationModulo(drv, false)` of a derivation by path, cached.
pub fn modulo_hash(io: &StoreIO, p: &StorePath) -> Result<[u8; 32]> {
    if let Some(h) = io.known.borrow().modulo.get(p) {
        return Ok(*h);
    }
    let d = get_drv(io, p)?;
    let mut err = None;
    let h = d.hash_modulo(&io.store_dir, false, &mut |q: &StorePath| match modulo_hash(io, q) {
        Ok(h) => Some(h),
        Err(e) => {
            err = Some(e);
            None
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    let h = h.map_err(|e| Error::eval(e.to_string()))?;
    io.known.borrow_mut().modulo.insert(p.clone(), h);
    Ok(h)
}

/// References of a store path: known from this evaluation, or (for `.drv`
/// files) read from the host store; other unknown paths have none.
fn references(io: &StoreIO, p: &StorePath) -> Result<BTreeSet<StorePath>> {
    if let Some(r) = io.known.borrow().refs.get(p) {
        return Ok(r.clone());
    }
    if p.is_derivation() {
        let d = get_drv(io, p)?;
        return Ok(d.input_srcs.iter().chain(d.input_drvs.keys()).cloned().collect());
    }
    Ok(BTreeSet::new())
}

/// The closure of a store path under references (including itself).
pub fn closure(io: &StoreIO, start: &StorePath) -> Result<BTreeSet<StorePath>> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![start.clone()];
    while let Some(p) = todo.pop() {
        if !seen.insert(p.clone()) {
            continue;
        }
        for r in references(io, &p)? {
            if !seen.contains(&r) {
                todo.push(r);
            }
        }
    }
    Ok(seen)
}

/// `builtins.placeholder "out"` → `"/1rz4g4znpzjwh1xymhjpm42vipw92pr73vdgl6xs1hycac8kf2n9"`
pub fn placeholder(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let o = force_string_noctx(ev, &a[0])?;
    Ok(Value::str(&ferrix_formats::hash_placeholder(&o)))
}
