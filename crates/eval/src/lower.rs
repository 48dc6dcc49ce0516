//! Lowering: parse with rnix and turn the syntax tree into [`Expr`] IR,
//! resolving variables to (depth, slot), merging nested attribute paths and
//! reporting the errors rnix leaves to us (duplicate attributes and formals,
//! undefined variables). rnix types never leave this module.
//!
//! [`parse_and_lower`] first tries the hand-written parser of `crate::parse`
//! (same IR, several times faster); this rnix pipeline is its oracle and its
//! fallback for syntax errors. The scope, lint and error helpers here are
//! shared by both lowerings.

use rnix::ast::{self, AstToken, HasEntry, InterpolPart};
use rowan::ast::AstNode;
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::ir::*;
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

/// Parse and lower a source text (`\r\n` already normalised to `\n`):
/// with the fast parser of `crate::parse`, or with rnix where that one gives
/// up (syntax errors and a few odd forms).
pub fn parse_and_lower(text: &str, cx: &LowerCtx<'_>) -> Result<Expr> {
    match crate::parse::parse_and_lower(text, cx) {
        Some(r) => r,
        None => parse_and_lower_rnix(text, cx),
    }
}

/// The rnix pipeline: the oracle for the fast parser and its fallback.
pub fn parse_and_lower_rnix(text: &str, cx: &LowerCtx<'_>) -> Result<Expr> {
    let parse = rnix::Root::parse(text);
    if let Some(err) = parse.errors().first() {
        return Err(parse_error(err, cx.file, text));
    }
    let root = parse.tree();
    let Some(expr) = root.expr() else {
        return Err(Error::parse("syntax error, unexpected end of file", Span { file: cx.file, offset: text.len() as u32 }));
    };
    let mut l = Lowerer { cx, scopes: Vec::new() };
    if let Some(names) = cx.scope {
        l.scopes.push(Scope::Frame(names.iter().enumerate().map(|(i, n)| (*n, i as u32)).collect()));
    }
    l.expr(expr)
}

fn parse_error(err: &rnix::ParseError, file: u32, text: &str) -> Error {
    use rnix::ParseError as P;
    let (msg, off) = match err {
        P::Unexpected(r) | P::UnexpectedExtra(r) => {
            let tok = &text[usize::from(r.start())..usize::from(r.end())];
            (format!("syntax error, unexpected '{}'", tok.trim()), usize::from(r.start()))
        }
        P::UnexpectedWanted(got, r, _) => {
            let _ = got;
            let tok = &text[usize::from(r.start())..usize::from(r.end())];
            (format!("syntax error, unexpected '{}'", tok.trim()), usize::from(r.start()))
        }
        P::UnexpectedDoubleBind(r) => ("syntax error, double bind".to_string(), usize::from(r.start())),
        P::DuplicatedArgs(r, name) => (format!("duplicate formal function argument '{name}'"), usize::from(r.start())),
        P::UnexpectedEOF | P::UnexpectedEOFWanted(_) => ("syntax error, unexpected end of file".to_string(), text.len()),
        P::RecursionLimitExceeded => ("syntax error, expression nested too deeply".to_string(), 0),
        _ => ("syntax error".to_string(), 0),
    };
    Error::parse(msg, Span { file, offset: off as u32 })
}

/// Report a lint at `level`, making its message only when it is reported.
pub(crate) fn lint_with(level: LintLevel, msg: impl FnOnce() -> String, pos: Span) -> Result<()> {
    if level == LintLevel::Ignore { Ok(()) } else { lint(level, msg(), pos) }
}

