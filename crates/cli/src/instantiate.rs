//! `ferrix instantiate`: nix-instantiate's command line.
//!
//! nix-instantiate's flags do not fit clap's model (`--arg NAME EXPR`,
//! order-sensitive `-A`), so the raw arguments are parsed here by hand.

use std::io::{Read, Write};
use std::process::ExitCode;

use ferrix_eval::{Eval, EvalOptions, Symbol, Value};

#[derive(clap::Args)]
pub struct Args {
    /// nix-instantiate's arguments, parsed by hand.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub raw: Vec<String>,
}

/// The evaluation-related flags shared by `instantiate` and `eval`.
#[derive(Default)]
pub struct Flags {
    pub eval: bool,
    pub strict: bool,
    pub json: bool,
    pub xml: bool,
    pub no_location: bool,
    pub parse: bool,
    pub expr_mode: bool,
    pub attr_paths: Vec<String>,
    pub args: Vec<(String, AutoArg)>,
    pub include: Vec<String>,
    pub show_trace: bool,
    pub files: Vec<String>,
    pub raw: bool,
    pub lints: ferrix_eval::Lints,
    pub experimental: Vec<String>,
    /// `--read-write-mode`: with `--eval`, write to the store anyway.
    pub read_write: bool,
    /// `--store URL`: the ferrix store to write to.
    pub store: Option<String>,
    /// `--option abort-on-warn true`
    pub abort_on_warn: bool,
    /// `--max-call-depth N` (`max-call-depth` setting)
    pub max_call_depth: Option<usize>,
}

pub enum AutoArg {
    Expr(String),
    Str(String),
}

fn need<'a>(it: &mut impl Iterator<Item = &'a String>, flag: &str) -> anyhow::Result<String> {
    it.next().cloned().ok_or_else(|| anyhow::anyhow!("flag '{flag}' requires an argument"))
}

/// Apply a setting given as `--option NAME VALUE`, `--NAME VALUE` or in
/// nix.conf; settings of C++ Nix that ferrix has no use for are accepted
/// and ignored. Like C++ Nix, a Boolean is `true`/`yes`/`1` or
/// `false`/`no`/`0`, and a value that does not parse is a warning, not an
/// error (the setting keeps its value).
fn apply_setting(f: &mut Flags, name: &str, value: &str) {
    let invalid = |what: &str| eprintln!("warning: error: {what}setting '{name}' has invalid value '{value}'");
    let boolean = |slot: &mut bool| match value {
        "true" | "yes" | "1" => *slot = true,
        "false" | "no" | "0" => *slot = false,
        _ => invalid("Boolean "),
    };
    match name {
        "abort-on-warn" => boolean(&mut f.abort_on_warn),
        "show-trace" => boolean(&mut f.show_trace),
        "max-call-depth" => match value.parse::<usize>() {
            Ok(n) => f.max_call_depth = Some(n),
            Err(_) => invalid(""),
        },
        _ => {}
    }
}

/// The settings of C++ Nix's configuration that ferrix honours
/// (`max-call-depth`, `abort-on-warn`; `show-trace` is accepted), from
/// `$NIX_CONF_DIR/nix.conf` (default `/etc/nix/nix.conf`) and then the
/// `NIX_CONFIG` variable; command-line flags override both.
fn config_settings(f: &mut Flags) {
    let dir = std::env::var("NIX_CONF_DIR").unwrap_or_else(|_| "/etc/nix".into());
    let file = std::fs::read_to_string(format!("{dir}/nix.conf")).unwrap_or_default();
    let env = std::env::var("NIX_CONFIG").unwrap_or_default();
    for line in file.lines().chain(env.lines()) {
        let line = line.split('#').next().unwrap_or("");
        let Some((name, value)) = line.split_once('=') else { continue };
        apply_setting(f, name.trim(), value.trim());
    }
}

