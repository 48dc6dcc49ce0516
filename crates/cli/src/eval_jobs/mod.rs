//! `ferrix eval-jobs`: list every derivation of a package tree the way
//! `nix-env -qaP --drv-path` finds them, as one JSON line each, in parallel
//! worker processes with bounded memory.
//!
//! The evaluator is single-threaded (reference counted), so parallelism is
//! by process: the coordinator re-runs this binary as workers
//! (`--internal-worker`). Every worker evaluates the root (the shared
//! skeleton, e.g. nixpkgs' package set). The walk is cut into units, each
//! one attribute path: the root's attributes, and the attributes of every
//! `recurseForDerivations` set a unit meets (the worker reports the set's
//! names instead of walking it). The coordinator hands units out, a few
//! ahead, to whichever worker is free (a cut set's units to the worker that
//! cut it, shared only at the tail); a worker walks its unit ([`walk`],
//! nix-env's walk) and evaluates each derivation (`drvPath`, outputs) in the
//! same evaluator as soon as it finds it. The coordinator prints the lines
//! in walk order.
//!
//! Past `--max-memory-per-worker` (checked after every unit) a worker
//! finishes its unit, says so and exits; a fresh one takes its place. A
//! worker that dies has the unit it was on reported as an error.
//!
//! Duplicates (nix-env lists a derivation set reached under a second name
//! once): workers report every occurrence with the set's address; the
//! coordinator drops, in walk order, a line of a set its process listed
//! before. A line whose key (`drvPath`) another process listed first is held
//! back with every later line of that key; at the end an identity checker
//! (`--internal-same`) selects it and the earlier paths in one evaluator and
//! drops it only if it is the same attribute set.

mod walk;

use std::io::{BufRead, BufReader, Read as _, Write};
use std::os::fd::AsFd as _;
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

/// A worker's stdout, flushed in batches of whole units (see [`worker`]).
type Out = std::rc::Rc<std::cell::RefCell<std::io::BufWriter<std::io::StdoutLock<'static>>>>;

/// Writes each derivation's line as the walk finds it, evaluated on the spot
/// (once per set: a set reached again is reported again, with the same
/// identity, for the coordinator to drop).
struct LineVisitor<'a> {
    ev: &'a ferrix_eval::Eval,
    /// The unit being walked (its number).
    unit: std::rc::Rc<std::cell::Cell<usize>>,
    out: Out,
    /// Per derivation set (by address, kept alive by the walk): its key
    /// (`drvPath`, or `!` and the error) and its line with `attr` left out.
    lines: std::collections::HashMap<usize, (String, Result<walk::DrvLine, String>)>,
}

impl walk::Visitor for LineVisitor<'_> {
    fn event(&mut self, e: walk::Event) -> bool {
        let u = self.unit.get();
        let line = match e {
            walk::Event::Drv { attr, drv } => {
                let id = std::rc::Rc::as_ptr(&drv) as usize;
                let ev = self.ev;
                let (key, d) = self.lines.entry(id).or_insert_with(|| match walk::query_drv(ev, &drv) {
                    Ok(d) => (d.drv_path.clone(), Ok(d)),
                    Err(e) => {
                        let msg = walk::error_text(&e);
                        // One line, no tab: the message as a JSON string.
                        (format!("!{}", serde_json::to_string(&msg).expect("str")), Err(msg))
                    }
                });
                let json = match d {
                    Ok(d) => walk::drv_json(&attr, d),
                    Err(msg) => error_line(&attr, msg),
                };
                format!("D {u}\t{id}\t{key}\t{json}")
            }
            walk::Event::Failed { attr, error } => format!("D {u}\t0\t\t{}", walk::error_json(&attr, &error)),
            walk::Event::Expand { attr, top } => {
                let mut l = format!("E {u}\t{}\t{attr}", u8::from(top.combine));
                for (p, _) in &top.children {
                    l.push('\t');
                    l.push_str(p.rsplit('.').next().unwrap_or(p));
                }
                l
            }
        };
        writeln!(self.out.borrow_mut(), "{line}").is_ok()
    }
}

/// How long a worker may keep finished units' lines before writing them
/// (it writes them sooner when it has no unit left to start).
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

