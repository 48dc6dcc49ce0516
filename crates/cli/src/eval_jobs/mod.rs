//! `ferrix eval-jobs`: list every derivation of a package tree the way
//! `nix-env -qaP --drv-path` finds them, as one JSON line each, in parallel
//! worker processes with bounded memory.
//!
//! The evaluator is single-threaded (reference counted), so parallelism is
//! by process: the coordinator re-runs this binary in a hidden worker mode
//! (`--internal-worker K,N,SKIP`) and reads line-based messages from each
//! worker's stdout:
//!
//! - `B <i>\t<attr>`: worker starts event `i` (so a crash can be blamed on it)
//! - `D <i>\t<json>`: the JSON line for event `i`
//! - `R <i>`: worker grew past `--max-memory-per-worker`; restart it at event `i`
//! - `X <json>`: the root expression failed (every worker says so; printed once)
//! - `E`: the walk is complete
//!
//! Every worker walks the whole tree (see [`walk`]) so all agree on the
//! numbering and on nix-env's duplicate elimination; worker K evaluates the
//! derivations of events `i ≡ K (mod N)` only.

mod walk;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitCode, Stdio};
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

struct Options {
    workers: usize,
    max_memory: Option<u64>,
    /// The hidden worker mode: (K, N, SKIP).
    worker: Option<(usize, usize, usize)>,
    /// The arguments passed on to workers (evaluation flags).
    rest: Vec<String>,
}

/// Default bound on a worker's resident memory before it is restarted.
const DEFAULT_MAX_MEMORY: u64 = 4 << 30;

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
    let mut o = Options { workers: 1, max_memory: Some(DEFAULT_MAX_MEMORY), worker: None, rest: Vec::new() };
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
            "--internal-worker" => {
                let v = value()?;
                let p: Vec<usize> = v.split(',').map(str::parse).collect::<Result<_, _>>().context("bad worker spec")?;
                let [k, n, skip] = p[..] else { bail!("bad worker spec '{v}'") };
                o.worker = Some((k, n, skip));
            }
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
    match opts.worker {
        Some((k, n, skip)) => {
            let max = opts.max_memory;
            let child = std::thread::Builder::new()
                .stack_size(64 << 20)
                .spawn(move || worker(&flags, k, n, skip, max))
                .context("spawning evaluator thread")?;
            Ok(child.join().unwrap_or_else(|_| {
                eprintln!("error: internal evaluator panic");
                ExitCode::from(1)
            }))
        }
        None => coordinate(&opts),
    }
}

/// Resident set size of this process, from /proc.
fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

struct WorkerVisitor<'a> {
    ev: &'a ferrix_eval::Eval,
    k: usize,
    n: usize,
    skip: usize,
    max_memory: Option<u64>,
    out: std::io::StdoutLock<'static>,
}

impl walk::Visitor for WorkerVisitor<'_> {
    fn event(&mut self, i: usize, e: walk::Event) -> bool {
        if i < self.skip || i % self.n != self.k {
            return true;
        }
        let (walk::Event::Drv { attr, .. } | walk::Event::Failed { attr, .. }) = &e;
        let ok = writeln!(self.out, "B {i}\t{attr}").and_then(|_| self.out.flush()).is_ok();
        let json = match e {
            walk::Event::Drv { attr, drv } => match walk::query_drv(self.ev, &drv) {
                Ok(d) => walk::drv_json(&attr, &d),
                Err(err) => walk::error_json(&attr, &err),
            },
            walk::Event::Failed { attr, error } => walk::error_json(&attr, &error),
        };
        let ok = ok && writeln!(self.out, "D {i}\t{json}").and_then(|_| self.out.flush()).is_ok();
        if !ok {
            return false; // the coordinator is gone
        }
        if let (Some(max), Some(rss)) = (self.max_memory, rss_bytes())
            && rss > max
        {
            let _ = writeln!(self.out, "R {}", i + 1).and_then(|_| self.out.flush());
            return false;
        }
        true
    }
}

fn worker(flags: &Flags, k: usize, n: usize, skip: usize, max_memory: Option<u64>) -> ExitCode {
    let ev = instantiate::make_eval(flags);
    let auto_call = |v| instantiate::auto_call(&ev, v, flags);
    let mut out = std::io::stdout().lock();
    let prefix = flags.attr_paths.first().cloned().unwrap_or_default();
    let root = (|| {
        let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| "/".into());
        let v = if flags.expr_mode {
            let text = flags.files.first().cloned().unwrap_or_default();
            ev.eval_source(&text, "«string»", &cwd)?
        } else {
            let file = flags.files.first().cloned().unwrap_or_else(|| "./default.nix".into());
            ev.eval_file(&instantiate::absolute(&file, &cwd))?
        };
        let v = auto_call(v)?;
        instantiate::select_attr_path(&ev, v, &prefix)
    })();
    let root = match root {
        Ok(v) => v,
        Err(e) => {
            let _ = writeln!(out, "X {}", walk::error_json(&prefix, &e));
            let _ = writeln!(out, "E");
            return ExitCode::SUCCESS;
        }
    };
    let mut visitor = WorkerVisitor { ev: &ev, k, n, skip, max_memory, out: std::io::stdout().lock() };
    drop(out);
    let mut w = walk::Walk::new(&ev, &auto_call, &mut visitor);
    w.walk(&root, &prefix);
    let stopped = w.stopped();
    drop(w);
    if !stopped {
        let _ = writeln!(visitor.out, "E").and_then(|_| visitor.out.flush());
    }
    ExitCode::SUCCESS
}

