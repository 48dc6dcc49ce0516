//! The rnix front end: the syntax-error path and the oracle of the
//! hand-written parser. rnix 0.15 parses the text; its errors become ours
//! (these texts are what the parse-fail language tests pin), and an
//! error-free tree is converted node by node into the same [`Ast`] the
//! hand-written parser builds (same node offsets: rnix's text ranges), so
//! there is one lowering. rnix types never leave this module.

use rnix::ast::{self as rn, AstToken, HasEntry, InterpolPart};
use rowan::ast::AstNode;
use rowan::NodeOrToken;
use smallvec::SmallVec;

use super::ast::*;
use crate::error::{Error, Result};
use crate::ir::Span;

/// Parse `text` with rnix: its first error, or the tree as an [`Ast`].
pub(crate) fn parse(text: &str, file: u32) -> Result<(Ast, NodeId)> {
    let parse = rnix::Root::parse(text);
    if let Some(err) = parse.errors().first() {
        return Err(parse_error(err, file, text));
    }
    let Some(expr) = parse.tree().expr() else {
        return Err(Error::parse("syntax error, unexpected end of file", Span { file, offset: text.len() as u32 }));
    };
    let mut c = Conv { file, ast: Ast::default() };
    let root = c.expr(expr)?;
    Ok((c.ast, root))
}

fn parse_error(err: &rnix::ParseError, file: u32, text: &str) -> Error {
    use rnix::ParseError as P;
    let unexpected = |r: &rnix::TextRange| {
        let tok = &text[usize::from(r.start())..usize::from(r.end())];
        (format!("syntax error, unexpected '{}'", tok.trim()), usize::from(r.start()))
    };
    let (msg, off) = match err {
        // C++ Nix's lexer rejects a path ending in `/` itself, pointing
        // just past it (rnix reads it as an error token)
        P::Unexpected(r) | P::UnexpectedExtra(r) | P::UnexpectedWanted(_, r, _)
            if is_path_with_trailing_slash(&text[usize::from(r.start())..usize::from(r.end())]) =>
        {
            ("path has a trailing slash".to_string(), usize::from(r.end()))
        }
        P::Unexpected(r) | P::UnexpectedExtra(r) | P::UnexpectedWanted(_, r, _) => unexpected(r),
        P::UnexpectedDoubleBind(r) => ("syntax error, double bind".to_string(), usize::from(r.start())),
        P::DuplicatedArgs(r, name) => (format!("duplicate formal function argument '{name}'"), usize::from(r.start())),
        P::UnexpectedEOF | P::UnexpectedEOFWanted(_) => ("syntax error, unexpected end of file".to_string(), text.len()),
        P::RecursionLimitExceeded => ("syntax error, expression nested too deeply".to_string(), 0),
        _ => ("syntax error".to_string(), 0),
    };
    Error::parse(msg, Span { file, offset: off as u32 })
}

/// `/a/b/`, `./a/`, `~/a/`, `a/b/`: a path token (path characters, at
/// least one `/` before the last) that ends in a slash.
fn is_path_with_trailing_slash(tok: &str) -> bool {
    let Some(body) = tok.strip_suffix('/') else { return false };
    let body = body.strip_prefix('~').unwrap_or(body);
    body.contains('/')
        && !tok.contains("//")
        && body.bytes().any(|c| c != b'/')
        && body.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'+' | b'/'))
}

struct Conv {
    file: u32,
    ast: Ast,
}

fn range(node: &rnix::SyntaxNode) -> (u32, u32) {
    let r = node.text_range();
    (u32::from(r.start()), u32::from(r.end()))
}

impl Conv {
    /// A child rnix left out: only in trees with errors, which never get here.
    fn missing(&self, parent: &rnix::SyntaxNode) -> Error {
        Error::parse("syntax error, unexpected end of file", Span { file: self.file, offset: range(parent).0 })
    }

    fn child<T>(&self, c: Option<T>, parent: &rnix::SyntaxNode) -> Result<T> {
        c.ok_or_else(|| self.missing(parent))
    }

    fn sub(&mut self, e: Option<rn::Expr>, parent: &rnix::SyntaxNode) -> Result<NodeId> {
        let e = self.child(e, parent)?;
        self.expr(e)
    }