fn write_flush(out: &Out) {
    if out.borrow_mut().flush().is_err() {
        std::process::exit(0)
    }
}

/// A worker: evaluate the root, then walk the units whose lines come on
/// stdin (`<unit>\t<attribute path>`, and `\t!` for a unit given again
/// after a worker died; unit 0, with an empty path, is the root itself), one
/// at a time. Each is announced (`S <unit>`), its lines
/// follow in walk order (`D <unit>\t<set id or 0>\t<key>\t<json>`, and
/// `E <unit>\t<combine>\t<attribute path>\t<names…>` for a set cut into
/// units of its own, one per name) and `F <unit>` ends it; past the memory
/// bound that is `F <unit> R` and the worker exits. A root that fails is
/// `X <json>`.
fn worker(flags: &Flags, max_memory: Option<u64>) -> ExitCode {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    let ev = instantiate::make_eval(flags);
    let auto_call = |v| instantiate::auto_call(&ev, v, flags);
    let prefix = flags.attr_paths.first().cloned().unwrap_or_default();
    let out: Out = Rc::new(RefCell::new(std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock())));
    let write = |line: &str, flush: bool| {
        let mut o = out.borrow_mut();
        if writeln!(o, "{line}").and_then(|_| if flush { o.flush() } else { Ok(()) }).is_err() {
            std::process::exit(0)
        }
    };
    let root = match root_value(&ev, flags, &prefix) {
        Ok(v) => v,
        Err(e) => {
            write(&format!("X {}", walk::error_json(&prefix, &e)), true);
            std::process::exit(0)
        }
    };
    let unit = Rc::new(Cell::new(0));
    let mut visitor = LineVisitor { ev: &ev, unit: unit.clone(), out: out.clone(), lines: Default::default() };
    // One walk for the life of the worker, so a set is known by identity
    // across the units this process walks.
    let mut w = walk::Walk::new(&ev, &auto_call, &mut visitor);
    let top = w.top(&root, &prefix).map(Rc::new);
    let trace_growth = std::env::var_os("FERRIX_EVAL_JOBS_STATS").is_some();
    let mut last_rss = 0;
    // Units come on stdin (read through our own buffer, to know whether
    // another one is already waiting).
    let Ok(fd) = std::io::stdin().as_fd().try_clone_to_owned() else { std::process::exit(0) };
    let mut units = BufReader::with_capacity(1 << 16, std::fs::File::from(fd));
    let mut last_flush = std::time::Instant::now();
    let mut line = String::new();
    loop {
        // Lines go out in batches: when no unit is waiting (before blocking
        // for the next), or every FLUSH_EVERY. Every write to the pipe wakes
        // the coordinator: once per unit cost the worker about a tenth of its
        // time in the kernel on the nixpkgs walk.
        if !units.buffer().contains(&b'\n') {
            write_flush(&out);
            last_flush = std::time::Instant::now();
        }
        line.clear();
        if !matches!(units.read_line(&mut line), Ok(n) if n > 0) {
            break;
        }
        let mut f = line.trim_end_matches('\n').split('\t');
        let (Some(u), Some(path)) = (f.next(), f.next()) else { break };
        let Ok(u) = u.parse::<usize>() else { break };
        // A unit given again after a worker died: its start and end go out
        // at once, so a second death is blamed on the unit it happened in.
        let careful = f.next() == Some("!");
        unit.set(u);
        write(&format!("S {u}"), careful);
        let say = |line: &str| write(line, false);
        match &top {
            // The root: its attributes become units.
            Some(top) if u == 0 => {
                let mut l = format!("E 0\t{}\t{prefix}", u8::from(top.combine));
                for (p, _) in &top.children {
                    l.push('\t');
                    l.push_str(p.rsplit('.').next().unwrap_or(p));
                }
                say(&l);
            }
            None => w.walk(&root, &prefix),
            Some(top) => {
                let (parent, name) = path.rsplit_once('.').unwrap_or(("", path));
                match w.set_at(top, &prefix, parent) {
                    Ok(set) => match set.position(name) {
                        Some(i) => {
                            w.split = true;
                            w.walk_child(&set, i)
                        }
                        None => say(&format!("D {u}\t0\t\t{}", error_line(path, &format!("attribute '{name}' not found")))),
                    },
                    Err(e) => say(&format!("D {u}\t0\t\t{}", walk::error_json(path, &e))),
                }
            }
        }
        let rss = rss_bytes();
        if trace_growth {
            // FERRIX_EVAL_JOBS_STATS: name the units that grow the worker most.
            if let Some(r) = rss.filter(|r| *r > last_rss + (32 << 20)) {
                eprintln!("eval-jobs: unit {path:?} grew the worker by {} MiB to {} MiB", (r - last_rss) >> 20, r >> 20);
            }
            last_rss = rss.unwrap_or(last_rss);
        }
        let retire = matches!((max_memory, rss), (Some(max), Some(rss)) if rss > max);
        let flush = careful || retire || last_flush.elapsed() >= FLUSH_EVERY;
        write(&format!("F {u}{}", if retire { " R" } else { "" }), flush);
        if flush {
            last_flush = std::time::Instant::now();
        }
        if retire {
            break;
        }
    }
    write_flush(&out);
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
    /// Whole lines, as many as one read of the pipe gave.
    Lines(usize, u64, Vec<String>),
    Eof(usize, u64),
}

