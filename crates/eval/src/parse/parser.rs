//! Recursive-descent parser over the tokens of [`super::lexer`], one function
//! per precedence level exactly as rnix 0.15 layers them (so associativity,
//! the `{` lambda-or-set lookahead and `or` as an attribute name agree).
//! It accepts only what rnix accepts without errors, except that it nests
//! deeper (see [`MAX_NESTING`]), and gives up ([`Bail`]) on anything else,
//! including the pipe operators (`|>`, `<|`), whose lowering is an error
//! anyway.

use super::ast::*;
use super::lexer::{Tok, Token};
use super::Bail;

/// How many expressions deep the parser goes. rnix stops at 512, far
/// below C++ Nix, whose parser stack (bison's 10 000 entries) holds
/// 9 995 nested parentheses, 4 998 nested lists, 2 496 nested sets or
/// 1 665 nested `((x: [ … ]) 1)`; each of those takes one, one, one and
/// three levels here. Deeper input goes to rnix, which reports it nested
/// too deeply.
const MAX_NESTING: u32 = 10_000;

struct Parser<'t> {
    toks: &'t [Token],
    i: usize,
    prev_end: u32,
    depth: u32,
    ast: Ast,
    /// Scratch stack for child lists being collected.
    scratch: Vec<NodeId>,
    attr_scratch: Vec<Attr>,
    /// The first place the parse failed: the token's index (the end of
    /// the input when past the last one) and what C++ Nix's parser says it
    /// expected there.
    failed: Option<(usize, &'static [&'static str])>,
    /// The failure is one rnix would not find (it parses more than C++ Nix).
    rnix_lax: bool,
}

type R<T> = Result<T, Bail>;

/// Formals, ellipsis, `@` binding (see [`Pattern`]).
type PatternParts = (Range, bool, Option<(u32, u32, u32)>);

/// Parse a whole file; on failure, the syntax error in C++ Nix's words
/// where the parser found one (`None`: a form it leaves to rnix).
pub fn parse(toks: &[Token]) -> Result<(Ast, NodeId), Option<SyntaxError>> {
    let mut p = Parser {
        toks,
        i: 0,
        prev_end: 0,
        depth: 0,
        ast: Ast::default(),
        scratch: Vec::new(),
        attr_scratch: Vec::new(),
        failed: None,
        rnix_lax: false,
    };
    p.ast.nodes.reserve(toks.len());
    // Room for the side tables as large as nixpkgs files need them (from
    // the token counts of all-packages.nix: about one list item, attribute
    // name or entry per 4-8 tokens), so they are not copied as they grow;
    // pages never written are never touched.
    p.ast.ids.reserve(toks.len() / 4);
    p.ast.attrs.reserve(toks.len() / 4);
    p.ast.entries.reserve(toks.len() / 8);
    p.ast.parts.reserve(toks.len() / 8);
    let root = p.expr();
    if root.is_ok() && p.i != toks.len() {
        let _ = p.fail::<()>(&["end of file"]);
    }
    match (root, p.failed) {
        (Ok(root), None) => Ok((p.ast, root)),
        (_, failed) => {
            super::note_bail(toks.get(p.i).map_or(usize::MAX, |t| t.start as usize));
            let rnix_lax = p.rnix_lax;
            Err(failed
                .map(|(at, expecting)| SyntaxError { token: toks.get(at).copied(), expecting, rnix_lax })
                // the pipe operators are rnix's to parse
                .filter(|e| !e.token.is_some_and(|t| matches!(t.kind, Tok::PipeLeft | Tok::PipeRight))))
        }
    }
}

/// Where and how the hand-written parser found the input wrong, in the
/// words of C++ Nix's parser: the token it did not expect (`None`: the end
/// of the input) and, where C++ Nix names them, the tokens it expected.
#[derive(Debug, Clone, Copy)]
pub struct SyntaxError {
    pub token: Option<Token>,
    pub expecting: &'static [&'static str],
    /// rnix accepts this input, C++ Nix does not (an indented string as
    /// an attribute name): the error stands without asking rnix.
    pub rnix_lax: bool,
}