    fn expr(&mut self, e: rn::Expr) -> Result<NodeId> {
        stacker::maybe_grow(64 * 1024, 1024 * 1024, || self.expr_inner(e))
    }

    fn ids(&mut self, items: &[NodeId]) -> Range {
        let start = self.ast.ids.len() as u32;
        self.ast.ids.extend_from_slice(items);
        Range { start, len: items.len() as u32 }
    }

    fn expr_inner(&mut self, e: rn::Expr) -> Result<NodeId> {
        let (start, end) = range(e.syntax());
        let kind = match e {
            rn::Expr::Root(r) => return self.sub(r.expr(), r.syntax()),
            rn::Expr::Error(_) => return Err(Error::parse("syntax error", Span { file: self.file, offset: start })),
            rn::Expr::Paren(p) => NodeKind::Paren(self.sub(p.expr(), p.syntax())?),
            rn::Expr::Literal(l) => match l.kind() {
                rn::LiteralKind::Integer(_) => NodeKind::Int,
                rn::LiteralKind::Float(_) => NodeKind::Float,
                rn::LiteralKind::Uri(_) => NodeKind::Uri,
            },
            rn::Expr::Ident(_) | rn::Expr::CurPos(_) => NodeKind::Ident,
            rn::Expr::PathSearch(_) => NodeKind::SearchPath,
            rn::Expr::Str(s) => self.string(&s)?,
            rn::Expr::PathAbs(p) => self.path(PathKind::Abs, p.syntax())?,
            rn::Expr::PathRel(p) => self.path(PathKind::Rel, p.syntax())?,
            rn::Expr::PathHome(p) => self.path(PathKind::Home, p.syntax())?,
            rn::Expr::List(l) => {
                let items = l.items().map(|i| self.expr(i)).collect::<Result<SmallVec<[NodeId; 8]>>>()?;
                NodeKind::List(self.ids(&items))
            }
            rn::Expr::AttrSet(s) => NodeKind::AttrSet { rec: s.rec_token().is_some(), entries: self.entries(&s)? },
            rn::Expr::LetIn(l) => {
                let entries = self.entries(&l)?;
                NodeKind::LetIn { entries, body: self.sub(l.body(), l.syntax())? }
            }
            rn::Expr::LegacyLet(l) => NodeKind::LegacyLet { entries: self.entries(&l)? },
            rn::Expr::With(w) => {
                NodeKind::With { ns: self.sub(w.namespace(), w.syntax())?, body: self.sub(w.body(), w.syntax())? }
            }
            rn::Expr::IfElse(i) => NodeKind::If {
                cond: self.sub(i.condition(), i.syntax())?,
                then: self.sub(i.body(), i.syntax())?,
                else_: self.sub(i.else_body(), i.syntax())?,
            },
            rn::Expr::Assert(a) => {
                NodeKind::Assert { cond: self.sub(a.condition(), a.syntax())?, body: self.sub(a.body(), a.syntax())? }
            }
            rn::Expr::Lambda(l) => self.lambda(&l)?,
            rn::Expr::Apply(_) => {
                // `f a b` nests to the left; the tree keeps the flat form.
                let mut args: SmallVec<[rn::Expr; 4]> = SmallVec::new();
                let mut cur = e.clone();
                while let rn::Expr::Apply(a) = cur {
                    args.push(self.child(a.argument(), a.syntax())?);
                    cur = self.child(a.lambda(), a.syntax())?;
                }
                let f = self.expr(cur)?;
                let args = args.into_iter().rev().map(|a| self.expr(a)).collect::<Result<SmallVec<[NodeId; 4]>>>()?;
                NodeKind::Apply { f, args: self.ids(&args) }
            }
            rn::Expr::Select(s) => {
                let target = self.sub(s.expr(), s.syntax())?;
                let path = self.attrpath(s.attrpath(), s.syntax())?;
                let default = s.default_expr().map(|d| self.expr(d)).transpose()?;
                NodeKind::Select { e: target, path, default }
            }
            rn::Expr::HasAttr(h) => {
                let target = self.sub(h.expr(), h.syntax())?;
                NodeKind::HasAttr { e: target, path: self.attrpath(h.attrpath(), h.syntax())? }
            }
            rn::Expr::UnaryOp(u) => {
                let inner = self.sub(u.expr(), u.syntax())?;
                match u.operator() {
                    Some(rn::UnaryOpKind::Invert) => NodeKind::Not(inner),
                    _ => NodeKind::Neg(inner),
                }
            }
            rn::Expr::BinOp(b) => self.bin(&b)?,
        };
        Ok(self.ast.add(kind, start, end))
    }

