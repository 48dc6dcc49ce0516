//! `ferrix repl`: an interactive read-eval-print loop like `nix repl`.
//!
//! Line editing, history (`$XDG_DATA_HOME/ferrix/repl-history` when stdin is
//! a terminal) and tab completion come from rustyline; on a pipe lines are
//! read plainly, so scripts and tests can drive it through stdin. Input that
//! ends early ("unexpected end of file", an open string) continues on the
//! next line. Commands: `x = expr` binds lazily; `:p`, `:t`, `:a`, `:l`,
//! `:q`, `:?` (see [`HELP`]). Values print as `nix repl` prints them: one
//! level deep (nested sets and lists as `{ ... }` / `[ ... ]`), derivations
//! as `«derivation /nix/store/….drv»`; `:p` prints everything.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::rc::Rc;

use ferrix_eval::print::{escape_string, fmt_float, is_plain_ident, pos_string};
use ferrix_eval::{Coerce, Context, Eval, ErrorKind, Symbol, Value};
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::Helper;

#[derive(clap::Args)]
pub struct Args {
    /// Add a search path entry (`-I nixpkgs=/path`).
    #[arg(short = 'I')]
    pub include: Vec<String>,
    /// The ferrix store that derivations are written to (default: the embedded store).
    #[arg(long)]
    pub store: Option<String>,
    /// Show `… while …` frames in errors.
    #[arg(long)]
    pub show_trace: bool,
    /// Files to load into scope at start (as with `:l`).
    pub files: Vec<String>,
}

/// What `:?` prints.
pub const HELP: &str = "\
The following commands are available:

  <expr>        Evaluate and print expression
  <x> = <expr>  Bind expression to variable
  :a <expr>     Add attributes from resulting set to scope
  :l <path>     Load Nix expression and add it to scope
  :p <expr>     Evaluate and print expression recursively
  :q            Exit the repl
  :t <expr>     Describe result of evaluation
  :?            Show this help";

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let child = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || repl(args))
        .map_err(|e| anyhow::anyhow!("spawning evaluator thread: {e}"))?;
    child.join().map_err(|_| anyhow::anyhow!("internal evaluator panic"))?
}

/// The REPL's state: the evaluator and the variables in scope.
pub struct Session {
    pub ev: Eval,
    /// Variables added by bindings, `:a` and `:l`, latest last (names unique).
    pub scope: Rc<RefCell<Vec<(Symbol, Value)>>>,
    pub cwd: String,
    pub show_trace: bool,
}

/// What one complete input did.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Text for stdout.
    Print(String),
    /// A message for stderr (like nix's `notice`).
    Notice(String),
    /// Nothing to print (a binding).
    Quiet,
    Quit,
}