/// Report a lint at `level`.
pub(crate) fn lint(level: LintLevel, msg: String, pos: Span) -> Result<()> {
    match level {
        LintLevel::Ignore => Ok(()),
        LintLevel::Fatal => Err(Error::parse(msg, pos)),
        LintLevel::Warn => {
            let mut out = format!("warning: {msg}\n");
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
pub(crate) fn dup_attr(path: &str, new: Span, old: Span) -> Error {
    Error::parse(format!("attribute '{path}' already defined at {}", pos_string(old)), new)
}

/// Resolve a variable through the scopes (innermost last), skipping the
/// innermost `skip` of them.
pub(crate) fn resolve(
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
                    return Ok(Expr::Var { depth, slot });
                }
            }
            Scope::Single(n) => {
                if i >= skip && *n == name {
                    return Ok(Expr::Var { depth, slot: 0 });
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
    Ok(Expr::WithVar { name, withs: withs.into(), pos })
}

pub(crate) enum Scope {
    Frame(FxHashMap<Symbol, u32>),
    /// A frame with one slot (`x: …`).
    Single(Symbol),
    With,
}

struct Lowerer<'a, 'b> {
    cx: &'a LowerCtx<'b>,
    scopes: Vec<Scope>,
}

/// An attribute set (or let) being collected before lowering, so that
/// `a.b = 1; a.c = 2;` and `a = { b = 1; }; a.c = 2;` merge.
struct PAttrs {
    rec: bool,
    names: FxHashMap<Symbol, usize>,
    entries: Vec<(Symbol, PEntry)>,
    dynamic: Vec<(ast::Expr, PVal, Span)>,
    /// Sources of `inherit (e) …`, each evaluated once.
    from_exprs: Vec<ast::Expr>,
}

pub(crate) fn from_sym(i: usize) -> Symbol {
    Symbol::new(format!("\0inherit-from-{i}"))
}

struct PEntry {
    val: PVal,
    pos: Span,
}

enum PVal {
    Syn(ast::Expr),
    Nested(Box<PAttrs>),
    Inherit(Symbol, Span),
    /// `inherit (from) name;`: index into `PAttrs::from_exprs`.
    InheritFrom(usize, Symbol, Span),
}

enum AttrKey {
    Static(Symbol),
    Dynamic(ast::Expr),
}

fn strip_parens(mut e: ast::Expr) -> ast::Expr {
    while let ast::Expr::Paren(p) = &e {
        match p.expr() {
            Some(inner) => e = inner,
            None => break,
        }
    }
    e
}

impl PAttrs {
    fn new(rec: bool) -> PAttrs {
        PAttrs { rec, names: FxHashMap::default(), entries: Vec::new(), dynamic: Vec::new(), from_exprs: Vec::new() }
    }
}

impl<'a, 'b> Lowerer<'a, 'b> {
    fn lint(&self, level: LintLevel, msg: String, pos: Span) -> Result<()> {
        lint(level, msg, pos)
    }

    fn span(&self, node: &rowan::SyntaxNode<rnix::NixLanguage>) -> Span {
        Span { file: self.cx.file, offset: u32::from(node.text_range().start()) }
    }
    fn span_tok(&self, tok: &rowan::SyntaxToken<rnix::NixLanguage>) -> Span {
        Span { file: self.cx.file, offset: u32::from(tok.text_range().start()) }
    }

    fn dup_attr(&self, path: &str, new: Span, old: Span) -> Error {
        dup_attr(path, new, old)
    }

    fn resolve(&self, name: Symbol, pos: Span, skip: usize) -> Result<Expr> {
        resolve(&self.scopes, self.cx.globals, name, pos, skip)
    }

    fn attr_key(&mut self, attr: ast::Attr) -> Result<AttrKey> {
        Ok(match attr {
            ast::Attr::Ident(i) => AttrKey::Static(Symbol::new(i.syntax().text().to_string())),
            ast::Attr::Str(s) => match static_str(&s) {
                Some(t) => AttrKey::Static(Symbol::new(t)),
                None => AttrKey::Dynamic(ast::Expr::Str(s)),
            },
            ast::Attr::Dynamic(d) => {
                let inner = d.expr().ok_or_else(|| Error::parse("syntax error", self.span(d.syntax())))?;
                match &inner {
                    ast::Expr::Str(s) if static_str(s).is_some() => {
                        AttrKey::Static(Symbol::new(static_str(s).expect("checked")))
                    }
                    _ => AttrKey::Dynamic(inner),
                }
            }
        })
    }

    fn attr_name(&mut self, attr: ast::Attr) -> Result<AttrName> {
        Ok(match self.attr_key(attr)? {
            AttrKey::Static(s) => AttrName::Static(s),
            AttrKey::Dynamic(e) => {
                let pos = self.span(e.syntax());
                let shown = match &e {
                    ast::Expr::Str(s) => s.syntax().text().to_string(),
                    _ => format!("\"${{{}}}\"", self.show(e.clone()).unwrap_or_else(|| e.syntax().text().to_string())),
                };
                AttrName::Dynamic(self.expr(e)?, pos, shown.into())
            }
        })
    }

    /// Collect the entries of an attribute set / let into `pa`.
    fn collect(&mut self, pa: &mut PAttrs, node: &impl HasEntry) -> Result<()> {
        for entry in node.entries() {
            match entry {
                ast::Entry::Inherit(inh) => {
                    let from = inh.from().and_then(|f| f.expr()).map(|f| {
                        pa.from_exprs.push(f);
                        pa.from_exprs.len() - 1
                    });
                    for attr in inh.attrs() {
                        let pos = self.span(attr.syntax());
                        let name = match self.attr_key(attr)? {
                            AttrKey::Static(s) => s,
                            AttrKey::Dynamic(_) => {
                                return Err(Error::parse("dynamic attributes not allowed in inherit", pos));
                            }
                        };
                        if let Some(&i) = pa.names.get(&name) {
                            return Err(self.dup_attr(&name.as_str(), pos, pa.entries[i].1.pos));
                        }
                        let val = match &from {
                            Some(f) => PVal::InheritFrom(*f, name, pos),
                            None => PVal::Inherit(name, pos),
                        };
                        pa.names.insert(name, pa.entries.len());
                        pa.entries.push((name, PEntry { val, pos }));
                    }
                }
                ast::Entry::AttrpathValue(apv) => {
                    let path = apv.attrpath().ok_or_else(|| Error::parse("syntax error", self.span(apv.syntax())))?;
                    let value = apv.value().ok_or_else(|| Error::parse("syntax error", self.span(apv.syntax())))?;
                    let attrs: Vec<ast::Attr> = path.attrs().collect();
                    self.add_path(pa, &attrs, value, String::new(), None)?;
                }
            }
        }
        Ok(())
    }

    /// `start` is the position of the whole attribute path: C++ Nix gives
    /// every attribute of `a.b.c = v` that position.
    fn add_path(
        &mut self,
        pa: &mut PAttrs,
        path: &[ast::Attr],
        value: ast::Expr,
        prefix: String,
        start: Option<Span>,
    ) -> Result<()> {
        let first = path[0].clone();
        let pos = self.span(first.syntax());
        let start = start.unwrap_or(pos);
        let rest = &path[1..];
        let key = self.attr_key(first)?;
        let name_text = match &key {
            AttrKey::Static(s) => s.as_str().into_owned(),
            AttrKey::Dynamic(_) => "\"${...}\"".into(),
        };
        let full = if prefix.is_empty() { name_text } else { format!("{prefix}.{name_text}") };
        match key {
            AttrKey::Dynamic(e) => {
                let val = if rest.is_empty() {
                    self.pval(value)?
                } else {
                    let mut inner = PAttrs::new(false);
                    self.add_path(&mut inner, rest, value, full, Some(start))?;
                    PVal::Nested(Box::new(inner))
                };
                pa.dynamic.push((e, val, pos));
            }
            AttrKey::Static(name) => {
                if let Some(&i) = pa.names.get(&name) {
                    let old_pos = pa.entries[i].1.pos;
                    if rest.is_empty() {
                        // merge two attribute-set literals
                        let v = strip_parens(value.clone());
                        match (&mut pa.entries[i].1.val, v) {
                            (PVal::Nested(existing), ast::Expr::AttrSet(set)) => {
                                let mut tmp = PAttrs::new(set.rec_token().is_some());
                                self.collect(&mut tmp, &set)?;
                                let offset = existing.from_exprs.len();
                                existing.from_exprs.extend(tmp.from_exprs);
                                for (n, mut e) in tmp.entries {
                                    if let PVal::InheritFrom(i, _, _) = &mut e.val {
                                        *i += offset;
                                    }
                                    if let Some(&j) = existing.names.get(&n) {
                                        return Err(self.dup_attr(
                                            &format!("{full}.{n}"),
                                            e.pos,
                                            existing.entries[j].1.pos,
                                        ));
                                    }
                                    existing.names.insert(n, existing.entries.len());
                                    existing.entries.push((n, e));
                                }
                                existing.dynamic.extend(tmp.dynamic);
                                return Ok(());
                            }
                            _ => return Err(self.dup_attr(&full, pos, old_pos)),
                        }
                    }
                    match &mut pa.entries[i].1.val {
                        PVal::Nested(existing) => {
                            let mut existing = std::mem::replace(existing, Box::new(PAttrs::new(false)));
                            let r = self.add_path(&mut existing, rest, value, full, Some(start));
                            if let PVal::Nested(slot) = &mut pa.entries[i].1.val {
                                *slot = existing;
                            }
                            r
                        }
                        _ => Err(self.dup_attr(&full, pos, old_pos)),
                    }?;
                } else {
                    let val = if rest.is_empty() {
                        self.pval(value)?
                    } else {
                        let mut inner = PAttrs::new(false);
                        self.add_path(&mut inner, rest, value, full, Some(start))?;
                        PVal::Nested(Box::new(inner))
                    };
                    pa.names.insert(name, pa.entries.len());
                    pa.entries.push((name, PEntry { val, pos: start }));
                }
            }
        }
        Ok(())
    }

    fn pval(&mut self, value: ast::Expr) -> Result<PVal> {
        match strip_parens(value.clone()) {
            ast::Expr::AttrSet(set) => {
                let mut inner = PAttrs::new(set.rec_token().is_some());
                self.collect(&mut inner, &set)?;
                Ok(PVal::Nested(Box::new(inner)))
            }
            _ => Ok(PVal::Syn(value)),
        }
    }

    /// Lower a value of a binding. `frame` tells whether bindings live in a
    /// new frame (rec/let): plain `inherit x` then looks past it.
    fn lower_pval(&mut self, v: PVal, frame: bool) -> Result<Expr> {
        match v {
            PVal::Syn(e) => self.expr(e),
            PVal::Nested(pa) => self.lower_attrs(*pa),
            PVal::Inherit(name, pos) => self.resolve(name, pos, usize::from(frame)),
            PVal::InheritFrom(i, name, pos) => {
                let e = self.resolve(from_sym(i), pos, 0)?;
                Ok(Expr::Select { e: Box::new(e), path: Box::new([AttrName::Static(name)]), default: None, pos })
            }
        }
    }

    fn lower_attrs(&mut self, mut pa: PAttrs) -> Result<Expr> {
        pa.entries.sort_by_key(|(n, _)| *n);
        let from_exprs = std::mem::take(&mut pa.from_exprs);
        // non-recursive sets with `inherit (e)` get a hidden frame for the sources
        let wrap = !pa.rec && !from_exprs.is_empty();
        if wrap {
            let map = (0..from_exprs.len()).map(|i| (from_sym(i), i as u32)).collect();
            self.scopes.push(Scope::Frame(map));
        }
        if pa.rec {
            let mut map: FxHashMap<Symbol, u32> =
                pa.entries.iter().enumerate().map(|(i, (n, _))| (*n, i as u32)).collect();
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
                if let Expr::Lambda(l) = &mut value {
                    l.name = Some(name);
                }
                attrs.push(AttrDef { name, value, pos: e.pos });
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

    fn lower_let(&mut self, pa: PAttrs, body: ast::Expr, pos: Span) -> Result<Expr> {
        if !pa.dynamic.is_empty() {
            // C++ Nix reports it at the `let`.
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
                if let Expr::Lambda(l) = &mut value {
                    l.name = Some(name);
                }
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

    fn missing(&self, node: &rowan::SyntaxNode<rnix::NixLanguage>) -> Error {
        Error::parse("syntax error, unexpected end of file", self.span(node))
    }

    /// An expression printed like C++ Nix's `Expr::show` (used in assertion
    /// messages), or None for forms this printer does not cover.
    fn show(&mut self, e: ast::Expr) -> Option<String> {
        use ast::BinOpKind as K;
        use std::collections::BTreeMap;
        enum Node {
            Leaf(String),
            Sub(BTreeMap<String, Node>),
        }
        fn render(m: &BTreeMap<String, Node>, rec: bool) -> String {
            let mut out = String::from(if rec { "rec { " } else { "{ " });
            for (k, v) in m {
                let v = match v {
                    Node::Leaf(s) => s.clone(),
                    Node::Sub(m) => render(m, false),
                };
                out.push_str(&format!("{k} = {v}; "));
            }
            out.push('}');
            out
        }
        Some(match e {
            ast::Expr::Paren(p) => self.show(p.expr()?)?,
            ast::Expr::Literal(_) | ast::Expr::Str(_) | ast::Expr::PathAbs(_) | ast::Expr::PathRel(_) => {
                match self.expr(e).ok()? {
                    Expr::Const(v) => crate::print::print_value(&v),
                    _ => return None,
                }
            }
            ast::Expr::Ident(id) => id.syntax().text().to_string(),
            ast::Expr::List(l) => {
                let mut out = String::from("[ ");
                for i in l.items() {
                    out.push_str(&format!("({}) ", self.show(i)?));
                }
                out.push(']');
                out
            }
            ast::Expr::AttrSet(set) => {
                let mut root: BTreeMap<String, Node> = BTreeMap::new();
                for entry in set.entries() {
                    let ast::Entry::AttrpathValue(av) = entry else { return None };
                    let mut keys = Vec::new();
                    for a in av.attrpath()?.attrs() {
                        match self.attr_key(a).ok()? {
                            AttrKey::Static(s) => keys.push(s.to_string()),
                            AttrKey::Dynamic(_) => return None,
                        }
                    }
                    let v = self.show(av.value()?)?;
                    let (last, init) = keys.split_last()?;
                    let mut m = &mut root;
                    for k in init {
                        let n = m.entry(k.clone()).or_insert_with(|| Node::Sub(BTreeMap::new()));
                        let Node::Sub(sub) = n else { return None };
                        m = sub;
                    }
                    if m.insert(last.clone(), Node::Leaf(v)).is_some() {
                        return None;
                    }
                }
                if root.is_empty() {
                    return Some(if set.rec_token().is_some() { "rec { }".into() } else { "{ }".into() });
                }
                render(&root, set.rec_token().is_some())
            }
            ast::Expr::Lambda(l) => {
                let ast::Param::IdentParam(p) = l.param()? else { return None };
                format!("({}: {})", p.syntax().text(), self.show(l.body()?)?)
            }
            ast::Expr::UnaryOp(u) if u.operator() == Some(ast::UnaryOpKind::Invert) => {
                format!("(! {})", self.show(u.expr()?)?)
            }
            ast::Expr::BinOp(b) => {
                let op = match b.operator()? {
                    K::Equal => "==",
                    K::NotEqual => "!=",
                    K::And => "&&",
                    K::Or => "||",
                    K::Implication => "->",
                    K::Update => "//",
                    K::Concat => "++",
                    _ => return None,
                };
                format!("({} {op} {})", self.show(b.lhs()?)?, self.show(b.rhs()?)?)
            }
            ast::Expr::Apply(_) => {
                let mut args = Vec::new();
                let mut cur = e.clone();
                while let ast::Expr::Apply(a) = cur {
                    args.push(self.show(a.argument()?)?);
                    cur = a.lambda()?;
                }
                args.reverse();
                format!("({} {})", self.show(cur)?, args.join(" "))
            }
            _ => return None,
        })
    }

    fn expr(&mut self, e: ast::Expr) -> Result<Expr> {
        stacker::maybe_grow(64 * 1024, 1024 * 1024, || self.expr_inner(e))
    }

    fn sub(&mut self, e: Option<ast::Expr>, parent: &rowan::SyntaxNode<rnix::NixLanguage>) -> Result<Box<Expr>> {
        match e {
            Some(e) => Ok(Box::new(self.expr(e)?)),
            None => Err(self.missing(parent)),
        }
    }

    fn expr_inner(&mut self, e: ast::Expr) -> Result<Expr> {
        let pos = self.span(e.syntax());
        Ok(match e {
            ast::Expr::Paren(p) => return Ok(*self.sub(p.expr(), p.syntax())?),
            ast::Expr::Root(r) => return Ok(*self.sub(r.expr(), r.syntax())?),
            ast::Expr::Error(_) => return Err(Error::parse("syntax error", pos)),
            ast::Expr::Literal(lit) => match lit.kind() {
                ast::LiteralKind::Integer(i) => match i.value() {
                    Ok(v) => Expr::Const(Value::Int(v)),
                    Err(_) => return Err(Error::parse(format!("invalid integer '{}'", i.syntax().text()), pos)),
                },
                ast::LiteralKind::Float(f) => match f.value() {
                    Ok(v) => Expr::Const(Value::Float(v)),
                    Err(_) => return Err(Error::parse(format!("invalid float '{}'", f.syntax().text()), pos)),
                },
                ast::LiteralKind::Uri(u) => {
                    let text = u.syntax().text();
                    let level = self.cx.lints.url_literals;
                    let verb = if level == LintLevel::Fatal { "disallowed" } else { "discouraged" };
                    self.lint(
                        level,
                        format!("URL literals are {verb}. Consider using a string literal \"{text}\" instead (lint-url-literals)"),
                        pos,
                    )?;
                    Expr::Const(Value::str(text))
                }
            },
            ast::Expr::Ident(id) => {
                let text = id.syntax().text().to_string();
                match text.as_str() {
                    "__curPos" => Expr::CurPos(pos),
                    _ => self.resolve(Symbol::new(&text), pos, 0)?,
                }
            }
            ast::Expr::CurPos(_) => Expr::CurPos(pos),
            ast::Expr::Str(s) => {
                let parts = s.normalized_parts();
                let open = if s.syntax().text().to_string().starts_with("''") { 2 } else { 1 };
                for p in &parts {
                    if let InterpolPart::Literal(l) = p
                        && l.contains('\0')
                    {
                        return Err(Error::parse(
                            nul_message(l),
                            Span { file: pos.file, offset: pos.offset + open },
                        ));
                    }
                }
                let mut out = Vec::new();
                for p in parts {
                    match p {
                        InterpolPart::Literal(l) => {
                            if !l.is_empty() {
                                out.push(StrPart::Lit(lit_bytes(l)))
                            }
                        }
                        InterpolPart::Interpolation(i) => {
                            out.push(StrPart::Interp(*self.sub(i.expr(), i.syntax())?, self.span(i.syntax())))
                        }
                    }
                }
                match out.as_slice() {
                    [] => Expr::Const(Value::str("")),
                    [StrPart::Lit(l)] => Expr::Const(Value::string(l.clone())),
                    _ => Expr::Interp { parts: out.into(), pos },
                }
            }
            ast::Expr::PathAbs(_) | ast::Expr::PathRel(_) | ast::Expr::PathHome(_) => {
                let text = e.syntax().text().to_string();
                let lints = self.cx.lints;
                match &e {
                    ast::Expr::PathAbs(_) => self.lint(
                        lints.absolute_path_literals,
                        format!("absolute path literals are not portable. Consider replacing path literal '{text}' by a string, relative path, or parameter (lint-absolute-path-literals)"),
                        pos,
                    )?,
                    ast::Expr::PathHome(_) => self.lint(
                        lints.absolute_path_literals,
                        format!("home path literals are not portable. Consider replacing path literal '{text}' by a string, relative path, or parameter (lint-absolute-path-literals)"),
                        pos,
                    )?,
                    _ if !text.starts_with("./") && !text.starts_with("../") => self.lint(
                        lints.short_path_literals,
                        format!("relative path literal '{text}' should be prefixed with '.' for clarity: './{text}' (lint-short-path-literals)"),
                        pos,
                    )?,
                    _ => {}
                }
                let path = ast::Path::cast(e.syntax().clone()).expect("is a path");
                let parts = path.parts();
                let mut out = Vec::new();
                for (i, p) in parts.into_iter().enumerate() {
                    match p {
                        InterpolPart::Literal(l) => {
                            let mut t = l.text().to_string();
                            if i == 0 {
                                t = self.resolve_path_literal(&t, &e, pos)?;
                            }
                            out.push(StrPart::Lit(t.into_bytes().into()))
                        }
                        InterpolPart::Interpolation(ip) => {
                            out.push(StrPart::Interp(*self.sub(ip.expr(), ip.syntax())?, self.span(ip.syntax())))
                        }
                    }
                }
                match out.as_slice() {
                    [StrPart::Lit(l)] => Expr::Const(Value::path(canon_path(&String::from_utf8_lossy(l)).into_bytes())),
                    _ => Expr::PathInterp { parts: out.into(), pos },
                }
            }
            ast::Expr::PathSearch(p) => {
                let text = p.content().map(|c| c.text().to_string()).unwrap_or_default();
                let inner = text.trim_start_matches('<').trim_end_matches('>');
                let find = self.resolve(Symbol::new("__findFile"), pos, 0)?;
                let np = self.resolve(Symbol::new("__nixPath"), pos, 0)?;
                Expr::Apply {
                    f: Box::new(find),
                    args: Box::new([np, Expr::Const(Value::str(inner))]),
                    pos,
                }
            }
            ast::Expr::List(l) => {
                let items: Result<Vec<Expr>> = l.items().map(|i| self.expr(i)).collect();
                Expr::List(items?.into())
            }
            ast::Expr::AttrSet(set) => {
                let mut pa = PAttrs::new(set.rec_token().is_some());
                self.collect(&mut pa, &set)?;
                self.lower_attrs(pa)?
            }
            ast::Expr::LetIn(l) => {
                let mut pa = PAttrs::new(true);
                self.collect(&mut pa, &l)?;
                let body = l.body().ok_or_else(|| self.missing(l.syntax()))?;
                self.lower_let(pa, body, pos)?
            }
            ast::Expr::LegacyLet(l) => {
                let mut pa = PAttrs::new(true);
                self.collect(&mut pa, &l)?;
                let attrs = self.lower_attrs(pa)?;
                Expr::Select {
                    e: Box::new(attrs),
                    path: Box::new([AttrName::Static(Symbol::new("body"))]),
                    default: None,
                    pos,
                }
            }
            ast::Expr::With(w) => {
                let ns = self.sub(w.namespace(), w.syntax())?;
                self.scopes.push(Scope::With);
                let body = self.sub(w.body(), w.syntax());
                self.scopes.pop();
                Expr::With { ns, body: body? }
            }
            ast::Expr::Lambda(lam) => self.lambda(lam, pos)?,
            ast::Expr::Apply(_) => {
                let mut args = Vec::new();
                let mut cur = e.clone();
                while let ast::Expr::Apply(a) = cur {
                    args.push(a.argument().ok_or_else(|| self.missing(a.syntax()))?);
                    cur = a.lambda().ok_or_else(|| self.missing(a.syntax()))?;
                }
                args.reverse();
                let f = Box::new(self.expr(cur)?);
                let args: Result<Vec<Expr>> = args.into_iter().map(|a| self.expr(a)).collect();
                Expr::Apply { f, args: args?.into(), pos }
            }
            ast::Expr::Select(s) => {
                let target = self.sub(s.expr(), s.syntax())?;
                let path = self.attrpath(s.attrpath(), s.syntax())?;
                let default = match s.default_expr() {
                    Some(d) => Some(Box::new(self.expr(d)?)),
                    None => None,
                };
                Expr::Select { e: target, path, default, pos }
            }
            ast::Expr::HasAttr(h) => {
                let epos = h.expr().map_or(pos, |e| self.span(strip_parens(e).syntax()));
                let target = self.sub(h.expr(), h.syntax())?;
                let path = self.attrpath(h.attrpath(), h.syntax())?;
                Expr::HasAttr { e: target, path, pos: epos }
            }
            ast::Expr::IfElse(i) => Expr::If {
                cond: self.sub(i.condition(), i.syntax())?,
                then: self.sub(i.body(), i.syntax())?,
                else_: self.sub(i.else_body(), i.syntax())?,
                pos,
            },
            ast::Expr::Assert(a) => {
                let c = a.condition().ok_or_else(|| self.missing(a.syntax()))?;
                let text = self.show(c.clone()).unwrap_or_else(|| c.syntax().text().to_string());
                Expr::Assert {
                    cond: Box::new(self.expr(c)?),
                    body: self.sub(a.body(), a.syntax())?,
                    text: text.into(),
                    pos,
                }
            }
            ast::Expr::UnaryOp(u) => {
                let inner = self.sub(u.expr(), u.syntax())?;
                match u.operator() {
                    Some(ast::UnaryOpKind::Invert) => {
                        Expr::Not(inner, u.expr().map_or(pos, |e| self.span(strip_parens(e).syntax())))
                    }
                    _ => Expr::Neg(inner, pos),
                }
            }
            ast::Expr::BinOp(b) => {
                use ast::BinOpKind as K;
                let op_tok = b
                    .syntax()
                    .children_with_tokens()
                    .filter_map(|c| c.into_token())
                    .find(|t| ast::BinOpKind::from_kind(t.kind()).is_some());
                let op_pos = op_tok.as_ref().map_or(pos, |t| self.span_tok(t));
                let kind = b.operator().ok_or_else(|| self.missing(b.syntax()))?;
                let l = self.sub(b.lhs(), b.syntax())?;
                let r = self.sub(b.rhs(), b.syntax())?;
                let op = match kind {
                    K::Concat => BinOp::Concat,
                    K::Update => BinOp::Update,
                    K::Add => BinOp::Add,
                    K::Sub => BinOp::Sub,
                    K::Mul => BinOp::Mul,
                    K::Div => BinOp::Div,
                    K::And => BinOp::And,
                    K::Equal => BinOp::Eq,
                    K::Implication => BinOp::Impl,
                    K::Less => BinOp::Lt,
                    K::LessOrEq => BinOp::Le,
                    K::More => BinOp::Gt,
                    K::MoreOrEq => BinOp::Ge,
                    K::NotEqual => BinOp::Neq,
                    K::Or => BinOp::Or,
                    K::PipeRight => {
                        return Err(Error::parse(
                            "experimental Nix feature 'pipe-operators' is disabled; add '--extra-experimental-features pipe-operators' to enable it",
                            op_pos,
                        ));
                    }
                    K::PipeLeft => {
                        return Err(Error::parse(
                            "experimental Nix feature 'pipe-operators' is disabled; add '--extra-experimental-features pipe-operators' to enable it",
                            op_pos,
                        ));
                    }
                };
                let pos = match op {
                    BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Concat | BinOp::Update | BinOp::Eq | BinOp::Neq
                    | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                        op_pos
                    }
                    _ => pos,
                };
                let lpos = b.lhs().map_or(pos, |e| self.span(strip_parens(e).syntax()));
                let rpos = b.rhs().map_or(pos, |e| self.span(strip_parens(e).syntax()));
                Expr::Bin { op, l, r, pos, lpos, rpos }
            }
        })
    }

    fn attrpath(&mut self, p: Option<ast::Attrpath>, parent: &rowan::SyntaxNode<rnix::NixLanguage>) -> Result<Box<[AttrName]>> {
        let p = p.ok_or_else(|| self.missing(parent))?;
        let names: Result<Vec<AttrName>> = p.attrs().map(|a| self.attr_name(a)).collect();
        Ok(names?.into())
    }

    fn lambda(&mut self, lam: ast::Lambda, pos: Span) -> Result<Expr> {
        let param = lam.param().ok_or_else(|| self.missing(lam.syntax()))?;
        let body_ast = lam.body().ok_or_else(|| self.missing(lam.syntax()))?;
        match param {
            ast::Param::IdentParam(ip) => {
                let name = Symbol::new(ip.ident().map(|i| i.syntax().text().to_string()).unwrap_or_default());
                let mut map = FxHashMap::default();
                map.insert(name, 0);
                self.scopes.push(Scope::Frame(map));
                let body = self.expr(body_ast);
                self.scopes.pop();
                Ok(Expr::Lambda(Box::new(LambdaIR { name: None, arg: Some(name), formals: None, body: body?, pos })))
            }
            ast::Param::Pattern(pat) => {
                let mut names: Vec<(Symbol, Option<ast::Expr>, Span)> = Vec::new();
                let mut map = FxHashMap::default();
                for entry in pat.pat_entries() {
                    let id = entry.ident().ok_or_else(|| self.missing(entry.syntax()))?;
                    let name = Symbol::new(id.syntax().text().to_string());
                    let epos = self.span(entry.syntax());
                    if map.contains_key(&name) {
                        return Err(Error::parse(format!("duplicate formal function argument '{name}'"), epos));
                    }
                    map.insert(name, names.len() as u32);
                    names.push((name, entry.default(), epos));
                }
                let at = pat.pat_bind().and_then(|b| b.ident()).map(|i| Symbol::new(i.syntax().text().to_string()));
                if let Some(a) = at {
                    if map.contains_key(&a) {
                        let bpos = pat.pat_bind().map(|b| self.span(b.syntax())).unwrap_or(pos);
                        return Err(Error::parse(format!("duplicate formal function argument '{a}'"), bpos));
                    }
                    map.insert(a, names.len() as u32);
                }
                self.scopes.push(Scope::Frame(map));
                let r = (|| {
                    let mut entries = Vec::new();
                    for (name, def, epos) in names {
                        let default = match def {
                            Some(d) => Some(self.expr(d)?),
                            None => None,
                        };
                        entries.push(Formal { name, default, pos: epos });
                    }
                    let body = self.expr(body_ast)?;
                    Ok((entries, body))
                })();
                self.scopes.pop();
                let (entries, body) = r?;
                Ok(Expr::Lambda(Box::new(LambdaIR {
                    name: None,
                    arg: None,
                    formals: Some(Formals { entries, ellipsis: pat.ellipsis_token().is_some(), at }),
                    body,
                    pos,
                })))
            }
        }
    }

    fn resolve_path_literal(&self, t: &str, e: &ast::Expr, pos: Span) -> Result<String> {
        Ok(match e {
            ast::Expr::PathHome(_) => {
                let home = self.cx.home.ok_or_else(|| Error::parse("cannot resolve home path: HOME is not set", pos))?;
                format!("{home}{}", &t[1..])
            }
            ast::Expr::PathAbs(_) => t.to_string(),
            _ => {
                let trailing = t.ends_with('/') && t.len() > 1;
                let mut p = canon_path(&format!("{}/{}", self.cx.base_dir, t));
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

/// The error for a string containing NUL bytes.
pub fn nul_message(s: &str) -> String {
    format!("input string '{}' cannot be represented as Nix string because it contains null bytes", s.replace('\0', "\u{2400}"))
}

/// A string literal with no interpolation, as text.
fn static_str(s: &ast::Str) -> Option<String> {
    let parts = s.normalized_parts();
    let mut out = String::new();
    for p in parts {
        match p {
            InterpolPart::Literal(l) => out.push_str(&l),
            InterpolPart::Interpolation(_) => return None,
        }
    }
    Some(out)
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
pub(crate) fn canon_join(base: &str, rel: &str) -> String {
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
        let j = b[i..].iter().position(|&c| c == b'/').map_or(b.len(), |k| i + k);
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
