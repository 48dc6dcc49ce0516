//! Evaluation errors: small, boxed, with a source position and a trace of
//! `… while …` frames, printed like modern C++ Nix.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use crate::ir::Span;
use crate::source;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure; decides what `builtins.tryEval` catches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `throw`: caught by `tryEval`.
    Throw,
    /// A failed `assert`: caught by `tryEval`.
    Assert,
    /// `abort`: never caught.
    Abort,
    InfiniteRecursion,
    StackOverflow,
    /// A parse or lowering error.
    Parse,
    /// Any other evaluation error (type errors, missing attributes, …).
    Eval,
}

#[derive(Clone, Debug)]
pub struct ErrorInner {
    pub kind: ErrorKind,
    pub msg: String,
    pub span: Span,
    /// `… while …` frames.
    pub trace: Trace,
    /// Extra text printed after the position (e.g. "Did you mean …").
    pub hint: Option<String>,
    /// For infinite recursion: the address of the thunk that was re-entered,
    /// until the error unwinds out of that thunk's first forcing (which
    /// adds "entering the infinite recursion"); 0 otherwise.
    pub origin: usize,
    /// Infinite recursion that has not yet unwound out of any thunk's
    /// evaluation or builtin: the place it reaches is the one that found
    /// the value being evaluated (see [`Error::found_here`]).
    pub fresh: bool,
    /// Set once a thunk has memoised this error: the frames it gains while
    /// it goes on unwinding are written here too, so forcing that thunk
    /// again shows them (C++ Nix memoises the exception object itself,
    /// which keeps being added to until it is caught).
    pub memo: Option<Arc<Mutex<Trace>>>,
}

/// An evaluation error.
#[derive(Clone, Debug)]
pub struct Error(pub Box<ErrorInner>);

