//! `ferrix instantiate`: nix-instantiate's command line.
//!
//! nix-instantiate's flags do not fit clap's model (`--arg NAME EXPR`,
//! order-sensitive `-A`), so the raw arguments are parsed here by hand.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// nix-instantiate's arguments, parsed by hand.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub raw: Vec<String>,
}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`ferrix instantiate` is not implemented yet")
}
