//! `ferrix hash`: compute and convert Nix hashes (like `nix hash` / `nix-hash`).

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use ferrix_formats::nar;
use ferrix_formats::{Encoding, HashAlgo, Hasher, NixHash};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct Output {
    /// Hash algorithm (md5, sha1, sha256, sha512).
    #[arg(long = "type", default_value = "sha256", value_parser = parse_algo)]
    algo: HashAlgo,
    /// Print the digest in base-16.
    #[arg(long, group = "enc")]
    base16: bool,
    /// Print the digest in Nix's base-32.
    #[arg(long, group = "enc")]
    base32: bool,
    /// Print the digest in base-64.
    #[arg(long, group = "enc")]
    base64: bool,
    /// Print the hash in SRI form (the default).
    #[arg(long, group = "enc")]
    sri: bool,
}

impl Output {
    fn render(&self, h: &NixHash) -> String {
        if self.base16 {
            h.encode(Encoding::Base16)
        } else if self.base32 {
            h.encode(Encoding::Nix32)
        } else if self.base64 {
            h.encode(Encoding::Base64)
        } else {
            h.to_sri()
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Hash the NAR serialisation of paths (like `nix hash path` / `nix-hash`).
    Path {
        #[command(flatten)]
        out: Output,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Hash the contents of regular files (like `nix hash file` / `nix-hash --flat`).
    File {
        #[command(flatten)]
        out: Output,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Convert hashes between encodings (like `nix hash to-base16` etc.).
    Convert {
        /// Target encoding: base16, nix32 (or base32), base64, sri.
        #[arg(long, value_parser = parse_encoding)]
        to: Encoding,
        /// Algorithm of hashes given without an `algo:` / `algo-` prefix.
        #[arg(long = "type", value_parser = parse_algo)]
        algo: Option<HashAlgo>,
        #[arg(required = true)]
        hashes: Vec<String>,
    },
}

fn parse_algo(s: &str) -> Result<HashAlgo, String> {
    s.parse()
        .map_err(|e: ferrix_formats::HashError| e.to_string())
}

fn parse_encoding(s: &str) -> Result<Encoding, String> {
    s.parse()
        .map_err(|e: ferrix_formats::HashError| e.to_string())
}

/// Flat hash of a file, read in large chunks.
fn hash_file(path: &std::path::Path, algo: HashAlgo) -> anyhow::Result<NixHash> {
    let mut f = File::open(path).with_context(|| format!("opening '{}'", path.display()))?;
    let mut h = Hasher::new(algo);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("reading '{}'", path.display())),
        };
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut lines = Vec::new();
    match args.cmd {
        Cmd::Path { out, paths } => {
            for p in paths {
                let (h, _) = nar::dump_path_hashed(&p, out.algo)
                    .with_context(|| format!("hashing path '{}'", p.display()))?;
                lines.push(out.render(&h));
            }
        }
        Cmd::File { out, paths } => {
            for p in paths {
                lines.push(out.render(&hash_file(&p, out.algo)?));
            }
        }
        Cmd::Convert { to, algo, hashes } => {
            for s in hashes {
                let h = NixHash::parse(&s, algo)?;
                lines.push(h.encode(to));
            }
        }
    }
    for l in lines {
        println!("{l}");
    }
    Ok(ExitCode::SUCCESS)
}
