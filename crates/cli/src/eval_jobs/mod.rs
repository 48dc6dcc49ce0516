//! `ferrix eval-jobs`: list every derivation of a package tree the way
//! `nix-env -qaP --drv-path` finds them, as one JSON line each, in parallel
//! worker processes with bounded memory.
//!
//! The evaluator is single-threaded (reference counted), so parallelism is
//! by process: the coordinator re-runs this binary once as the zygote
//! (`--internal-zygote`, [`zygote`]), which evaluates the root (the shared
//! skeleton, e.g. nixpkgs' package set) on its one thread and forks the
//! workers from that state on request (copy-on-write: no worker evaluates it
//! again, a restart costs a fork). It first walks the first units itself, as
//! worker 0, so the workers forked after it start warm (a second worker is
//! forked cold before that walk, so as not to leave its core idle). The
//! walk is cut into
//! units, each one attribute path: the root's attributes, and the attributes
//! of every `recurseForDerivations` set a unit meets (the worker reports the
//! set's names instead of walking it). The coordinator hands units out, a
//! few ahead, to whichever worker is free (a cut set's units to the worker
//! that cut it, shared only at the tail; the root's attributes from the
//! front to even slots, from the back to odd ones, so two workers walk
//! contiguous halves); a worker walks its unit ([`walk`],
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
//! before. A line whose key (`drvPath`) another process listed or held
//! before is held: the identity checker (forked from the zygote, answering
//! during the walk) selects it and those earlier paths in one evaluator, and
//! it is dropped only if it is the same attribute set as one of them.

mod walk;

use std::io::{BufRead, BufReader, Read as _, Write};
use std::os::fd::AsFd as _;
use std::os::unix::net::UnixStream;
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

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Coordinate,
    Zygote,
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
            "--internal-zygote" => o.mode = Mode::Zygote,
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
    // On the main thread: the zygote forks, so it must have no other
    // thread (its stack limit is raised by the coordinator).
    Ok(zygote(&flags, opts.max_memory, opts.workers))
}

/// Whether `FERRIX_EVAL_JOBS_STATS` is set.
fn stats() -> bool {
    std::env::var_os("FERRIX_EVAL_JOBS_STATS").is_some()
}

/// Seconds since the epoch (a timeline shared by the processes of a run).
fn now_s() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// FERRIX_EVAL_JOBS_STATS: this process's CPU time, faults and peak memory
/// so far (with `who` and the units it walked), on stderr, in one write.
fn report_usage(who: &str, units: usize) {
    if !stats() {
        return;
    }
    // SAFETY: getrusage only writes the struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    let line = format!(
        "eval-jobs: at {:.3} {who} pid {}: {units} units, user {:.2} s, sys {:.2} s, {} minor faults, peak RSS {} MiB, {} waits, {} preemptions\n",
        now_s(),
        std::process::id(),
        t(ru.ru_utime),
        t(ru.ru_stime),
        ru.ru_minflt,
        ru.ru_maxrss >> 10,
        ru.ru_nvcsw,
        ru.ru_nivcsw
    );
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Resident set size of this process, from /proc.
fn rss_bytes() -> Option<u64> {
    Statm::open()?.rss()
}

/// This process's `/proc/self/statm`, kept open (opened after a fork: it
/// names the process that opened it): one `pread` per reading after every
/// unit, where opening and reading it again cost five times as much (5 µs).
struct Statm(std::fs::File);

impl Statm {
    fn open() -> Option<Statm> {
        std::fs::File::open("/proc/self/statm").ok().map(Statm)
    }

    fn rss(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt as _;
        let mut buf = [0u8; 128];
        let n = self.0.read_at(&mut buf, 0).ok()?;
        let pages: u64 = std::str::from_utf8(&buf[..n]).ok()?.split_whitespace().nth(1)?.parse().ok()?;
        Some(pages * 4096)
    }
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

/// A worker's stdout, flushed in batches of whole units (see [`zygote`]).
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
    /// Each with whether the zygote listed it before this worker was forked.
    lines: std::collections::HashMap<usize, (String, Result<walk::DrvLine, String>, bool)>,
    /// Set in a forked worker (not in the zygote).
    forked: std::rc::Rc<std::cell::Cell<bool>>,
}

