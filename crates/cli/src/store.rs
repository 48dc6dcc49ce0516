//! `ferrix store`: add, dump, import, restore, inspect and verify store paths.

use std::io::{self, BufRead, BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Subcommand;
use ferrix_castore::Node;
use ferrix_formats::NixHash;
use ferrix_store::export::{directory, resolve, restore_path};
use ferrix_store::import::{AddOptions, Method, NarExpect, add_path, ingest_nar, register_nar};
use ferrix_store::nar::write_nar;
use ferrix_store::verify::verify_store;
use ferrix_store::{PathInfo, Store, default_store_url, open_store};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

mod daemon;

#[derive(clap::Args)]
pub struct Args {
    /// Store URL: `redb:///abs/dir`, `grpc+http://host:port`, `memory://`…
    /// [default: $FERRIX_STORE, else redb://$XDG_DATA_HOME/ferrix]
    #[arg(long, global = true, value_name = "URL")]
    store: Option<String>,
    /// Show import progress (bytes, bytes/s) on stderr even when it is not
    /// a terminal or the import is quick: a line a second, and a summary.
    #[arg(long, global = true)]
    progress: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Add host paths to the store and print their store paths (like
    /// `nix-store --add`; with --flat like `nix-store --add-fixed sha256`).
    Add {
        /// Hash a regular file's bytes instead of its NAR serialisation.
        #[arg(long)]
        flat: bool,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Write the NAR serialisation of a store path to stdout.
    Dump { path: String },
    /// Read one NAR from stdin and add it as the content-addressed path
    /// `nix-store --add` would give the unpacked tree named NAME.
    ImportNar {
        #[arg(long)]
        name: String,
        /// Refuse the NAR unless its hash is this (any Nix hash syntax).
        #[arg(long, value_name = "HASH")]
        nar_hash: Option<String>,
        /// Refuse the NAR unless it has this many bytes.
        #[arg(long, value_name = "BYTES")]
        nar_size: Option<u64>,
    },
    /// Write a store path's contents to DIR (which must not exist).
    Restore { path: String, dest: PathBuf },
    /// List a directory in the store (or name a file or symlink).
    Ls {
        /// Show type, permissions and size.
        #[arg(short, long)]
        long: bool,
        path: String,
    },
    /// Write a file in the store to stdout.
    Cat { path: String },
    /// Show what the store knows about a store path (or a node below it).
    Info { path: String },
    /// Print every registered store path.
    List,
    /// Recompute every path's NAR hash from castore; report mismatches and
    /// missing or corrupt data; exit non-zero on damage.
    Verify,
    /// Serve the store as a Nix binary cache over HTTP.
    Serve(crate::binary_cache::ServeArgs),
    /// Copy store paths from or to a Nix binary cache (http:// or file://).
    Copy(crate::binary_cache::CopyArgs),
    /// Serve a store over gRPC until SIGINT/SIGTERM; clients use
    /// `--store grpc+http://ADDR`. Prints `listening on grpc+http://ADDR`.
    Daemon {
        /// Address to listen on (port 0: any free port).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9000")]
        listen: std::net::SocketAddr,
        /// The store to serve [default: --store, $FERRIX_STORE, else the
        /// embedded default store].
        #[arg(long, value_name = "URL")]
        backend: Option<String>,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    run_inner(args).map_err(dedup_chain)
}

/// Flattens an error chain into one message, dropping causes whose text the
/// message already contains (library errors often print their source too).
fn dedup_chain(e: anyhow::Error) -> anyhow::Error {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    anyhow::anyhow!(msg)
}

fn run_inner(args: Args) -> anyhow::Result<ExitCode> {
    let url = match args.store {
        Some(u) => u,
        None => default_store_url()?,
    };
    if let Cmd::Daemon { listen, backend } = &args.command {
        daemon::run(*listen, backend.as_deref().unwrap_or(&url))?;
        return Ok(ExitCode::SUCCESS);
    }
    let store = open_store(&url).with_context(|| format!("opening store {url}"))?;
    match args.command {
        Cmd::Serve(a) => return crate::binary_cache::serve(store, a),
        Cmd::Copy(a) => return crate::binary_cache::copy(store, a),
        Cmd::Add { flat, paths } => {
            let opts = AddOptions {
                method: if flat {
                    Method::Flat
                } else {
                    Method::Recursive
                },
                name: None,
            };
            let mut progress = Progress::new("adding", args.progress);
            let mut out = io::stdout().lock();
            for p in &paths {
                let info = add_path(&store, p, &opts, &mut |n| progress.inc(n))
                    .with_context(|| format!("adding {}", p.display()))?;
                writeln!(out, "{}", store.store_dir.display(&info.store_path))?;
            }
            progress.finish();
        }
        Cmd::Dump { path } => {
            let (info, sub) = lookup(&store, &path)?;
            let node = resolve(&store, &info.node, sub, &path)?;
            let out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
            write_nar(&*store.blobs, &*store.directories, &node, out)?.flush()?;
        }
        Cmd::ImportNar {
            name,
            nar_hash,
            nar_size,
        } => {
            let sha256 = nar_hash
                .map(|h| NixHash::parse(&h, Some(ferrix_formats::HashAlgo::Sha256)))
                .transpose()
                .context("--nar-hash")?;
            let expect = NarExpect {
                sha256,
                size: nar_size,
            };
            let mut progress = Progress::new("importing", args.progress);
            let mut stdin = io::BufReader::with_capacity(1 << 16, io::stdin().lock());
            let ing = ingest_nar(
                &*store.blobs,
                &*store.directories,
                &mut stdin,
                &expect,
                &mut |n| progress.inc(n),
            )
            .context("importing NAR from stdin")?;
            progress.finish();
            if !stdin.fill_buf().context("reading stdin")?.is_empty() {
                bail!("importing NAR from stdin: trailing data after the end of the NAR");
            }
            let info = register_nar(&store, &name, ing)?;
            println!("{}", store.store_dir.display(&info.store_path));
        }
        Cmd::Restore { path, dest } => {
            let (info, sub) = lookup(&store, &path)?;
            if !sub.is_empty() {
                bail!("restore takes a store path, not a path inside one: {path}");
            }
            restore_path(&store, &info, &dest)
                .with_context(|| format!("restoring {path} to {}", dest.display()))?;
        }
        Cmd::Ls { long, path } => {
            let (info, sub) = lookup(&store, &path)?;
            let node = resolve(&store, &info.node, sub, &path)?;
            let mut out = BufWriter::new(io::stdout().lock());
            match &node {
                Node::Directory { digest, .. } => {
                    for e in directory(&store, digest)?.entries() {
                        ls_line(&mut out, long, e.name.as_bytes(), &e.node)?;
                    }
                }
                _ => {
                    let base = path.rsplit('/').next().unwrap_or(&path);
                    ls_line(&mut out, long, base.as_bytes(), &node)?;
                }
            }
            out.flush()?;
        }
        Cmd::Cat { path } => {
            let (info, sub) = lookup(&store, &path)?;
            match resolve(&store, &info.node, sub, &path)? {
                Node::File { digest, size, .. } => {
                    let mut r = store
                        .blobs
                        .open_read(&digest)?
                        .ok_or(ferrix_castore::Error::DanglingBlob(digest))
                        .with_context(|| format!("reading {path}"))?;
                    let mut out = io::stdout().lock();
                    let n = io::copy(&mut (&mut r).take(size), &mut out)
                        .with_context(|| format!("reading {path}"))?;
                    if n != size {
                        bail!(
                            "{path}: blob {digest} is shorter ({n} bytes) than its node says ({size})"
                        );
                    }
                }
                Node::Directory { .. } => bail!("{path}: is a directory"),
                Node::Symlink { .. } => bail!("{path}: is a symlink"),
            }
        }
        Cmd::Info { path } => {
            let (info, sub) = lookup(&store, &path)?;
            let mut out = io::stdout().lock();
            if sub.is_empty() {
                print_info(&mut out, &store, &info)?;
            } else {
                let node = resolve(&store, &info.node, sub, &path)?;
                writeln!(out, "Path: {path}")?;
                writeln!(out, "Node: {}", describe(&node))?;
            }
        }
        Cmd::List => {
            let mut out = BufWriter::new(io::stdout().lock());
            let mut paths: Vec<_> = store
                .path_info
                .list()?
                .into_iter()
                .map(|i| i.store_path)
                .collect();
            paths.sort();
            for p in paths {
                writeln!(out, "{}", store.store_dir.display(&p))?;
            }
            out.flush()?;
        }
        Cmd::Daemon { .. } => unreachable!("handled before the store is opened"),
        Cmd::Verify => {
            let report = verify_store(&store, &mut |info, problem| {
                if let Some(problem) = problem {
                    println!(
                        "damaged: {}: {problem}",
                        store.store_dir.display(&info.store_path)
                    );
                }
            })?;
            eprintln!(
                "checked {} store paths: {} damaged",
                report.checked,
                report.damaged.len()
            );
            if !report.damaged.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A registered store path (and the sub-path after it), or a clear error.
fn lookup<'a>(store: &Store, arg: &'a str) -> anyhow::Result<(PathInfo, &'a str)> {
    match store.lookup(arg)? {
        Some(found) => Ok(found),
        None => {
            let (p, _) = store.parse_path(arg)?;
            bail!("{} is not in the store", store.store_dir.display(&p))
        }
    }
}

fn ls_line(out: &mut impl Write, long: bool, name: &[u8], node: &Node) -> io::Result<()> {
    if long {
        let (mode, size) = match node {
            Node::Directory { .. } => ("dr-xr-xr-x", 0),
            Node::File {
                size,
                executable: true,
                ..
            } => ("-r-xr-xr-x", *size),
            Node::File { size, .. } => ("-r--r--r--", *size),
            Node::Symlink { .. } => ("lrwxrwxrwx", 0),
        };
        write!(out, "{mode} {size:>12} ")?;
    }
    out.write_all(name)?;
    if let (true, Node::Symlink { target }) = (long, node) {
        out.write_all(b" -> ")?;
        out.write_all(target)?;
    }
    out.write_all(b"\n")
}

fn describe(node: &Node) -> String {
    match node {
        Node::Directory { digest, size } => format!("directory {digest} ({size} entries below)"),
        Node::File {
            digest,
            size,
            executable,
        } => {
            format!(
                "{} file {digest} ({size} bytes)",
                if *executable { "executable" } else { "regular" }
            )
        }
        Node::Symlink { target } => format!("symlink -> {}", String::from_utf8_lossy(target)),
    }
}

fn print_info(out: &mut impl Write, store: &Store, info: &PathInfo) -> io::Result<()> {
    let sd = &store.store_dir;
    writeln!(out, "StorePath: {}", sd.display(&info.store_path))?;
    writeln!(out, "NarHash: {}", info.nar_hash_string())?;
    writeln!(out, "NarSize: {}", info.nar_size)?;
    let refs: Vec<String> = info.references.iter().map(|r| r.to_string()).collect();
    writeln!(out, "References: {}", refs.join(" "))?;
    if let Some(d) = &info.deriver {
        writeln!(out, "Deriver: {d}")?;
    }
    for s in &info.signatures {
        writeln!(out, "Sig: {s}")?;
    }
    if let Some(ca) = &info.ca {
        writeln!(out, "CA: {ca}")?;
    }
    writeln!(out, "Root: {}", describe(&info.node))?;
    Ok(())
}

/// Import progress on stderr, never on stdout. On a terminal: a bar with
/// bytes and bytes/s that appears once the import has run for 2 s. Forced
/// (`--progress`): from the start, as plain lines (one a second, then a
/// summary) when stderr is not a terminal.
struct Progress {
    what: &'static str,
    start: Instant,
    bar: ProgressBar,
    tty: bool,
    forced: bool,
    shown: bool,
    bytes: u64,
    last_line: Instant,
}

const SHOW_AFTER: Duration = Duration::from_secs(2);

impl Progress {
    fn new(what: &'static str, forced: bool) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} {bytes} ({binary_bytes_per_sec}, {elapsed})",
            )
            .expect("valid template"),
        );
        bar.set_message(what);
        let now = Instant::now();
        Self {
            what,
            start: now,
            bar,
            tty: io::stderr().is_terminal(),
            forced,
            shown: false,
            bytes: 0,
            last_line: now,
        }
    }

    fn line(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { (self.bytes as f64 / secs) as u64 } else { 0 };
        format!(
            "{} {} ({}/s, {secs:.1}s)",
            self.what,
            indicatif::BinaryBytes(self.bytes),
            indicatif::BinaryBytes(rate)
        )
    }

    fn inc(&mut self, n: u64) {
        self.bytes += n;
        self.bar.inc(n);
        if self.tty {
            if !self.shown && (self.forced || self.start.elapsed() >= SHOW_AFTER) {
                self.shown = true;
                self.bar.set_draw_target(ProgressDrawTarget::stderr());
                self.bar.enable_steady_tick(Duration::from_millis(200));
            }
        } else if self.forced && self.last_line.elapsed() >= Duration::from_secs(1) {
            self.last_line = Instant::now();
            eprintln!("{}", self.line());
        }
    }

    fn finish(&mut self) {
        if self.shown {
            self.bar.finish_and_clear();
        }
        if self.forced {
            eprintln!("{}", self.line());
        }
    }
}
