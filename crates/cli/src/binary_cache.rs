//! `ferrix store serve` and `ferrix store copy`: the binary cache commands
//! (over `ferrix-binary-cache`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use ferrix_binary_cache::auth::Credentials;
use ferrix_binary_cache::copy::{FromOptions, ToOptions, copy_from, copy_to};
use ferrix_binary_cache::remote::Remote;
use ferrix_binary_cache::server;
use ferrix_formats::{PublicKey, SecretKey, StorePath};
use ferrix_store::Store;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on: HOST:PORT, or a bare PORT (on 127.0.0.1).
    /// Port 0 picks a free port; the address is printed on stdout.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Sign the narinfos served with this secret key (as written by
    /// `nix-store --generate-binary-cache-key`).
    #[arg(long, value_name = "FILE")]
    sign_key: Option<PathBuf>,
    /// `Priority` announced in nix-cache-info (lower is preferred).
    #[arg(long, value_name = "N")]
    priority: Option<u32>,
    /// Accept uploads (`nix copy --to http://…`) from clients sending the
    /// `user:password` in FILE as HTTP basic auth. Without it the cache is
    /// read-only.
    #[arg(long, value_name = "FILE")]
    upload_auth: Option<PathBuf>,
    /// Require the `user:password` in FILE (or the upload credentials) for
    /// reads too.
    #[arg(long, value_name = "FILE")]
    read_auth: Option<PathBuf>,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("direction").required(true).args(["from", "to"])))]
pub struct CopyArgs {
    /// Copy from this binary cache (http://host[:port][/prefix] or
    /// file:///dir) into the store.
    #[arg(long, value_name = "URL")]
    from: Option<String>,
    /// Copy from the store into this binary cache.
    #[arg(long, value_name = "URL")]
    to: Option<String>,
    /// Copy the closures of the paths (everything they refer to).
    #[arg(long)]
    closure: bool,
    /// With --from: refuse paths not signed by one of these public keys
    /// (`name:base64`, or a file holding that). May be repeated.
    #[arg(long = "trusted-key", value_name = "KEY")]
    trusted_keys: Vec<String>,
    /// With --to: sign the narinfos written with this secret key file.
    #[arg(long, value_name = "FILE")]
    sign_key: Option<PathBuf>,
    /// Send the `user:password` in FILE as HTTP basic auth.
    #[arg(long, value_name = "FILE")]
    auth_file: Option<PathBuf>,
    /// Store paths (/nix/store/HASH-NAME or HASH-NAME).
    #[arg(required = true)]
    paths: Vec<String>,
}

fn listen_addr(s: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .with_context(|| format!("--listen {s:?}: expected HOST:PORT or PORT"))
}

fn secret_key(path: &PathBuf) -> anyhow::Result<SecretKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading secret key {}", path.display()))?;
    SecretKey::parse(&text).with_context(|| format!("secret key {}", path.display()))
}

pub fn serve(store: Store, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let addr = listen_addr(&args.listen)?;
    let opts = server::Options {
        sign_key: args.sign_key.as_ref().map(secret_key).transpose()?,
        priority: args.priority,
        upload_auth: args
            .upload_auth
            .as_deref()
            .map(Credentials::from_file)
            .transpose()?,
        read_auth: args
            .read_auth
            .as_deref()
            .map(Credentials::from_file)
            .transpose()?,
        max_concurrent_nars: 0,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        let bound = listener.local_addr()?;
        println!("serving binary cache on http://{bound}");
        use std::io::Write;
        std::io::stdout().flush()?;
        server::serve(listener, store, opts, shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

pub fn copy(store: Store, args: CopyArgs) -> anyhow::Result<ExitCode> {
    let auth = args
        .auth_file
        .as_deref()
        .map(Credentials::from_file)
        .transpose()?;
    let mut paths: Vec<StorePath> = Vec::new();
    for p in &args.paths {
        let (path, sub) = store.parse_path(p)?;
        if !sub.is_empty() {
            bail!("{p}: expected a store path, not a path inside one");
        }
        paths.push(path);
    }
    let (url, copied) = match (&args.from, &args.to) {
        (Some(url), None) => {
            let trusted_keys = if args.trusted_keys.is_empty() {
                None
            } else {
                let mut keys = Vec::new();
                for k in &args.trusted_keys {
                    let text = if std::path::Path::new(k).is_file() {
                        std::fs::read_to_string(k).with_context(|| format!("reading {k}"))?
                    } else {
                        k.clone()
                    };
                    keys.push(
                        PublicKey::parse(&text).with_context(|| format!("--trusted-key {k}"))?,
                    );
                }
                Some(keys)
            };
            if args.sign_key.is_some() {
                bail!("--sign-key goes with --to");
            }
            let remote = Remote::open(url, auth)?;
            let opts = FromOptions {
                closure: args.closure,
                trusted_keys,
            };
            (
                url,
                copy_from(&store, &remote, &paths, &opts)
                    .with_context(|| format!("copying from {url}"))?,
            )
        }
        (None, Some(url)) => {
            if !args.trusted_keys.is_empty() {
                bail!("--trusted-key goes with --from");
            }
            let remote = Remote::open(url, auth)?;
            let opts = ToOptions {
                closure: args.closure,
                sign_key: args.sign_key.as_ref().map(secret_key).transpose()?,
            };
            (
                url,
                copy_to(&store, &remote, &paths, &opts)
                    .with_context(|| format!("copying to {url}"))?,
            )
        }
        _ => unreachable!("clap requires exactly one of --from and --to"),
    };
    let skipped = copied.iter().filter(|c| c.skipped).count();
    for c in &copied {
        println!("{}", store.store_dir.display(&c.path));
    }
    eprintln!(
        "{url}: copied {} paths, {skipped} already present",
        copied.len() - skipped
    );
    Ok(ExitCode::SUCCESS)
}
