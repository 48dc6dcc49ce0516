//! `ferrix eval-jobs`: list every derivation of a package tree the way
//! `nix-env -qaP --drv-path` finds them, as one JSON line each, in parallel
//! worker processes with bounded memory.
//!
//! The evaluator is single-threaded (reference counted), so parallelism is
//! by process: the coordinator re-runs this binary as workers
//! (`--internal-worker`). Every worker evaluates the root (the shared
//! skeleton, e.g. nixpkgs' package set) and reports how many top-level
//! attributes it has; the coordinator then hands the attribute numbers out
//! one at a time, to whichever worker is free. A worker walks the attribute
//! it is given ([`walk`], nix-env's walk) and evaluates each derivation
//! (`drvPath`, outputs) in the same evaluator as soon as it finds it, so
//! nothing is evaluated twice. The coordinator prints the results in
//! top-level order.
//!
//! Past `--max-memory-per-worker` a worker finishes its attribute, says so
//! and exits; a fresh one takes its place with the next attribute. A worker
//! that dies has the attribute it was on reported as an error.
//!
//! Duplicates: within a process the walk drops an attribute set reached
//! under a second name by identity, as nix-env does. Across processes
//! identity cannot be compared, so a derivation line whose `drvPath`
//! another process printed first is held back; at the end an identity
//! checker (`--internal-same`) selects it and the earlier paths in one
//! evaluator and drops it only if it is the same attribute set.

mod walk;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc;

use anyhow::{Context as _, bail};

use crate::instantiate::{self, Flags};

#[derive(clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    /// `[FILE | -E EXPR] [-A ATTRPATH] [--arg NAME EXPR] [--argstr NAME STR]
    /// [-I PATH] [--workers N] [--max-memory-per-worker SIZE]`; SIZE is a
    /// number of MiB or has a K, M, G suffix.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub raw: Vec<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Coordinate,
    Work,
    Same,
}

struct Options {
    workers: usize,
    max_memory: Option<u64>,
    mode: Mode,
    /// The arguments passed on to the walker and workers (evaluation flags).
    rest: Vec<String>,
}

/// Default bound on a worker's resident memory before it is restarted.
const DEFAULT_MAX_MEMORY: u64 = 1536 << 20;

fn parse_size(s: &str) -> anyhow::Result<u64> {
    let (num, mult) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1 << 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1 << 20),
    };
    let n: u64 = num.parse().with_context(|| format!("invalid size '{s}' (a number of MiB, or with a K, M or G suffix)"))?;
    Ok(n.saturating_mul(mult))
}

fn parse_options(raw: &[String]) -> anyhow::Result<Options> {
    let mut o = Options { workers: 1, max_memory: Some(DEFAULT_MAX_MEMORY), mode: Mode::Coordinate, rest: Vec::new() };
    let mut it = raw.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().with_context(|| format!("flag '{a}' requires an argument"));
        match a.as_str() {
            "--workers" => {
                let v = value()?;
                o.workers = v.parse().ok().filter(|n| *n > 0).with_context(|| format!("invalid worker count '{v}'"))?;
            }
            "--max-memory-per-worker" => {
                let v = value()?;
                o.max_memory = Some(parse_size(&v)?).filter(|n| *n > 0);
            }
            "--internal-worker" => o.mode = Mode::Work,
            "--internal-same" => o.mode = Mode::Same,
            // Flags with two arguments are passed on whole.
            "--arg" | "--argstr" | "--option" => {
                o.rest.push(a.clone());
                o.rest.push(value()?);
                o.rest.push(value()?);
            }
            "-A" | "--attr" | "-I" | "--include" | "--store" | "--extra-experimental-features" | "--experimental-features" => {
                o.rest.push(a.clone());
                o.rest.push(value()?);
            }
            _ => o.rest.push(a.clone()),
        }
    }
    Ok(o)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let opts = parse_options(&args.raw)?;
    let mut flags = instantiate::parse_flags(&opts.rest)?;
    if flags.attr_paths.len() > 1 {
        bail!("eval-jobs takes at most one '-A' attribute path");
    }
    if flags.files.len() > 1 {
        bail!("eval-jobs takes one file or expression");
    }
    // Like `nix-env -qa`, the walk is read-only: paths are computed, nothing is written.
    flags.eval = true;
    if opts.mode == Mode::Coordinate {
        return coordinate(&opts);
    }
    let (max, mode) = (opts.max_memory, opts.mode);
    let child = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || if mode == Mode::Same { same_checker(&flags) } else { worker(&flags, max) })
        .context("spawning evaluator thread")?;
    Ok(child.join().unwrap_or_else(|_| {
        eprintln!("error: internal evaluator panic");
        ExitCode::from(1)
    }))
}

