//! `ferrix repl`: a minimal read-eval-print loop.
//!
//! Supports expressions, `name = expr` bindings (kept as a `let` around later
//! input), `:p expr` (print deeply), `:t expr` (type) and `:q`.

use std::process::ExitCode;

use ferrix_eval::{print::print_value, Eval};

#[derive(clap::Args)]
pub struct Args {
    /// Add a search path entry (`-I nixpkgs=/path`).
    #[arg(short = 'I')]
    pub include: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let child = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || repl(args))
        .map_err(|e| anyhow::anyhow!("spawning evaluator thread: {e}"))?;
    child.join().map_err(|_| anyhow::anyhow!("internal evaluator panic"))?
}

fn repl(args: Args) -> anyhow::Result<ExitCode> {
    let flags = crate::instantiate::Flags { include: args.include, ..Default::default() };
    let ev: Eval = crate::instantiate::make_eval(&flags);
    let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| "/".into());
    let mut rl = rustyline::DefaultEditor::new()?;
    let mut bindings: Vec<(String, String)> = Vec::new();
    println!("ferrix repl — :q to quit, :p EXPR to print deeply, :t EXPR for the type");
    loop {
        let line = match rl.readline("ferrix> ") {
            Ok(l) => l,
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => break,
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = rl.add_history_entry(line);
        if line == ":q" || line == ":quit" {
            break;
        }
        let (mode, src) = if let Some(r) = line.strip_prefix(":p ") {
            ('p', r.to_string())
        } else if let Some(r) = line.strip_prefix(":t ") {
            ('t', r.to_string())
        } else if let Some((name, rhs)) = split_binding(line) {
            bindings.retain(|(n, _)| n != &name);
            bindings.push((name, rhs));
            continue;
        } else {
            ('e', line.to_string())
        };
        let text = if bindings.is_empty() {
            src
        } else {
            let binds: String = bindings.iter().map(|(n, e)| format!("{n} = ({e}); ")).collect();
            format!("let {binds}in ({src})")
        };
        let r = ev.eval_string(&text, &cwd).and_then(|v| match mode {
            'p' => ev.force_deep(&v).map(|v| print_value(&v)),
            't' => Ok(v.type_name().to_string()),
            _ => Ok(print_value(&v)),
        });
        match r {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("{}", e.render(true)),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `name = expr` (but not `==`).
fn split_binding(line: &str) -> Option<(String, String)> {
    let (lhs, rhs) = line.split_once('=')?;
    if rhs.starts_with('=') || lhs.ends_with(['!', '<', '>', '=']) {
        return None;
    }
    let name = lhs.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '\'') {
        return None;
    }
    Some((name.to_string(), rhs.trim().to_string()))
}
