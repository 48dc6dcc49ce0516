//! Lowering: the syntax tree of `crate::parse` ([`Ast`]) to [`Expr`] IR,
//! resolving variables to (depth, slot), merging nested attribute paths
//! (`a.b = 1; a.c = 2;`), giving `rec`/`let`/`inherit (e)` their frames, and
//! reporting the errors the grammar leaves to us (duplicate attributes and
//! formals, undefined variables, dynamic attributes in `let`/`inherit`).
//! There is one lowering: both parsers (the hand-written one and rnix, the
//! syntax-error path) produce the same [`Ast`].

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::ir::*;
use crate::parse::ast::*;
use crate::print::escape_string;
use crate::symbol::Symbol;
use crate::value::Value;

/// What lowering needs to know about its surroundings.
pub struct LowerCtx<'a> {
    pub file: u32,
    /// Directory that relative path literals are resolved against.
    pub base_dir: &'a str,
    /// Names of the base environment (builtins and friends) → global index.
    pub globals: &'a FxHashMap<Symbol, u32>,
    pub home: Option<&'a str>,
    pub lints: Lints,
    /// Names bound in an outermost frame (for `scopedImport`).
    pub scope: Option<&'a [Symbol]>,
}

/// How a lint reports: not at all, as a warning on stderr, or as an error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LintLevel {
    #[default]
    Ignore,
    Warn,
    Fatal,
}

/// The `--lint-*` settings of recent Nix.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lints {
    pub absolute_path_literals: LintLevel,
    pub short_path_literals: LintLevel,
    pub url_literals: LintLevel,
}

/// Parse and lower a source text (`\r\n` already normalised to `\n`).
pub fn parse_and_lower(text: &str, cx: &LowerCtx<'_>) -> Result<Expr> {
    let (ast, root) = crate::parse::parse(text, cx.file)?;
    lower(text, &ast, root, cx)
}

/// Parse and lower `text` (for its errors), then show the expression as
/// `nix-instantiate --parse` prints it (C++ Nix's `Expr::show`).
pub fn parse_and_show(text: &str, cx: &LowerCtx<'_>) -> Result<String> {
    let (ast, root) = crate::parse::parse(text, cx.file)?;
    let mut l = Lowerer::new(text, &ast, cx);
    l.expr(root)?;
    let mut out = String::new();
    l.show_into(&mut out, root)?;
    Ok(out)
}

/// Lower the tree `ast` (parsed from `src`) from its root `root`.
pub(crate) fn lower(src: &str, ast: &Ast, root: NodeId, cx: &LowerCtx<'_>) -> Result<Expr> {
    Lowerer::new(src, ast, cx).expr(root)
}

/// Report a lint at `level`, making its message only when it is reported.
fn lint_with(level: LintLevel, msg: impl FnOnce() -> String, pos: Span) -> Result<()> {
    match level {
        LintLevel::Ignore => Ok(()),
        LintLevel::Fatal => Err(Error::parse(msg(), pos)),
        LintLevel::Warn => {
            let mut out = format!("warning: {}\n", msg());
            crate::error::render_pos_w(&mut out, pos, "         ", 15);
            eprintln!("{out}");
            Ok(())
        }
    }
}

fn pos_string(span: Span) -> String {
    match crate::source::get(span.file) {
        Some((name, text)) => {
            let (l, c) = crate::source::line_col(&text, span.offset as usize);
            format!("{name}:{l}:{c}")
        }
        None => "«none»".into(),
    }
}

/// The duplicate-attribute error.
fn dup_attr(path: &str, new: Span, old: Span) -> Error {
    Error::parse(format!("attribute '{path}' already defined at {}", pos_string(old)), new)
}

/// Resolve a variable through the scopes (innermost last), skipping the
/// innermost `skip` of them.
fn resolve(
    scopes: &[Scope],
    globals: &FxHashMap<Symbol, u32>,
    name: Symbol,
    pos: Span,
    skip: usize,
) -> Result<Expr> {
    let mut withs = Vec::new();
    for (i, scope) in scopes.iter().rev().enumerate() {
        let depth = i as u32;
        match scope {
            Scope::Frame(map) => {
                if i >= skip
                    && let Some(&slot) = map.get(&name)
                {
                    return Ok(Expr::Var { depth, slot, pos: pos.into() });
                }
            }
            Scope::Single(n) => {
                if i >= skip && *n == name {
                    return Ok(Expr::Var { depth, slot: 0, pos: pos.into() });
                }
            }
            Scope::With => {
                if i >= skip {
                    withs.push(depth)
                }
            }
        }
    }
    if let Some(&g) = globals.get(&name) {
        return Ok(Expr::Global(g));
    }
    if withs.is_empty() {
        return Err(Error::parse(format!("undefined variable '{name}'"), pos));
    }
    Ok(Expr::WithVar { name, hint: Default::default(), withs: withs.into(), pos })
}

enum Scope {
    Frame(FxHashMap<Symbol, u32>),
    /// A frame with one slot (`x: …`).
    Single(Symbol),
    With,
}

fn from_sym(i: usize) -> Symbol {
    Symbol::new(format!("\0inherit-from-{i}"))
}

struct Lowerer<'a, 'b> {
    cx: &'a LowerCtx<'b>,
    src: &'a str,
    ast: &'a Ast,
    scopes: Vec<Scope>,
    /// `cx.base_dir` canonicalised, which relative paths are joined onto.
    base: String,
}

/// Merge the attributes of a set literal into the set that attribute
/// paths built for the same name (`x.y.a = 1; x = { y.b = 2; };`): sets on
/// both sides merge in turn, anything else defined twice is an error naming
/// the whole path (`full`), as in C++ Nix.
fn merge_nested(existing: &mut PAttrs, new: PAttrs, full: &str) -> Result<()> {
    let offset = existing.from_exprs.len();
    existing.from_exprs.extend(new.from_exprs);
    for (n, mut e) in new.entries {
        if let PVal::InheritFrom(i, _, _) = &mut e.val {
            *i += offset;
        }
        if let Some(&j) = existing.names.get(&n) {
            let name = format!("{full}.{n}");
            let old_pos = existing.entries[j].1.pos;
            match (&mut existing.entries[j].1.val, e.val) {
                (PVal::Nested(there), PVal::Nested(here)) => merge_nested(there, *here, &name)?,
                _ => return Err(dup_attr(&name, e.pos, old_pos)),
            }
            continue;
        }
        existing.names.insert(n, existing.entries.len());
        existing.entries.push((n, e));
    }
    existing.dynamic.extend(new.dynamic);
    Ok(())
}

struct PAttrs {
    rec: bool,
    names: FxHashMap<Symbol, usize>,
    entries: Vec<(Symbol, PEntry)>,
    dynamic: Vec<(NodeId, PVal, Span)>,
    from_exprs: Vec<NodeId>,
}

impl PAttrs {
    fn new(rec: bool) -> PAttrs {
        PAttrs { rec, names: FxHashMap::default(), entries: Vec::new(), dynamic: Vec::new(), from_exprs: Vec::new() }
    }
}

