//! Builtins that read files (through [`crate::EvalIO`]): import, readFile,
//! readDir, pathExists, getEnv, findFile, …


use crate::error::{Error, Result};
use crate::ir::Span;
use crate::symbol::Symbol;
use crate::value::{Attr, AttrSet, Env, PrimOpDef, Value};
use crate::{Coerce, Context, Eval, FileType};

pub static DEFS: &[PrimOpDef] = &[
    PrimOpDef { name: "import", arity: 1, func: import, forces: &[] },
    PrimOpDef { name: "scopedImport", arity: 2, func: scoped_import, forces: &[] },
    PrimOpDef { name: "readFile", arity: 1, func: read_file, forces: &[] },
    PrimOpDef { name: "readDir", arity: 1, func: read_dir, forces: &[] },
    PrimOpDef { name: "readFileType", arity: 1, func: read_file_type, forces: &[] },
    PrimOpDef { name: "pathExists", arity: 1, func: path_exists, forces: &[] },
    PrimOpDef { name: "getEnv", arity: 1, func: get_env, forces: &[] },
    PrimOpDef { name: "findFile", arity: 2, func: find_file, forces: &[] },
    PrimOpDef { name: "toPath", arity: 1, func: to_path, forces: &[] },
    PrimOpDef { name: "hashFile", arity: 2, func: hash_file, forces: &[] },
];

fn path_arg(ev: &Eval, v: &Value) -> Result<String> {
    coerce_path(ev, v, true)
}

/// A value coerced to an absolute path; `realise` (as C++ Nix's
/// `realisePath`, not `toPath`) adds its error frames.
fn coerce_path(ev: &Eval, v: &Value, realise: bool) -> Result<String> {
    let v = ev.force(v)?;
    let mut ctx = Context::new();
    let s = ev.coerce_to_string(&v, &mut ctx, Coerce { more: false, copy_to_store: false })?;
    let s = String::from_utf8_lossy(&s).into_owned();
    if !s.starts_with('/') {
        let mut e = Error::eval(format!("string '{s}' doesn't represent an absolute path"));
        if !realise {
            return Err(e);
        }
        e = e.while_("while realising the context of a path", Span::NONE);
        if let Value::Attrs(a) = &v {
            if let Some(attr) = a.get_attr(crate::symbol::sym::to_string()) {
                e = e.while_("while using the result of the `__toString` attribute", attr.pos);
            } else if let Some(attr) = a.get_attr(crate::symbol::sym::out_path()) {
                e = e.while_("while using the `outPath` attribute", attr.pos);
            }
        }
        return Err(e);
    }
    Ok(s)
}

/// Evaluate the file at `path` (a directory means its `default.nix`),
/// through the per-file import cache.
pub fn import_path(ev: &Eval, path: &str) -> Result<Value> {
    let mut path = crate::canon_path(path);
    if let Ok(FileType::Directory) = ev.io.file_type(&path) {
        path = format!("{path}/default.nix");
    } else if let Ok(FileType::Symlink) = ev.io.file_type(&path)
        && let Ok(c) = ev.io.canonicalize(&path)
        && let Ok(FileType::Directory) = ev.io.file_type(&c)
    {
        path = format!("{c}/default.nix");
    }
    if let Some(v) = ev.import_cache.borrow().get(&path) {
        return Ok(v.clone());
    }
    let bytes = ev.io.read_file(&path).map_err(Error::eval)?;
    let text = crate::lower::decode_source(&bytes);
    let dir = match path.rfind('/') {
        Some(0) => "/".to_string(),
        Some(p) => path[..p].to_string(),
        None => ".".to_string(),
    };
    let e = ev.parse(&text, &path, &dir)?;
    let v = ev.eval(e, &ev.root_env.clone())?;
    ev.import_cache.borrow_mut().insert(path, v.clone());
    Ok(v)
}