impl Error {
    #[cold]
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Error {
        Error(Box::new(ErrorInner { kind, msg: msg.into(), span: Span::NONE, trace: Trace::default(), hint: None, origin: 0, fresh: false, memo: None }))
    }
    #[cold]
    pub fn eval(msg: impl Into<String>) -> Error {
        Error::new(ErrorKind::Eval, msg)
    }
    #[cold]
    pub fn throw(msg: impl Into<String>) -> Error {
        Error::new(ErrorKind::Throw, msg)
    }
    #[cold]
    pub fn infinite_recursion() -> Error {
        Error::new(ErrorKind::InfiniteRecursion, "infinite recursion encountered")
    }
    /// Infinite recursion found on re-entering the thunk at address `origin`.
    #[cold]
    pub fn infinite_recursion_from(origin: usize) -> Error {
        let mut e = Error::infinite_recursion();
        e.0.origin = origin;
        e.0.fresh = true;
        e
    }
    /// Called as the error leaves the forcing of the thunk at `addr`: if that
    /// is the thunk the recursion re-entered, add C++ Nix's frame.
    #[cold]
    pub fn leaving_thunk(mut self, addr: usize) -> Error {
        if self.0.origin == addr && addr != 0 {
            self.0.origin = 0;
            self = self.while_("entering the infinite recursion", Span::NONE);
        }
        self
    }
    #[cold]
    pub fn parse(msg: impl Into<String>, span: Span) -> Error {
        Error::new(ErrorKind::Parse, msg).at(span)
    }
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }
    pub fn msg(&self) -> &str {
        &self.0.msg
    }
    /// Infinite recursion raised by the force just made, which found the
    /// value being evaluated, is reported at `pos`, where C++ Nix forces it
    /// (its `tryFixupBlackHolePos`); one raised deeper (by a builtin, which
    /// gives none, or at another variable) and errors of other kinds are
    /// left as they are.
    #[cold]
    pub fn found_here(self, pos: impl Into<Span>) -> Error {
        if self.0.fresh { self.at(pos) } else { self }
    }
    /// [`Error::found_here`] for forcing `e` when it is a variable: at the
    /// variable (C++ Nix's `ExprVar::eval`). Out of line: the error paths
    /// that call it are inlined into the evaluator's arms.
    #[cold]
    #[inline(never)]
    pub fn at_reentered_var(self, e: &crate::ir::Expr) -> Error {
        match e {
            crate::ir::Expr::Var { pos, .. } => self.found_here(pos.span()),
            _ => self,
        }
    }
    /// The error leaves a thunk's evaluation or a builtin: places it
    /// reaches from here on did not find the value being evaluated.
    #[cold]
    pub fn unwound(mut self) -> Error {
        self.0.fresh = false;
        self
    }
    /// Attach a position if the error has none yet.
    #[cold]
    pub fn at(mut self, span: impl Into<Span>) -> Error {
        if self.0.span.is_none() {
            self.0.span = span.into();
        }
        self
    }
    #[cold]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Error {
        self.0.hint = Some(hint.into());
        self
    }
    /// This error's message with `other`'s position, trace and hint.
    #[cold]
    pub fn with_trace_of(mut self, other: Error) -> Error {
        let msg = std::mem::take(&mut self.0.msg);
        let kind = self.0.kind;
        self.0 = other.0;
        self.0.msg = msg;
        self.0.kind = kind;
        // a new error: not the one a thunk memoised
        self.0.memo = None;
        self
    }
    /// Add a `… while …` frame below all existing ones (innermost), as C++
    /// Nix's error context passed down into a coercion does.
    #[cold]
    pub fn while_innermost(mut self, msg: impl Into<String>, span: impl Into<Span>) -> Error {
        self.0.trace.push_innermost(msg.into(), span.into());
        self.sync_memo();
        self
    }
    /// Frames for a failed coercion in string interpolation: "while
    /// evaluating a path segment" goes with the type error itself.
    #[cold]
    pub fn in_path_segment(self, span: Span) -> Error {
        if self.msg().starts_with("cannot coerce ") {
            self.while_innermost("while evaluating a path segment", span)
        } else {
            self
        }
    }
    /// Add a `… while …` frame.
    #[cold]
    pub fn while_(mut self, msg: impl Into<String>, span: impl Into<Span>) -> Error {
        self.0.trace.push(msg.into(), span.into());
        self.sync_memo();
        self
    }
    /// Add a frame that a truncated trace still shows (`addErrorContext`'s,
    /// the derivation being evaluated).
    #[cold]
    pub fn while_always(mut self, msg: impl Into<String>, span: impl Into<Span>) -> Error {
        self.0.trace.push_frame(msg.into(), span.into(), FrameKind::Always);
        self.sync_memo();
        self
    }
    /// Add a frame of a function or builtin call ("while calling …", "from
    /// call site"), which a truncated trace leaves out.
    #[cold]
    pub fn while_calling(mut self, msg: impl Into<String>, span: impl Into<Span>) -> Error {
        self.0.trace.push_frame(msg.into(), span.into(), FrameKind::Call);
        self.sync_memo();
        self
    }

    #[inline]
    fn sync_memo(&self) {
        if let Some(m) = &self.0.memo {
            *m.lock().unwrap_or_else(|p| p.into_inner()) = self.0.trace.clone();
        }
    }

    /// The error a thunk keeps when its evaluation fails: it shares a cell
    /// with the error that goes on unwinding, which writes its later frames
    /// there (a thunk inside another that failed with it shares the cell).
    pub fn memoised(&mut self) -> Error {
        if self.0.memo.is_none() {
            self.0.memo = Some(Arc::new(Mutex::new(self.0.trace.clone())));
        }
        self.clone()
    }

    /// A fresh copy of a memoised error, with the frames it had gained when
    /// its unwinding stopped (C++ Nix since 2.34 rethrows a copy, so the
    /// memo is not changed by the new unwinding).
    pub fn rethrown(&self) -> Error {
        let mut e = self.clone();
        if let Some(m) = e.0.memo.take() {
            e.0.trace = m.lock().unwrap_or_else(|p| p.into_inner()).clone();
        }
        e
    }

    /// Render like C++ Nix: trace frames (outermost first) when `show_trace`,
    /// then the message, the position and a source excerpt. A frame seen
    /// before (same message and position) is not printed again: a run of
    /// more than five such frames becomes "(N duplicate frames omitted)",
    /// as in C++ Nix since 2.20 (a recursion 10 000 calls deep prints a few
    /// frames, not 10 000).
    ///
    /// Without `show_trace` the trace is cut short as in C++ Nix 2.20+: call
    /// frames ([`Error::while_calling`]), which C++ Nix only records with
    /// `show-trace`, are left out; after three frames only those added with
    /// [`Error::while_always`] are printed, and a line says the trace was
    /// truncated.
    pub fn render(&self, show_trace: bool) -> String {
        self.render_as("error", show_trace)
    }

    /// This error printed as a warning, as C++ Nix prints a warning that
    /// carries a position and a trace: `warning:` heads it (and the message
    /// itself), and everything after the first line is indented by the
    /// width of `warning: ` instead of `error: `.
    pub fn render_warning(&self) -> String {
        self.render_as("warning", false)
    }

    /// [`Error::render`] headed by `kind` (`error`, `warning`): the lines
    /// after the first are indented by the width of `kind: `, frames' source
    /// excerpts two more, and the line-number column widens with them.
    fn render_as(&self, kind: &str, show_trace: bool) -> String {
        let pad = " ".repeat(kind.len() + 2);
        let frame_pad = format!("{pad}  ");
        let width = pad.len() + 6;
        let head = format!("{kind}:");
        let mut out = head.clone();
        let e = &self.0;
        let print = |out: &mut String, f: &Frame| {
            let _ = write!(out, "\n{pad}… ");
            push_indented(out, &f.msg, &pad);
            if !f.span.is_none() && crate::source::get(f.span.file).is_some() {
                out.push('\n');
                render_pos_w(out, f.span, &frame_pad, width);
            }
            out.push('\n');
        };
        // prints the frames held back (a long run as one line); how many
        // lines that took
        let flush = |out: &mut String, skipped: &mut Vec<&Frame>| -> usize {
            let lines = if skipped.len() > 5 {
                let _ = write!(out, "\n{pad}({} duplicate frames omitted)\n", skipped.len());
                1
            } else {
                for f in skipped.iter() {
                    print(out, f);
                }
                skipped.len()
            };
            skipped.clear();
            lines
        };
        // (C++ Nix means to forget the frames seen after an omission,
        // but clears a copy of its set: a frame stays seen for good.)
        let mut seen: std::collections::HashSet<(&str, u32, u32)> = std::collections::HashSet::new();
        let mut skipped: Vec<&Frame> = Vec::new();
        let mut printed = 0usize;
        let mut truncated = false;
        for f in e.trace.frames() {
            if f.msg.is_empty() || (!show_trace && f.kind == FrameKind::Call) {
                continue;
            }
            if !show_trace && printed >= 3 {
                truncated = true;
                if f.kind != FrameKind::Always {
                    continue;
                }
            }
            if !seen.insert((f.msg.as_str(), f.span.file, f.span.offset)) {
                skipped.push(f);
                continue;
            }
            printed += flush(&mut out, &mut skipped) + 1;
            print(&mut out, f);
        }
        flush(&mut out, &mut skipped);
        if truncated {
            let _ = write!(out, "\n{pad}(stack trace truncated; use '--show-trace' to show the full, detailed trace)\n");
        }
        if out == head {
            out.push(' ');
        } else {
            let _ = write!(out, "\n{pad}{kind}: ");
        }
        push_indented(&mut out, &e.msg, &pad);
        if !e.span.is_none() {
            out.push('\n');
            render_pos_w(&mut out, e.span, &pad, width);
        }
        if let Some(h) = &e.hint {
            let _ = write!(out, "\n{pad}");
            push_indented(&mut out, h, &pad);
        }
        filter_ansi(&out)
    }

    /// [`Error::render`] as the bytes to print: source lines quoted in it
    /// show a file's bytes that are not UTF-8 as they are, as C++ Nix does.
    pub fn render_bytes(&self, show_trace: bool) -> Vec<u8> {
        crate::lower::lit_bytes(self.render(show_trace)).into_vec()
    }
}