/// Resident set size of this process, from /proc.
fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// The root value the walk starts from: the file or expression, called with
/// `--arg`s, and the `-A` prefix selected.
fn root_value(ev: &ferrix_eval::Eval, flags: &Flags, prefix: &str) -> ferrix_eval::Result<ferrix_eval::Value> {
    let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| "/".into());
    let v = if flags.expr_mode {
        let text = flags.files.first().cloned().unwrap_or_default();
        ev.eval_source(&text, "«string»", &cwd)?
    } else {
        let file = flags.files.first().cloned().unwrap_or_else(|| "./default.nix".into());
        ev.eval_file(&instantiate::absolute(&file, &cwd))?
    };
    let v = instantiate::auto_call(ev, v, flags)?;
    instantiate::select_attr_path(ev, v, prefix)
}

type Out = std::rc::Rc<std::cell::RefCell<std::io::StdoutLock<'static>>>;

/// Writes each derivation's line as the walk finds it, evaluated on the spot.
struct LineVisitor<'a> {
    ev: &'a ferrix_eval::Eval,
    /// The top-level attribute being walked (its number).
    t: std::rc::Rc<std::cell::Cell<usize>>,
    out: Out,
}

impl walk::Visitor for LineVisitor<'_> {
    fn event(&mut self, e: walk::Event) -> bool {
        let (key, json) = match e {
            walk::Event::Drv { attr, drv } => match walk::query_drv(self.ev, &drv) {
                Ok(d) => (d.drv_path.clone(), walk::drv_json(&attr, &d)),
                Err(e) => (String::new(), walk::error_json(&attr, &e)),
            },
            walk::Event::Failed { attr, error } => (String::new(), walk::error_json(&attr, &error)),
        };
        writeln!(self.out.borrow_mut(), "D {}\t{key}\t{json}", self.t.get()).is_ok()
    }
}

/// A worker: evaluate the root, say how many top-level attributes it has
/// (`T <n>`; `T 1` with the root walked as one piece when it is not a set
/// to look into), then walk the top-level attributes whose numbers come on
/// stdin, one line each. Each one is announced (`S <t>\t<attr>`), its lines
/// follow (`D <t>\t<drvPath or empty>\t<json>`) and `F <t>` ends it; past
/// the memory bound that is `F <t> R` and the worker exits.
fn worker(flags: &Flags, max_memory: Option<u64>) -> ExitCode {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    let ev = instantiate::make_eval(flags);
    let auto_call = |v| instantiate::auto_call(&ev, v, flags);
    let prefix = flags.attr_paths.first().cloned().unwrap_or_default();
    let out: Out = Rc::new(RefCell::new(std::io::stdout().lock()));
    let say = |line: &str| {
        let mut o = out.borrow_mut();
        if writeln!(o, "{line}").and_then(|_| o.flush()).is_err() {
            std::process::exit(0)
        }
    };
    let root = match root_value(&ev, flags, &prefix) {
        Ok(v) => v,
        Err(e) => {
            say(&format!("X {}", walk::error_json(&prefix, &e)));
            std::process::exit(0)
        }
    };
    let t = Rc::new(Cell::new(0));
    let mut visitor = LineVisitor { ev: &ev, t: t.clone(), out: out.clone() };
    // One walk for the life of the worker: an attribute set reached again
    // from a later top-level attribute is listed once, as by nix-env.
    let mut w = walk::Walk::new(&ev, &auto_call, &mut visitor);
    let top = w.top(&root, &prefix);
    say(&format!("T {}", top.as_ref().map_or(1, |top| top.children.len())));
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let Ok(i) = line.trim().parse::<usize>() else { break };
        t.set(i);
        let name = match &top {
            Some(top) => top.children.get(i).map(|c| c.0.as_str()).unwrap_or(""),
            None => prefix.as_str(),
        };
        say(&format!("S {i}\t{name}"));
        match &top {
            Some(top) => w.walk_child(top, i),
            None => w.walk(&root, &prefix),
        }
        let retire = matches!((max_memory, rss_bytes()), (Some(max), Some(rss)) if rss > max);
        say(&format!("F {i}{}", if retire { " R" } else { "" }));
        if retire {
            break;
        }
    }
    // Exit without freeing the evaluator's heap: nothing needs it.
    std::process::exit(0)
}