impl walk::Visitor for LineVisitor<'_> {
    fn event(&mut self, e: walk::Event) -> bool {
        let u = self.unit.get();
        let line = match e {
            walk::Event::Drv { attr, drv } => {
                let id = drv.as_ptr() as usize;
                let ev = self.ev;
                let in_zygote = !self.forked.get();
                let (key, d, zygote) = self.lines.entry(id).or_insert_with(|| match walk::query_drv(ev, &drv) {
                    Ok(d) => (d.drv_path.clone(), Ok(d), in_zygote),
                    Err(e) => {
                        let msg = walk::error_text(&e);
                        // One line, no tab: the message as a JSON string.
                        (format!("!{}", serde_json::to_string(&msg).expect("str")), Err(msg), in_zygote)
                    }
                });
                let json = match d {
                    Ok(d) => walk::drv_json(&attr, d),
                    Err(msg) => error_line(&attr, msg),
                };
                // A set the zygote listed: the same in every process forked after.
                let z = if *zygote && !in_zygote { "z" } else { "" };
                format!("D {u}\t{z}{id}\t{key}\t{json}")
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

/// What the zygote is asked to be (see [`serve_forks`]).
enum Role {
    /// A forked worker.
    Worker,
    /// The forked identity checker.
    Checker,
    /// The zygote itself, walking the first units (its stdin and stdout are
    /// the coordinator's socket until it stops).
    Walk,
}

/// The zygote: evaluate the root (and the list of its attributes), then
/// fork, on request, the workers and the identity checker from that state,
/// so that none of them evaluates it again (the pages are shared, copied on
/// write). Before it forks worker 0 it may walk the first units
/// itself, as that worker, until it has grown by [`WARM_SHARE`] of the memory
/// bound: the workers forked later start with what those units evaluated,
/// the skeleton every unit needs (stdenv, the compilers and libraries most
/// packages depend on), instead of evaluating it again after every restart.
///
/// Requests come on the control socket (fd 0 at start; a sequenced-packet
/// socket): `w` (fork a worker), `s` (fork the identity checker) or `z`
/// (walk units here), each with one socket (SCM_RIGHTS) that becomes the
/// stdin and stdout of the process, answered with its pid (`0` for `z`,
/// before it walks); and `r<pid>`, answered, once that child has exited,
/// with how it ended. The zygote exits at the end of its requests. It forks
/// only between requests, on its one thread.
///
/// A worker walks the units whose lines come on
/// stdin (`<unit>\t<attribute path>`, and `\t!` for a unit given again
/// after a worker died; unit 0, with an empty path, is the root itself), one
/// at a time. Each is announced (`S <unit>`), its lines
/// follow in walk order (`D <unit>\t<set id or 0>\t<key>\t<json>`, and
/// `E <unit>\t<combine>\t<attribute path>\t<names…>` for a set cut into
/// units of its own, one per name) and `F <unit>` ends it; past the memory
/// bound that is `F <unit> R` and the worker exits (the zygote goes back to
/// forking). A set the zygote listed while it walked is given as `z<id>` by
/// the workers forked after: it is the same set in every one of them. A root
/// that fails is `X <json>`. The identity checker: see [`same_checker`].
fn zygote(flags: &Flags, max_memory: Option<u64>, workers: usize) -> ExitCode {
    use std::cell::{Cell, RefCell};
    use std::os::fd::AsFd as _;
    use std::rc::Rc;
    // The control socket moves off fd 0 (which a walk uses for its units).
    let Ok(ctl) = std::io::stdin().as_fd().try_clone_to_owned() else { std::process::exit(1) };
    let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") else { std::process::exit(1) };
    if nix::unistd::dup2_stdin(&null).is_err() {
        std::process::exit(1)
    }
    let ev = instantiate::make_eval(flags);
    let auto_call = |v| instantiate::auto_call(&ev, v, flags);
    let prefix = flags.attr_paths.first().cloned().unwrap_or_default();
    // Written to only by a walk (the zygote's own, or a forked worker's).
    let out: Out = Rc::new(RefCell::new(std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock())));
    let root = root_value(&ev, flags, &prefix);
    let unit = Rc::new(Cell::new(0));
    let forked = Rc::new(Cell::new(false));
    let mut visitor = LineVisitor { ev: &ev, unit: unit.clone(), out: out.clone(), lines: Default::default(), forked: forked.clone() };
    // One walk for the life of the worker, so a set is known by identity
    // across the units this process walks.
    let mut w = walk::Walk::new(&ev, &auto_call, &mut visitor);
    let top = root.as_ref().ok().and_then(|root| w.top(root, &prefix)).map(Rc::new);
    let cx = WalkCx { prefix: &prefix, unit: &unit, out: &out, top: &top };
    report_usage("zygote, root evaluated", 0);
    loop {
        match serve_forks(&ctl) {
            Role::Checker => return same_checker(&ev, flags, &root),
            Role::Worker => {
                forked.set(true);
                let n = work(&mut w, &cx, &root, max_memory);
                // Its socket is closed now, before the exit unmaps the
                // heap (over a GiB, a few tenths of a second): the
                // coordinator has its replacement forked meanwhile.
                let _ = nix::unistd::dup2_stdin(&null);
                let _ = nix::unistd::dup2_stdout(&null);
                report_usage("worker", n);
                // Exit without freeing the evaluator's heap: nothing needs it.
                std::process::exit(0)
            }
            Role::Walk => {
                let share = if workers > 1 { WARM_SHARE_PARALLEL } else { WARM_SHARE };
                let warm = max_memory.map(|m| rss_bytes().unwrap_or(0) + m / share);
                let n = work(&mut w, &cx, &root, warm);
                report_usage("zygote's walk", n);
                // Done walking: the coordinator sees the end of its socket.
                if nix::unistd::dup2_stdin(&null).is_err() || nix::unistd::dup2_stdout(&null).is_err() {
                    std::process::exit(1)
                }
            }
        }
    }
}

/// The zygote walks the first units until it has grown by this share of the
/// memory bound (1/WARM_SHARE).
const WARM_SHARE: u64 = 4;
/// The same with more than one worker: the workers after the second are
/// forked when it stops, warm, so it walks for less. The second worker is
/// forked cold before it starts, on the core that would otherwise wait for
/// it, and evaluates the skeleton again (stdenv and the rest of one
/// package: `-A zziplib` alone takes 0.1 s). On the nixpkgs walk with two
/// workers, six alternating pairs against forking it warm after the walk
/// (`FERRIX_EVAL_JOBS_WAIT_WARM=1`): 0.35 s less on average, within this
/// machine's noise; the timeline shows no idle core.
const WARM_SHARE_PARALLEL: u64 = 16;

/// What a walk of units needs besides the walk.
struct WalkCx<'a> {
    prefix: &'a str,
    unit: &'a std::cell::Cell<usize>,
    out: &'a Out,
    top: &'a Option<std::rc::Rc<walk::Top>>,
}

/// Walk the units that come on stdin until their end or until this process
/// has more than `bound` bytes resident (see [`zygote`]).
fn work(w: &mut walk::Walk, cx: &WalkCx, root: &ferrix_eval::Result<ferrix_eval::Value>, bound: Option<u64>) -> usize {
    let (prefix, unit, out) = (cx.prefix, cx.unit, cx.out);
    let write = |line: &str, flush: bool| {
        let mut o = out.borrow_mut();
        if writeln!(o, "{line}").and_then(|_| if flush { o.flush() } else { Ok(()) }).is_err() {
            std::process::exit(0)
        }
    };
    let root = match root {
        Ok(v) => v,
        Err(e) => {
            write(&format!("X {}", walk::error_json(prefix, e)), true);
            return 0;
        }
    };
    let trace_growth = stats();
    let mut walked = 0;
    let mut last_rss = 0;
    // Units come on stdin (read through our own buffer, to know whether
    // another one is already waiting).
    let Ok(fd) = std::io::stdin().as_fd().try_clone_to_owned() else { std::process::exit(0) };
    let mut units = BufReader::with_capacity(1 << 16, std::fs::File::from(fd));
    let mut last_flush = std::time::Instant::now();
    let mut line = String::new();
    let statm = Statm::open();
    loop {
        // Lines go out in batches: when no unit is waiting (before blocking
        // for the next), or every FLUSH_EVERY. Every write to the pipe wakes
        // the coordinator: once per unit cost the worker about a tenth of its
        // time in the kernel on the nixpkgs walk.
        if !units.buffer().contains(&b'\n') {
            write_flush(out);
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
        match cx.top {
            // The root: its attributes become units.
            Some(top) if u == 0 => {
                let mut l = format!("E 0\t{}\t{prefix}", u8::from(top.combine));
                for (p, _) in &top.children {
                    l.push('\t');
                    l.push_str(p.rsplit('.').next().unwrap_or(p));
                }
                say(&l);
            }
            None => w.walk(root, prefix),
            Some(top) => {
                let (parent, name) = path.rsplit_once('.').unwrap_or(("", path));
                match w.set_at(top, prefix, parent) {
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
        let rss = statm.as_ref().and_then(Statm::rss);
        if trace_growth {
            // FERRIX_EVAL_JOBS_STATS: name the units that grow the worker most.
            if let Some(r) = rss.filter(|r| *r > last_rss + (32 << 20)) {
                eprintln!("eval-jobs: unit {path:?} grew the worker by {} MiB to {} MiB", (r - last_rss) >> 20, r >> 20);
            }
            last_rss = rss.unwrap_or(last_rss);
        }
        walked += 1;
        let retire = matches!((bound, rss), (Some(max), Some(rss)) if rss > max);
        let flush = careful || retire || last_flush.elapsed() >= FLUSH_EVERY;
        write(&format!("F {u}{}", if retire { " R" } else { "" }), flush);
        if flush {
            last_flush = std::time::Instant::now();
        }
        if retire {
            break;
        }
    }
    write_flush(out);
    walked
}

/// Select a derivation by its path below the root: the same steps as the
/// walk (call functions with `--arg`s at every set it descends into).
fn select_found(ev: &ferrix_eval::Eval, flags: &Flags, root: &ferrix_eval::Value, rel: &str) -> ferrix_eval::Result<ferrix_eval::AttrSet> {
    use ferrix_eval::{Error, Symbol, Value};
    let mut v = instantiate::auto_call(ev, root.clone(), flags)?;
    let parts: Vec<&str> = if rel.is_empty() { Vec::new() } else { rel.split('.').collect() };
    for (j, part) in parts.iter().enumerate() {
        v = match &ev.force(&v)? {
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

/// The identity checker (forked from the zygote): each stdin line is
/// tab-separated paths below the root; the answer is `1` when the first one
/// is the same attribute set as one of the others (so nix-env would list it
/// once), else `0`.
fn same_checker(ev: &ferrix_eval::Eval, flags: &Flags, root: &ferrix_eval::Result<ferrix_eval::Value>) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let mut asked = 0;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        // `?paths`: select them now, answer nothing (the question comes
        // later, in walk order, and finds them evaluated).
        if let Some(paths) = line.strip_prefix('?') {
            if let Ok(root) = root {
                for p in paths.split('\t') {
                    let _ = select_found(ev, flags, root, p);
                }
            }
            continue;
        }
        asked += 1;
        let mut paths = line.split('\t');
        let same = match (root, paths.next()) {
            (Ok(root), Some(b)) => match select_found(ev, flags, root, b) {
                Ok(b) => paths.any(|a| select_found(ev, flags, root, a).is_ok_and(|a| ferrix_eval::AttrSet::ptr_eq(&a, &b))),
                Err(_) => false,
            },
            _ => false,
        };
        if writeln!(out, "{}", if same { 1 } else { 0 }).and_then(|_| out.flush()).is_err() {
            break;
        }
    }
    report_usage("identity checker", asked);
    std::process::exit(0)
}

/// The zygote's side of its requests (see [`zygote`]): returns only in a
/// forked child, with its stdin and stdout connected to the coordinator.
fn serve_forks(ctl: &std::os::fd::OwnedFd) -> Role {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, send};
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, Pid, dup2_stdin, dup2_stdout, fork};
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    let ctl = ctl.as_raw_fd();
    let reply = |text: &str| {
        if send(ctl, text.as_bytes(), MsgFlags::empty()).is_err() {
            std::process::exit(0)
        }
    };
    loop {
        let mut buf = [0u8; 64];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let (n, fd) = match recvmsg::<()>(ctl, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Ok(m) if m.bytes > 0 => {
                let mut fd = None;
                for c in m.cmsgs().into_iter().flatten() {
                    if let ControlMessageOwned::ScmRights(fds) = c {
                        for f in fds {
                            // SAFETY: the kernel just gave us this descriptor; nothing else owns it.
                            let f = unsafe { OwnedFd::from_raw_fd(f) };
                            fd.get_or_insert(f);
                        }
                    }
                }
                (m.bytes, fd)
            }
            Err(nix::errno::Errno::EINTR) => continue,
            _ => std::process::exit(0),
        };
        let req = &buf[..n];
        match (req.first(), fd) {
            (Some(b'z'), Some(fd)) => {
                reply("0");
                if dup2_stdin(&fd).is_err() || dup2_stdout(&fd).is_err() {
                    std::process::exit(1)
                }
                return Role::Walk;
            }
            (Some(b'w' | b's'), Some(fd)) => {
                // SAFETY: this process has one thread (the zygote runs on the
                // main thread and starts none), so the child is consistent.
                match unsafe { fork() } {
                    Ok(ForkResult::Child) => {
                        // The control socket is the zygote's alone.
                        // SAFETY: closing our copy of it; nothing here uses it again.
                        unsafe { libc::close(ctl) };
                        if dup2_stdin(&fd).is_err() || dup2_stdout(&fd).is_err() {
                            std::process::exit(1)
                        }
                        drop(fd);
                        return if req[0] == b's' { Role::Checker } else { Role::Worker };
                    }
                    Ok(ForkResult::Parent { child }) => reply(&child.to_string()),
                    Err(e) => reply(&format!("!{e}")),
                }
            }
            (Some(b'r'), _) => {
                let pid = std::str::from_utf8(&req[1..]).ok().and_then(|p| p.parse().ok()).map(Pid::from_raw);
                let status = loop {
                    match pid.map(|p| waitpid(p, None)) {
                        Some(Ok(WaitStatus::Exited(_, code))) => break format!("exit status: {code}"),
                        Some(Ok(WaitStatus::Signaled(_, sig, core))) => {
                            break format!("signal: {} ({sig}){}", sig as i32, if core { " (core dumped)" } else { "" });
                        }
                        Some(Ok(_)) | Some(Err(nix::errno::Errno::EINTR)) => continue,
                        _ => break "unknown status".to_string(),
                    }
                };
                reply(&status);
            }
            _ => reply("!bad request"),
        }
    }
}

enum Msg {
    /// Whole lines, as many as one read of a worker's socket gave.
    Lines(usize, u64, Vec<String>),
    Eof(usize, u64),
    /// The identity checker's answers (`1`: the same set), and its end.
    Same(Vec<String>),
    SameEof,
}

/// How many units a worker is given ahead of the one it is on, at most: it
/// reports finished units in batches (see [`FLUSH_EVERY`]), so it needs a
/// few milliseconds of work queued. Fewer as the queue runs out, so that the
/// tail is shared between workers.
const AHEAD: usize = 32;

struct Slot {
    /// The worker's pid (a child of the zygote).
    child: Option<i32>,
    /// Its socket (stdin and stdout; written to here, read on a thread).
    stdin: Option<UnixStream>,
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
    /// To be replaced when the zygote forks again.
    deferred: bool,
    /// Takes the root's attributes from the end of the walk backwards (see
    /// [`Queue`]).
    from_back: bool,
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
/// (`drvPath`) another process listed or held before is held: the identity
/// checker (forked from the zygote when first needed, working while the walk
/// goes on) selects it and those earlier paths in one evaluator, and the
/// line is dropped if it is the same set as one of them (that one, or the
/// one it was found the same as, was listed).
struct Dedup {
    prefix: String,
    /// Key -> (process, path below the root) of the lines listed or held
    /// with it, in walk order.
    seen: std::collections::HashMap<String, Vec<(u64, String)>>,
    /// (process, set) of the lines listed or held.
    sets: std::collections::HashSet<(u64, u64)>,
    /// The identity checker's socket and pid, once started.
    checker: Option<UnixStream>,
    checker_pid: Option<i32>,
    started: bool,
    /// Held lines waiting for the checker's answer, in the order asked.
    pending: std::collections::VecDeque<String>,
    held: usize,
    /// The zygote is walking (it forks nothing until it stops): questions
    /// wait here.
    zygote_busy: bool,
    unasked: Vec<String>,
    /// Key -> the first process that sent a line with it, and its `attr`
    /// (in the order lines arrive, see [`Dedup::warm`]).
    arrived: std::collections::HashMap<String, (u64, String)>,
}

impl Dedup {
    fn new(prefix: &str) -> Dedup {
        Dedup {
            prefix: prefix.to_string(),
            seen: Default::default(),
            sets: Default::default(),
            checker: None,
            checker_pid: None,
            started: false,
            pending: Default::default(),
            held: 0,
            zygote_busy: false,
            unasked: Vec::new(),
            arrived: Default::default(),
        }
    }

    /// A path below the root, as the identity checker selects it.
    fn rel(&self, attr: &str) -> String {
        if self.prefix.is_empty() {
            attr.to_string()
        } else {
            attr.strip_prefix(&self.prefix).map(|r| r.strip_prefix('.').unwrap_or(r)).unwrap_or("").to_string()
        }
    }

    // the first four are the fields of one `Entry::Line`
    #[allow(clippy::too_many_arguments)]
    fn line(&mut self, uid: u64, set: u64, key: String, json: String, out: &mut impl Write, zygote: &Zygote, tx: &mpsc::Sender<Msg>) -> std::io::Result<()> {
        if set == 0 {
            return writeln!(out, "{json}");
        }
        if !self.sets.insert((uid, set)) {
            return Ok(());
        }
        let attr = self.rel(&line_attr(&json));
        let seen = self.seen.entry(key).or_default();
        let mut ask = None;
        for (_, a) in seen.iter().filter(|(u, _)| *u != uid) {
            let q = ask.get_or_insert_with(|| attr.clone());
            q.push('\t');
            q.push_str(a);
        }
        seen.push((uid, attr));
        match ask {
            Some(q) => {
                self.held += 1;
                if self.ask(&q, zygote, tx) {
                    self.pending.push_back(json);
                    Ok(())
                } else {
                    // Never dropped on doubt.
                    writeln!(out, "{json}")
                }
            }
            None => writeln!(out, "{json}"),
        }
    }

    /// A line as it arrives (before its turn in walk order): when another
    /// process sent a line with its key before, and the checker is running,
    /// it selects both paths now, so that the question, asked when the line
    /// is printed (with the second worker walking from the end, at the end
    /// of the walk for half of them), finds them evaluated.
    fn warm(&mut self, uid: u64, key: &str, json: &str) {
        if self.checker.is_none() {
            return;
        }
        let q = match self.arrived.get(key) {
            None => {
                self.arrived.insert(key.to_string(), (uid, json_attr(json)));
                return;
            }
            Some((u, a)) if *u != uid => format!("?{}\t{}", self.rel(a), self.rel(&json_attr(json))),
            Some(_) => return,
        };
        if let Some(c) = &mut self.checker {
            let _ = writeln!(c, "{q}");
        }
    }

    /// Send a question to the identity checker (started at the first).
    fn ask(&mut self, q: &str, zygote: &Zygote, tx: &mpsc::Sender<Msg>) -> bool {
        if !self.started && self.zygote_busy {
            self.unasked.push(q.to_string());
            return true;
        }
        if !self.started {
            self.started = true;
            match zygote.fork(b's').and_then(|(pid, s)| Ok((pid, s.try_clone()?, s))) {
                Ok((pid, reader, s)) => {
                    read_lines(reader, tx.clone(), Msg::Same, Msg::SameEof);
                    self.checker = Some(s);
                    self.checker_pid = Some(pid);
                }
                Err(e) => eprintln!("warning: no identity checker ({e:#}): derivations reached under two names may be listed twice"),
            }
        }
        let Some(c) = &mut self.checker else { return false };
        if writeln!(c, "{q}").is_err() {
            self.checker = None;
            return false;
        }
        true
    }

    /// Ask what waited for the zygote; a line that cannot be asked is listed
    /// (after the answers to those before it).
    fn ask_unasked(&mut self, zygote: &Zygote, tx: &mpsc::Sender<Msg>) {
        for q in std::mem::take(&mut self.unasked) {
            // Without a checker, the pending lines are listed at its end.
            if !self.ask(&q, zygote, tx) {
                break;
            }
        }
    }

    fn answers(&mut self, answers: Vec<String>, out: &mut impl Write) -> std::io::Result<()> {
        for a in answers {
            if let Some(json) = self.pending.pop_front()
                && a != "1"
            {
                writeln!(out, "{json}")?;
            }
        }
        Ok(())
    }

    /// The checker has ended: what it did not answer is listed.
    fn checker_gone(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        self.checker = None;
        for json in self.pending.drain(..) {
            writeln!(out, "{json}")?;
        }
        Ok(())
    }
}

/// The coordinator's handle on the zygote (see [`zygote`]).
struct Zygote {
    child: Child,
    ctl: std::os::fd::OwnedFd,
}

impl Zygote {
    fn start(opts: &Options) -> anyhow::Result<Zygote> {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
        use std::os::unix::process::CommandExt as _;
        let (ctl, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).context("creating the zygote's socket")?;
        let exe = std::env::current_exe().context("finding the ferrix executable")?;
        let mut cmd = Command::new(exe);
        cmd.arg("eval-jobs").arg("--internal-zygote").arg("--workers").arg(opts.workers.to_string());
        match opts.max_memory {
            Some(m) => cmd.arg("--max-memory-per-worker").arg(format!("{}K", m.div_ceil(1024))),
            None => cmd.arg("--max-memory-per-worker").arg("0"),
        };
        // SAFETY: setrlimit is async-signal-safe. The evaluator runs on the
        // zygote's main thread: give it the stack its thread had before.
        unsafe {
            cmd.pre_exec(|| {
                let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                if libc::getrlimit(libc::RLIMIT_STACK, &mut lim) == 0 && lim.rlim_cur != libc::RLIM_INFINITY && lim.rlim_cur < ZYGOTE_STACK {
                    lim.rlim_cur = if lim.rlim_max == libc::RLIM_INFINITY { ZYGOTE_STACK } else { lim.rlim_max.min(ZYGOTE_STACK) };
                    libc::setrlimit(libc::RLIMIT_STACK, &lim);
                }
                Ok(())
            });
        }
        let child = cmd.args(&opts.rest).stdin(Stdio::from(theirs)).stdout(Stdio::null()).spawn().context("starting the evaluation process")?;
        Ok(Zygote { child, ctl })
    }

    fn answer(&self) -> anyhow::Result<String> {
        use std::os::fd::AsRawFd as _;
        let mut buf = [0u8; 256];
        let n = loop {
            match nix::sys::socket::recv(self.ctl.as_raw_fd(), &mut buf, nix::sys::socket::MsgFlags::empty()) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => break r.context("reading from the zygote")?,
            }
        };
        if n == 0 {
            bail!("the evaluation process that forks the others has exited");
        }
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// A new worker (`w`) or identity checker (`s`): its pid and the socket
    /// that is its stdin and stdout.
    fn fork(&self, what: u8) -> anyhow::Result<(i32, std::os::unix::net::UnixStream)> {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        use std::os::fd::AsRawFd as _;
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().context("creating a socket")?;
        let fds = [theirs.as_raw_fd()];
        sendmsg::<()>(self.ctl.as_raw_fd(), &[std::io::IoSlice::new(&[what])], &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None)
            .context("asking the zygote for a process")?;
        drop(theirs);
        let a = self.answer()?;
        let pid = a.parse().map_err(|_| anyhow::anyhow!("the zygote could not fork: {}", a.trim_start_matches('!')))?;
        Ok((pid, ours))
    }

    /// How a process it forked ended (waits for it).
    fn wait(&self, pid: i32) -> String {
        use nix::sys::socket::{MsgFlags, send};
        use std::os::fd::AsRawFd as _;
        if send(self.ctl.as_raw_fd(), format!("r{pid}").as_bytes(), MsgFlags::empty()).is_err() {
            return "unknown status".into();
        }
        self.answer().unwrap_or_else(|_| "unknown status".into())
    }

    /// Let the zygote go: the end of its socket ends it, without waiting
    /// here (nor for the processes it forked).
    fn release(self) {
        drop(self.ctl);
    }

    /// How the zygote itself ended, once it has.
    fn finish(mut self) -> String {
        drop(self.ctl);
        self.child.wait().map(|s| s.to_string()).unwrap_or_else(|_| "unknown status".into())
    }
}

/// The zygote's stack limit (its evaluator runs on the main thread).
const ZYGOTE_STACK: libc::rlim_t = 64 << 20;

/// Read a forked process's lines on a thread of their own, to the
/// coordinator's channel as `wrap(lines)`, then `eof`.
fn read_lines(stream: std::os::unix::net::UnixStream, tx: mpsc::Sender<Msg>, wrap: impl Fn(Vec<String>) -> Msg + Send + 'static, eof: Msg) {
    std::thread::spawn(move || {
        let mut stream = stream;
        let mut buf = vec![0u8; 1 << 16];
        let mut partial: Vec<u8> = Vec::new();
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
                Ok(n) => n,
            };
            partial.extend_from_slice(&buf[..n]);
            let Some(end) = partial.iter().rposition(|b| *b == b'\n') else { continue };
            let rest = partial.split_off(end + 1);
            let lines = String::from_utf8_lossy(&partial).lines().map(str::to_string).collect();
            partial = rest;
            if tx.send(wrap(lines)).is_err() {
                return;
            }
        }
        let _ = tx.send(eof);
    });
}

/// A worker forked from the zygote, its lines read on a thread.
fn spawn(zygote: &Zygote, what: u8, k: usize, generation: u64, tx: &mpsc::Sender<Msg>) -> anyhow::Result<(i32, Option<UnixStream>)> {
    let (pid, stream) = zygote.fork(what)?;
    if stats() {
        eprintln!("eval-jobs: at {:.3} slot {k} given to {}", now_s(), if pid == 0 { "the zygote's walk".to_string() } else { format!("pid {pid}") });
    }
    let reader = stream.try_clone().context("cloning a socket")?;
    read_lines(reader, tx.clone(), move |lines| Msg::Lines(k, generation, lines), Msg::Eof(k, generation));
    Ok((pid, Some(stream)))
}

/// Tell a worker there are no more units (its reader thread keeps the
/// socket open, so this is a shutdown rather than a close).
fn close_units(s: Option<UnixStream>) {
    if let Some(s) = s {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
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
    if stats() {
        eprintln!("eval-jobs: at {:.3} start", now_s());
    }
    let (tx, rx) = mpsc::channel();
    let mut uids = 0u64;
    let mut zygote = Zygote::start(opts)?;
    // Half the workers walk the root's attributes backwards (see [`Queue`]).
    let both_ends = std::env::var_os("FERRIX_EVAL_JOBS_INTERLEAVE").is_none();
    let mut slots: Vec<Slot> = (0..opts.workers)
        .enumerate()
        .map(|(k, _)| Slot {
            child: None,
            stdin: None,
            generation: 0,
            uid: 0,
            assigned: Default::default(),
            current: None,
            retiring: false,
            progressed: false,
            deferred: false,
            from_back: both_ends && k % 2 == 1,
        })
        .collect();
    // The zygote walks the first units itself, as slot 0; the slots after
    // slot 1 wait for its walk to end and are then forked warm. Only with a memory
    // bound: it stops walking at a share of it.
    let warm = opts.max_memory.is_some() && std::env::var_os("FERRIX_EVAL_JOBS_COLD").is_none();
    // While it walks it forks nothing: workers to replace wait (`deferred`).
    let mut zygote_busy = warm;
    // The other workers are forked once its walk ends, warm; but for slot 1,
    // forked cold before it starts (the zygote forks only between its
    // requests): it evaluates the skeleton again, on the core that would
    // otherwise wait for the zygote's walk, and walks from the back.
    let cold_second = std::env::var_os("FERRIX_EVAL_JOBS_WAIT_WARM").is_none();
    for k in (0..opts.workers).rev() {
        if k > 0 && warm && !(k == 1 && cold_second) {
            slots[k].deferred = true;
            continue;
        }
        let what = if k == 0 && warm { b'z' } else { b'w' };
        let (child, stdin) = match spawn(&zygote, what, k, 0, &tx) {
            Ok(x) => x,
            Err(e) if k + 1 == opts.workers || warm => {
                // It died evaluating the root (it forks only after that).
                let status = zygote.finish();
                eprintln!("error: the evaluation process died ({status}) while evaluating the root ({e:#})");
                return Ok(ExitCode::from(1));
            }
            Err(e) => return Err(e),
        };
        let s = &mut slots[k];
        (s.child, s.stdin, s.uid) = (Some(child), stdin, uids);
        uids += 1;
    }
    // The process the zygote's walk is: the sets it listed, given as `z<id>`
    // by the workers forked after it, are its.
    let zygote_uid = slots[0].uid;
    let mut unreaped: Vec<i32> = Vec::new();
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
    let mut dedup = Dedup::new(&prefix);
    dedup.zygote_busy = zygote_busy;
    let mut failed = false;
    let workers = opts.workers;
    let feed = |s: &mut Slot, queue: &mut Queue, units: &[Unit]| {
        if s.retiring || s.child.is_none() {
            return;
        }
        let ahead = (queue.len() / (2 * workers)).clamp(2, AHEAD);
        let mut batch = String::new();
        while s.assigned.len() < ahead + 1 {
            let Some(u) = queue.take(s.uid, s.from_back) else { break };
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
                            Entry::Line { uid, set, key, json } => dedup.line(uid, set, key, json, &mut out, &zygote, &tx)?,
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
            Msg::Same(answers) => dedup.answers(answers, &mut out)?,
            Msg::SameEof => dedup.checker_gone(&mut out)?,
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
                            let (uid, set) = match set.strip_prefix('z') {
                                Some(set) => (zygote_uid, set),
                                None => (slots[k].uid, set),
                            };
                            let set: u64 = set.parse().map_err(|_| bad(k, &line))?;
                            if set != 0 && !key.starts_with('!') {
                                dedup.warm(uid, key, json);
                            }
                            let unit = units.get_mut(u).ok_or_else(|| bad(k, &line))?;
                            unit.entries.push(Entry::Line { uid, set, key: key.to_string(), json: json.to_string() });
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
                let status = match s.child.take() {
                    // The zygote's own walk: it stopped, or it died.
                    Some(0) => {
                        zygote_busy = false;
                        if s.retiring {
                            String::new()
                        } else {
                            // Its replacement starts from the root again.
                            let old = std::mem::replace(&mut zygote, Zygote::start(opts)?);
                            old.finish()
                        }
                    }
                    // Not while the zygote walks: it would wait for
                    // units from here (it is reaped at the end).
                    Some(pid) if zygote_busy => {
                        unreaped.push(pid);
                        "status not known yet".into()
                    }
                    // Past its bound, done: it is replaced first, reaped at
                    // the end (its exit unmaps its heap meanwhile).
                    Some(pid) if s.retiring => {
                        unreaped.push(pid);
                        String::new()
                    }
                    Some(pid) => zygote.wait(pid),
                    None => "unknown status".into(),
                };
                if !zygote_busy && dedup.zygote_busy {
                    dedup.zygote_busy = false;
                    dedup.ask_unasked(&zygote, &tx);
                }
                let s = &mut slots[k];
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
                // Where its replacement takes them first, in the order given.
                for u in back.into_iter().rev() {
                    if s.from_back { queue.free.push_back(u) } else { queue.free.push_front(u) }
                }
                // A worker past its memory bound (or one that died) is
                // replaced while there is work.
                s.retiring = false;
                s.deferred = true;
                for (k, s) in slots.iter_mut().enumerate() {
                    if !s.deferred || zygote_busy {
                        continue;
                    }
                    s.deferred = false;
                    if !queue.is_empty() {
                        s.generation += 1;
                        s.uid = uids;
                        uids += 1;
                        let (child, stdin) = spawn(&zygote, b'w', k, s.generation, &tx)?;
                        s.child = Some(child);
                        s.stdin = stdin;
                        s.progressed = false;
                        feed(s, &mut queue, &units);
                    }
                }
                if slots.iter().all(|s| s.child.is_none()) && !stack.is_empty() {
                    bail!("no evaluation process left with work unfinished");
                }
            }
        }
    }
    let walked = started.elapsed();
    for s in slots.iter_mut() {
        close_units(s.stdin.take());
    }
    // The held lines the checker has not answered yet (asked now if the
    // zygote was walking, until the end of its units).
    dedup.zygote_busy = false;
    dedup.ask_unasked(&zygote, &tx);
    let checking = dedup.checker.is_some();
    close_units(dedup.checker.take());
    if !checking {
        dedup.checker_gone(&mut out)?;
    }
    while !dedup.pending.is_empty() {
        match rx.recv() {
            Ok(Msg::Same(answers)) => dedup.answers(answers, &mut out)?,
            Ok(Msg::SameEof) | Err(_) => dedup.checker_gone(&mut out)?,
            Ok(_) => {}
        }
    }
    out.flush()?;
    drop(out);
    // Below: only with FERRIX_EVAL_JOBS_STATS, which waits for every
    // process to report its usage.
    if !stats() {
        // Every line is out and every process has been told there is no
        // more: they are exiting. Their exits unmap their heaps (two
        // workers of 1.5 GiB: 0.2 s), which nobody needs to wait for; the
        // zygote exits at the end of its socket, and the system reaps them.
        zygote.release();
        return Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS });
    }
    for s in slots.iter_mut() {
        if let Some(pid) = s.child.take().filter(|p| *p != 0) {
            zygote.wait(pid);
        }
    }
    for pid in unreaped.into_iter().chain(dedup.checker_pid) {
        zygote.wait(pid);
    }
    zygote.finish();
    report_usage("coordinator", units.len());
    eprintln!(
        "eval-jobs: {} units, {} worker processes, walk {:.2} s, {} lines held back, the last decided {:.2} s after the walk",
        units.len(),
        uids,
        walked.as_secs_f64(),
        dedup.held,
        (started.elapsed() - walked).as_secs_f64()
    );
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// The units not handed out yet. The attributes of a cut set are done by the
/// worker that cut it (its skeleton is in that worker's memory), first, in
/// walk order; a worker with nothing of its own takes the root's attributes,
/// and when those are gone it takes the last units of another worker's sets
/// (the tail of the walk is shared). Every other worker (odd slots) takes
/// the root's attributes from the end backwards: with two, each walks one
/// contiguous stretch of the alphabet until they meet, so neighbours that
/// share dependencies (`python*`, `perl*`, `linux*`...) are mostly
/// evaluated by one process instead of both (`FERRIX_EVAL_JOBS_INTERLEAVE`
/// set: all take from the front, in runs of up to [`AHEAD`]).
struct Queue {
    free: std::collections::VecDeque<usize>,
    owned: std::collections::HashMap<u64, std::collections::VecDeque<usize>>,
}

impl Queue {
    fn take(&mut self, uid: u64, from_back: bool) -> Option<usize> {
        if let Some(u) = self.owned.get_mut(&uid).and_then(|q| q.pop_front()) {
            return Some(u);
        }
        if let Some(u) = if from_back { self.free.pop_back() } else { self.free.pop_front() } {
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

/// The `attr` of a JSON line as made here (`{"attr":` first): its first
/// string only is parsed.
fn json_attr(json: &str) -> String {
    json.strip_prefix("{\"attr\":")
        .and_then(|rest| serde_json::Deserializer::from_str(rest).into_iter::<String>().next())
        .and_then(Result::ok)
        .unwrap_or_else(|| line_attr(json))
}

/// The `attr` of a JSON line.
fn line_attr(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v.get("attr").and_then(|a| a.as_str().map(str::to_string)))
        .unwrap_or_default()
}