pub fn parse_flags(raw: &[String]) -> anyhow::Result<Flags> {
    let mut f = Flags::default();
    config_settings(&mut f);
    let mut it = raw.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--eval" | "--eval-only" => f.eval = true,
            "--strict" => f.strict = true,
            "--json" => f.json = true,
            "--xml" => f.xml = true,
            "--no-location" => f.no_location = true,
            "--parse" | "--parse-only" => f.parse = true,
            "-E" | "--expr" => f.expr_mode = true,
            "-A" | "--attr" => f.attr_paths.push(need(&mut it, a)?),
            "--arg" => {
                let n = need(&mut it, a)?;
                let v = need(&mut it, a)?;
                f.args.push((n, AutoArg::Expr(v)));
            }
            "--argstr" => {
                let n = need(&mut it, a)?;
                let v = need(&mut it, a)?;
                f.args.push((n, AutoArg::Str(v)));
            }
            "-I" | "--include" => f.include.push(need(&mut it, a)?),
            "--show-trace" => f.show_trace = true,
            "--no-show-trace" => f.show_trace = false,
            "--max-call-depth" => {
                let v = need(&mut it, a)?;
                apply_setting(&mut f, "max-call-depth", &v);
            }
            "--raw" => f.raw = true,
            "--read-write-mode" => f.read_write = true,
            "--readonly-mode" => f.read_write = false,
            "--store" => f.store = Some(need(&mut it, a)?),
            "--quiet" | "-v" | "--verbose" | "--impure" | "--pure-eval" => {}
            "--extra-experimental-features" | "--experimental-features" => {
                let v = need(&mut it, a)?;
                f.experimental.extend(v.split_whitespace().map(String::from));
            }
            "--timeout" | "--max-jobs" | "-j" | "--add-root" => {
                need(&mut it, a)?;
            }
            "--option" => {
                let n = need(&mut it, a)?;
                let v = need(&mut it, a)?;
                apply_setting(&mut f, &n, &v);
            }
            "--lint-absolute-path-literals" | "--lint-short-path-literals" | "--lint-url-literals" => {
                let v = need(&mut it, a)?;
                let level = match v.as_str() {
                    "warn" => ferrix_eval::LintLevel::Warn,
                    "fatal" => ferrix_eval::LintLevel::Fatal,
                    "ignore" => ferrix_eval::LintLevel::Ignore,
                    other => anyhow::bail!("invalid value '{other}' for {a}"),
                };
                match a.as_str() {
                    "--lint-absolute-path-literals" => f.lints.absolute_path_literals = level,
                    "--lint-short-path-literals" => f.lints.short_path_literals = level,
                    _ => f.lints.url_literals = level,
                }
            }
            "-" => f.files.push("-".into()),
            s if s.starts_with("-I") && s.len() > 2 => f.include.push(s[2..].to_string()),
            s if s.starts_with('-') && s.len() > 1 => anyhow::bail!("unrecognised flag '{s}'"),
            s => f.files.push(s.to_string()),
        }
    }
    Ok(f)
}

/// Search path from `-I` flags then `NIX_PATH`.
pub fn search_path(include: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let env = std::env::var("NIX_PATH").unwrap_or_default();
    let entries = include.iter().cloned().chain(env.split(':').filter(|s| !s.is_empty()).map(String::from));
    for e in entries {
        let (prefix, dir) = e.split_once('=').unwrap_or(("", &e));
        out.push((prefix.to_string(), absolute_entry(dir)));
    }
    out
}

/// Search-path directories are taken relative to the working directory, as
/// C++ Nix does; URLs (`https://…`, `channel:…`) are left alone.
fn absolute_entry(dir: &str) -> String {
    if dir.starts_with('/') || dir.contains(':') {
        return dir.to_string();
    }
    match std::env::current_dir() {
        Ok(cwd) => ferrix_eval::canon_path(&format!("{}/{dir}", cwd.display())),
        Err(_) => dir.to_string(),
    }
}

pub fn make_eval(flags: &Flags) -> Eval {
    let opts = EvalOptions {
        search_path: search_path(&flags.include),
        lints: flags.lints,
        experimental: flags.experimental.clone(),
        abort_on_warn: flags.abort_on_warn,
        max_call_depth: flags.max_call_depth.unwrap_or(EvalOptions::default().max_call_depth),
        ..EvalOptions::default()
    };
    ferrix_glue::new_eval(opts, make_sink(flags))
}