/// How many units a worker is given ahead of the one it is on, at most: it
/// reports finished units in batches (see [`FLUSH_EVERY`]), so it needs a
/// few milliseconds of work queued. Fewer as the queue runs out, so that the
/// tail is shared between workers.
const AHEAD: usize = 32;

struct Slot {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    /// Bumped at every restart, so messages of a previous process are told apart.
    generation: u64,
    /// Unique over all the processes of the run.
    uid: u64,
    /// The units given to this worker and not finished, in the order given.
    assigned: std::collections::VecDeque<usize>,
    /// The unit it announced (`S`) and has not finished.
    current: Option<usize>,
    retiring: bool,
    /// Finished a unit since it started.
    progressed: bool,
}

/// One line of the output, or the place of a set's attributes.
enum Entry {
    /// A line: its set's identity (process, address; address 0 for a walk
    /// error, never dropped), its key (`drvPath`, or `!` and the error), the
    /// JSON line.
    Line { uid: u64, set: u64, key: String, json: String },
    /// The units walking the attributes of a set, in walk order.
    Units(std::ops::Range<usize>),
    Taken,
}

/// A unit of the walk: one attribute (unit 0: the root).
struct Unit {
    path: String,
    entries: Vec<Entry>,
    finished: bool,
    /// Given again after a worker died with it unreported: walked with its
    /// start and end written at once.
    careful: bool,
}

/// nix-env's rule: a derivation set reached again under another name is
/// listed once, under its first name in walk order. Lines come here in walk
/// order. A set's identity is known within one process; a line whose key
/// another process listed first is held back (with every later line of
/// that key, so the rule is applied in order) and decided at the end by the
/// identity checker.
#[derive(Default)]
struct Dedup {
    /// Key -> (process, set, attribute path) of the lines listed with it.
    listed: std::collections::HashMap<String, Vec<(u64, u64, String)>>,
    sets: std::collections::HashSet<(u64, u64)>,
    held_keys: std::collections::HashSet<String>,
    held: Vec<(u64, u64, String, String)>,
}

impl Dedup {
    fn line(&mut self, uid: u64, set: u64, key: String, json: String, out: &mut impl Write) -> std::io::Result<()> {
        if set == 0 {
            return writeln!(out, "{json}");
        }
        if self.held_keys.contains(&key) {
            self.held.push((uid, set, key, json));
            return Ok(());
        }
        if self.sets.contains(&(uid, set)) {
            return Ok(());
        }
        if self.listed.get(&key).is_some_and(|l| l.iter().any(|(u, _, _)| *u != uid)) {
            self.held_keys.insert(key.clone());
            self.held.push((uid, set, key, json));
            return Ok(());
        }
        self.list(uid, set, key, &json);
        writeln!(out, "{json}")
    }