impl Session {
    pub fn new(ev: Eval, show_trace: bool) -> Session {
        let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| "/".into());
        Session { ev, scope: Rc::default(), cwd, show_trace }
    }

    fn thunk(&self, src: &str) -> ferrix_eval::Result<Value> {
        let scope = self.scope.borrow();
        self.ev.thunk_in_scope(src, "«string»", &self.cwd, &scope)
    }

    fn eval(&self, src: &str) -> ferrix_eval::Result<Value> {
        let t = self.thunk(src)?;
        self.ev.force(&t)
    }

    fn bind(&self, name: Symbol, v: Value) {
        let mut scope = self.scope.borrow_mut();
        scope.retain(|(n, _)| *n != name);
        scope.push((name, v));
    }

    fn add_attrs(&self, v: &Value) -> ferrix_eval::Result<String> {
        let attrs = self.ev.force_attrs(v)?;
        for a in attrs.sorted_by_name() {
            self.bind(a.name, a.value.clone());
        }
        Ok(format!("Added {} variables.", attrs.len()))
    }

    /// Is `src` an input that ends early, so more lines should follow?
    pub fn incomplete(&self, src: &str) -> bool {
        let body = command_body(src);
        let body = match split_binding(body) {
            Some((_, rhs)) => rhs,
            None => body,
        };
        if body.trim().is_empty() {
            return false;
        }
        if open_string(body) {
            return true;
        }
        match self.thunk(body) {
            Err(e) => e.kind() == ErrorKind::Parse && e.msg().contains("unexpected end of file"),
            Ok(_) => false,
        }
    }

    /// Run one complete input.
    pub fn handle(&self, input: &str) -> Result<Outcome, String> {
        let line = input.trim();
        if line.is_empty() {
            return Ok(Outcome::Quiet);
        }
        let err = |e: ferrix_eval::Error| e.render(self.show_trace);
        if let Some(rest) = line.strip_prefix(':') {
            let (cmd, arg) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let arg = arg.trim();
            return match cmd {
                "q" | "quit" => Ok(Outcome::Quit),
                "?" | "help" => Ok(Outcome::Print(HELP.to_string())),
                "p" | "print" => {
                    let v = self.eval(arg).map_err(err)?;
                    print_repl(&self.ev, &v, usize::MAX).map(Outcome::Print).map_err(err)
                }
                "t" | "type" => {
                    let v = self.eval(arg).map_err(err)?;
                    Ok(Outcome::Print(describe_type(&v)))
                }
                "a" | "add" => {
                    let v = self.eval(arg).map_err(err)?;
                    self.add_attrs(&v).map(Outcome::Notice).map_err(err)
                }
                "l" | "load" => self.load(arg).map(Outcome::Notice).map_err(err),
                _ => Err(format!("error: unknown command ':{cmd}'")),
            };
        }
        if let Some((name, rhs)) = split_binding(line) {
            // Checked now (a parse error is reported), evaluated when used.
            let v = self.thunk(rhs).map_err(err)?;
            self.bind(Symbol::new(name), v);
            return Ok(Outcome::Quiet);
        }
        let v = self.eval(line).map_err(err)?;
        print_repl(&self.ev, &v, 1).map(Outcome::Print).map_err(err)
    }

    /// `:l FILE`: evaluate a file (or `<name>`), call it if it is a function
    /// with formals, and add its attributes to the scope.
    pub fn load(&self, arg: &str) -> ferrix_eval::Result<String> {
        if arg.is_empty() {
            return Err(ferrix_eval::Error::eval("':l' needs a file name"));
        }
        let path = if arg.starts_with('<') && arg.ends_with('>') {
            let v = self.ev.find_search_path(&arg[1..arg.len() - 1])?;
            let mut ctx = Context::new();
            String::from_utf8_lossy(&self.ev.coerce_to_string(&v, &mut ctx, Coerce { more: false, copy_to_store: false })?)
                .into_owned()
        } else if arg.starts_with('/') {
            arg.to_string()
        } else {
            ferrix_eval::canon_path(&format!("{}/{arg}", self.cwd))
        };
        let v = self.ev.eval_file(&path)?;
        let flags = crate::instantiate::Flags::default();
        let v = crate::instantiate::auto_call(&self.ev, v, &flags)?;
        self.add_attrs(&v)
    }

    /// Completions for the word ending at `pos`: variables in scope and
    /// builtins, or the attributes of `a.b` for `a.b.<prefix>`. Returns the
    /// byte offset the candidates replace from.
    pub fn complete(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let before = &line[..pos];
        let start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '_' | '\'' | '-' | '.'))
            .last()
            .map_or(pos, |(i, _)| i);
        let word = &before[start..];
        if let Some((expr, prefix)) = word.rsplit_once('.') {
            if expr.is_empty() {
                return (pos, Vec::new());
            }
            let Ok(v) = self.eval(expr) else { return (pos, Vec::new()) };
            let Ok(attrs) = self.ev.force_attrs(&v) else { return (pos, Vec::new()) };
            let names = attrs
                .sorted_by_name()
                .map(|a| a.name.as_str().into_owned())
                .filter(|n| n.starts_with(prefix))
                .map(|n| format!("{expr}.{n}"))
                .collect();
            return (start, names);
        }
        let mut names: Vec<String> =
            self.scope.borrow().iter().map(|(n, _)| n.as_str().into_owned()).filter(|n| n.starts_with(word)).collect();
        names.extend(self.ev.global_var_names().into_iter().filter(|n| n.starts_with(word)));
        names.sort();
        names.dedup();
        (start, names)
    }
}

/// The text after a `:x` command (or the whole input).
fn command_body(src: &str) -> &str {
    let t = src.trim_start();
    match t.strip_prefix(':') {
        Some(rest) => rest.split_once(char::is_whitespace).map_or("", |(_, b)| b),
        None => t,
    }
}