enum Msg {
    Line(usize, u64, String),
    Eof(usize, u64),
}

struct Slot {
    child: Option<Child>,
    generation: u64,
    /// The event being evaluated (from its `B` line).
    pending: Option<(usize, String)>,
    /// The first event not yet done.
    next: usize,
    restart_at: Option<usize>,
    finished: bool,
    /// Consecutive crashes without progress.
    crashes: u32,
}

fn spawn(opts: &Options, k: usize, skip: usize, generation: u64, tx: &mpsc::Sender<Msg>) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("finding the ferrix executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg("eval-jobs").arg("--internal-worker").arg(format!("{k},{},{skip}", opts.workers));
    match opts.max_memory {
        Some(m) => cmd.arg("--max-memory-per-worker").arg(format!("{}K", m.div_ceil(1024))),
        None => cmd.arg("--max-memory-per-worker").arg("0"),
    };
    let mut child = cmd.args(&opts.rest).stdin(Stdio::null()).stdout(Stdio::piped()).spawn().context("starting a worker")?;
    let stdout = child.stdout.take().expect("stdout is piped");
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
    Ok(child)
}

fn coordinate(opts: &Options) -> anyhow::Result<ExitCode> {
    let (tx, rx) = mpsc::channel();
    let mut slots = Vec::new();
    for k in 0..opts.workers {
        let child = spawn(opts, k, 0, 0, &tx)?;
        slots.push(Slot { child: Some(child), generation: 0, pending: None, next: 0, restart_at: None, finished: false, crashes: 0 });
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut root_failed = false;
    let mut failed = false;
    while slots.iter().any(|s| !s.finished) {
        let msg = rx.recv().context("workers vanished")?;
        match msg {
            Msg::Line(k, g, line) => {
                if g != slots[k].generation {
                    continue;
                }
                let s = &mut slots[k];
                let (tag, rest) = line.split_once(' ').unwrap_or((&line, ""));
                match tag {
                    "B" => {
                        let (i, attr) = rest.split_once('\t').unwrap_or((rest, ""));
                        s.pending = i.parse().ok().map(|i| (i, attr.to_string()));
                    }
                    "D" => {
                        let (i, json) = rest.split_once('\t').unwrap_or((rest, ""));
                        writeln!(out, "{json}")?;
                        s.pending = None;
                        s.crashes = 0;
                        if let Ok(i) = i.parse::<usize>() {
                            s.next = i + 1;
                        }
                    }
                    "R" => s.restart_at = rest.parse().ok(),
                    "X" => {
                        if !root_failed {
                            writeln!(out, "{rest}")?;
                            root_failed = true;
                        }
                    }
                    "E" => s.finished = true,
                    _ => bail!("unexpected message from worker {k}: {line}"),
                }
            }
            Msg::Eof(k, g) => {
                if g != slots[k].generation {
                    continue;
                }
                let s = &mut slots[k];
                let status = s.child.take().map(|mut c| c.wait());
                if s.finished {
                    continue;
                }
                let resume = if let Some(at) = s.restart_at.take() {
                    at
                } else {
                    let status = match status {
                        Some(Ok(st)) => st.to_string(),
                        _ => "unknown status".into(),
                    };
                    s.crashes += 1;
                    match s.pending.take() {
                        Some((i, attr)) => {
                            let msg = format!("evaluation worker died ({status}) while evaluating this attribute");
                            writeln!(out, "{{\"attr\":{},\"error\":{}}}", serde_json::to_string(&attr)?, serde_json::to_string(&msg)?)?;
                            i + 1
                        }
                        None if s.crashes < 2 => s.next,
                        None => {
                            eprintln!("error: evaluation worker {k} died ({status}) outside any attribute; giving up on its share");
                            failed = true;
                            s.finished = true;
                            continue;
                        }
                    }
                };
                out.flush()?;
                s.generation += 1;
                s.next = resume;
                s.child = Some(spawn(opts, k, resume, s.generation, &tx)?);
            }
        }
    }
    out.flush()?;
    for s in &mut slots {
        if let Some(mut c) = s.child.take() {
            let _ = c.wait();
        }
    }
    Ok(if root_failed || failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