struct PEntry {
    val: PVal,
    pos: Span,
}

enum PVal {
    Syn(NodeId),
    Nested(Box<PAttrs>),
    Inherit(Symbol, Span),
    InheritFrom(usize, Symbol, Span),
}

/// An attribute name as C++ Nix shows it: as it is if it is an
/// identifier, else quoted.
fn show_name(out: &mut String, name: &str) {
    if crate::print::is_plain_ident(name.as_bytes()) {
        out.push_str(name);
    } else {
        escape_string(out, name.as_bytes());
    }
}

/// A piece of [`Lowerer::show`]'s output: a text, or an expression shown.
enum Shown<'a> {
    T(&'a str),
    N(NodeId),
}
use Shown::{N, T};

enum AttrKey {
    Static(Symbol),
    /// A dynamic name: the expression node.
    Dynamic(NodeId),
}

/// A string's parts after escapes and indentation are processed.
pub(crate) enum NPart {
    Lit(String),
    Interp(NodeId, u32),
}

/// rnix's `unescape`.
fn unescape(input: &str, multiline: bool, output: &mut String) {
    let mut input = input.chars().peekable();
    loop {
        match input.next() {
            None => break,
            Some('"') if !multiline => break,
            Some('\\') if !multiline => match input.next() {
                None => break,
                Some('n') => output.push('\n'),
                Some('r') => output.push('\r'),
                Some('t') => output.push('\t'),
                Some(c) => output.push(c),
            },
            Some('\'') if multiline => match input.next() {
                None => output.push('\''),
                Some('\'') => match input.peek() {
                    Some('\'') => {
                        input.next();
                        output.push_str("''");
                    }
                    Some('$') => {
                        input.next();
                        output.push('$');
                    }
                    Some('\\') => {
                        input.next();
                        match input.next() {
                            None => break,
                            Some('n') => output.push('\n'),
                            Some('r') => output.push('\r'),
                            Some('t') => output.push('\t'),
                            Some(c) => output.push(c),
                        }
                    }
                    _ => break,
                },
                Some(c) => {
                    output.push('\'');
                    output.push(c);
                }
            },
            Some(c) => output.push(c),
        }
    }
}

fn unescape_owned(input: &str, multiline: bool) -> String {
    // Fast path: nothing to unescape.
    let special = if multiline { input.contains('\'') } else { input.contains(['\\', '"']) };
    if !special {
        return input.to_string();
    }
    let mut out = String::with_capacity(input.len());
    unescape(input, multiline, &mut out);
    out
}

/// rnix's `Str::normalized_parts`: the parts of a string literal of `src`
/// with escapes and (in `''` strings) indentation processed.
pub(crate) fn normalized_parts(src: &str, parts: &[Part], multiline: bool) -> Vec<NPart> {
    let text = |start: u32, end: u32| &src[start as usize..end as usize];
    if !multiline {
        return parts
            .iter()
            .map(|p| match *p {
                Part::Lit { start, end } => NPart::Lit(unescape_owned(text(start, end), false)),
                Part::Interp { e, start } => NPart::Interp(e, start),
            })
            .collect();
    }
    let mut is_first_literal = true;
    let mut at_start_of_line = true;
    let mut min_indent = 1000000;
    let mut cur_indent = 0;
    let mut n = 0;
    let mut first_is_literal = false;
    for p in parts {
        match *p {
            Part::Interp { .. } => {
                if at_start_of_line {
                    at_start_of_line = false;
                    min_indent = min_indent.min(cur_indent);
                }
                n += 1;
            }
            Part::Lit { start, end } => {
                let mut t = text(start, end);
                if n == 0 {
                    first_is_literal = true;
                }
                if is_first_literal && first_is_literal {
                    is_first_literal = false;
                    if let Some(p) = t.find('\n')
                        && t.as_bytes()[..p].iter().all(|&c| c == b' ')
                    {
                        t = &t[p + 1..];
                    }
                }
                for &c in t.as_bytes() {
                    if at_start_of_line {
                        if c == b' ' {
                            cur_indent += 1;
                        } else if c == b'\n' {
                            cur_indent = 0;
                        } else {
                            at_start_of_line = false;
                            min_indent = min_indent.min(cur_indent);
                        }
                    } else if c == b'\n' {
                        at_start_of_line = true;
                        cur_indent = 0;
                    }
                }
                n += 1;
            }
        }
    }
    let mut out = Vec::with_capacity(n);
    let mut cur_dropped = 0;
    let mut i = 0;
    is_first_literal = true;
    at_start_of_line = true;
    for p in parts {
        match *p {
            Part::Interp { e, start } => {
                at_start_of_line = false;
                cur_dropped = 0;
                out.push(NPart::Interp(e, start));
                i += 1;
            }
            Part::Lit { start, end } => {
                let mut t = text(start, end);
                if is_first_literal && first_is_literal {
                    is_first_literal = false;
                    if let Some(p) = t.find('\n')
                        && t.as_bytes()[..p].iter().all(|&c| c == b' ')
                    {
                        t = &t[p + 1..];
                        if t.is_empty() {
                            i += 1;
                            continue;
                        }
                    }
                }
                let mut s = String::with_capacity(t.len());
                // Byte-wise: only ' ' and '\n' matter, and UTF-8
                // continuation bytes are never either.
                let bytes = t.as_bytes();
                let mut k = 0;
                let mut keep_from = 0;
                while k < bytes.len() {
                    let c = bytes[k];
                    if at_start_of_line {
                        if c == b' ' {
                            if cur_dropped < min_indent {
                                s.push_str(&t[keep_from..k]);
                                keep_from = k + 1;
                            }
                            cur_dropped += 1;
                        } else if c == b'\n' {
                            cur_dropped = 0;
                        } else {
                            at_start_of_line = false;
                            cur_dropped = 0;
                        }
                    } else if c == b'\n' {
                        at_start_of_line = true;
                    }
                    k += 1;
                }
                s.push_str(&t[keep_from..]);
                if i == n - 1
                    && let Some(p) = s.rfind('\n')
                    && s.as_bytes()[p + 1..].iter().all(|&c| c == b' ')
                {
                    s.truncate(p + 1);
                }
                out.push(NPart::Lit(unescape_owned(&s, true)));
                i += 1;
            }
        }
    }
    out
}

impl<'a, 'b> Lowerer<'a, 'b> {
    /// A lowering of `ast` (parsed from `src`), with the outermost frame
    /// `cx.scope` binds if any.
    fn new(src: &'a str, ast: &'a Ast, cx: &'a LowerCtx<'b>) -> Self {
        let base = canon_path(cx.base_dir);
        let mut l = Lowerer { cx, src, ast, scopes: Vec::new(), base };
        if let Some(names) = cx.scope {
            l.scopes.push(Scope::Frame(names.iter().enumerate().map(|(i, n)| (*n, i as u32)).collect()));
        }
        l
    }

