//! `ferrix eval`: evaluate an expression or file and print the result
//! (`--json`, `--raw`); the value is forced deeply like `nix eval`.

use std::process::ExitCode;

use crate::instantiate::{self, Flags};

#[derive(clap::Args)]
pub struct Args {
    /// The expression to evaluate (unless `-f` is given).
    pub expr: Option<String>,
    /// Evaluate this file instead.
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
    /// Print strings without quotes.
    #[arg(long)]
    pub raw: bool,
    /// Show `… while …` frames in errors.
    #[arg(long)]
    pub show_trace: bool,
    /// Select an attribute path of the result.
    #[arg(short = 'A', long = "attr")]
    pub attr: Option<String>,
    /// Add a search path entry (`-I nixpkgs=/path`).
    #[arg(short = 'I')]
    pub include: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut raw = vec!["--eval".to_string(), "--strict".to_string()];
    if args.json {
        raw.push("--json".into());
    }
    if args.raw {
        raw.push("--raw".into());
    }
    if args.show_trace {
        raw.push("--show-trace".into());
    }
    if let Some(a) = &args.attr {
        raw.push("-A".into());
        raw.push(a.clone());
    }
    for i in &args.include {
        raw.push("-I".into());
        raw.push(i.clone());
    }
    match (&args.file, &args.expr) {
        (Some(f), _) => raw.push(f.clone()),
        (None, Some(e)) => {
            raw.push("-E".into());
            raw.push(e.clone());
        }
        (None, None) => anyhow::bail!("give an expression or -f FILE"),
    }
    let flags: Flags = instantiate::parse_flags(&raw)?;
    let _ = &flags;
    instantiate::run(instantiate::Args { raw })
}