/// Where evaluation writes `.drv` files, `toFile` texts and imported paths.
/// Like nix-instantiate, `--eval` and `--parse` are read-only (paths are
/// computed, nothing is written) unless `--read-write-mode` is given;
/// otherwise the ferrix store (`--store URL`, `FERRIX_STORE`, else the
/// embedded redb store under the user's data directory), opened on first
/// write so evaluations that write nothing never lock it. `FERRIX_DRV_DIR`
/// writes plain files into a directory instead (used by tests).
fn make_sink(flags: &Flags) -> Box<dyn ferrix_glue::StoreSink> {
    if let Some(d) = std::env::var_os("FERRIX_DRV_DIR") {
        return Box::new(ferrix_glue::DirStore { root: d.into() });
    }
    if (flags.eval || flags.parse) && !flags.read_write {
        return Box::new(ferrix_glue::MemoryStore::default());
    }
    let url = match &flags.store {
        Some(u) => Ok(u.clone()),
        None => ferrix_store::default_store_url().map_err(|e| e.to_string()),
    };
    Box::new(ferrix_glue::LazyFerrixStore::new(url))
}

fn cwd() -> String {
    std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| "/".into())
}

/// Call a function result with `--arg`/`--argstr` values, like nix's autoCallFunction.
pub fn auto_call(ev: &Eval, v: Value, flags: &Flags) -> ferrix_eval::Result<Value> {
    let v = ev.force(&v)?;
    let is_formals = match &v {
        Value::Lambda(c) => c.lambda.formals.is_some(),
        Value::Attrs(a) => a.get(Symbol::new("__functor")).is_some(),
        _ => false,
    };
    if !is_formals {
        return Ok(v);
    }
    let mut pairs = Vec::new();
    for (n, a) in &flags.args {
        let val = match a {
            AutoArg::Str(s) => Value::str(s),
            AutoArg::Expr(e) => ev.eval_string(e, &cwd())?,
        };
        pairs.push((Symbol::new(n), val));
    }
    if let Value::Lambda(c) = &v
        && let Some(f) = &c.lambda.formals
        && !f.ellipsis
    {
        pairs.retain(|(n, _)| f.entries.iter().any(|e| e.name == *n));
    }
    let arg = Value::attrs_from(pairs);
    ev.call_n(&v, &[arg])
}