    fn text(&self, start: u32, end: u32) -> &'a str {
        &self.src[start as usize..end as usize]
    }
    fn node_text(&self, id: NodeId) -> &'a str {
        let n = self.ast.node(id);
        self.text(n.start, n.end)
    }
    fn span_at(&self, offset: u32) -> Span {
        Span { file: self.cx.file, offset }
    }
    fn span(&self, id: NodeId) -> Span {
        self.span_at(self.ast.node(id).start)
    }
    fn attr_start(&self, a: &Attr) -> u32 {
        match *a {
            Attr::Ident { start, .. } => start,
            Attr::Str(n) => self.ast.node(n).start,
            Attr::Dynamic { start, .. } => start,
        }
    }

    /// A string literal with no interpolation, as text.
    fn static_str(&self, id: NodeId) -> Option<String> {
        let NodeKind::Str { multiline, parts } = self.ast.node(id).kind else { return None };
        let ps = &self.ast.parts[parts.iter()];
        if ps.iter().any(|p| matches!(p, Part::Interp { .. })) {
            return None;
        }
        let mut out = String::new();
        for p in normalized_parts(self.src, &self.ast.parts[parts.iter()], multiline) {
            match p {
                NPart::Lit(l) => out.push_str(&l),
                NPart::Interp(..) => return None,
            }
        }
        Some(out)
    }

    fn attr_key(&mut self, a: &Attr) -> Result<AttrKey> {
        Ok(match *a {
            Attr::Ident { start, end } => AttrKey::Static(Symbol::new(self.text(start, end))),
            Attr::Str(n) => match self.static_str(n) {
                Some(t) => AttrKey::Static(Symbol::new(t)),
                None => AttrKey::Dynamic(n),
            },
            Attr::Dynamic { e, .. } => match self.ast.node(e).kind {
                NodeKind::Str { .. } if self.static_str(e).is_some() => {
                    AttrKey::Static(Symbol::new(self.static_str(e).expect("checked")))
                }
                _ => AttrKey::Dynamic(e),
            },
        })
    }

    fn attr_name(&mut self, a: &Attr) -> Result<AttrName> {
        Ok(match self.attr_key(a)? {
            AttrKey::Static(s) => AttrName::Static(s, Default::default()),
            AttrKey::Dynamic(e) => {
                let pos = self.span(e);
                let shown = match self.ast.node(e).kind {
                    NodeKind::Str { .. } => self.node_text(e).to_string(),
                    _ => format!("\"${{{}}}\"", self.show(e).unwrap_or_else(|| self.node_text(e).to_string())),
                };
                AttrName::Dynamic(Box::new((self.expr(e)?, pos, shown.into())))
            }
        })
    }

    fn collect(&mut self, pa: &mut PAttrs, entries: Range) -> Result<()> {
        for ei in entries.iter() {
            match self.ast.entries[ei] {
                Entry::Inherit { from, attrs } => {
                    let from = from.map(|f| {
                        pa.from_exprs.push(f);
                        pa.from_exprs.len() - 1
                    });
                    for ai in attrs.iter() {
                        let attr = self.ast.attrs[ai];
                        let pos = self.span_at(self.attr_start(&attr));
                        let name = match self.attr_key(&attr)? {
                            AttrKey::Static(s) => s,
                            AttrKey::Dynamic(_) => {
                                return Err(Error::parse("dynamic attributes not allowed in inherit", pos));
                            }
                        };
                        if let Some(&i) = pa.names.get(&name) {
                            return Err(dup_attr(&name.as_str(), pos, pa.entries[i].1.pos));
                        }
                        let val = match from {
                            Some(f) => PVal::InheritFrom(f, name, pos),
                            None => PVal::Inherit(name, pos),
                        };
                        pa.names.insert(name, pa.entries.len());
                        pa.entries.push((name, PEntry { val, pos }));
                    }
                }
                Entry::Value { path, value, .. } => {
                    self.add_path(pa, path, value, path.start, None)?;
                }
            }
        }
        Ok(())
    }

    /// The attribute path `attrs[from..=upto]` as error messages show it
    /// (made only for an error).
    #[cold]
    fn path_text(&mut self, from: u32, upto: u32) -> String {
        let mut out = String::new();
        for i in from..=upto {
            let a = self.ast.attrs[i as usize];
            if i > from {
                out.push('.');
            }
            match self.attr_key(&a) {
                Ok(AttrKey::Static(s)) => out.push_str(&s.as_str()),
                _ => out.push_str("\"${...}\""),
            }
        }
        out
    }

    /// Add `path = value` to `pa`; the whole path as written starts at
    /// `attrs[from]` (for error messages).
    fn add_path(&mut self, pa: &mut PAttrs, path: Range, value: NodeId, from: u32, start: Option<Span>) -> Result<()> {
        let first = self.ast.attrs[path.start as usize];
        let pos = self.span_at(self.attr_start(&first));
        let start = start.unwrap_or(pos);
        let rest = Range { start: path.start + 1, len: path.len - 1 };
        let key = self.attr_key(&first)?;
        let here = path.start;
        match key {
            AttrKey::Dynamic(e) => {
                let val = self.path_value(rest, value, from, start)?;
                pa.dynamic.push((e, val, pos));
            }
            AttrKey::Static(name) => {
                if let Some(&i) = pa.names.get(&name) {
                    let old_pos = pa.entries[i].1.pos;
                    if rest.len == 0 {
                        let v = self.ast.strip_parens(value);
                        match (&mut pa.entries[i].1.val, self.ast.node(v).kind) {
                            (PVal::Nested(existing), NodeKind::AttrSet { rec, entries }) => {
                                let mut tmp = PAttrs::new(rec);
                                self.collect(&mut tmp, entries)?;
                                let full = self.path_text(from, here);
                                return merge_nested(existing, tmp, &full);
                            }
                            // (C++ Nix points at the binding, not at its last name)
                            _ => return Err(dup_attr(&self.path_text(from, here), start, old_pos)),
                        }
                    }
                    match &mut pa.entries[i].1.val {
                        PVal::Nested(existing) => {
                            let mut existing = std::mem::replace(existing, Box::new(PAttrs::new(false)));
                            let r = self.add_path(&mut existing, rest, value, from, Some(start));
                            if let PVal::Nested(slot) = &mut pa.entries[i].1.val {
                                *slot = existing;
                            }
                            r
                        }
                        // the whole path and the binding, as C++ Nix reports them
                        _ => Err(dup_attr(&self.path_text(from, path.start + path.len - 1), start, old_pos)),
                    }?;
                } else {
                    let val = self.path_value(rest, value, from, start)?;
                    pa.names.insert(name, pa.entries.len());
                    pa.entries.push((name, PEntry { val, pos: start }));
                }
            }
        }
        Ok(())
    }

    /// The value bound at the end of an attribute path: `value` itself when
    /// `rest` is empty, else a nested set holding `rest = value`.
    fn path_value(&mut self, rest: Range, value: NodeId, from: u32, start: Span) -> Result<PVal> {
        if rest.len == 0 {
            return self.pval(value);
        }
        let mut inner = PAttrs::new(false);
        self.add_path(&mut inner, rest, value, from, Some(start))?;
        Ok(PVal::Nested(Box::new(inner)))
    }

    fn pval(&mut self, value: NodeId) -> Result<PVal> {
        // (nested set literals recurse here, not through `expr`)
        stacker::maybe_grow(64 * 1024, 1024 * 1024, || self.pval_inner(value))
    }

    fn pval_inner(&mut self, value: NodeId) -> Result<PVal> {
        let v = self.ast.strip_parens(value);
        match self.ast.node(v).kind {
            NodeKind::AttrSet { rec, entries } => {
                let mut inner = PAttrs::new(rec);
                self.collect(&mut inner, entries)?;
                Ok(PVal::Nested(Box::new(inner)))
            }
            _ => Ok(PVal::Syn(value)),
        }
    }

    fn lower_pval(&mut self, v: PVal, frame: bool) -> Result<Expr> {
        match v {
            PVal::Syn(e) => self.expr(e),
            PVal::Nested(pa) => stacker::maybe_grow(64 * 1024, 1024 * 1024, || self.lower_attrs(*pa)),
            PVal::Inherit(name, pos) => resolve(&self.scopes, self.cx.globals, name, pos, usize::from(frame)),
            PVal::InheritFrom(i, name, pos) => {
                let e = resolve(&self.scopes, self.cx.globals, from_sym(i), pos, 0)?;
                Ok(Expr::Select { e: Box::new(e), path: Box::new([AttrName::Static(name, Default::default())]), default: None, pos: pos.into() })
            }
        }
    }

    fn lower_attrs(&mut self, mut pa: PAttrs) -> Result<Expr> {
        pa.entries.sort_by_key(|(n, _)| *n);
        let from_exprs = std::mem::take(&mut pa.from_exprs);
        let wrap = !pa.rec && !from_exprs.is_empty();
        if wrap {
            let map = (0..from_exprs.len()).map(|i| (from_sym(i), i as u32)).collect();
            self.scopes.push(Scope::Frame(map));
        }
        if pa.rec {
            let mut map: FxHashMap<Symbol, u32> = pa.entries.iter().enumerate().map(|(i, (n, _))| (*n, i as u32)).collect();
            for i in 0..from_exprs.len() {
                map.insert(from_sym(i), (pa.entries.len() + i) as u32);
            }
            self.scopes.push(Scope::Frame(map));
        }
        let r = (|| {
            let mut hidden = Vec::with_capacity(from_exprs.len());
            for f in from_exprs {
                hidden.push(self.expr(f)?);
            }
            let mut attrs = Vec::with_capacity(pa.entries.len());
            for (name, e) in pa.entries {
                let mut value = self.lower_pval(e.val, pa.rec)?;
                name_lambda(&mut value, name);
                attrs.push(AttrDef { name, value, pos: e.pos.into() });
            }
            let mut dynamic = Vec::new();
            for (n, v, pos) in pa.dynamic {
                let name = self.expr(n)?;
                let value = self.lower_pval(v, pa.rec)?;
                dynamic.push(DynAttr { name, value, pos });
            }
            if wrap {
                let body = Expr::Attrs(Box::new(AttrsIR { rec: false, attrs, dynamic, hidden: Vec::new() }));
                return Ok(Expr::Let { binds: hidden.into(), body: Box::new(body) });
            }
            Ok(Expr::Attrs(Box::new(AttrsIR { rec: pa.rec, attrs, dynamic, hidden })))
        })();
        if pa.rec || wrap {
            self.scopes.pop();
        }
        r
    }

    fn lower_let(&mut self, pa: PAttrs, body: NodeId, pos: Span) -> Result<Expr> {
        if !pa.dynamic.is_empty() {
            return Err(Error::parse("dynamic attributes not allowed in let", pos));
        }
        let mut map: FxHashMap<Symbol, u32> = pa.entries.iter().enumerate().map(|(i, (n, _))| (*n, i as u32)).collect();
        let nfrom = pa.from_exprs.len();
        for i in 0..nfrom {
            map.insert(from_sym(i), (pa.entries.len() + i) as u32);
        }
        self.scopes.push(Scope::Frame(map));
        let r = (|| {
            let mut binds = Vec::with_capacity(pa.entries.len() + nfrom);
            for (name, e) in pa.entries {
                let mut value = self.lower_pval(e.val, true)?;
                name_lambda(&mut value, name);
                binds.push(value);
            }
            for f in pa.from_exprs {
                binds.push(self.expr(f)?);
            }
            let body = self.expr(body)?;
            Ok(Expr::Let { binds: binds.into(), body: Box::new(body) })
        })();
        self.scopes.pop();
        r
    }

    /// C++ Nix's `Expr::show` of the expression C++ Nix's parser makes of
    /// `e` (what `nix-instantiate --parse` prints and assertion messages
    /// quote): attribute paths merged into nested sets, bindings sorted by
    /// name with inherits first, formals sorted, `-`, `*`, `/` and the
    /// comparisons as the builtin calls they stand for, strings with
    /// interpolation and `+` as concatenations. `None` where lowering would
    /// fail.
    fn show(&mut self, e: NodeId) -> Option<String> {
        let mut out = String::new();
        self.show_into(&mut out, e).ok()?;
        Some(out)
    }

    fn show_into(&mut self, out: &mut String, e: NodeId) -> Result<()> {
        stacker::maybe_grow(64 * 1024, 1024 * 1024, || self.show_inner(out, e))
    }

    fn show_inner(&mut self, out: &mut String, e: NodeId) -> Result<()> {
        let node = *self.ast.node(e);
        match node.kind {
            NodeKind::Paren(inner) => self.show_into(out, inner)?,
            NodeKind::Int | NodeKind::Float => {
                if let Expr::Const(v) = self.expr(e)? {
                    out.push_str(&crate::print::print_value(&v));
                }
            }
            // (not lowered again: that would repeat its lint's warning)
            NodeKind::Uri => escape_string(out, self.node_text(e).as_bytes()),
            NodeKind::Str { multiline, parts } => {
                let raw = &self.ast.parts[parts.iter()];
                let parts: Vec<NPart> = normalized_parts(self.src, raw, multiline)
                    .into_iter()
                    .filter(|p| !matches!(p, NPart::Lit(l) if l.is_empty()))
                    .collect();
                let lit = |out: &mut String, l: &str| escape_string(out, &lit_bytes(l.to_string()));
                if parts.iter().all(|p| matches!(p, NPart::Lit(_))) {
                    let all: String = parts.iter().map(|p| if let NPart::Lit(l) = p { l.as_str() } else { "" }).collect();
                    lit(out, &all);
                } else {
                    out.push('(');
                    for (i, p) in parts.iter().enumerate() {
                        if i > 0 {
                            out.push_str(" + ");
                        }
                        match p {
                            NPart::Lit(l) => lit(out, l),
                            NPart::Interp(x, _) => self.show_into(out, *x)?,
                        }
                    }
                    out.push(')');
                }
            }
            NodeKind::Path { kind, parts } => {
                // (resolved as lowering resolves it, not lowered again: that
                // would repeat a path lint's warning)
                if parts.len == 1
                    && let Part::Lit { start, end } = self.ast.parts[parts.start as usize]
                {
                    let resolved = self.resolve_path_literal(self.text(start, end), kind, self.span(e))?;
                    out.push_str(&canon_path(&resolved));
                    return Ok(());
                }
                out.push('(');
                for (i, pi) in parts.iter().enumerate() {
                    if i > 0 {
                        out.push_str(" + ");
                    }
                    match self.ast.parts[pi] {
                        Part::Lit { start, end } if i == 0 => {
                            let t = self.text(start, end);
                            out.push_str(&self.resolve_path_literal(t, kind, self.span(e))?);
                        }
                        Part::Lit { start, end } => escape_string(out, self.text(start, end).as_bytes()),
                        Part::Interp { e: x, .. } => self.show_into(out, x)?,
                    }
                }
                out.push(')');
            }
            NodeKind::SearchPath => {
                let t = self.node_text(e);
                let inner = t.trim_start_matches('<').trim_end_matches('>').to_string();
                out.push_str("(__findFile __nixPath ");
                escape_string(out, inner.as_bytes());
                out.push(')');
            }
            NodeKind::Ident => out.push_str(self.node_text(e)),
            NodeKind::List(items) => {
                out.push_str("[ ");
                for i in items.iter() {
                    out.push('(');
                    self.show_into(out, self.ast.ids[i])?;
                    out.push_str(") ");
                }
                out.push(']');
            }
            NodeKind::AttrSet { rec, entries } => {
                let mut pa = PAttrs::new(rec);
                self.collect(&mut pa, entries)?;
                self.show_attrs(out, pa)?;
            }
            NodeKind::LegacyLet { entries } => {
                let mut pa = PAttrs::new(true);
                self.collect(&mut pa, entries)?;
                out.push('(');
                self.show_attrs(out, pa)?;
                out.push_str(").body");
            }
            NodeKind::LetIn { entries, body } => {
                let mut pa = PAttrs::new(true);
                self.collect(&mut pa, entries)?;
                out.push_str("(let ");
                self.show_bindings(out, pa)?;
                out.push_str("in ");
                self.show_into(out, body)?;
                out.push(')');
            }
            NodeKind::With { ns, body } => self.show_seq(out, &[T("(with "), N(ns), T("; "), N(body), T(")")])?,
            NodeKind::If { cond, then, else_ } => {
                self.show_seq(out, &[T("(if "), N(cond), T(" then "), N(then), T(" else "), N(else_), T(")")])?
            }
            NodeKind::Assert { cond, body } => self.show_seq(out, &[T("assert "), N(cond), T("; "), N(body)])?,
            NodeKind::LambdaIdent { name_start, name_end, body } => {
                out.push('(');
                out.push_str(self.text(name_start, name_end));
                out.push_str(": ");
                self.show_into(out, body)?;
                out.push(')');
            }
            NodeKind::LambdaPat { pat, body } => {
                let pat = self.ast.patterns[pat as usize];
                let mut formals: Vec<PatEntry> = self.ast.pat_entries[pat.entries.iter()].to_vec();
                formals.sort_by(|a, b| self.text(a.name_start, a.name_end).cmp(self.text(b.name_start, b.name_end)));
                out.push_str("({ ");
                for (i, f) in formals.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(self.text(f.name_start, f.name_end));
                    if let Some(d) = f.default {
                        out.push_str(" ? ");
                        self.show_into(out, d)?;
                    }
                }
                if pat.ellipsis {
                    out.push_str(if formals.is_empty() { "..." } else { ", ..." });
                }
                out.push_str(" }");
                if let Some((s, t, _)) = pat.at {
                    out.push_str(" @ ");
                    out.push_str(self.text(s, t));
                }
                out.push_str(": ");
                self.show_into(out, body)?;
                out.push(')');
            }
            NodeKind::Apply { f, args } => {
                out.push('(');
                self.show_into(out, f)?;
                for i in args.iter() {
                    out.push(' ');
                    self.show_into(out, self.ast.ids[i])?;
                }
                out.push(')');
            }
            NodeKind::Select { e: target, path, default } => {
                out.push('(');
                self.show_into(out, target)?;
                out.push_str(").");
                self.show_path(out, path)?;
                if let Some(d) = default {
                    out.push_str(" or (");
                    self.show_into(out, d)?;
                    out.push(')');
                }
            }
            NodeKind::HasAttr { e: target, path } => {
                self.show_seq(out, &[T("(("), N(target), T(") ? ")])?;
                self.show_path(out, path)?;
                out.push(')');
            }
            NodeKind::Not(inner) => self.show_seq(out, &[T("(! "), N(inner), T(")")])?,
            NodeKind::Neg(inner) => self.show_seq(out, &[T("(__sub 0 "), N(inner), T(")")])?,
            NodeKind::Bin { op, l, r, .. } => {
                // the operators C++ Nix's parser keeps as operators
                if matches!(
                    op,
                    BinOp::Eq | BinOp::Neq | BinOp::And | BinOp::Or | BinOp::Impl | BinOp::Update | BinOp::Concat | BinOp::Add
                ) {
                    return self.show_seq(out, &[T("("), N(l), T(" "), T(crate::eval::op_name(op)), T(" "), N(r), T(")")]);
                }
                // the builtin calls C++ Nix's parser makes of them
                let (f, a, b, not) = match op {
                    BinOp::Sub => ("__sub", l, r, false),
                    BinOp::Mul => ("__mul", l, r, false),
                    BinOp::Div => ("__div", l, r, false),
                    BinOp::Lt => ("__lessThan", l, r, false),
                    BinOp::Gt => ("__lessThan", r, l, false),
                    BinOp::Le => ("__lessThan", r, l, true),
                    _ => ("__lessThan", l, r, true),
                };
                let (open, close) = if not { ("(! (", "))") } else { ("(", ")") };
                self.show_seq(out, &[T(open), T(f), T(" "), N(a), T(" "), N(b), T(close)])?;
            }
            NodeKind::Pipe { .. } => {
                self.expr(e)?;
            }
        }
        Ok(())
    }

    /// Texts and shown expressions one after the other.
    fn show_seq(&mut self, out: &mut String, pieces: &[Shown<'_>]) -> Result<()> {
        for p in pieces {
            match *p {
                T(t) => out.push_str(t),
                N(e) => self.show_into(out, e)?,
            }
        }
        Ok(())
    }

    /// An attribute path as C++ Nix's `showAttrPath` writes it.
    fn show_path(&mut self, out: &mut String, path: Range) -> Result<()> {
        for (i, ai) in path.iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            let a = self.ast.attrs[ai];
            match self.attr_key(&a)? {
                AttrKey::Static(s) => show_name(out, &s.as_str()),
                AttrKey::Dynamic(x) => {
                    out.push_str("\"${");
                    self.show_into(out, x)?;
                    out.push_str("}\"");
                }
            }
        }
        Ok(())
    }

    /// `{ … }` or `rec { … }` of merged bindings.
    fn show_attrs(&mut self, out: &mut String, pa: PAttrs) -> Result<()> {
        if pa.rec {
            out.push_str("rec ");
        }
        out.push_str("{ ");
        self.show_bindings(out, pa)?;
        out.push('}');
        Ok(())
    }

    /// Bindings as C++ Nix shows them: `inherit`s first, then each
    /// `inherit (…)` source in order, then the other attributes by name,
    /// then dynamic ones as written; each followed by a space.
    fn show_bindings(&mut self, out: &mut String, pa: PAttrs) -> Result<()> {
        let PAttrs { mut entries, dynamic, from_exprs, .. } = pa;
        entries.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
        let inherits: Vec<Symbol> = entries.iter().filter(|(_, e)| matches!(e.val, PVal::Inherit(..))).map(|(n, _)| *n).collect();
        if !inherits.is_empty() {
            out.push_str("inherit");
            for n in inherits {
                out.push(' ');
                show_name(out, &n.as_str());
            }
            out.push_str("; ");
        }
        for (i, from) in from_exprs.iter().enumerate() {
            let names: Vec<Symbol> =
                entries.iter().filter(|(_, e)| matches!(e.val, PVal::InheritFrom(j, ..) if j == i)).map(|(n, _)| *n).collect();
            if names.is_empty() {
                continue;
            }
            out.push_str("inherit (");
            self.show_into(out, *from)?;
            out.push(')');
            for n in names {
                out.push(' ');
                show_name(out, &n.as_str());
            }
            out.push_str("; ");
        }
        for (n, e) in entries {
            if matches!(e.val, PVal::Inherit(..) | PVal::InheritFrom(..)) {
                continue;
            }
            show_name(out, &n.as_str());
            out.push_str(" = ");
            self.show_pval(out, e.val)?;
            out.push_str("; ");
        }
        for (name, val, _) in dynamic {
            self.show_seq(out, &[T("\"${"), N(name), T("}\" = ")])?;
            self.show_pval(out, val)?;
            out.push_str("; ");
        }
        Ok(())
    }

    /// A binding's value: an expression, or a set attribute paths made
    /// (inherited names are shown in the `inherit` lines instead).
    fn show_pval(&mut self, out: &mut String, val: PVal) -> Result<()> {
        match val {
            PVal::Syn(x) => self.show_into(out, x),
            PVal::Nested(inner) => self.show_attrs(out, *inner),
            PVal::Inherit(..) | PVal::InheritFrom(..) => Ok(()),
        }
    }

    /// `e or` (an expression applied to a variable named `or`) as an
    /// argument, a list item or a selection's default: C++ Nix warns that
    /// its meaning will change, when it parses the file.
    fn warn_cursed_or(&self, item: NodeId) {
        let NodeKind::Apply { f, args } = self.ast.node(item).kind else { return };
        if args.len != 1 {
            return;
        }
        let arg = self.ast.ids[args.start as usize];
        if !matches!(self.ast.node(arg).kind, NodeKind::Ident) || self.node_text(arg) != "or" {
            return;
        }
        eprintln!(
            "warning: at {}: This expression uses `or` as an identifier in a way that will change in a future Nix release.\n\
             Wrap this entire expression in parentheses to preserve its current meaning:\n    ({} or)\n\
             Give feedback at https://github.com/NixOS/nix/pull/11121",
            pos_string(self.span(item)),
            self.node_text(f)
        );
    }

    pub fn expr(&mut self, e: NodeId) -> Result<Expr> {
        stacker::maybe_grow(64 * 1024, 1024 * 1024, || self.expr_inner(e))
    }

    fn sub(&mut self, e: NodeId) -> Result<Box<Expr>> {
        Ok(Box::new(self.expr(e)?))
    }

    fn expr_inner(&mut self, e: NodeId) -> Result<Expr> {
        let node = *self.ast.node(e);
        let pos = self.span_at(node.start);
        Ok(match node.kind {
            NodeKind::Paren(inner) => return self.expr(inner),
            NodeKind::Int => {
                let t = self.node_text(e);
                match t.parse::<i64>() {
                    Ok(v) => Expr::Const(Value::Int(v)),
                    Err(_) => return Err(Error::parse(format!("invalid integer '{t}'"), pos)),
                }
            }
            NodeKind::Float => {
                let t = self.node_text(e);
                match t.parse::<f64>() {
                    Ok(v) => Expr::Const(Value::Float(v)),
                    Err(_) => return Err(Error::parse(format!("invalid float '{t}'"), pos)),
                }
            }
            NodeKind::Uri => {
                let text = self.node_text(e);
                let level = self.cx.lints.url_literals;
                let verb = if level == LintLevel::Fatal { "disallowed" } else { "discouraged" };
                lint_with(
                    level,
                    || format!("URL literals are {verb}. Consider using a string literal \"{text}\" instead (lint-url-literals)"),
                    pos,
                )?;
                Expr::Const(Value::str(text))
            }
            NodeKind::Ident => {
                let text = self.node_text(e);
                match text {
                    "__curPos" => Expr::CurPos(pos),
                    _ => resolve(&self.scopes, self.cx.globals, Symbol::new(text), pos, 0)?,
                }
            }
            NodeKind::Str { multiline, parts } => {
                let raw = &self.ast.parts[parts.iter()];
                if multiline && let Some((text, at)) = indented_nul_token(self.src, raw) {
                    return Err(Error::parse(nul_message(text), Span { file: pos.file, offset: at }));
                }
                let parts = normalized_parts(self.src, raw, multiline);
                for p in &parts {
                    if let NPart::Lit(l) = p
                        && l.as_bytes().contains(&0)
                    {
                        return Err(Error::parse(nul_message(l), Span { file: pos.file, offset: pos.offset + 1 }));
                    }
                }
                let mut out = Vec::with_capacity(parts.len());
                for p in parts {
                    match p {
                        NPart::Lit(l) => {
                            if !l.is_empty() {
                                out.push(StrPart::Lit(lit_bytes(l)))
                            }
                        }
                        NPart::Interp(ie, start) => out.push(StrPart::Interp(Box::new(self.expr(ie)?), self.span_at(start))),
                    }
                }
                match out.len() {
                    0 => Expr::Const(Value::str("")),
                    1 if matches!(out[0], StrPart::Lit(_)) => match out.pop() {
                        Some(StrPart::Lit(l)) => Expr::Const(Value::string(l)),
                        _ => unreachable!("checked"),
                    },
                    _ => Expr::Interp { parts: out.into(), pos },
                }
            }
            NodeKind::Path { kind, parts } => {
                let text = self.node_text(e);
                let lints = self.cx.lints;
                match kind {
                    PathKind::Abs => lint_with(
                        lints.absolute_path_literals,
                        || format!("absolute path literals are not portable. Consider replacing path literal '{text}' by a string, relative path, or parameter (lint-absolute-path-literals)"),
                        pos,
                    )?,
                    PathKind::Home => lint_with(
                        lints.absolute_path_literals,
                        || format!("home path literals are not portable. Consider replacing path literal '{text}' by a string, relative path, or parameter (lint-absolute-path-literals)"),
                        pos,
                    )?,
                    _ if !text.starts_with("./") && !text.starts_with("../") => lint_with(
                        lints.short_path_literals,
                        || format!("relative path literal '{text}' should be prefixed with '.' for clarity: './{text}' (lint-short-path-literals)"),
                        pos,
                    )?,
                    _ => {}
                }
                if parts.len == 1
                    && kind == PathKind::Rel
                    && let Part::Lit { start, end } = self.ast.parts[parts.start as usize]
                {
                    // The common case `./foo`: one join, already canonical.
                    let t = self.text(start, end);
                    if !(t.ends_with('/') && t.len() > 1) {
                        return Ok(Expr::Const(Value::path(canon_join(&self.base, t).into_bytes())));
                    }
                }
                let mut out = Vec::with_capacity(parts.len as usize);
                for (i, pi) in parts.iter().enumerate() {
                    match self.ast.parts[pi] {
                        Part::Lit { start, end } => {
                            let t = self.text(start, end);
                            let t = if i == 0 { self.resolve_path_literal(t, kind, pos)? } else { t.to_string() };
                            out.push(StrPart::Lit(t.into_bytes().into()))
                        }
                        Part::Interp { e, start } => out.push(StrPart::Interp(Box::new(self.expr(e)?), self.span_at(start))),
                    }
                }
                match out.as_slice() {
                    [StrPart::Lit(l)] => Expr::Const(Value::path(canon_path(&String::from_utf8_lossy(l)).into_bytes())),
                    _ => Expr::PathInterp { parts: out.into(), pos },
                }
            }
            NodeKind::SearchPath => {
                let text = self.node_text(e);
                let inner = text.trim_start_matches('<').trim_end_matches('>');
                let find = resolve(&self.scopes, self.cx.globals, Symbol::new("__findFile"), pos, 0)?;
                let np = resolve(&self.scopes, self.cx.globals, Symbol::new("__nixPath"), pos, 0)?;
                Expr::Apply { f: Box::new(find), args: Box::new([np, Expr::Const(Value::str(inner))]), pos }
            }
            NodeKind::List(items) => {
                let mut out = Vec::with_capacity(items.len as usize);
                for i in items.iter() {
                    self.warn_cursed_or(self.ast.ids[i]);
                    out.push(self.expr(self.ast.ids[i])?);
                }
                Expr::List(out.into())
            }
            NodeKind::AttrSet { rec, entries } => {
                let mut pa = PAttrs::new(rec);
                self.collect(&mut pa, entries)?;
                self.lower_attrs(pa)?
            }
            NodeKind::LetIn { entries, body } => {
                let mut pa = PAttrs::new(true);
                self.collect(&mut pa, entries)?;
                self.lower_let(pa, body, pos)?
            }
            NodeKind::LegacyLet { entries } => {
                let mut pa = PAttrs::new(true);
                self.collect(&mut pa, entries)?;
                let attrs = self.lower_attrs(pa)?;
                Expr::Select { e: Box::new(attrs), path: Box::new([AttrName::Static(Symbol::new("body"), Default::default())]), default: None, pos: pos.into() }
            }
            NodeKind::With { ns, body } => {
                let ns = self.sub(ns)?;
                self.scopes.push(Scope::With);
                let body = self.sub(body);
                self.scopes.pop();
                Expr::With { ns, body: body? }
            }
            NodeKind::LambdaIdent { name_start, name_end, body } => {
                let name = Symbol::new(self.text(name_start, name_end));
                self.scopes.push(Scope::Single(name));
                let body = self.expr(body);
                self.scopes.pop();
                Expr::Lambda(Box::new(LambdaIR { name: None, arg: Some(name), formals: None, body: body?, pos }))
            }
            NodeKind::LambdaPat { pat, body } => self.lambda_pat(pat, body, pos)?,
            NodeKind::Apply { f, args } => {
                let f = Box::new(self.expr(f)?);
                let mut out = Vec::with_capacity(args.len as usize);
                for i in args.iter() {
                    self.warn_cursed_or(self.ast.ids[i]);
                    out.push(self.expr(self.ast.ids[i])?);
                }
                Expr::Apply { f, args: out.into(), pos }
            }
            NodeKind::Select { e: target, path, default } => {
                let target = self.sub(target)?;
                let path = self.attrpath(path)?;
                let default = match default {
                    Some(d) => {
                        self.warn_cursed_or(d);
                        Some(Box::new(self.expr(d)?))
                    }
                    None => None,
                };
                Expr::Select { e: target, path, default, pos: pos.into() }
            }
            NodeKind::HasAttr { e: target, path } => {
                let epos = self.span(self.ast.strip_parens(target));
                let target = self.sub(target)?;
                let path = self.attrpath(path)?;
                Expr::HasAttr { e: target, path, pos: epos }
            }
            NodeKind::If { cond, then, else_ } => {
                Expr::If { cond: self.sub(cond)?, then: self.sub(then)?, else_: self.sub(else_)?, pos }
            }
            NodeKind::Assert { cond, body } => {
                let text = self.show(cond).unwrap_or_else(|| self.node_text(cond).to_string());
                Expr::Assert { cond: Box::new(self.expr(cond)?), body: self.sub(body)?, text: text.into(), pos: pos.into() }
            }
            NodeKind::Not(inner) => {
                let ipos = self.span(self.ast.strip_parens(inner));
                Expr::Not(self.sub(inner)?, ipos)
            }
            NodeKind::Neg(inner) => Expr::Neg(self.sub(inner)?, pos),
            NodeKind::Pipe { l, r, op_pos } => {
                self.sub(l)?;
                self.sub(r)?;
                return Err(Error::parse(
                    "experimental Nix feature 'pipe-operators' is disabled; add '--extra-experimental-features pipe-operators' to enable it",
                    self.span_at(op_pos),
                ));
            }
            NodeKind::Bin { op, l, r, op_pos } => {
                let op_pos = self.span_at(op_pos);
                let lsub = self.sub(l)?;
                let rsub = self.sub(r)?;
                // C++ Nix places `&&`, `||` and `->` at the expression, the
                // others at the operator.
                let pos = if matches!(op, BinOp::And | BinOp::Or | BinOp::Impl) { pos } else { op_pos };
                // `+` is C++ Nix's ExprConcatStrings, whose operands are
                // placed where their source starts, parentheses included;
                // other operators' frames point at the operand expression
                let (l_at, r_at) = if op == BinOp::Add { (l, r) } else { (self.ast.strip_parens(l), self.ast.strip_parens(r)) };
                let lpos = self.span(l_at).into();
                let rpos = self.span(r_at).into();
                Expr::Bin { op, l: lsub, r: rsub, pos, lpos, rpos }
            }
        })
    }

    fn attrpath(&mut self, path: Range) -> Result<Box<[AttrName]>> {
        let mut out = Vec::with_capacity(path.len as usize);
        for i in path.iter() {
            let a = self.ast.attrs[i];
            out.push(self.attr_name(&a)?);
        }
        Ok(out.into())
    }

    fn lambda_pat(&mut self, pat: u32, body: NodeId, pos: Span) -> Result<Expr> {
        let pat = self.ast.patterns[pat as usize];
        let mut names: Vec<(Symbol, Option<NodeId>, Span)> = Vec::with_capacity(pat.entries.len as usize);
        let mut map = FxHashMap::default();
        for i in pat.entries.iter() {
            let pe = self.ast.pat_entries[i];
            let name = Symbol::new(self.text(pe.name_start, pe.name_end));
            let epos = self.span_at(pe.name_start);
            if map.contains_key(&name) {
                return Err(Error::parse(format!("duplicate formal function argument '{name}'"), epos));
            }
            map.insert(name, names.len() as u32);
            names.push((name, pe.default, epos));
        }
        let at = pat.at.map(|(s, e, _)| Symbol::new(self.text(s, e)));
        if let (Some(a), Some((_, _, bpos))) = (at, pat.at) {
            if map.contains_key(&a) {
                return Err(Error::parse(format!("duplicate formal function argument '{a}'"), self.span_at(bpos)));
            }
            map.insert(a, names.len() as u32);
        }
        self.scopes.push(Scope::Frame(map));
        let r = (|| {
            let mut entries = Vec::with_capacity(names.len());
            for (name, def, epos) in names {
                let default = match def {
                    Some(d) => Some(self.expr(d)?),
                    None => None,
                };
                entries.push(Formal { name, default, pos: epos });
            }
            let body = self.expr(body)?;
            Ok((entries, body))
        })();
        self.scopes.pop();
        let (entries, body) = r?;
        Ok(Expr::Lambda(Box::new(LambdaIR {
            name: None,
            arg: None,
            formals: Some(Formals { entries, ellipsis: pat.ellipsis, at }),
            body,
            pos,
        })))
    }

    fn resolve_path_literal(&self, t: &str, kind: PathKind, pos: Span) -> Result<String> {
        Ok(match kind {
            PathKind::Home => {
                let home = self.cx.home.ok_or_else(|| Error::parse("cannot resolve home path: HOME is not set", pos))?;
                format!("{home}{}", &t[1..])
            }
            PathKind::Abs => t.to_string(),
            PathKind::Rel => {
                let trailing = t.ends_with('/') && t.len() > 1;
                let mut p = canon_join(&self.base, t);
                if trailing {
                    p.push('/');
                }
                p
            }
        })
    }
}