impl SyntaxError {
    /// "syntax error, unexpected …[, expecting … or …]".
    pub fn message(&self) -> String {
        let mut m = format!("syntax error, unexpected {}", self.token.map_or("end of file", describe));
        for (i, e) in self.expecting.iter().enumerate() {
            m.push_str(if i == 0 { ", expecting " } else { " or " });
            m.push_str(e);
        }
        m
    }
}

/// A token as C++ Nix's grammar names it.
fn describe(t: Token) -> &'static str {
    match t.kind {
        Tok::Ident => "identifier",
        Tok::Or => "'or'",
        Tok::Assert => "'assert'",
        Tok::Else => "'else'",
        Tok::If => "'if'",
        Tok::In => "'in'",
        Tok::Inherit => "'inherit'",
        Tok::Let => "'let'",
        Tok::Rec => "'rec'",
        Tok::Then => "'then'",
        Tok::With => "'with'",
        Tok::Int => "integer",
        Tok::Float => "floating-point literal",
        Tok::Uri => "URI",
        Tok::PathAbs | Tok::PathRel => "path",
        Tok::PathHome => "'~/…' path",
        Tok::PathSearch => "'<…>' path",
        Tok::StrStart if two_quotes(t) => "start of an indented string",
        Tok::StrStart => "'\"'",
        Tok::StrContent => "string",
        Tok::StrEnd if two_quotes(t) => "end of an indented string",
        Tok::StrEnd => "'\"'",
        Tok::InterpStart => "'${'",
        Tok::InterpEnd | Tok::RBrace => "'}'",
        Tok::LBrace => "'{'",
        Tok::LBrack => "'['",
        Tok::RBrack => "']'",
        Tok::LParen => "'('",
        Tok::RParen => "')'",
        Tok::At => "'@'",
        Tok::Colon => "':'",
        Tok::Comma => "','",
        Tok::Dot => "'.'",
        Tok::Ellipsis => "'...'",
        Tok::Assign => "'='",
        Tok::Question => "'?'",
        Tok::Semi => "';'",
        Tok::Concat => "'++'",
        Tok::Impl => "'->'",
        Tok::Update => "'//'",
        Tok::Add => "'+'",
        Tok::Sub => "'-'",
        Tok::Mul => "'*'",
        Tok::Div => "'/'",
        Tok::Eq => "'=='",
        Tok::Neq => "'!='",
        Tok::Not => "'!'",
        Tok::Lt => "'<'",
        Tok::Le => "'<='",
        Tok::Gt => "'>'",
        Tok::Ge => "'>='",
        Tok::And => "'&&'",
        Tok::OrOr => "'||'",
        Tok::PipeLeft => "'<|'",
        Tok::PipeRight => "'|>'",
        Tok::Invalid => "invalid token",
    }
}

/// Whether a string token is `''` (an indented string's start or end).
fn two_quotes(t: Token) -> bool {
    t.end - t.start == 2
}

/// What C++ Nix expects where an attribute name must come (after `.`, `?`).
const ATTR_NAME: &[&str] = &["identifier", "'or'", "'${'", "'\"'"];

fn is_fn_arg(t: Tok) -> bool {
    matches!(
        t,
        Tok::Rec
            | Tok::LBrace
            | Tok::LBrack
            | Tok::LParen
            | Tok::StrStart
            | Tok::Ident
            | Tok::Int
            | Tok::Float
            | Tok::PathAbs
            | Tok::PathRel
            | Tok::PathHome
            | Tok::PathSearch
            | Tok::Uri
    )
}

