//! `ferrix nar`: write, read and list NAR archives (like `nix-store --dump/--restore`, `nix nar ls`).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use ferrix_formats::nar;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write the NAR serialisation of PATH to stdout.
    Dump { path: PathBuf },
    /// Restore a NAR read from stdin into DIR (which must not exist).
    Restore { dir: PathBuf },
    /// List the contents of a NAR file (like `nix nar ls -lR FILE /`).
    Ls { file: PathBuf },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.cmd {
        Cmd::Dump { path } => {
            let out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
            let mut out = nar::dump_path(&path, out)
                .with_context(|| format!("dumping '{}'", path.display()))?;
            out.flush().context("writing to stdout")?;
        }
        Cmd::Restore { dir } => {
            let input = BufReader::with_capacity(1 << 20, io::stdin().lock());
            nar::restore(input, &dir)
                .with_context(|| format!("restoring into '{}'", dir.display()))?;
        }
        Cmd::Ls { file } => {
            let f = File::open(&file).with_context(|| format!("opening '{}'", file.display()))?;
            let entries = nar::list(BufReader::new(f))
                .with_context(|| format!("reading NAR '{}'", file.display()))?;
            let mut out = BufWriter::new(io::stdout().lock());
            for e in entries {
                let (perm, size) = match &e.kind {
                    nar::NodeKind::Regular {
                        executable: true,
                        size,
                    } => ("-r-xr-xr-x", *size),
                    nar::NodeKind::Regular {
                        executable: false,
                        size,
                    } => ("-r--r--r--", *size),
                    nar::NodeKind::Directory => ("dr-xr-xr-x", 0),
                    nar::NodeKind::Symlink { .. } => ("lrwxrwxrwx", 0),
                };
                if e.path.is_empty() && matches!(e.kind, nar::NodeKind::Directory) {
                    continue; // like `nix nar ls -R FILE /`, the root directory itself is not listed
                }
                let mut line = format!("{perm} {size:>20} ").into_bytes();
                if !e.path.is_empty() {
                    line.push(b'.');
                    line.extend_from_slice(&e.path);
                }
                if let nar::NodeKind::Symlink { target } = &e.kind {
                    line.extend_from_slice(b" -> ");
                    line.extend_from_slice(target);
                }
                line.push(b'\n');
                out.write_all(&line)?;
            }
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