/// Decode source bytes; bytes that are not UTF-8 become private-use
/// characters that string-literal lowering turns back into the original bytes.
pub fn decode_source(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => {
            let mut out = String::with_capacity(bytes.len());
            let mut rest = bytes;
            loop {
                match std::str::from_utf8(rest) {
                    Ok(s) => {
                        out.push_str(s);
                        break;
                    }
                    Err(e) => {
                        let (ok, bad) = rest.split_at(e.valid_up_to());
                        out.push_str(std::str::from_utf8(ok).expect("valid prefix"));
                        let n = e.error_len().unwrap_or(bad.len()).max(1);
                        for &b in &bad[..n] {
                            out.push(char::from_u32(0x10FF00 + u32::from(b)).expect("private use char"));
                        }
                        rest = &bad[n..];
                    }
                }
            }
            out
        }
    }
}

/// String literal text to bytes, undoing [`decode_source`].
pub(crate) fn lit_bytes(s: String) -> Box<[u8]> {
    // Such characters are encoded with a leading 0xF4 byte.
    if !s.as_bytes().contains(&0xF4) || !s.chars().any(|c| c as u32 >= 0x10FF00) {
        return s.into_bytes().into();
    }
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        if c as u32 >= 0x10FF00 {
            out.push((c as u32 - 0x10FF00) as u8);
        } else {
            let mut b = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
        }
    }
    out.into()
}