    fn bin(&mut self, b: &rn::BinOp) -> Result<NodeKind> {
        use rn::BinOpKind as K;
        let (op, op_pos) = b
            .syntax()
            .children_with_tokens()
            .filter_map(|c| c.into_token())
            .find_map(|t| Some((K::from_kind(t.kind())?, u32::from(t.text_range().start()))))
            .ok_or_else(|| self.missing(b.syntax()))?;
        let l = self.sub(b.lhs(), b.syntax())?;
        let r = self.sub(b.rhs(), b.syntax())?;
        let op = match op {
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
            K::PipeRight | K::PipeLeft => return Ok(NodeKind::Pipe { l, r, op_pos }),
        };
        Ok(NodeKind::Bin { op, l, r, op_pos })
    }

    /// A string's parts: raw content tokens and interpolations.
    fn string(&mut self, s: &rn::Str) -> Result<NodeKind> {
        let multiline = s.syntax().first_token().is_some_and(|t| t.text() == "''");
        let mut parts: SmallVec<[Part; 8]> = SmallVec::new();
        for p in s.parts() {
            parts.push(match p {
                InterpolPart::Literal(l) => {
                    let r = l.syntax().text_range();
                    Part::Lit { start: r.start().into(), end: r.end().into() }
                }
                InterpolPart::Interpolation(i) => self.interpol(&i)?,
            });
        }
        Ok(NodeKind::Str { multiline, parts: self.parts(&parts) })
    }

    fn interpol(&mut self, i: &rn::Interpol) -> Result<Part> {
        Ok(Part::Interp { e: self.sub(i.expr(), i.syntax())?, start: range(i.syntax()).0 })
    }

    fn parts(&mut self, parts: &[Part]) -> Range {
        let start = self.ast.parts.len() as u32;
        self.ast.parts.extend_from_slice(parts);
        Range { start, len: parts.len() as u32 }
    }

    /// A path's parts: raw path tokens and interpolations.
    fn path(&mut self, kind: PathKind, node: &rnix::SyntaxNode) -> Result<NodeKind> {
        let mut parts: SmallVec<[Part; 4]> = SmallVec::new();
        for c in node.children_with_tokens() {
            parts.push(match c {
                NodeOrToken::Token(t) => {
                    let r = t.text_range();
                    Part::Lit { start: r.start().into(), end: r.end().into() }
                }
                NodeOrToken::Node(n) => {
                    let i = rn::Interpol::cast(n).ok_or_else(|| self.missing(node))?;
                    self.interpol(&i)?
                }
            });
        }
        Ok(NodeKind::Path { kind, parts: self.parts(&parts) })
    }

    fn attr(&mut self, a: rn::Attr) -> Result<Attr> {
        Ok(match a {
            rn::Attr::Ident(i) => {
                let (start, end) = range(i.syntax());
                Attr::Ident { start, end }
            }
            rn::Attr::Str(s) => Attr::Str(self.expr(rn::Expr::Str(s))?),
            rn::Attr::Dynamic(d) => Attr::Dynamic { e: self.sub(d.expr(), d.syntax())?, start: range(d.syntax()).0 },
        })
    }

    fn attrs(&mut self, attrs: impl Iterator<Item = rn::Attr>) -> Result<Range> {
        let attrs = attrs.map(|a| self.attr(a)).collect::<Result<SmallVec<[Attr; 4]>>>()?;
        let start = self.ast.attrs.len() as u32;
        self.ast.attrs.extend_from_slice(&attrs);
        Ok(Range { start, len: attrs.len() as u32 })
    }