/// Select a derivation by its path below the root: the same steps as the
/// walk (call functions with `--arg`s at every set it descends into).
fn select_found(ev: &ferrix_eval::Eval, flags: &Flags, root: &ferrix_eval::Value, rel: &str) -> ferrix_eval::Result<std::rc::Rc<ferrix_eval::AttrSet>> {
    use ferrix_eval::{Error, Symbol, Value};
    let mut v = instantiate::auto_call(ev, root.clone(), flags)?;
    let parts: Vec<&str> = if rel.is_empty() { Vec::new() } else { rel.split('.').collect() };
    for (j, part) in parts.iter().enumerate() {
        v = match ev.force(&v)? {
            Value::Attrs(a) => a.get(Symbol::new(part)).cloned().ok_or_else(|| Error::eval(format!("attribute '{part}' not found")))?,
            Value::List(l) => part.parse::<usize>().ok().and_then(|i| l.get(i).cloned()).ok_or_else(|| Error::eval(format!("list element {part} not found")))?,
            other => return Err(Error::eval(format!("expected a set but found {}", other.show_type()))),
        };
        if j + 1 < parts.len() {
            v = instantiate::auto_call(ev, v, flags)?;
        }
    }
    ev.force_attrs(&v)
}

/// The identity checker: each stdin line is tab-separated paths below the
/// root; the answer is `1` when the first one is the same attribute set as
/// one of the others (so nix-env would list it once), else `0`.
fn same_checker(flags: &Flags) -> ExitCode {
    let ev = instantiate::make_eval(flags);
    let prefix = flags.attr_paths.first().cloned().unwrap_or_default();
    let root = root_value(&ev, flags, &prefix);
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut paths = line.split('\t');
        let same = match (&root, paths.next()) {
            (Ok(root), Some(b)) => match select_found(&ev, flags, root, b) {
                Ok(b) => paths.any(|a| select_found(&ev, flags, root, a).is_ok_and(|a| std::rc::Rc::ptr_eq(&a, &b))),
                Err(_) => false,
            },
            _ => false,
        };
        if writeln!(out, "{}", if same { 1 } else { 0 }).and_then(|_| out.flush()).is_err() {
            break;
        }
    }
    std::process::exit(0)
}

enum Msg {
    Line(usize, u64, String),
    Eof(usize, u64),
}

struct Slot {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    /// Bumped at every restart, so messages of a previous process are told apart.
    generation: u64,
    /// Unique over all the processes of the run.
    uid: u64,
    /// The top-level attribute this worker was given and has not finished,
    /// with its name once the worker has announced it.
    assigned: Option<(usize, String)>,
    retiring: bool,
}

/// What one top-level attribute produced.
#[derive(Default)]
struct Group {
    /// (drvPath, or empty for an error line; JSON line).
    lines: Vec<(String, String)>,
    /// The process that walked it.
    uid: u64,
    finished: bool,
}