/// The first piece of an indented string's source holding a NUL byte, as
/// C++ Nix's lexer cuts it (its error shows that piece as written, before
/// indentation is stripped, and points at its start): literal text runs
/// between the `''$`, `'''` and `''\x` escapes, and the first one starts
/// after the line break that may follow the opening `''`.
fn indented_nul_token<'s>(src: &'s str, parts: &[Part]) -> Option<(&'s str, u32)> {
    for (k, p) in parts.iter().enumerate() {
        let Part::Lit { start, end } = *p else { continue };
        let b = &src.as_bytes()[start as usize..end as usize];
        let Some(nul) = b.iter().position(|&c| c == 0) else { continue };
        let mut from = 0;
        if k == 0 {
            let spaces = b.iter().take_while(|&&c| c == b' ').count();
            if b.get(spaces) == Some(&b'\n') && spaces < nul {
                from = spaces + 1;
            }
        }
        let mut i = from;
        while i < nul {
            if b[i..].starts_with(b"''") {
                // an escape: `''$`, `'''` or `''\` and one character
                let len = if b.get(i + 2) == Some(&b'\\') {
                    3 + src[start as usize + i + 3..].chars().next().map_or(0, char::len_utf8)
                } else {
                    3
                };
                if i + len > nul {
                    // the NUL is the escaped character itself (shown
                    // unescaped, as the lexer unescapes that piece)
                    return Some((&src[start as usize + i + 3..start as usize + i + len], start + i as u32));
                }
                i += len;
                from = i;
            } else {
                i += 1;
            }
        }
        let to = (nul..b.len()).find(|&j| b[j..].starts_with(b"''")).unwrap_or(b.len());
        let s = start as usize;
        return Some((&src[s + from..s + to], start + from as u32));
    }
    None
}