/// Does `src` end inside a string or indented string?
fn open_string(src: &str) -> bool {
    let b = src.as_bytes();
    let mut i = 0;
    // Stack of open contexts: b'"' string, b'\'' indented string, b'{' interpolation/braces.
    let mut stack: Vec<u8> = Vec::new();
    while i < b.len() {
        let top = stack.last().copied();
        match top {
            Some(b'"') => match b[i] {
                b'\\' => i += 1,
                b'"' => {
                    stack.pop();
                }
                b'$' if b.get(i + 1) == Some(&b'{') => {
                    stack.push(b'{');
                    i += 1;
                }
                _ => {}
            },
            Some(b'\'') => {
                if b[i..].starts_with(b"''$") || b[i..].starts_with(b"'''") || b[i..].starts_with(b"''\\") {
                    i += 2;
                } else if b[i..].starts_with(b"''") {
                    stack.pop();
                    i += 1;
                } else if b[i..].starts_with(b"${") {
                    stack.push(b'{');
                    i += 1;
                }
            }
            _ => match b[i] {
                b'"' => stack.push(b'"'),
                b'\'' if b.get(i + 1) == Some(&b'\'') => {
                    stack.push(b'\'');
                    i += 1;
                }
                b'{' => stack.push(b'{'),
                b'}' => {
                    stack.pop();
                }
                b'#' => {
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                }
                b'/' if b.get(i + 1) == Some(&b'*') => {
                    i += 2;
                    while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                        i += 1;
                    }
                    i += 1;
                }
                _ => {}
            },
        }
        i += 1;
    }
    stack.iter().any(|&c| c == b'"' || c == b'\'')
}

/// `name = expr` (but not `==`, and not `{ a = 1; }`).
fn split_binding(line: &str) -> Option<(&str, &str)> {
    let (lhs, rhs) = line.split_once('=')?;
    if rhs.starts_with('=') || lhs.ends_with(['!', '<', '>', '=']) {
        return None;
    }
    let name = lhs.trim();
    if !is_plain_ident(name.as_bytes()) {
        return None;
    }
    Some((name, rhs.trim()))
}

/// What `:t` says about a value.
fn describe_type(v: &Value) -> String {
    match v {
        Value::PrimOp(p) => format!("the built-in function '{}'", p.name),
        Value::PrimOpApp(_) => "a partially applied built-in function".to_string(),
        other => other.show_type().to_string(),
    }
}

/// Print a value like `nix repl` (2.8): forced down to `depth` levels.
pub fn print_repl(ev: &Eval, v: &Value, depth: usize) -> ferrix_eval::Result<String> {
    let mut out = String::new();
    print_rec(ev, v, depth, &mut out)?;
    Ok(out)
}

fn print_rec(ev: &Eval, v: &Value, depth: usize, out: &mut String) -> ferrix_eval::Result<()> {
    let v = ev.force(v)?;
    match &v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&fmt_float(*f)),
        Value::String(s) => escape_string(out, s.as_bytes()),
        Value::Path(p) => out.push_str(&p.to_str_lossy()),
        Value::Attrs(a) => {
            if ev.is_derivation(a)? {
                out.push_str("«derivation ");
                match a.get(Symbol::new("drvPath")) {
                    Some(p) => {
                        let mut ctx = Context::new();
                        let s = ev.coerce_to_string(p, &mut ctx, Coerce { more: false, copy_to_store: false })?;
                        out.push_str(&String::from_utf8_lossy(&s));
                    }
                    None => out.push_str("???"),
                }
                out.push('»');
            } else if depth == 0 {
                out.push_str("{ ... }");
            } else {
                out.push_str("{ ");
                for at in a.sorted_by_name() {
                    let name = at.name.as_bytes();
                    if is_plain_ident(name) {
                        out.push_str(&String::from_utf8_lossy(name));
                    } else {
                        escape_string(out, name);
                    }
                    out.push_str(" = ");
                    print_elem(ev, &at.value, depth - 1, out)?;
                    out.push_str("; ");
                }
                out.push('}');
            }
        }
        Value::List(l) => {
            out.push_str("[ ");
            if depth == 0 {
                out.push_str("... ");
            } else {
                for x in l.iter() {
                    print_elem(ev, x, depth - 1, out)?;
                    out.push(' ');
                }
            }
            out.push(']');
        }
        Value::Lambda(c) => {
            out.push_str("«lambda @ ");
            out.push_str(&pos_string(c.lambda.pos));
            out.push('»');
        }
        Value::PrimOp(_) => out.push_str("«primop»"),
        Value::PrimOpApp(_) => out.push_str("«primop-app»"),
        Value::Thunk(_) => out.push_str("«thunk»"),
    }
    Ok(())
}

/// An element inside a set or list: a failed assertion or `throw` prints
/// as `«error: …»` instead of failing the whole print.
fn print_elem(ev: &Eval, v: &Value, depth: usize, out: &mut String) -> ferrix_eval::Result<()> {
    let mut inner = String::new();
    match print_rec(ev, v, depth, &mut inner) {
        Ok(()) => out.push_str(&inner),
        Err(e) if matches!(e.kind(), ErrorKind::Assert) => {
            out.push_str("«error: ");
            out.push_str(e.msg());
            out.push('»');
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// rustyline glue: tab completion through [`Session::complete`].
struct ReplHelper {
    session: Rc<Session>,
}

impl Completer for ReplHelper {
    type Candidate = Pair;
    fn complete(&self, line: &str, pos: usize, _: &rustyline::Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, names) = self.session.complete(line, pos);
        Ok((start, names.into_iter().map(|n| Pair { display: n.clone(), replacement: n }).collect()))
    }
}
impl Hinter for ReplHelper {
    type Hint = String;
}
impl Highlighter for ReplHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(&'s self, prompt: &'p str, _default: bool) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}
impl Validator for ReplHelper {}
impl Helper for ReplHelper {}

fn history_file() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".local/share")))?;
    Some(base.join("ferrix/repl-history"))
}

