//! `ferrix eval-jobs`: list every derivation of a package tree the way
//! `nix-env -qaP --drv-path` finds them, as one JSON line each, in parallel
//! worker processes with bounded memory.
//!
//! The evaluator is single-threaded (reference counted), so parallelism is
//! by process: the coordinator re-runs this binary in two hidden modes.
//!
//! - The walker (`--internal-walk`) runs nix-env's walk ([`walk`]): it
//!   forces every attribute far enough to know whether it is a derivation,
//!   drops duplicates by identity as nix-env does, and writes on stdout
//!   `Q <i>\t<attr>\t<path below the root>` for each derivation to evaluate,
//!   `D <i>\t<json>` for each failing attribute, `X <json>` if the root
//!   fails and `E` at the end.
//! - Workers (`--internal-worker`) read `<i>\t<attr>\t<path>` lines on
//!   stdin, select that attribute (no walk), force its `drvPath` and outputs
//!   and answer `D <i>\t<json>`; past `--max-memory-per-worker` they answer
//!   `R` after the line and exit, and the coordinator starts a fresh one.
//!
//! With `--workers N` at most N of these processes evaluate at once: slot 0
//! runs the walker first and then becomes a worker; slots 1.. are workers
//! from the start, fed as the walker finds derivations. A worker that dies
//! has the attribute it was given reported as an error.

mod walk;

use std::collections::VecDeque;
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
    Walk,
    Work,
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
            "--internal-walk" => o.mode = Mode::Walk,
            "--internal-worker" => o.mode = Mode::Work,
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
    let (mode, max) = (opts.mode, opts.max_memory);
    let child = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || if mode == Mode::Walk { walker(&flags) } else { worker(&flags, max) })
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

struct WalkVisitor {
    prefix: String,
    out: std::io::BufWriter<std::io::StdoutLock<'static>>,
    ok: bool,
}

impl walk::Visitor for WalkVisitor {
    fn event(&mut self, i: usize, e: walk::Event) -> bool {
        let r = match e {
            walk::Event::Drv { attr, .. } => {
                let rel = if self.prefix.is_empty() {
                    attr.as_str()
                } else {
                    attr.strip_prefix(self.prefix.as_str()).map(|r| r.strip_prefix('.').unwrap_or(r)).unwrap_or("")
                };
                writeln!(self.out, "Q {i}\t{attr}\t{rel}").and_then(|_| self.out.flush())
            }
            walk::Event::Failed { attr, error } => writeln!(self.out, "D {i}\t{}", walk::error_json(&attr, &error)),
        };
        self.ok = r.is_ok();
        self.ok
    }
}

/// The walker: nix-env's walk, derivations queued for the workers.
fn walker(flags: &Flags) -> ExitCode {
    let ev = instantiate::make_eval(flags);
    let auto_call = |v| instantiate::auto_call(&ev, v, flags);
    let prefix = flags.attr_paths.first().cloned().unwrap_or_default();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let root = match root_value(&ev, flags, &prefix) {
        Ok(v) => v,
        Err(e) => {
            let _ = writeln!(out, "X {}\nE", walk::error_json(&prefix, &e)).and_then(|_| out.flush());
            return ExitCode::SUCCESS;
        }
    };
    let mut visitor = WalkVisitor { prefix: prefix.clone(), out, ok: true };
    walk::Walk::new(&ev, &auto_call, &mut visitor).walk(&root, &prefix);
    if visitor.ok {
        let _ = writeln!(visitor.out, "E").and_then(|_| visitor.out.flush());
    }
    // Exit without freeing the evaluator's heap: nothing needs it.
    std::process::exit(0)
}

/// Select a derivation the walker found: the same steps as the walk (call
/// functions with `--arg`s at every set it descends into).
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

/// A worker: evaluate the derivations named on stdin, one line each.
fn worker(flags: &Flags, max_memory: Option<u64>) -> ExitCode {
    let ev = instantiate::make_eval(flags);
    let prefix = flags.attr_paths.first().cloned().unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let root = root_value(&ev, flags, &prefix);
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut f = line.splitn(3, '\t');
        let (Some(i), Some(attr), Some(rel)) = (f.next(), f.next(), f.next()) else { break };
        let json = match &root {
            Ok(root) => match select_found(&ev, flags, root, rel).and_then(|a| walk::query_drv(&ev, &a)) {
                Ok(d) => walk::drv_json(attr, &d),
                Err(e) => walk::error_json(attr, &e),
            },
            Err(e) => walk::error_json(attr, e),
        };
        if writeln!(out, "D {i}\t{json}").and_then(|_| out.flush()).is_err() {
            break;
        }
        if let (Some(max), Some(rss)) = (max_memory, rss_bytes())
            && rss > max
        {
            let _ = writeln!(out, "R").and_then(|_| out.flush());
            std::process::exit(0);
        }
    }
    std::process::exit(0)
}

enum Msg {
    Line(usize, u64, String),
    Eof(usize, u64),
}