fn spawn(opts: &Options, k: usize, generation: u64, tx: &mpsc::Sender<Msg>) -> anyhow::Result<(Child, Option<ChildStdin>)> {
    let exe = std::env::current_exe().context("finding the ferrix executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg("eval-jobs").arg("--internal-worker");
    match opts.max_memory {
        Some(m) => cmd.arg("--max-memory-per-worker").arg(format!("{}K", m.div_ceil(1024))),
        None => cmd.arg("--max-memory-per-worker").arg("0"),
    };
    let mut child = cmd.args(&opts.rest).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().context("starting an evaluation process")?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stdin = child.stdin.take();
    let tx = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(l) => {
                    if tx.send(Msg::Line(k, generation, l)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send(Msg::Eof(k, generation));
    });
    Ok((child, stdin))
}

fn error_line(attr: &str, msg: &str) -> String {
    format!("{{\"attr\":{},\"error\":{}}}", serde_json::to_string(attr).expect("str"), serde_json::to_string(msg).expect("str"))
}

/// The coordinator: hands the top-level attributes out one at a time to N
/// workers as they finish, and prints what each produced in top-level order.
/// A derivation listed by an earlier top-level attribute walked by another
/// process (so not recognised by identity) is dropped by its `drvPath`.
fn coordinate(opts: &Options) -> anyhow::Result<ExitCode> {
    let (tx, rx) = mpsc::channel();
    let mut slots: Vec<Slot> = Vec::new();
    let mut uids = 0u64;
    for k in 0..opts.workers {
        let (child, stdin) = spawn(opts, k, 0, &tx)?;
        slots.push(Slot { child: Some(child), stdin, generation: 0, uid: uids, assigned: None, retiring: false });
        uids += 1;
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    // Known once the first worker has evaluated the root.
    let mut total: Option<usize> = None;
    let mut groups: Vec<Group> = Vec::new();
    let mut next = 0usize;
    let mut emitted = 0usize;
    // drvPath -> (process, attribute path) of the lines printed with it.
    let mut seen: std::collections::HashMap<String, Vec<(u64, String)>> = std::collections::HashMap::new();
    // Derivation lines whose drvPath another process printed first: listed
    // unless they are the same attribute set (checked at the end).
    let mut contested: Vec<(String, String, u64, String)> = Vec::new();
    let mut failed = false;
    let feed = |s: &mut Slot, next: &mut usize, total: Option<usize>, groups: &mut Vec<Group>| {
        if s.retiring || s.assigned.is_some() || s.child.is_none() {
            return;
        }
        let Some(total) = total else { return };
        if *next >= total {
            return;
        }
        // If the worker has died, its end of file reports the attribute.
        let _ = s.stdin.as_mut().map(|w| writeln!(w, "{next}").and_then(|_| w.flush()));
        s.assigned = Some((*next, String::new()));
        groups[*next].uid = s.uid;
        *next += 1;
    };
    loop {
        if let Some(total) = total {
            // Print the finished groups, in order.
            while emitted < total && groups[emitted].finished {
                let g = std::mem::take(&mut groups[emitted]);
                for (key, json) in g.lines {
                    if !key.is_empty() {
                        let attr = line_attr(&json);
                        let listed = seen.entry(key.clone()).or_default();
                        if listed.iter().any(|(u, _)| *u != g.uid) {
                            contested.push((key, attr, g.uid, json));
                            continue;
                        }
                        listed.push((g.uid, attr));
                    }
                    writeln!(out, "{json}")?;
                }
                emitted += 1;
            }
            if emitted == total {
                break;
            }
        }
        let msg = rx.recv().context("evaluation processes vanished")?;
        match msg {
            Msg::Line(k, g, line) => {
                if g != slots[k].generation {
                    continue;
                }
                let (tag, rest) = line.split_once(' ').unwrap_or((&line, ""));
                match tag {
                    "T" => {
                        let n: usize = rest.trim().parse().with_context(|| format!("bad message from evaluation process {k}: {line}"))?;
                        if total.is_none() {
                            total = Some(n);
                            groups.resize_with(n, Group::default);
                            for s in slots.iter_mut() {
                                feed(s, &mut next, total, &mut groups);
                            }
                        } else if total != Some(n) {
                            bail!("evaluation processes disagree on the number of top-level attributes ({n} vs {total:?})");
                        }
                    }
                    "S" => {
                        let (_, name) = rest.split_once('\t').unwrap_or((rest, ""));
                        if let Some(a) = slots[k].assigned.as_mut() {
                            a.1 = name.to_string();
                        }
                    }
                    "D" => {
                        let mut f = rest.splitn(3, '\t');
                        let (Some(t), Some(key), Some(json)) = (f.next(), f.next(), f.next()) else {
                            bail!("bad message from evaluation process {k}: {line}")
                        };
                        let t: usize = t.parse().with_context(|| format!("bad message from evaluation process {k}: {line}"))?;
                        let g = groups.get_mut(t).with_context(|| format!("bad message from evaluation process {k}: {line}"))?;
                        g.lines.push((key.to_string(), json.to_string()));
                    }
                    "F" => {
                        let mut f = rest.split(' ');
                        let t: usize = f.next().unwrap_or("").parse().with_context(|| format!("bad message from evaluation process {k}: {line}"))?;
                        if let Some(g) = groups.get_mut(t) {
                            g.finished = true;
                        }
                        let s = &mut slots[k];
                        s.assigned = None;
                        s.retiring = f.next() == Some("R");
                        feed(s, &mut next, total, &mut groups);
                    }
                    "X" => {
                        // The root failed: every worker says so; print it once.
                        if total.is_none() {
                            writeln!(out, "{rest}")?;
                            failed = true;
                            total = Some(0);
                        }
                    }
                    _ => bail!("unexpected message from evaluation process {k}: {line}"),
                }
            }
            Msg::Eof(k, g) => {
                if g != slots[k].generation {
                    continue;
                }
                let s = &mut slots[k];
                s.stdin = None;
                let status = match s.child.take().map(|mut c| c.wait()) {
                    Some(Ok(st)) => st.to_string(),
                    _ => "unknown status".into(),
                };
                if let Some((t, name)) = s.assigned.take() {
                    let msg = format!("evaluation worker died ({status}) while evaluating this attribute");
                    let name = if name.is_empty() { format!("<top-level attribute {t}>") } else { name };
                    groups[t].lines.push((String::new(), error_line(&name, &msg)));
                    groups[t].finished = true;
                } else if total.is_none() {
                    eprintln!("error: an evaluation worker died ({status}) while evaluating the root");
                    failed = true;
                    total = Some(0);
                }
                // A worker past its memory bound (or one that died) is
                // replaced while attributes remain.
                s.retiring = false;
                if total.is_some_and(|n| next < n) {
                    s.generation += 1;
                    s.uid = uids;
                    uids += 1;
                    let (child, stdin) = spawn(opts, k, s.generation, &tx)?;
                    s.child = Some(child);
                    s.stdin = stdin;
                    feed(s, &mut next, total, &mut groups);
                }
            }
        }
    }
    for s in slots.iter_mut() {
        s.stdin = None;
    }
    for s in slots.iter_mut() {
        if let Some(mut c) = s.child.take() {
            let _ = c.wait();
        }
    }
    resolve_contested(opts, contested, &mut seen, &mut out)?;
    out.flush()?;
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// The `attr` of a JSON line.
fn line_attr(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v.get("attr").and_then(|a| a.as_str().map(str::to_string)))
        .unwrap_or_default()
}

/// Decide the lines whose drvPath another process listed first: nix-env
/// lists an attribute set once (by identity), so one evaluator (the
/// identity checker) selects the paths and compares the sets.
fn resolve_contested(
    opts: &Options,
    contested: Vec<(String, String, u64, String)>,
    seen: &mut std::collections::HashMap<String, Vec<(u64, String)>>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    if contested.is_empty() {
        return Ok(());
    }
    let prefix = instantiate::parse_flags(&opts.rest)?.attr_paths.first().cloned().unwrap_or_default();
    let rel = |attr: &str| -> String {
        if prefix.is_empty() {
            attr.to_string()
        } else {
            attr.strip_prefix(prefix.as_str()).map(|r| r.strip_prefix('.').unwrap_or(r)).unwrap_or("").to_string()
        }
    };
    let exe = std::env::current_exe().context("finding the ferrix executable")?;
    let mut child = Command::new(exe)
        .arg("eval-jobs")
        .arg("--internal-same")
        .args(&opts.rest)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the identity checker")?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut answers = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    for (key, attr, uid, json) in contested {
        let listed = seen.entry(key).or_default();
        let others: Vec<String> = listed.iter().filter(|(u, _)| *u != uid).map(|(_, a)| rel(a)).collect();
        let mut line = rel(&attr);
        for a in &others {
            line.push('\t');
            line.push_str(a);
        }
        // If the checker fails, the line is listed (never dropped on doubt).
        let same = writeln!(stdin, "{line}").and_then(|_| stdin.flush()).is_ok()
            && matches!(answers.next(), Some(Ok(a)) if a == "1");
        if !same {
            listed.push((uid, attr));
            writeln!(out, "{json}")?;
        }
    }
    drop(stdin);
    let _ = child.wait();
    Ok(())
}