/// An error's `… while …` frames: a list shared between clones, outermost
/// frame first. Adding an outer frame (what unwinding does) and cloning an
/// error (a failed thunk keeps one, and each thunk a failure passes through
/// clones it) cost O(1), so a trace keeps every frame of a recursion
/// 10 000 deep without quadratic copying.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    head: Option<Arc<Frame>>,
}

/// One frame of a [`Trace`].
#[derive(Debug)]
pub struct Frame {
    pub msg: String,
    pub span: Span,
    pub kind: FrameKind,
    next: Option<Arc<Frame>>,
}

/// How a truncated trace (no `show-trace`) treats a [`Frame`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// Printed among the first three frames.
    Normal,
    /// A function or builtin call ("while calling …", "from call site"):
    /// C++ Nix records these only with `show-trace`, so it is left out.
    Call,
    /// Printed even past the first three (`addErrorContext`, "while
    /// evaluating derivation"; C++ Nix's `TracePrint::Always`).
    Always,
}

impl Trace {
    pub fn is_empty(&self) -> bool {
        self.head.is_none()
    }
    /// Add a frame outside all the others.
    pub fn push(&mut self, msg: String, span: Span) {
        self.push_frame(msg, span, FrameKind::Normal);
    }
    fn push_frame(&mut self, msg: String, span: Span, kind: FrameKind) {
        let next = self.head.take();
        self.head = Some(Arc::new(Frame { msg, span, kind, next }));
    }
    /// Add a frame inside all the others (rebuilds the list: a cold path
    /// taken near where an error is raised, when the trace is short).
    pub fn push_innermost(&mut self, msg: String, span: Span) {
        let outer: Vec<(String, Span, FrameKind)> = self.frames().map(|f| (f.msg.clone(), f.span, f.kind)).collect();
        *self = Trace::default();
        self.push(msg, span);
        for (m, s, a) in outer.into_iter().rev() {
            self.push_frame(m, s, a);
        }
    }
    /// The frames, outermost first.
    pub fn frames(&self) -> impl Iterator<Item = &Frame> {
        std::iter::successors(self.head.as_deref(), |f| f.next.as_deref())
    }
}