enum Role {
    Walker,
    Worker,
}

struct Slot {
    role: Role,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    generation: u64,
    /// The job this worker is evaluating: (attr, request line).
    busy: Option<(String, String)>,
    restart: bool,
    done: bool,
}

fn spawn(opts: &Options, k: usize, walker: bool, generation: u64, tx: &mpsc::Sender<Msg>) -> anyhow::Result<(Child, Option<ChildStdin>)> {
    let exe = std::env::current_exe().context("finding the ferrix executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg("eval-jobs").arg(if walker { "--internal-walk" } else { "--internal-worker" });
    match opts.max_memory {
        Some(m) => cmd.arg("--max-memory-per-worker").arg(format!("{}K", m.div_ceil(1024))),
        None => cmd.arg("--max-memory-per-worker").arg("0"),
    };
    let stdin = if walker { Stdio::null() } else { Stdio::piped() };
    let mut child = cmd.args(&opts.rest).stdin(stdin).stdout(Stdio::piped()).spawn().context("starting an evaluation process")?;
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

fn coordinate(opts: &Options) -> anyhow::Result<ExitCode> {
    let (tx, rx) = mpsc::channel();
    let mut slots: Vec<Slot> = Vec::new();
    for k in 0..opts.workers {
        let walker = k == 0;
        let (child, stdin) = spawn(opts, k, walker, 0, &tx)?;
        let role = if walker { Role::Walker } else { Role::Worker };
        slots.push(Slot { role, child: Some(child), stdin, generation: 0, busy: None, restart: false, done: false });
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut queue: VecDeque<(String, String)> = VecDeque::new();
    let mut walk_done = false;
    let mut root_failed = false;
    loop {
        // Feed idle workers.
        for s in slots.iter_mut() {
            if matches!(s.role, Role::Worker) && s.busy.is_none() && !s.done && !s.restart {
                let Some((attr, req)) = queue.pop_front() else { break };
                // If the worker has died, its end of file reports the job.
                let _ = s.stdin.as_mut().map(|w| writeln!(w, "{req}").and_then(|_| w.flush()));
                s.busy = Some((attr, req));
            }
        }
        if walk_done && queue.is_empty() && slots.iter().all(|s| s.busy.is_none()) {
            break;
        }
        let msg = rx.recv().context("evaluation processes vanished")?;
        match msg {
            Msg::Line(k, g, line) => {
                if g != slots[k].generation {
                    continue;
                }
                let (tag, rest) = line.split_once(' ').unwrap_or((&line, ""));
                match tag {
                    "Q" => {
                        let (_, req) = rest.split_once('\t').unwrap_or(("", rest));
                        let attr = req.split('\t').next().unwrap_or("").to_string();
                        queue.push_back((attr, rest.to_string()));
                    }
                    "D" => {
                        let (_, json) = rest.split_once('\t').unwrap_or((rest, ""));
                        writeln!(out, "{json}")?;
                        slots[k].busy = None;
                    }
                    "R" => slots[k].restart = true,
                    "X" => {
                        if !root_failed {
                            writeln!(out, "{rest}")?;
                            root_failed = true;
                        }
                    }
                    "E" => walk_done = true,
                    _ => bail!("unexpected message from evaluation process {k}: {line}"),
                }
            }
            Msg::Eof(k, g) => {
                if g != slots[k].generation {
                    continue;
                }
                let s = &mut slots[k];
                s.stdin = None;
                let status = s.child.take().map(|mut c| c.wait());
                let was_walker = matches!(s.role, Role::Walker);
                if was_walker && !walk_done {
                    let status = match status {
                        Some(Ok(st)) => st.to_string(),
                        _ => "unknown status".into(),
                    };
                    eprintln!("error: the walk stopped early (walker died: {status}); the listing is incomplete");
                    walk_done = true;
                    root_failed = true;
                }
                let restart = std::mem::take(&mut s.restart);
                if let Some((attr, req)) = s.busy.take() {
                    if restart {
                        // Sent after its last answer, never read: hand it out again.
                        queue.push_front((attr, req));
                    } else {
                        let status = match status {
                            Some(Ok(st)) => st.to_string(),
                            _ => "unknown status".into(),
                        };
                        let msg = format!("evaluation worker died ({status}) while evaluating this attribute");
                        writeln!(out, "{{\"attr\":{},\"error\":{}}}", serde_json::to_string(&attr)?, serde_json::to_string(&msg)?)?;
                    }
                }
                // The walker's slot becomes a worker; a worker past its
                // memory bound (or one that died) is replaced while work remains.
                s.role = Role::Worker;
                if walk_done && queue.is_empty() {
                    s.done = true;
                    continue;
                }
                s.generation += 1;
                let (child, stdin) = spawn(opts, k, false, s.generation, &tx)?;
                s.child = Some(child);
                s.stdin = stdin;
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
    out.flush()?;
    Ok(if root_failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