/// `a."b.c".d` → `a`, `b.c`, `d` (like C++ Nix's parseAttrPath).
fn split_attr_path(path: &str) -> Vec<String> {
    let (mut parts, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in path.chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

/// Select `-A a.b.c` (numeric components index lists).
pub fn select_attr_path(ev: &Eval, mut v: Value, path: &str) -> ferrix_eval::Result<Value> {
    if path.is_empty() {
        return Ok(v);
    }
    for part in split_attr_path(path) {
        let part = part.as_str();
        v = ev.force(&v)?;
        if let Ok(i) = part.parse::<usize>()
            && let Value::List(l) = &v
        {
            v = l.get(i).cloned().ok_or_else(|| ferrix_eval::Error::eval(format!("list index {i} is out of bounds")))?;
            continue;
        }
        match &v {
            Value::Attrs(a) => match a.get(Symbol::new(part)) {
                Some(x) => v = x.clone(),
                None => {
                    return Err(ferrix_eval::Error::eval(format!("attribute '{part}' in selection path '{path}' not found")));
                }
            },
            other => {
                return Err(ferrix_eval::Error::eval(format!(
                    "the expression selected by the selection path '{path}' should be a set but is {}",
                    other.show_type()
                )));
            }
        }
    }
    ev.force(&v)
}

/// Print a result like nix-instantiate --eval.
pub fn print_result(ev: &Eval, v: &Value, flags: &Flags, out: &mut impl Write) -> ferrix_eval::Result<()> {
    let v = if flags.strict { ev.force_deep(v)? } else { ev.force(v)? };
    if flags.json {
        let mut bytes = Vec::new();
        let mut ctx = ferrix_eval::Context::new();
        ferrix_eval::builtins::json::to_json_bytes(ev, &v, &mut ctx, true, &mut bytes)?;
        bytes.push(b'\n');
        let _ = out.write_all(&bytes);
    } else if flags.xml {
        let mut ctx = ferrix_eval::Context::new();
        let s = ferrix_eval::builtins::xml::to_xml_string(ev, &v, !flags.no_location, &mut ctx)?;
        let _ = out.write_all(s.as_bytes());
    } else if flags.raw {
        let mut ctx = ferrix_eval::Context::new();
        let s = ev.coerce_to_string(&v, &mut ctx, ferrix_eval::Coerce { more: false, copy_to_store: false })?;
        let _ = out.write_all(&s);
    } else {
        let s = ferrix_eval::print::print_value(&v);
        let _ = writeln!(out, "{s}");
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let flags = parse_flags(&args.raw)?;
    // Deep programs need a big stack; run on a thread with plenty (stacker grows further).
    let done = crate::prefault::DoneSignal::new();
    let child = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            let _done = done;
            run_inner(flags)
        })
        .map_err(|e| anyhow::anyhow!("spawning evaluator thread: {e}"))?;
    // meanwhile this thread faults in the heap's pages ahead of the evaluator
    crate::prefault::assist();
    match child.join() {
        Ok(r) => r,
        Err(_) => {
            eprintln!("error: internal evaluator panic");
            Ok(ExitCode::from(1))
        }
    }
}

fn run_inner(flags: Flags) -> anyhow::Result<ExitCode> {
    let ev = make_eval(&flags);
    let cwd = cwd();
    let mut inputs: Vec<(String, String, String)> = Vec::new(); // (text, name, basedir)
    let files = if flags.files.is_empty() && !flags.expr_mode { vec!["./default.nix".to_string()] } else { flags.files.clone() };
    for f in &files {
        if f == "-" {
            let mut b = Vec::new();
            std::io::stdin().read_to_end(&mut b)?;
            let s = ferrix_eval::decode_source(&b);
            inputs.push((s, "«stdin»".into(), cwd.clone()));
        } else if flags.expr_mode {
            inputs.push((f.clone(), "«string»".into(), cwd.clone()));
        } else {
            inputs.push((String::new(), f.clone(), String::new()));
        }
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut warned = false;
    for (text, name, base) in inputs {
        let r: ferrix_eval::Result<()> = (|| {
            if flags.parse {
                // printed as C++ Nix shows the expression it parsed
                let shown = if base.is_empty() {
                    let p = absolute(&name, &cwd);
                    let bytes = ev.io.read_file(&p).map_err(ferrix_eval::Error::eval)?;
                    let dir = p.rsplit_once('/').map(|x| x.0.to_string()).unwrap_or_default();
                    ev.parse_show(&ferrix_eval::decode_source(&bytes), &p, &dir)?
                } else {
                    ev.parse_show(&text, &name, &base)?
                };
                let _ = out.write_all(&shown);
                let _ = writeln!(out);
                return Ok(());
            }
            let v = if base.is_empty() {
                ev.eval_file(&absolute(&name, &cwd))?
            } else {
                ev.eval_source(&text, &name, &base)?
            };
            let v = auto_call(&ev, v, &flags)?;
            let paths = if flags.attr_paths.is_empty() { vec![String::new()] } else { flags.attr_paths.clone() };
            for p in paths {
                let v = select_attr_path(&ev, v.clone(), &p)?;
                if !flags.eval {
                    // glue: instantiate the derivations the value denotes.
                    let drvs = ferrix_glue::instantiate::get_derivations(&ev, &v, &|x| auto_call(&ev, x, &flags))?;
                    for d in drvs {
                        if !warned {
                            eprintln!("warning: you did not specify '--add-root'; the result might be removed by the garbage collector");
                            warned = true;
                        }
                        let _ = writeln!(out, "{}", d.display());
                    }
                    continue;
                }
                print_result(&ev, &v, &flags, &mut out)?;
            }
            Ok(())
        })();
        if let Err(e) = r {
            let _ = out.flush();
            print_error(&e, flags.show_trace);
            return Ok(ExitCode::from(1));
        }
    }
    // `toFile` texts written with --eval --read-write-mode
    if let Err(e) = ferrix_glue::io::store_io(&ev).and_then(|io| io.flush()) {
        print_error(&e, flags.show_trace);
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// An evaluation error on stderr, with its trailing newline.
pub(crate) fn print_error(e: &ferrix_eval::Error, show_trace: bool) {
    use std::io::Write;
    let mut bytes = e.render_bytes(show_trace);
    bytes.push(b'\n');
    let _ = std::io::stderr().lock().write_all(&bytes);
}

pub fn absolute(p: &str, cwd: &str) -> String {
    if p.starts_with('/') { ferrix_eval::canon_path(p) } else { ferrix_eval::canon_path(&format!("{cwd}/{p}")) }
}