impl Drop for Frame {
    // iteratively: the default recursive drop of a long list would
    // overflow the stack
    fn drop(&mut self) {
        let mut next = self.next.take();
        while let Some(f) = next {
            match Arc::try_unwrap(f) {
                Ok(mut f) => next = f.next.take(),
                Err(_) => break,
            }
        }
    }
}

/// Drop ANSI escape sequences and carriage returns, as C++ Nix's logger does
/// when stderr is not a terminal (nixpkgs' module system colours its
/// messages with escapes built at evaluation time).
pub fn filter_ansi(s: &str) -> String {
    if !s.contains(['\x1b', '\r', '\x07']) {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            0x1b => {
                i += 1;
                if i < b.len() && b[i] == b'[' {
                    i += 1;
                    while i < b.len() && (0x30..=0x3f).contains(&b[i]) {
                        i += 1;
                    }
                    while i < b.len() && (0x20..=0x2f).contains(&b[i]) {
                        i += 1;
                    }
                    if i < b.len() && (0x40..=0x7e).contains(&b[i]) {
                        i += 1;
                    }
                } else if i < b.len() && b[i] == b']' {
                    // OSC: up to BEL or ESC \\
                    while i < b.len() && b[i] != 0x07 && b[i] != 0x1b {
                        i += 1;
                    }
                    if i < b.len() && b[i] == 0x07 {
                        i += 1;
                    } else if i + 1 < b.len() {
                        i += 2;
                    }
                } else if i < b.len() && (0x40..=0x5f).contains(&b[i]) {
                    i += 1;
                }
            }
            b'\r' | 0x07 => i += 1,
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Text of a message, its lines after the first indented by `pad` (C++
/// Nix indents everything after an error's first line by the width of
/// `error: `).
fn push_indented(out: &mut String, text: &str, pad: &str) {
    let mut lines = text.split('\n');
    if let Some(first) = lines.next() {
        out.push_str(first);
    }
    for l in lines {
        out.push('\n');
        out.push_str(pad);
        out.push_str(l);
    }
}

/// `at FILE:LINE:COL:` and a code excerpt with a caret, indented by
/// `indent`, the line numbers right-aligned in `w` columns.
pub fn render_pos_w(out: &mut String, span: Span, indent: &str, w: usize) {
    let Some((name, text)) = source::get(span.file) else { return };
    let (line, col) = source::line_col(&text, span.offset as usize);
    let _ = write!(out, "{indent}at {name}:{line}:{col}:");
    let lines: Vec<&str> = text.split('\n').collect();
    let show = |out: &mut String, n: usize| {
        if n >= 1 && n <= lines.len() {
            // (C++ Nix leaves out a line's trailing blanks)
            let l = lines[n - 1].trim_end_matches([' ', '\t', '\r']);
            if l.is_empty() {
                let _ = write!(out, "\n{n:>w$}|");
            } else {
                let _ = write!(out, "\n{n:>w$}| {l}");
            }
        }
    };
    if line > 1 {
        show(out, line - 1);
    }
    show(out, line);
    let _ = write!(out, "\n{:>w$}| {}^", "", " ".repeat(col - 1));
    show(out, line + 1);
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.msg)
    }
}

impl std::error::Error for Error {}