/// The error for a string containing NUL bytes.
pub fn nul_message(s: &str) -> String {
    format!("input string '{}' cannot be represented as Nix string because it contains null bytes", s.replace('\0', "\u{2400}"))
}


/// Canonicalise an absolute path lexically: drop `.`, empty components and
/// trailing slashes, resolve `..`.
pub fn canon_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len() + 1);
    push_canon(&mut out, p);
    if out.is_empty() {
        return "/".into();
    }
    out
}

/// `canon_path(base + "/" + rel)` for a `base` that is already canonical
/// (`canon_path(base) == base`), without re-reading `base`.
fn canon_join(base: &str, rel: &str) -> String {
    let mut out = String::with_capacity(base.len() + rel.len() + 1);
    if base != "/" {
        out.push_str(base);
    }
    push_canon(&mut out, rel);
    if out.is_empty() {
        return "/".into();
    }
    out
}

/// Apply the components of `p` to the canonical path in `out` (`""` for
/// the root).
fn push_canon(out: &mut String, p: &str) {
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let j = memchr::memchr(b'/', &b[i..]).map_or(b.len(), |k| i + k);
        match &p[i..j] {
            "" | "." => {}
            ".." => {
                if let Some(k) = out.rfind('/') {
                    out.truncate(k);
                }
            }
            c => {
                out.push('/');
                out.push_str(c);
            }
        }
        i = j + 1;
    }
}

/// A function bound to a name (`f = a: b: …` in a set or `let`) is called
/// by that name in traces, and so are the functions its body returns
/// directly (`b: …`), as C++ Nix names them.
fn name_lambda(e: &mut Expr, name: Symbol) {
    let mut e = e;
    while let Expr::Lambda(l) = e {
        l.name = Some(name);
        e = &mut l.body;
    }
}
