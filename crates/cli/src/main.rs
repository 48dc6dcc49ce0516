//! The `ferrix` binary: thin command-line glue over the library crates.
//!
//! Each command group lives in its own module with an `Args` type (clap) and
//! a `run` function; this file only dispatches.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod binary_cache;
mod derivation;
mod eval;
mod eval_jobs;
mod hash;
mod instantiate;
mod nar;
mod prefault;
mod repl;
mod store;
mod teardown;

/// The evaluator allocates many small objects (thunks, frames); a pooled
/// small-object allocator makes that several times cheaper than malloc.
#[global_allocator]
static ALLOC: ferrix_eval::alloc::PoolAlloc = ferrix_eval::alloc::PoolAlloc;

/// ferrix: a Nix evaluator and content-addressed store, compatible with C++ Nix.
#[derive(Parser)]
#[command(name = "ferrix", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compute and convert Nix hashes (like `nix hash` / `nix-hash`).
    Hash(hash::Args),
    /// Write, read and list NAR archives (like `nix-store --dump/--restore`).
    Nar(nar::Args),
    /// Inspect `.drv` files (like `nix show-derivation`).
    Derivation(derivation::Args),
    /// Evaluate a Nix expression and print the result.
    Eval(eval::Args),
    /// List every derivation of a package tree as JSON lines, like `nix-env -qaP --drv-path`, in parallel workers.
    #[command(name = "eval-jobs", disable_help_flag = true)]
    EvalJobs(eval_jobs::Args),
    /// Evaluate and instantiate Nix expressions (accepts nix-instantiate's flags).
    #[command(disable_help_flag = true)]
    Instantiate(instantiate::Args),
    /// Interactive read-eval-print loop.
    Repl(repl::Args),
    /// Work with the content-addressed store.
    Store(store::Args),
}

/// Evaluation runs on one thread with a large stack. glibc gives such a
/// thread an arena of its own, which grows by exactly what each allocation
/// past its end needs, one `mprotect` call each (about 130 000 per worker on
/// the nixpkgs walk); the main arena grows through `brk` in padded steps.
/// The evaluating commands allocate from one thread at a time, so one arena
/// costs them no contention.
fn one_padded_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Eval(_) | Command::EvalJobs(_) | Command::Instantiate(_) | Command::Repl(_)) {
        one_padded_arena();
    }
    let evaluates = matches!(cli.command, Command::Eval(_) | Command::Instantiate(_));
    let result = match cli.command {
        Command::Hash(a) => hash::run(a),
        Command::Nar(a) => nar::run(a),
        Command::Derivation(a) => derivation::run(a),
        Command::Eval(a) => eval::run(a),
        Command::EvalJobs(a) => eval_jobs::run(a),
        Command::Instantiate(a) => instantiate::run(a),
        Command::Repl(a) => repl::run(a),
        Command::Store(a) => store::run(a),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    };
    if evaluates {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        teardown::hand_off();
    }
    code
}
