//! `ferrix derivation`: inspect `.drv` files (like `nix show-derivation`).

use std::path::PathBuf;
use std::process::ExitCode;

use std::io::Write;

use anyhow::Context;
use clap::Subcommand;
use ferrix_formats::derivation::show_derivations_json;
use ferrix_formats::{Derivation, StoreDir, StorePath};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print derivations as JSON, like `nix show-derivation`.
    Show {
        /// Store directory the derivations refer to.
        #[arg(long, default_value = "/nix/store")]
        store_dir: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.cmd {
        Cmd::Show { store_dir, files } => {
            let sd = StoreDir::new(store_dir);
            let mut drvs: Vec<(StorePath, Derivation)> = Vec::new();
            for f in files {
                let bytes =
                    std::fs::read(&f).with_context(|| format!("reading '{}'", f.display()))?;
                let drv = Derivation::from_aterm(&bytes, &sd)
                    .with_context(|| format!("parsing '{}'", f.display()))?;
                // the key is the store path: the file's own if it is in the store, else computed
                let in_store = f
                    .to_str()
                    .and_then(|s| sd.parse(s).ok())
                    .map(|p| p.to_owned());
                let path = match in_store {
                    Some(p) => p,
                    None => {
                        let name = match drv.env.get(&b"name"[..]) {
                            Some(n) => String::from_utf8(n.clone())
                                .context("derivation name is not UTF-8")?,
                            None => f
                                .file_stem()
                                .and_then(|n| n.to_str())
                                .with_context(|| format!("'{}' has no usable name", f.display()))?
                                .to_owned(),
                        };
                        drv.drv_path(&sd, &name).with_context(|| {
                            format!("computing the store path of '{}'", f.display())
                        })?
                    }
                };
                drvs.push((path, drv));
            }
            // like nix, one object keyed by path (sorted, duplicates merged)
            drvs.sort_by(|a, b| a.0.cmp(&b.0));
            drvs.dedup_by(|a, b| a.0 == b.0);
            let mut json = show_derivations_json(&sd, drvs.iter().map(|(p, d)| (p, d)));
            json.push(b'\n');
            let mut out = std::io::stdout().lock();
            out.write_all(&json)
                .and_then(|()| out.flush())
                .context("writing to stdout")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