impl Parser<'_> {
    #[inline]
    fn peek(&self) -> Option<Tok> {
        self.toks.get(self.i).map(|t| t.kind)
    }
    #[inline]
    fn peek_at(&self, n: usize) -> Option<Tok> {
        self.toks.get(self.i + n).map(|t| t.kind)
    }
    #[inline]
    fn bump(&mut self) -> Token {
        let t = self.toks[self.i];
        self.i += 1;
        self.prev_end = t.end;
        t
    }
    /// `k` next, or a failure at the next token, which C++ Nix's parser
    /// words as expecting `expecting`.
    #[inline]
    fn expect(&mut self, k: Tok, expecting: &'static [&'static str]) -> R<Token> {
        if self.peek() == Some(k) { Ok(self.bump()) } else { self.fail(expecting) }
    }
    #[inline]
    fn start(&mut self) -> R<u32> {
        match self.toks.get(self.i) {
            Some(t) => Ok(t.start),
            None => self.fail(&[]),
        }
    }
    /// Give up at the next token; the first failure is the one reported.
    #[cold]
    fn fail<T>(&mut self, expecting: &'static [&'static str]) -> R<T> {
        if self.failed.is_none() {
            self.failed = Some((self.i, expecting));
        }
        Err(Bail)
    }

    fn take_scratch(&mut self, from: usize) -> Range {
        let start = self.ast.ids.len() as u32;
        self.ast.ids.extend_from_slice(&self.scratch[from..]);
        self.scratch.truncate(from);
        Range { start, len: self.ast.ids.len() as u32 - start }
    }

    fn take_attrs(&mut self, from: usize) -> Range {
        let start = self.ast.attrs.len() as u32;
        self.ast.attrs.extend_from_slice(&self.attr_scratch[from..]);
        self.attr_scratch.truncate(from);
        Range { start, len: self.ast.attrs.len() as u32 - start }
    }

    fn expr(&mut self) -> R<NodeId> {
        if self.depth >= MAX_NESTING {
            return Err(Bail); // (rnix says it is nested too deeply)
        }
        self.depth += 1;
        let r = stacker::maybe_grow(64 * 1024, 1024 * 1024, || self.expr_inner());
        self.depth -= 1;
        r
    }

    fn expr_inner(&mut self) -> R<NodeId> {
        let start = self.start()?;
        match self.peek() {
            Some(Tok::Let) => {
                self.bump();
                if self.peek() == Some(Tok::LBrace) {
                    self.bump();
                    let entries = self.set(Tok::RBrace)?;
                    Ok(self.ast.add(NodeKind::LegacyLet { entries }, start, self.prev_end))
                } else {
                    let entries = self.set(Tok::In)?;
                    let body = self.expr()?;
                    Ok(self.ast.add(NodeKind::LetIn { entries, body }, start, self.prev_end))
                }
            }
            Some(Tok::With) => {
                self.bump();
                let ns = self.expr()?;
                self.expect(Tok::Semi, &["';'"])?;
                let body = self.expr()?;
                Ok(self.ast.add(NodeKind::With { ns, body }, start, self.prev_end))
            }
            Some(Tok::If) => {
                self.bump();
                let cond = self.expr()?;
                self.expect(Tok::Then, &["'then'"])?;
                let then = self.expr()?;
                self.expect(Tok::Else, &["'else'"])?;
                let else_ = self.expr()?;
                Ok(self.ast.add(NodeKind::If { cond, then, else_ }, start, self.prev_end))
            }
            Some(Tok::Assert) => {
                self.bump();
                let cond = self.expr()?;
                self.expect(Tok::Semi, &["';'"])?;
                let body = self.expr()?;
                Ok(self.ast.add(NodeKind::Assert { cond, body }, start, self.prev_end))
            }
            _ => self.implication(),
        }
    }

    /// Entries of a set / let up to `until` (consumed).
    fn set(&mut self, until: Tok) -> R<Range> {
        let mut list: smallvec::SmallVec<[Entry; 8]> = smallvec::SmallVec::new();
        // what C++ Nix's parser says it expects where a binding cannot start:
        // having taken the bindings so far as complete, only `inherit` (or,
        // in a `let`, `in`)
        let binding: &'static [&'static str] = if until == Tok::In { &["'in'", "'inherit'"] } else { &["'inherit'"] };
        loop {
            match self.peek() {
                None => return self.fail(binding),
                Some(t) if t == until => break,
                Some(Tok::Inherit) => {
                    self.bump();
                    let from = if self.peek() == Some(Tok::LParen) {
                        self.bump();
                        let e = self.expr()?;
                        self.expect(Tok::RParen, &["')'"])?;
                        Some(e)
                    } else {
                        None
                    };
                    let mark = self.attr_scratch.len();
                    loop {
                        match self.peek() {
                            Some(Tok::Semi) => break,
                            Some(_) => {
                                let a = self.attr(&[])?;
                                self.attr_scratch.push(a);
                            }
                            None => return self.fail(&[]),
                        }
                    }
                    self.bump();
                    let attrs = self.take_attrs(mark);
                    list.push(Entry::Inherit { from, attrs });
                }
                Some(_) => {
                    let path = self.attrpath(binding)?;
                    self.expect(Tok::Assign, &["'.'", "'='"])?;
                    let value = self.expr()?;
                    self.expect(Tok::Semi, &["';'"])?;
                    list.push(Entry::Value { path, value });
                }
            }
        }
        self.bump();
        let start = self.ast.entries.len() as u32;
        self.ast.entries.extend_from_slice(&list);
        Ok(Range { start, len: list.len() as u32 })
    }

    /// An attribute name; if there is none, a failure expecting `expecting`.
    fn attr(&mut self, expecting: &'static [&'static str]) -> R<Attr> {
        match self.peek() {
            Some(Tok::InterpStart) => {
                let start = self.bump().start;
                let e = self.expr()?;
                self.expect(Tok::InterpEnd, &["'}'"])?;
                Ok(Attr::Dynamic { e, start })
            }
            // an indented string is no attribute name in C++ Nix (rnix
            // takes it)
            Some(Tok::StrStart) if two_quotes(self.toks[self.i]) => {
                self.rnix_lax = true;
                self.fail(expecting)
            }
            Some(Tok::StrStart) => Ok(Attr::Str(self.string()?)),
            Some(Tok::Ident | Tok::Or) => {
                let t = self.bump();
                Ok(Attr::Ident { start: t.start, end: t.end })
            }
            _ => self.fail(expecting),
        }
    }

    /// An attribute path; if it does not start with a name, a failure
    /// expecting `first` (after a `.`, one expecting any name).
    fn attrpath(&mut self, first: &'static [&'static str]) -> R<Range> {
        let mark = self.attr_scratch.len();
        let mut expecting = first;
        loop {
            let a = self.attr(expecting)?;
            expecting = ATTR_NAME;
            self.attr_scratch.push(a);
            if self.peek() == Some(Tok::Dot) {
                self.bump();
            } else {
                break;
            }
        }
        Ok(self.take_attrs(mark))
    }

    fn string(&mut self) -> R<NodeId> {
        let st = self.expect(Tok::StrStart, &[])?;
        let multiline = two_quotes(st);
        let mut parts: smallvec::SmallVec<[Part; 8]> = smallvec::SmallVec::new();
        loop {
            match self.peek() {
                Some(Tok::StrContent) => {
                    let t = self.bump();
                    parts.push(Part::Lit { start: t.start, end: t.end });
                }
                Some(Tok::InterpStart) => {
                    let start = self.bump().start;
                    let e = self.expr()?;
                    self.expect(Tok::InterpEnd, &["'}'"])?;
                    parts.push(Part::Interp { e, start });
                }
                Some(Tok::StrEnd) => {
                    self.bump();
                    break;
                }
                // what C++ Nix's parser expects when the input ends inside
                None if multiline => return self.fail(&["indented string", "'${'", "end of an indented string"]),
                None => return self.fail(&["'\"'"]),
                _ => return self.fail(&[]),
            }
        }
        let start = self.ast.parts.len() as u32;
        self.ast.parts.extend_from_slice(&parts);
        let parts = Range { start, len: parts.len() as u32 };
        Ok(self.ast.add(NodeKind::Str { multiline, parts }, st.start, self.prev_end))
    }

    fn pattern(&mut self, bound: bool) -> R<PatternParts> {
        let mut list: smallvec::SmallVec<[PatEntry; 8]> = smallvec::SmallVec::new();
        let mut ellipsis = false;
        match self.peek() {
            Some(Tok::RBrace) => {
                self.bump();
            }
            None => return self.fail(&[]),
            Some(_) => loop {
                match self.peek() {
                    Some(Tok::RBrace) => {
                        self.bump();
                        break;
                    }
                    Some(Tok::Ellipsis) => {
                        self.bump();
                        ellipsis = true;
                        self.expect(Tok::RBrace, &["'}'"])?;
                        break;
                    }
                    Some(Tok::Ident) => {
                        let t = self.bump();
                        let default = if self.peek() == Some(Tok::Question) {
                            self.bump();
                            Some(self.expr()?)
                        } else {
                            None
                        };
                        list.push(PatEntry { name_start: t.start, name_end: t.end, default });
                        if self.peek() == Some(Tok::Comma) {
                            self.bump();
                        } else {
                            self.expect(Tok::RBrace, &["'}'", "','"])?;
                            break;
                        }
                    }
                    _ => return self.fail(&["identifier", "'...'"]),
                }
            },
        }
        let mut at = None;
        if self.peek() == Some(Tok::At) {
            if bound {
                return self.fail(&[]);
            }
            let a = self.bump().start;
            let t = self.expect(Tok::Ident, &["identifier"])?;
            at = Some((t.start, t.end, a));
        }
        let start = self.ast.pat_entries.len() as u32;
        self.ast.pat_entries.extend_from_slice(&list);
        Ok((Range { start, len: list.len() as u32 }, ellipsis, at))
    }

    fn simple(&mut self) -> R<NodeId> {
        stacker::maybe_grow(64 * 1024, 1024 * 1024, || self.simple_inner())
    }

    fn simple_inner(&mut self) -> R<NodeId> {
        let Some(&tok) = self.toks.get(self.i) else { return self.fail(&[]) };
        let start = tok.start;
        let node = match tok.kind {
            Tok::LParen => {
                self.bump();
                let inner = self.expr()?;
                self.expect(Tok::RParen, &["')'"])?;
                self.ast.add(NodeKind::Paren(inner), start, self.prev_end)
            }
            Tok::Rec => {
                self.bump();
                self.expect(Tok::LBrace, &["'{'"])?;
                let entries = self.set(Tok::RBrace)?;
                self.ast.add(NodeKind::AttrSet { rec: true, entries }, start, self.prev_end)
            }
            Tok::LBrace => {
                let is_pattern = matches!(
                    (self.peek_at(1), self.peek_at(2)),
                    (Some(Tok::Ident), Some(Tok::Comma | Tok::Question | Tok::RBrace))
                        | (Some(Tok::Ellipsis), Some(Tok::RBrace))
                        | (Some(Tok::RBrace), Some(Tok::Colon | Tok::At))
                );
                self.bump();
                if is_pattern {
                    let (entries, ellipsis, at) = self.pattern(false)?;
                    self.expect(Tok::Colon, &["':'", "'@'"])?;
                    let body = self.expr()?;
                    self.ast.patterns.push(Pattern { entries, ellipsis, at });
                    let pat = (self.ast.patterns.len() - 1) as u32;
                    self.ast.add(NodeKind::LambdaPat { pat, body }, start, self.prev_end)
                } else {
                    let entries = self.set(Tok::RBrace)?;
                    self.ast.add(NodeKind::AttrSet { rec: false, entries }, start, self.prev_end)
                }
            }
            Tok::LBrack => {
                self.bump();
                let mark = self.scratch.len();
                loop {
                    match self.peek() {
                        Some(Tok::RBrack) => break,
                        None => return self.fail(&[]),
                        Some(_) => {
                            let e = self.simple()?;
                            self.scratch.push(e);
                        }
                    }
                }
                self.bump();
                let items = self.take_scratch(mark);
                self.ast.add(NodeKind::List(items), start, self.prev_end)
            }
            Tok::StrStart => self.string()?,
            Tok::PathAbs | Tok::PathRel | Tok::PathHome => {
                let kind = match tok.kind {
                    Tok::PathAbs => PathKind::Abs,
                    Tok::PathRel => PathKind::Rel,
                    _ => PathKind::Home,
                };
                self.bump();
                let mut parts: smallvec::SmallVec<[Part; 4]> = smallvec::SmallVec::new();
                parts.push(Part::Lit { start: tok.start, end: tok.end });
                if self.peek() == Some(Tok::InterpStart) {
                    while let Some(&t) = self.toks.get(self.i) {
                        if t.start != self.prev_end {
                            break;
                        }
                        match t.kind {
                            Tok::PathAbs | Tok::PathRel | Tok::PathHome => {
                                self.bump();
                                parts.push(Part::Lit { start: t.start, end: t.end });
                            }
                            Tok::InterpStart => {
                                self.bump();
                                let e = self.expr()?;
                                self.expect(Tok::InterpEnd, &["'}'"])?;
                                parts.push(Part::Interp { e, start: t.start });
                            }
                            _ => break,
                        }
                    }
                }
                let ps = self.ast.parts.len() as u32;
                self.ast.parts.extend_from_slice(&parts);
                let parts = Range { start: ps, len: parts.len() as u32 };
                self.ast.add(NodeKind::Path { kind, parts }, start, self.prev_end)
            }
            Tok::PathSearch => {
                self.bump();
                self.ast.add(NodeKind::SearchPath, start, tok.end)
            }
            Tok::Int | Tok::Float | Tok::Uri => {
                self.bump();
                let k = match tok.kind {
                    Tok::Int => NodeKind::Int,
                    Tok::Float => NodeKind::Float,
                    _ => NodeKind::Uri,
                };
                self.ast.add(k, start, tok.end)
            }
            Tok::Ident => match self.peek_at(1) {
                Some(Tok::Colon) => {
                    self.bump();
                    self.bump();
                    let body = self.expr()?;
                    self.ast.add(
                        NodeKind::LambdaIdent { name_start: tok.start, name_end: tok.end, body },
                        start,
                        self.prev_end,
                    )
                }
                Some(Tok::At) => {
                    self.bump();
                    self.bump();
                    self.expect(Tok::LBrace, &["'{'"])?;
                    let (entries, ellipsis, _) = self.pattern(true)?;
                    self.expect(Tok::Colon, &["':'"])?;
                    let body = self.expr()?;
                    self.ast.patterns.push(Pattern { entries, ellipsis, at: Some((tok.start, tok.end, tok.start)) });
                    let pat = (self.ast.patterns.len() - 1) as u32;
                    self.ast.add(NodeKind::LambdaPat { pat, body }, start, self.prev_end)
                }
                _ => {
                    self.bump();
                    self.ast.add(NodeKind::Ident, start, tok.end)
                }
            },
            _ => return self.fail(&[]),
        };
        match self.peek() {
            Some(Tok::Dot) => {
                self.bump();
                let path = self.attrpath(ATTR_NAME)?;
                let default = if self.peek() == Some(Tok::Or) {
                    self.bump();
                    Some(self.simple()?)
                } else {
                    None
                };
                Ok(self.ast.add(NodeKind::Select { e: node, path, default }, start, self.prev_end))
            }
            Some(Tok::Or) => {
                // rnix (like Nix) reads `e or` as applying `e` to a variable
                // named `or`, as one argument of any enclosing application.
                let t = self.bump();
                let or = self.ast.add(NodeKind::Ident, t.start, t.end);
                self.scratch.push(or);
                let args = self.take_scratch(self.scratch.len() - 1);
                Ok(self.ast.add(NodeKind::Apply { f: node, args }, start, t.end))
            }
            _ => Ok(node),
        }
    }

    fn app(&mut self) -> R<NodeId> {
        let mut f = self.simple()?;
        if !self.peek().is_some_and(is_fn_arg) {
            return Ok(f);
        }
        let mark = self.scratch.len();
        // rnix nests applications to the left and the lowering flattens the
        // nesting, so `f or a` is `f` applied to `or` and `a`.
        if let NodeKind::Apply { f: inner, args } = self.ast.node(f).kind {
            for i in args.iter() {
                self.scratch.push(self.ast.ids[i]);
            }
            f = inner;
        }
        while self.peek().is_some_and(is_fn_arg) {
            let a = self.simple()?;
            self.scratch.push(a);
        }
        let args = self.take_scratch(mark);
        let start = self.ast.node(f).start;
        Ok(self.ast.add(NodeKind::Apply { f, args }, start, self.prev_end))
    }

    /// A prefix operator level: `tok` then this level again (as `node`),
    /// or the `next` level.
    #[inline(always)]
    fn prefix(
        &mut self,
        tok: Tok,
        node: fn(NodeId) -> NodeKind,
        this: fn(&mut Self) -> R<NodeId>,
        next: fn(&mut Self) -> R<NodeId>,
    ) -> R<NodeId> {
        if self.peek() != Some(tok) {
            return next(self);
        }
        let start = self.bump().start;
        let inner = stacker::maybe_grow(64 * 1024, 1024 * 1024, || this(self))?;
        Ok(self.ast.add(node(inner), start, self.prev_end))
    }

    fn negate(&mut self) -> R<NodeId> {
        self.prefix(Tok::Sub, NodeKind::Neg, Self::negate, Self::app)
    }

    fn hasattr(&mut self) -> R<NodeId> {
        let mut e = self.negate()?;
        let start = self.ast.node(e).start;
        while self.peek() == Some(Tok::Question) {
            self.bump();
            let path = self.attrpath(ATTR_NAME)?;
            e = self.ast.add(NodeKind::HasAttr { e, path }, start, self.prev_end);
        }
        Ok(e)
    }

    fn bin(&mut self, op: BinOp, l: NodeId, r: NodeId, op_pos: u32) -> NodeId {
        let start = self.ast.node(l).start;
        self.ast.add(NodeKind::Bin { op, l, r, op_pos }, start, self.prev_end)
    }

    /// One binary precedence level: operands from `next`, operators `ops`,
    /// associativity `assoc` (a right operand of a right-associative level
    /// is `this` level again).
    #[inline(always)]
    fn level(
        &mut self,
        next: fn(&mut Self) -> R<NodeId>,
        this: fn(&mut Self) -> R<NodeId>,
        ops: &[BinOp],
        assoc: Assoc,
    ) -> R<NodeId> {
        let mut l = next(self)?;
        while let Some(op) = self.peek().and_then(bin_op).filter(|op| ops.contains(op)) {
            let pos = self.bump().start;
            let r = match assoc {
                Assoc::Right => stacker::maybe_grow(64 * 1024, 1024 * 1024, || this(self))?,
                Assoc::Left | Assoc::None => next(self)?,
            };
            l = self.bin(op, l, r, pos);
            if assoc != Assoc::Left {
                break;
            }
        }
        Ok(l)
    }

    fn concat(&mut self) -> R<NodeId> {
        self.level(Self::hasattr, Self::concat, &[BinOp::Concat], Assoc::Right)
    }

    fn mul(&mut self) -> R<NodeId> {
        self.level(Self::concat, Self::mul, &[BinOp::Mul, BinOp::Div], Assoc::Left)
    }

    fn add(&mut self) -> R<NodeId> {
        self.level(Self::mul, Self::add, &[BinOp::Add, BinOp::Sub], Assoc::Left)
    }

    fn invert(&mut self) -> R<NodeId> {
        self.prefix(Tok::Not, NodeKind::Not, Self::invert, Self::add)
    }

    fn merge(&mut self) -> R<NodeId> {
        self.level(Self::invert, Self::merge, &[BinOp::Update], Assoc::Right)
    }

    fn compare(&mut self) -> R<NodeId> {
        self.level(Self::merge, Self::compare, &[BinOp::Lt, BinOp::Le, BinOp::Gt, BinOp::Ge], Assoc::None)
    }

    fn equal(&mut self) -> R<NodeId> {
        self.level(Self::compare, Self::equal, &[BinOp::Eq, BinOp::Neq], Assoc::None)
    }

    fn and(&mut self) -> R<NodeId> {
        self.level(Self::equal, Self::and, &[BinOp::And], Assoc::Left)
    }

    fn or(&mut self) -> R<NodeId> {
        self.level(Self::and, Self::or, &[BinOp::Or], Assoc::Left)
    }

    fn implication(&mut self) -> R<NodeId> {
        self.level(Self::or, Self::implication, &[BinOp::Impl], Assoc::Right)
    }
}

/// The binary operator a token stands for.
fn bin_op(t: Tok) -> Option<BinOp> {
    Some(match t {
        Tok::Concat => BinOp::Concat,
        Tok::Mul => BinOp::Mul,
        Tok::Div => BinOp::Div,
        Tok::Add => BinOp::Add,
        Tok::Sub => BinOp::Sub,
        Tok::Update => BinOp::Update,
        Tok::Lt => BinOp::Lt,
        Tok::Le => BinOp::Le,
        Tok::Gt => BinOp::Gt,
        Tok::Ge => BinOp::Ge,
        Tok::Eq => BinOp::Eq,
        Tok::Neq => BinOp::Neq,
        Tok::And => BinOp::And,
        Tok::OrOr => BinOp::Or,
        Tok::Impl => BinOp::Impl,
        _ => return None,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Assoc {
    Left,
    Right,
    /// At most one operator (`a < b < c` is an error).
    None,
}