fn repl(args: Args) -> anyhow::Result<ExitCode> {
    let flags = crate::instantiate::Flags { include: args.include, store: args.store, ..Default::default() };
    let ev: Eval = crate::instantiate::make_eval(&flags);
    let session = Rc::new(Session::new(ev, args.show_trace));
    let tty = std::io::stdin().is_terminal();
    for f in &args.files {
        match session.load(f) {
            Ok(msg) => eprintln!("{msg}"),
            Err(e) => crate::instantiate::print_error(&e, args.show_trace),
        }
    }
    let mut rl: rustyline::Editor<ReplHelper, rustyline::history::DefaultHistory> = rustyline::Editor::new()?;
    rl.set_helper(Some(ReplHelper { session: session.clone() }));
    let history = if tty { history_file() } else { None };
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    if tty {
        println!("Welcome to ferrix {}. Type :? for help.\n", env!("CARGO_PKG_VERSION"));
    }
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { "ferrix> " } else { "        " };
        let line = match rl.readline(prompt) {
            Ok(l) => l,
            Err(rustyline::error::ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(_) => break,
        };
        if !buffer.is_empty() {
            buffer.push('\n');
        }
        buffer.push_str(&line);
        if session.incomplete(&buffer) {
            continue;
        }
        let input = std::mem::take(&mut buffer);
        if !input.trim().is_empty() {
            let _ = rl.add_history_entry(input.as_str());
        }
        match session.handle(&input) {
            Ok(Outcome::Quit) => break,
            Ok(Outcome::Print(s)) => println!("{s}"),
            Ok(Outcome::Notice(s)) => eprintln!("{s}"),
            Ok(Outcome::Quiet) => {}
            Err(e) => eprintln!("{e}"),
        }
        if tty {
            println!();
        }
    }
    if let Some(h) = &history {
        if let Some(d) = h.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let _ = rl.save_history(h);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        let ev = ferrix_glue::new_eval(Default::default(), Box::new(ferrix_glue::MemoryStore::default()));
        Session::new(ev, false)
    }

    #[test]
    fn completes_variables_and_attribute_paths() {
        let s = session();
        s.handle("pkgs = { hello = 1; help = 2; other = { deep = 3; }; }").unwrap();
        s.handle("pkgsExtra = 1").unwrap();
        assert_eq!(s.complete("pkg", 3), (0, vec!["pkgs".to_string(), "pkgsExtra".to_string()]));
        assert_eq!(s.complete("1 + pkgs.hel", 12), (4, vec!["pkgs.hello".to_string(), "pkgs.help".to_string()]));
        assert_eq!(s.complete("pkgs.other.", 11), (0, vec!["pkgs.other.deep".to_string()]));
        let (_, b) = s.complete("builtins.toJ", 12);
        assert_eq!(b, vec!["builtins.toJSON".to_string()]);
        let (_, m) = s.complete("ma", 2);
        assert!(m.contains(&"map".to_string()), "{m:?}");
        assert_eq!(s.complete("nosuch.x", 8), (8, vec![]));
    }

    #[test]
    fn incomplete_input_continues() {
        let s = session();
        for src in ["{ a = 1;", "let x = 1;", "\"abc", "''abc", "x = [ 1", ":p { a =", "f = x:"] {
            assert!(s.incomplete(src), "{src}");
        }
        for src in ["{ a = 1; }", "1 +* 2", "{ a = 1; }}", ":q", "\"a${\"b\"}c\"", "''a''${b}''"] {
            assert!(!s.incomplete(src), "{src}");
        }
    }

    #[test]
    fn bindings_are_lazy_and_shadow() {
        let s = session();
        assert_eq!(s.handle("x = throw \"lazy\""), Ok(Outcome::Quiet));
        assert!(s.handle("x").unwrap_err().contains("lazy"));
        s.handle("x = 2").unwrap();
        s.handle("map = 5").unwrap();
        assert_eq!(s.handle("x * map"), Ok(Outcome::Print("10".into())));
        assert_eq!(s.handle("x == 2"), Ok(Outcome::Print("true".into())));
    }
}
