//! Store-path builtins: `toFile`, `path`, `filterSource`, `storePath`.

use std::collections::BTreeSet;

use ferrix_eval::{Coerce, Context, ContextElem, Error, Eval, FileType, Result, Span, Value};
use ferrix_formats::{CaMethod, HashAlgo, NixHash, StorePath};

use crate::context::{self, Parsed};
use crate::derivation::force_string_noctx;
use crate::io::{base_name, store_io};

fn store_string(ev: &Eval, p: &StorePath) -> Result<Value> {
    Ok(context::store_path_value(&store_io(ev)?.store_dir, p))
}

/// `builtins.toFile "a" "hello"` → `"/nix/store/…-a"` (a text path whose
/// references come from the contents' context).
pub fn to_file(ev: &Eval, a: &[Value], pos: Span) -> Result<Value> {
    let name = force_string_noctx(ev, &a[0])?;
    let contents = ev.force_string(&a[1])?;
    let io = store_io(ev)?;
    let mut refs = BTreeSet::new();
    // in C++ Nix's order (by text), so the error names the same element
    for e in contents.context.sorted_strs() {
        match context::parse(&io.store_dir, ContextElem::new(e))? {
            Parsed::Opaque(p) => {
                refs.insert(p);
            }
            _ => {
                return Err(Error::eval(format!(
                    "in 'toFile': the file named '{name}' must not contain a reference to a derivation but contains ({e})"
                ))
                .at(pos));
            }
        }
    }
    let p = io
        .store_dir
        .compute_text_path(&name, &contents.bytes, &refs)
        .map_err(|e| Error::eval(e.to_string()).at(pos))?;
    io.sink.add_text(&p, &contents.bytes, &refs).map_err(Error::eval)?;
    io.register(&p, refs);
    store_string(ev, &p)
}

fn filter_fn<'a>(ev: &'a Eval, f: Option<Value>, pos: Span) -> impl FnMut(&str, FileType) -> Result<bool> + 'a {
    move |path: &str, t: FileType| match &f {
        None => Ok(true),
        Some(f) => {
            let _ = pos;
            let r = ev.call_n(f, &[Value::str(path), Value::str(t.as_str())])?;
            ev.force_bool(&r).map_err(|e| e.while_("while evaluating the return value of the path filter function", Span::NONE))
        }
    }
}

fn source_path(ev: &Eval, v: &Value) -> Result<String> {
    let mut ctx = Context::new();
    let s = ev.coerce_to_string(v, &mut ctx, Coerce { more: false, copy_to_store: false })?;
    let s = String::from_utf8_lossy(&s).into_owned();
    if !s.starts_with('/') {
        return Err(Error::eval(format!("string '{s}' doesn't represent an absolute path")));
    }
    Ok(s)
}

fn add_path(
    ev: &Eval,
    path: &str,
    name: &str,
    filter: Option<Value>,
    method: CaMethod,
    expected: Option<NixHash>,
    pos: Span,
) -> Result<Value> {
    let io = store_io(ev)?;
    let r = (|| {
        let mut f = filter_fn(ev, filter, pos);
        let p = io.import(path, name, method, None, &mut f)?;
        if let Some(h) = &expected {
            let want = io.store_dir.make_fixed_output_path(name, method, h, [], false).map_err(|e| Error::eval(e.to_string()))?;
            if want != p {
                return Err(Error::eval(format!("store path mismatch in (possibly filtered) path added from '{path}'")));
            }
        }
        store_string(ev, &p)
    })();
    let _ = pos;
    r.map_err(|e| e.while_(format!("while adding path '{path}'"), Span::NONE))
}

/// `builtins.path { path = ./.; name = "src"; filter = p: t: true; recursive = true; sha256 = "…"; }`
pub fn path(ev: &Eval, a: &[Value], pos: Span) -> Result<Value> {
    let attrs = ev.force_attrs(&a[0])?;
    let mut path = None;
    let mut name = None;
    let mut filter = None;
    let mut method = CaMethod::Recursive;
    let mut expected = None;
    for attr in attrs.attrs() {
        let n = attr.name.as_str().into_owned();
        match n.as_str() {
            "path" => path = Some(source_path(ev, &attr.value)?),
            "name" => name = Some(force_string_noctx(ev, &attr.value)?),
            "filter" => filter = Some(ev.force_function(&attr.value)?),
            "recursive" => {
                method = if ev.force_bool(&attr.value)? { CaMethod::Recursive } else { CaMethod::Flat };
            }
            "sha256" => {
                let s = force_string_noctx(ev, &attr.value)?;
                expected = Some(if s.is_empty() {
                    NixHash::from_digest(HashAlgo::Sha256, &[0; 32]).expect("32 bytes")
                } else {
                    NixHash::parse(&s, Some(HashAlgo::Sha256)).map_err(|e| Error::eval(e.to_string()).at(attr.pos))?
                });
            }
            _ => return Err(Error::eval(format!("unsupported argument '{n}' to 'addPath'")).at(attr.pos)),
        }
    }
    let path = path.ok_or_else(|| Error::eval("missing required 'path' attribute in the first argument to builtins.path").at(pos))?;
    let name = name.unwrap_or_else(|| base_name(&path).to_string());
    add_path(ev, &path, &name, filter, method, expected, pos)
}

/// `builtins.filterSource (p: t: t != "symlink") ./src`
pub fn filter_source(ev: &Eval, a: &[Value], pos: Span) -> Result<Value> {
    let path = source_path(ev, &a[1]).map_err(|e| {
        e.while_("while evaluating the second argument (the path to filter) passed to 'builtins.filterSource'", Span::NONE)
    })?;
    let f = ev
        .force_function(&a[0])
        .map_err(|e| e.while_("while evaluating the first argument passed to builtins.filterSource", Span::NONE))?;
    let name = base_name(&path).to_string();
    add_path(ev, &path, &name, Some(f), CaMethod::Recursive, None, pos)
}

/// `builtins.storePath /nix/store/…-foo` → the path as a string with the store path in its context.
pub fn store_path(ev: &Eval, a: &[Value], pos: Span) -> Result<Value> {
    let io = store_io(ev)?;
    let mut ctx = Context::new();
    let s = ev
        .coerce_to_string(&a[0], &mut ctx, Coerce { more: false, copy_to_store: false })
        .map_err(|e| e.while_("while evaluating the first argument passed to 'builtins.storePath'", Span::NONE))?;
    let mut path = String::from_utf8_lossy(&s).into_owned();
    if !path.starts_with('/') {
        return Err(Error::eval(format!("string '{path}' doesn't represent an absolute path")).at(pos));
    }
    if io.store_dir.parse(&path).is_err()
        && let Ok(c) = std::fs::canonicalize(&path)
    {
        path = c.display().to_string();
    }
    let (sp, _) = io
        .store_dir
        .parse_prefix(&path)
        .map_err(|_| Error::eval(format!("path '{path}' is not in the Nix store")).at(pos))?;
    ctx.insert(ContextElem::opaque(&io.store_dir.display_ref(&sp)));
    Ok(Value::string_ctx(path.into_bytes(), ctx))
}