    fn attrpath(&mut self, p: Option<rn::Attrpath>, parent: &rnix::SyntaxNode) -> Result<Range> {
        let p = self.child(p, parent)?;
        self.attrs(p.attrs())
    }

    fn entries(&mut self, node: &impl HasEntry) -> Result<Range> {
        let mut list: SmallVec<[Entry; 8]> = SmallVec::new();
        for entry in node.entries() {
            list.push(match entry {
                rn::Entry::Inherit(inh) => {
                    let from = match inh.from() {
                        Some(f) => Some(self.sub(f.expr(), f.syntax())?),
                        None => None,
                    };
                    Entry::Inherit { from, attrs: self.attrs(inh.attrs())? }
                }
                rn::Entry::AttrpathValue(apv) => {
                    let path = self.attrpath(apv.attrpath(), apv.syntax())?;
                    Entry::Value { path, value: self.sub(apv.value(), apv.syntax())? }
                }
            });
        }
        let start = self.ast.entries.len() as u32;
        self.ast.entries.extend_from_slice(&list);
        Ok(Range { start, len: list.len() as u32 })
    }

    fn lambda(&mut self, lam: &rn::Lambda) -> Result<NodeKind> {
        let param = self.child(lam.param(), lam.syntax())?;
        let pattern = match param {
            rn::Param::IdentParam(ip) => {
                let id = self.child(ip.ident(), ip.syntax())?;
                let (name_start, name_end) = range(id.syntax());
                return Ok(NodeKind::LambdaIdent { name_start, name_end, body: self.sub(lam.body(), lam.syntax())? });
            }
            rn::Param::Pattern(p) => p,
        };
        let mut list: SmallVec<[PatEntry; 8]> = SmallVec::new();
        for entry in pattern.pat_entries() {
            let id = self.child(entry.ident(), entry.syntax())?;
            let (name_start, name_end) = range(id.syntax());
            let default = entry.default().map(|d| self.expr(d)).transpose()?;
            list.push(PatEntry { name_start, name_end, default });
        }
        let at = match pattern.pat_bind() {
            Some(b) => {
                let id = self.child(b.ident(), b.syntax())?;
                let (s, e) = range(id.syntax());
                Some((s, e, range(b.syntax()).0))
            }
            None => None,
        };
        let start = self.ast.pat_entries.len() as u32;
        self.ast.pat_entries.extend_from_slice(&list);
        let entries = Range { start, len: list.len() as u32 };
        self.ast.patterns.push(Pattern { entries, ellipsis: pattern.ellipsis_token().is_some(), at });
        let pat = (self.ast.patterns.len() - 1) as u32;
        Ok(NodeKind::LambdaPat { pat, body: self.sub(lam.body(), lam.syntax())? })
    }
}

/// Check the string handling of the lowering against rnix's own
/// (`Str::normalized_parts`: escapes, `''` indentation) on every string
/// literal of `text`; the differences, described. For the differential
/// tests; `text` must parse without errors.
pub(crate) fn string_mismatches(text: &str) -> Vec<String> {
    let parse = rnix::Root::parse(text);
    let mut c = Conv { file: u32::MAX, ast: Ast::default() };
    let mut out = Vec::new();
    for node in parse.syntax().descendants() {
        let Some(s) = rn::Str::cast(node) else { continue };
        let NodeKind::Str { multiline, parts } = c.string(&s).expect("an error-free tree") else { unreachable!() };
        let ours: Vec<Option<String>> =
            crate::lower::normalized_parts(text, &c.ast.parts[parts.iter()], multiline)
                .into_iter()
                .map(|p| match p {
                    crate::lower::NPart::Lit(l) => Some(l),
                    crate::lower::NPart::Interp(..) => None,
                })
                .collect();
        let theirs: Vec<Option<String>> = s
            .normalized_parts()
            .into_iter()
            .map(|p| match p {
                InterpolPart::Literal(l) => Some(l),
                InterpolPart::Interpolation(_) => None,
            })
            .collect();
        if ours != theirs {
            let (ours, theirs) = (format!("{ours:?}"), format!("{theirs:?}"));
            out.push(format!("string at byte {}: ours {ours:.300}, rnix {theirs:.300}", range(s.syntax()).0));
        }
    }
    out
}