/// `import ./file.nix`
fn import(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let p = path_arg(ev, &a[0])?;
    import_path(ev, &p)
}
fn scoped_import(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let scope = ev.force(&a[0])?;
    let path = path_arg(ev, &a[1])?;
    let mut path = crate::canon_path(&path);
    if let Ok(FileType::Directory) = ev.io.file_type(&path) {
        path = format!("{path}/default.nix");
    }
    let bytes = ev.io.read_file(&path).map_err(Error::eval)?;
    let text = crate::lower::decode_source(&bytes);
    let dir = path.rsplit_once('/').map_or("/".to_string(), |(d, _)| if d.is_empty() { "/".into() } else { d.into() });
    // The scope's attributes are bound in a frame above the base
    // environment, so they shadow builtins.
    let scope = ev.force_attrs(&scope)?;
    let names: Vec<Symbol> = scope.attrs().iter().map(|a| a.name).collect();
    let slots: Vec<Value> = scope.attrs().iter().map(|a| a.value.clone()).collect();
    let e = ev.parse_scoped(&text, &path, &dir, &names)?;
    let env = Env::new(Some(ev.root_env.clone()), slots);
    ev.eval(e, &env)
}
/// `builtins.readFile ./file`
fn read_file(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let p = path_arg(ev, &a[0])?;
    let bytes = ev.io.read_file(&p).map_err(Error::eval)?;
    Ok(Value::string(bytes))
}
/// `builtins.readDir ./dir` gives e.g. `{ file = "regular"; sub = "directory"; }`
fn read_dir(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let mut p = path_arg(ev, &a[0])?;
    if let Ok(FileType::Symlink) = ev.io.file_type(&p)
        && let Ok(c) = ev.io.canonicalize(&p)
    {
        p = c;
    }
    match ev.io.file_type(&p) {
        Err(_) if !ev.io.path_exists(&p) => return Err(Error::eval(format!("path '{p}' does not exist"))),
        Ok(FileType::Regular) => return Err(Error::eval(format!("'{p}' is not a directory"))),
        _ => {}
    }
    let ents = ev.io.read_dir(&p).map_err(Error::eval)?;
    let mut attrs = Vec::with_capacity(ents.len());
    for (name, t) in ents {
        let t = if t == FileType::Unknown {
            ev.io.file_type(&format!("{p}/{name}")).unwrap_or(FileType::Unknown)
        } else {
            t
        };
        attrs.push(Attr { name: Symbol::new(&name), value: Value::str(t.as_str()), pos: crate::ir::Pos::NONE });
    }
    Ok(Value::attrs(AttrSet::from_unsorted(attrs)))
}
fn read_file_type(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let p = path_arg(ev, &a[0])?;
    Ok(Value::str(ev.io.file_type(&p).map_err(Error::eval)?.as_str()))
}
/// `builtins.pathExists /nonexistent` → `false`
fn path_exists(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let v = ev.force(&a[0])?;
    let p = path_arg(ev, &v).map_err(|e| {
        if e.msg().starts_with("cannot coerce ") { e.while_("while realising the context of a path", Span::NONE) } else { e }
    })?;
    // a trailing slash or "/." requires a directory
    let must_dir = matches!(v, Value::String(ref s) if s.bytes.ends_with(b"/") || s.bytes.ends_with(b"/."));
    let canon = crate::canon_path(&p);
    if must_dir {
        let c = ev.io.canonicalize(&canon).unwrap_or(canon);
        return Ok(Value::Bool(matches!(ev.io.file_type(&c), Ok(FileType::Directory))));
    }
    Ok(Value::Bool(ev.io.path_exists(&canon)))
}
/// `builtins.getEnv "HOME"`
fn get_env(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let n = ev.force_str_nocontext(&a[0])?;
    if ev.opts.pure {
        return Ok(Value::str(""));
    }
    Ok(Value::str(&std::env::var(&n).unwrap_or_default()))
}
fn find_file(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let sp = ev.force_list(&a[0])?;
    let name = ev.force_str_nocontext(&a[1])?;
    for e in sp.iter() {
        let e = ev.force_attrs(e)?;
        let prefix = match e.get(Symbol::new("prefix")) {
            Some(p) => ev.force_str_nocontext(p)?,
            None => String::new(),
        };
        let path = e.get(Symbol::new("path")).ok_or_else(|| Error::eval("attribute 'path' missing"))?;
        let mut ctx = Context::new();
        let path = String::from_utf8_lossy(&ev.coerce_to_string(path, &mut ctx, Coerce { more: false, copy_to_store: false })?).into_owned();
        let rest = if prefix.is_empty() {
            Some(name.clone())
        } else if name == prefix {
            Some(String::new())
        } else {
            name.strip_prefix(&format!("{prefix}/")).map(|r| r.to_string())
        };
        let Some(rest) = rest else { continue };
        let full = crate::canon_path(&if rest.is_empty() { path } else { format!("{path}/{rest}") });
        if ev.io.path_exists(&full) {
            return Ok(Value::path(full.into_bytes()));
        }
    }
    if let Some(p) = ev.io.search_path_fallback(&name) {
        return Ok(Value::path(p.into_bytes()));
    }
    Err(Error::throw(format!("file '{name}' was not found in the Nix search path (add it using $NIX_PATH or -I)")))
}
fn to_path(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let v = ev.force(&a[0])?;
    let p = coerce_path(ev, &v, false)
        .map_err(|e| e.while_("while evaluating the first argument passed to builtins.toPath", Span::NONE))?;
    Ok(Value::str(&crate::canon_path(&p)))
}
fn hash_file(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let algo = ev.force_str_nocontext(&a[0])?;
    let p = path_arg(ev, &a[1])?;
    if !ev.io.path_exists(&p) {
        return Err(Error::eval(format!("path '{p}' does not exist")));
    }
    let bytes = ev.io.read_file(&p).map_err(Error::eval)?;
    Ok(Value::str(&super::string::hex(&super::string::hash_bytes(&algo, &bytes)?)))
}