    fn list(&mut self, uid: u64, set: u64, key: String, json: &str) {
        self.sets.insert((uid, set));
        self.listed.entry(key).or_default().push((uid, set, line_attr(json)));
    }
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
        let mut stdout = stdout;
        let mut buf = vec![0u8; 1 << 16];
        let mut partial: Vec<u8> = Vec::new();
        loop {
            let n = match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            partial.extend_from_slice(&buf[..n]);
            let Some(end) = partial.iter().rposition(|b| *b == b'\n') else { continue };
            let rest = partial.split_off(end + 1);
            let lines = String::from_utf8_lossy(&partial).lines().map(str::to_string).collect();
            partial = rest;
            if tx.send(Msg::Lines(k, generation, lines)).is_err() {
                return;
            }
        }
        let _ = tx.send(Msg::Eof(k, generation));
    });
    Ok((child, stdin))
}

fn error_line(attr: &str, msg: &str) -> String {
    format!("{{\"attr\":{},\"error\":{}}}", serde_json::to_string(attr).expect("str"), serde_json::to_string(msg).expect("str"))
}

fn bad(k: usize, line: &str) -> anyhow::Error {
    anyhow::anyhow!("bad message from evaluation process {k}: {line}")
}

/// The coordinator: hands the units of the walk out to N workers (a few
/// ahead each), the attributes of a set cut into units first (so both
/// workers share a big package set, and memory is checked between small
/// units), and prints the lines in walk order as the units finish.
fn coordinate(opts: &Options) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let (tx, rx) = mpsc::channel();
    let mut slots: Vec<Slot> = Vec::new();
    let mut uids = 0u64;
    for k in 0..opts.workers {
        let (child, stdin) = spawn(opts, k, 0, &tx)?;
        slots.push(Slot { child: Some(child), stdin, generation: 0, uid: uids, assigned: Default::default(), current: None, retiring: false, progressed: false });
        uids += 1;
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let prefix = instantiate::parse_flags(&opts.rest)?.attr_paths.first().cloned().unwrap_or_default();
    let mut units = vec![Unit { path: prefix.clone(), entries: Vec::new(), finished: false, careful: false }];
    // Units not handed out yet.
    let mut queue = Queue { free: [0].into(), owned: Default::default() };
    // The printing position: (unit, next entry) or (units of a set, next).
    enum Frame {
        Unit(usize, usize),
        Units(std::ops::Range<usize>),
    }
    let mut stack = vec![Frame::Unit(0, 0)];
    let mut dedup = Dedup::default();
    let mut failed = false;
    let workers = opts.workers;
    let feed = |s: &mut Slot, queue: &mut Queue, units: &[Unit]| {
        if s.retiring || s.child.is_none() {
            return;
        }
        let ahead = (queue.len() / (2 * workers)).clamp(2, AHEAD);
        let mut batch = String::new();
        while s.assigned.len() < ahead + 1 {
            let Some(u) = queue.take(s.uid) else { break };
            let unit = &units[u];
            batch.push_str(&format!("{u}\t{}{}\n", unit.path, if unit.careful { "\t!" } else { "" }));
            s.assigned.push_back(u);
        }
        if !batch.is_empty() {
            // If the worker has died, its end of file gives the units back.
            let _ = s.stdin.as_mut().map(|w| w.write_all(batch.as_bytes()).and_then(|_| w.flush()));
        }
    };
    for s in slots.iter_mut().take(1) {
        feed(s, &mut queue, &units);
    }
    loop {
        // Print what is finished, in walk order.
        while let Some(f) = stack.last_mut() {
            match f {
                Frame::Unit(u, i) => {
                    let unit = &mut units[*u];
                    if *i < unit.entries.len() {
                        let e = std::mem::replace(&mut unit.entries[*i], Entry::Taken);
                        *i += 1;
                        match e {
                            Entry::Line { uid, set, key, json } => dedup.line(uid, set, key, json, &mut out)?,
                            Entry::Units(r) => stack.push(Frame::Units(r)),
                            Entry::Taken => {}
                        }
                    } else if unit.finished {
                        unit.entries = Vec::new();
                        stack.pop();
                    } else {
                        break;
                    }
                }
                Frame::Units(r) => match r.next() {
                    Some(u) => stack.push(Frame::Unit(u, 0)),
                    None => {
                        stack.pop();
                    }
                },
            }
        }
        if stack.is_empty() {
            break;
        }
        let msg = rx.recv().context("evaluation processes vanished")?;
        match msg {
            Msg::Lines(k, g, lines) => {
                if g != slots[k].generation {
                    continue;
                }
                for line in lines {
                    let (tag, rest) = line.split_once(' ').unwrap_or((&line, ""));
                    match tag {
                        "S" => {
                            let u: usize = rest.trim().parse().map_err(|_| bad(k, &line))?;
                            slots[k].current = Some(u);
                        }
                        "D" => {
                            let mut f = rest.splitn(4, '\t');
                            let (Some(u), Some(set), Some(key), Some(json)) = (f.next(), f.next(), f.next(), f.next()) else {
                                return Err(bad(k, &line));
                            };
                            let u: usize = u.parse().map_err(|_| bad(k, &line))?;
                            let set: u64 = set.parse().map_err(|_| bad(k, &line))?;
                            let unit = units.get_mut(u).ok_or_else(|| bad(k, &line))?;
                            unit.entries.push(Entry::Line { uid: slots[k].uid, set, key: key.to_string(), json: json.to_string() });
                        }
                        "E" => {
                            let mut f = rest.split('\t');
                            let (Some(u), Some(combine), Some(path)) = (f.next(), f.next(), f.next()) else {
                                return Err(bad(k, &line));
                            };
                            let u: usize = u.parse().map_err(|_| bad(k, &line))?;
                            if u >= units.len() || combine == "1" {
                                // The walk of a set that combines channels is
                                // never cut (its attributes are walked whole).
                                if combine == "1" {
                                    bail!("evaluation process {k} cut a set that combines channels: {line}");
                                }
                                return Err(bad(k, &line));
                            }
                            let first = units.len();
                            for name in f {
                                units.push(Unit { path: walk_path(path, name), entries: Vec::new(), finished: false, careful: false });
                            }
                            let r = first..units.len();
                            units[u].entries.push(Entry::Units(r.clone()));
                            // The root's attributes are everybody's; a set's
                            // attributes are for the worker that cut it.
                            let q = if u == 0 { &mut queue.free } else { queue.owned.entry(slots[k].uid).or_default() };
                            for n in r.rev() {
                                q.push_front(n);
                            }
                        }
                        "F" => {
                            let mut f = rest.split(' ');
                            let u: usize = f.next().unwrap_or("").parse().map_err(|_| bad(k, &line))?;
                            units.get_mut(u).ok_or_else(|| bad(k, &line))?.finished = true;
                            let s = &mut slots[k];
                            s.assigned.retain(|x| *x != u);
                            s.current = None;
                            s.retiring = f.next() == Some("R");
                            s.progressed = true;
                        }
                        "X" => {
                            // The root failed: every worker says so; print it once.
                            if !failed {
                                writeln!(out, "{rest}")?;
                                failed = true;
                            }
                            stack.clear();
                        }
                        _ => bail!("unexpected message from evaluation process {k}: {line}"),
                    }
                }
                // Keep every worker supplied (once per batch of lines).
                for s in slots.iter_mut() {
                    feed(s, &mut queue, &units);
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
                // The unit it was on is blamed; the others go back.
                if let Some(u) = s.current.take() {
                    let msg = format!("evaluation worker died ({status}) while evaluating this attribute");
                    let name = if units[u].path.is_empty() { "«root»".to_string() } else { units[u].path.clone() };
                    units[u].entries.push(Entry::Line { uid: s.uid, set: 0, key: String::new(), json: error_line(&name, &msg) });
                    units[u].finished = true;
                    s.assigned.retain(|x| *x != u);
                    if u == 0 {
                        eprintln!("error: an evaluation worker died ({status}) while evaluating the root");
                        failed = true;
                    }
                }
                // A worker that died between units, or with the lines of its
                // last units unwritten (it writes them in batches), gives them
                // all back, to be walked carefully: a second death is then
                // blamed on the unit it happens in. One that dies before
                // starting a unit given carefully would only die again.
                if !s.retiring && !s.assigned.is_empty() {
                    if !s.progressed && s.assigned.front().is_some_and(|u| units[*u].careful) {
                        bail!("evaluation workers keep dying ({status}) before walking anything");
                    }
                    for u in &s.assigned {
                        units[*u].careful = true;
                    }
                }
                let mut back: Vec<usize> = s.assigned.drain(..).collect();
                back.extend(queue.owned.remove(&s.uid).into_iter().flatten());
                for u in back.into_iter().rev() {
                    queue.free.push_front(u);
                }
                // A worker past its memory bound (or one that died) is
                // replaced while there is work.
                s.retiring = false;
                if !queue.is_empty() {
                    s.generation += 1;
                    s.uid = uids;
                    uids += 1;
                    let (child, stdin) = spawn(opts, k, s.generation, &tx)?;
                    s.child = Some(child);
                    s.stdin = stdin;
                    s.progressed = false;
                    feed(s, &mut queue, &units);
                }
                if slots.iter().all(|s| s.child.is_none()) && !stack.is_empty() {
                    bail!("no evaluation process left with work unfinished");
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
    let stats = std::env::var_os("FERRIX_EVAL_JOBS_STATS").is_some();
    let (walked, held) = (started.elapsed(), dedup.held.len());
    resolve_held(opts, &prefix, dedup, &mut out)?;
    out.flush()?;
    if stats {
        eprintln!(
            "eval-jobs: {} units, {} processes, walk {:.2} s, {held} lines held back, decided in {:.2} s",
            units.len(),
            uids,
            walked.as_secs_f64(),
            (started.elapsed() - walked).as_secs_f64()
        );
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// The units not handed out yet. The attributes of a cut set are done by the
/// worker that cut it (its skeleton is in that worker's memory), first, in
/// walk order; a worker with nothing of its own takes the root's attributes,
/// and when those are gone it takes the last units of another worker's sets
/// (the tail of the walk is shared).
struct Queue {
    free: std::collections::VecDeque<usize>,
    owned: std::collections::HashMap<u64, std::collections::VecDeque<usize>>,
}

impl Queue {
    fn take(&mut self, uid: u64) -> Option<usize> {
        if let Some(u) = self.owned.get_mut(&uid).and_then(|q| q.pop_front()) {
            return Some(u);
        }
        if let Some(u) = self.free.pop_front() {
            return Some(u);
        }
        let busiest = self.owned.iter_mut().filter(|(_, q)| !q.is_empty()).max_by_key(|(_, q)| q.len())?;
        busiest.1.pop_back()
    }

    fn len(&self) -> usize {
        self.free.len() + self.owned.values().map(|q| q.len()).sum::<usize>()
    }

    fn is_empty(&self) -> bool {
        self.free.is_empty() && self.owned.values().all(|q| q.is_empty())
    }
}

/// `path.name`, or `name` at the top.
fn walk_path(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_string() } else { format!("{path}.{name}") }
}

/// The `attr` of a JSON line.
fn line_attr(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v.get("attr").and_then(|a| a.as_str().map(str::to_string)))
        .unwrap_or_default()
}

/// Decide the held-back lines, in walk order: a line is dropped when its
/// set was listed before — known directly within its process, else by one
/// evaluator (the identity checker) selecting it and the paths other
/// processes listed with the same key and comparing the sets.
fn resolve_held(opts: &Options, prefix: &str, mut dedup: Dedup, out: &mut impl Write) -> anyhow::Result<()> {
    if dedup.held.is_empty() {
        return Ok(());
    }
    let rel = |attr: &str| -> String {
        if prefix.is_empty() {
            attr.to_string()
        } else {
            attr.strip_prefix(prefix).map(|r| r.strip_prefix('.').unwrap_or(r)).unwrap_or("").to_string()
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
    for (uid, set, key, json) in std::mem::take(&mut dedup.held) {
        if dedup.sets.contains(&(uid, set)) {
            continue;
        }
        let others: Vec<String> = dedup.listed.get(&key).into_iter().flatten().filter(|(u, _, _)| *u != uid).map(|(_, _, a)| rel(a)).collect();
        let same = !others.is_empty() && {
            let mut line = rel(&line_attr(&json));
            for a in &others {
                line.push('\t');
                line.push_str(a);
            }
            // If the checker fails, the line is listed (never dropped on doubt).
            writeln!(stdin, "{line}").and_then(|_| stdin.flush()).is_ok() && matches!(answers.next(), Some(Ok(a)) if a == "1")
        };
        if !same {
            dedup.list(uid, set, key, &json);
            writeln!(out, "{json}")?;
        }
    }
    drop(stdin);
    let _ = child.wait();
    Ok(())
}
