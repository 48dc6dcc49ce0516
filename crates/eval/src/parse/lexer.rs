//! The lexer of the fast parser. It splits source text exactly where rnix
//! 0.15's tokenizer does (the same context stack for strings, paths and
//! interpolations, the same heuristics for paths, URIs and search paths), but
//! works on bytes, drops trivia and gives up ([`Bail`]) on anything rnix
//! would turn into an error token or that needs a Unicode decision
//! (non-ASCII text outside strings and comments). Giving up is always safe:
//! the caller then runs rnix, which gives the syntax error (or its tree).

use super::Bail;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Tok {
    Ident,
    /// `or`: a contextual keyword.
    Or,
    Assert,
    Else,
    If,
    In,
    Inherit,
    Let,
    Rec,
    Then,
    With,
    Int,
    Float,
    Uri,
    PathAbs,
    PathRel,
    PathHome,
    PathSearch,
    StrStart,
    StrContent,
    StrEnd,
    InterpStart,
    InterpEnd,
    LBrace,
    RBrace,
    LBrack,
    RBrack,
    LParen,
    RParen,
    At,
    Colon,
    Comma,
    Dot,
    Ellipsis,
    Assign,
    Question,
    Semi,
    Concat,
    Impl,
    Update,
    Add,
    Sub,
    Mul,
    Div,
    Eq,
    Neq,
    Not,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    OrOr,
    PipeLeft,
    PipeRight,
    /// Not made by the lexer: where it gave up on a character that starts
    /// no token (C++ Nix's "invalid token"), for the parser's error.
    Invalid,
}

#[derive(Clone, Copy, Debug)]
pub struct Token {
    pub kind: Tok,
    pub start: u32,
    pub end: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    StrBody { multiline: bool },
    StrEnd,
    Interp { brackets: u32 },
    InterpStart,
    Path(Tok),
}

/// Character classes, one bit each, looked up in [`CLASS`].
const PATH: u8 = 1;
const URI: u8 = 2;
const WS: u8 = 4;
const IDENT: u8 = 8;
/// A path character other than `/`.
const PSEG: u8 = 16;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alnum = b.is_ascii_alphanumeric();
        let path = alnum || matches!(b, b'/' | b'_' | b'.' | b'+' | b'-');
        let uri = path || matches!(b, b'%' | b'?' | b':' | b'@' | b'&' | b'=' | b'$' | b',' | b'!' | b'~' | b'*' | b'\'');
        let ws = matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
        let ident = alnum || matches!(b, b'_' | b'-' | b'\'');
        let pseg = path && b != b'/';
        t[c] = ((path as u8) * PATH) | ((uri as u8) * URI) | ((ws as u8) * WS) | ((ident as u8) * IDENT) | ((pseg as u8) * PSEG);
        c += 1;
    }
    t
};

#[inline]
fn is(c: u8, class: u8) -> bool {
    CLASS[c as usize] & class != 0
}

fn is_path_char(c: u8) -> bool {
    is(c, PATH)
}

fn is_uri_char(c: u8) -> bool {
    is(c, URI)
}

fn is_ws(c: u8) -> bool {
    is(c, WS)
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
    ctx: Vec<Ctx>,
}

/// Tokenize `src`, trivia left out.
pub fn lex(src: &str) -> Result<Vec<Token>, Bail> {
    lex_upto_failure(src).map_err(|_| Bail)
}

/// [`lex`], or where it gives up: the tokens before that point and the
/// offset of the token it could not read (the end of `src` when an
/// unfinished string or comment ran into it).
pub fn lex_upto_failure(src: &str) -> Result<Vec<Token>, (Vec<Token>, usize)> {
    if src.len() >= u32::MAX as usize {
        return Err((Vec::new(), 0));
    }
    let mut lx = Lexer { s: src.as_bytes(), pos: 0, ctx: Vec::new() };
    let mut out = Vec::with_capacity(src.len() / 4);
    loop {
        let start = lx.pos;
        match lx.next_token() {
            Err(Bail) => {
                super::note_bail(lx.pos);
                // a string's body fails only by running into the end
                let in_string = matches!(lx.ctx.last(), Some(Ctx::StrBody { .. }));
                let at = if in_string || lx.pos >= src.len() { src.len() } else { start };
                return Err((out, at));
            }
            Ok(None) => return Ok(out),
            Ok(Some(None)) => {}
            Ok(Some(Some(kind))) => out.push(Token { kind, start: start as u32, end: lx.pos as u32 }),
        }
    }
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }
    fn peek_at(&self, n: usize) -> Option<u8> {
        self.s.get(self.pos + n).copied()
    }
    fn rest(&self) -> &[u8] {
        &self.s[self.pos..]
    }
    fn consume(&mut self, f: impl Fn(u8) -> bool) -> usize {
        let start = self.pos;
        while self.pos < self.s.len() && f(self.s[self.pos]) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// The body of a string up to its end or the next `${`.
    fn string(&mut self, multiline: bool) -> Result<Tok, Bail> {
        loop {
            // Only `"`, `\\`, `'` and `$` matter; skip to the next one.
            let rest = self.rest();
            let skip = if multiline { memchr::memchr2(b'\'', b'$', rest) } else { memchr::memchr3(b'"', b'\\', b'$', rest) };
            self.pos += skip.ok_or(Bail)?;
            let start = self.pos;
            let Some(c) = self.peek() else { return Err(Bail) };
            self.pos += 1;
            match c {
                b'"' if !multiline => {
                    self.pos = start;
                    self.ctx.pop();
                    self.ctx.push(Ctx::StrEnd);
                    return Ok(Tok::StrContent);
                }
                b'\\' if !multiline => {
                    if self.peek().is_none() {
                        return Err(Bail);
                    }
                    self.pos += 1;
                }
                b'\'' if multiline => match self.peek() {
                    None => return Err(Bail),
                    Some(b'\'') => {
                        self.pos += 1;
                        match self.peek() {
                            Some(b'\'') | Some(b'$') => self.pos += 1,
                            Some(b'\\') => {
                                self.pos += 1;
                                if self.peek().is_none() {
                                    return Err(Bail);
                                }
                                self.pos += 1;
                            }
                            _ => {
                                self.pos = start;
                                self.ctx.pop();
                                self.ctx.push(Ctx::StrEnd);
                                return Ok(Tok::StrContent);
                            }
                        }
                    }
                    Some(_) => {}
                },
                b'$' => match self.peek() {
                    Some(b'$') => self.pos += 1,
                    Some(b'{') => {
                        self.pos = start;
                        self.ctx.push(Ctx::InterpStart);
                        return Ok(Tok::StrContent);
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }

    fn check_path_since(&mut self, start: usize, kind: Tok) -> Result<Tok, Bail> {
        self.consume(is_path_char);
        let text = &self.s[start..self.pos];
        if self.rest().starts_with(b"${") {
            self.ctx.push(Ctx::InterpStart);
        } else if text.ends_with(b"/") || text.windows(2).any(|w| w == b"//") {
            return Err(Bail);
        } else {
            self.ctx.pop();
        }
        Ok(kind)
    }

    /// `Ok(None)`: end of input; `Ok(Some(None))`: trivia or an empty piece.
    fn next_token(&mut self) -> Result<Option<Option<Tok>>, Bail> {
        let start = self.pos;
        loop {
            match self.ctx.last().copied() {
                Some(Ctx::InterpStart) => {
                    self.ctx.pop();
                    self.ctx.push(Ctx::Interp { brackets: 0 });
                    debug_assert!(self.rest().starts_with(b"${"));
                    self.pos += 2;
                    return Ok(Some(Some(Tok::InterpStart)));
                }
                Some(Ctx::Path(kind)) => {
                    if kind == Tok::PathSearch {
                        if self.peek().is_some_and(is_path_char) {
                            return Ok(Some(Some(self.check_path_since(start, kind)?)));
                        }
                        self.ctx.pop();
                    } else if self.rest().starts_with(b"${") {
                        self.pos += 2;
                        self.ctx.push(Ctx::Interp { brackets: 0 });
                        return Ok(Some(Some(Tok::InterpStart)));
                    } else if self.peek().is_some_and(is_path_char) {
                        return Ok(Some(Some(self.check_path_since(start, kind)?)));
                    } else {
                        self.ctx.pop();
                    }
                }
                Some(Ctx::StrBody { multiline }) => {
                    let t = self.string(multiline)?;
                    if self.pos == start {
                        continue;
                    }
                    return Ok(Some(Some(t)));
                }
                Some(Ctx::StrEnd) => {
                    self.ctx.pop();
                    let ok = match self.peek() {
                        Some(b'"') => {
                            self.pos += 1;
                            true
                        }
                        Some(b'\'') => {
                            self.pos += 1;
                            if self.peek() == Some(b'\'') {
                                self.pos += 1;
                                true
                            } else {
                                false
                            }
                        }
                        _ => false,
                    };
                    return if ok { Ok(Some(Some(Tok::StrEnd))) } else { Err(Bail) };
                }
                _ => {}
            }
            break;
        }

        let Some(c0) = self.peek() else { return Ok(None) };
        if c0 >= 0x80 {
            // Unicode whitespace and friends: leave it to rnix.
            return Err(Bail);
        }
        if self.consume(is_ws) > 0 {
            return Ok(Some(None));
        }
        if c0 == b'#' {
            self.pos = memchr::memchr(b'\n', self.rest()).map_or(self.s.len(), |k| self.pos + k);
            return Ok(Some(None));
        }
        if self.rest().starts_with(b"/*") {
            self.pos += 2;
            loop {
                self.pos = memchr::memchr(b'*', self.rest()).map_or(self.s.len(), |k| self.pos + k + 1);
                match self.peek() {
                    None => return Err(Bail),
                    Some(b'/') => {
                        self.pos += 1;
                        return Ok(Some(None));
                    }
                    _ => {}
                }
            }
        }
        if self.rest().starts_with(b"...") {
            self.pos += 3;
            return Ok(Some(Some(Tok::Ellipsis)));
        }

        #[derive(PartialEq)]
        enum K {
            Abs,
            Rel,
            Home,
            Search,
            Uri,
        }
        let kind = if c0 == b'/' {
            if self.rest().starts_with(b"//") {
                None
            } else if self.rest().starts_with(b"/${") {
                Some(K::Abs)
            } else {
                match self.peek_at(1) {
                    Some(c) if is_path_char(c) && c != b'*' => Some(K::Abs),
                    Some(c) if c >= 0x80 => return Err(Bail),
                    _ => None,
                }
            }
        } else if c0 == b'~' && self.peek_at(1) == Some(b'/') {
            Some(K::Home)
        } else {
            let store = c0 == b'<';
            let rest = self.rest();
            let mut n = 0;
            if store {
                while n < rest.len() && (matches!(rest[n], b'<' | b'/') || is_path_char(rest[n])) {
                    n += 1;
                }
            } else {
                while n < rest.len() && is(rest[n], PSEG) {
                    n += 1;
                }
            }
            // Only a URI needs it, so it is looked for only then.
            let underscore = || memchr::memchr(b'_', &rest[..n]).is_some();
            let a = rest.get(n).copied();
            let b = rest.get(n + 1).copied();
            if a == Some(b'/') && b.is_some_and(|c| c >= 0x80) {
                // rnix asks whether that character is Unicode whitespace.
                return Err(Bail);
            }
            match (a, b) {
                (Some(b'/'), Some(b'/')) => None,
                (Some(b'/'), Some(b'*')) => None,
                (Some(b'/'), Some(c)) if !is_ws(c) => Some(K::Rel),
                (Some(b'>'), _) => Some(K::Search),
                (Some(b':'), Some(c)) if is_uri_char(c) && !underscore() => Some(K::Uri),
                _ => None,
            }
        };

        self.pos += 1;
        let c = c0;
        if c == b'/' && self.peek() == Some(b'/') {
            self.pos += 1;
            return Ok(Some(Some(Tok::Update)));
        }
        if c == b'~' || matches!(kind, Some(K::Abs | K::Rel)) || (c == b'/' && self.peek().is_some_and(is_path_char)) {
            let kind = if c == b'~' {
                if self.peek() != Some(b'/') {
                    return Err(Bail);
                }
                self.pos += 1;
                Tok::PathHome
            } else if c == b'/' {
                Tok::PathAbs
            } else {
                Tok::PathRel
            };
            self.ctx.push(Ctx::Path(kind));
            return Ok(Some(Some(self.check_path_since(start, kind)?)));
        }
        let p = self.peek();
        let two = |lx: &mut Self, t: Tok| {
            lx.pos += 1;
            Ok(Some(Some(t)))
        };
        let t = match c {
            b'=' if p == Some(b'=') => return two(self, Tok::Eq),
            b'!' if p == Some(b'=') => return two(self, Tok::Neq),
            b'!' => Tok::Not,
            b'{' => {
                if let Some(Ctx::Interp { brackets }) = self.ctx.last_mut() {
                    *brackets += 1;
                }
                Tok::LBrace
            }
            b'}' => {
                if let Some(Ctx::Interp { brackets }) = self.ctx.last_mut() {
                    match brackets.checked_sub(1) {
                        Some(n) => *brackets = n,
                        None => {
                            self.ctx.pop();
                            return Ok(Some(Some(Tok::InterpEnd)));
                        }
                    }
                }
                Tok::RBrace
            }
            b'[' => Tok::LBrack,
            b']' => Tok::RBrack,
            b'@' => Tok::At,
            b':' => Tok::Colon,
            b',' => Tok::Comma,
            b'.' => {
                if p.is_some_and(|c| c.is_ascii_digit()) {
                    self.consume(|c| c.is_ascii_digit());
                    self.scientific()?
                } else {
                    Tok::Dot
                }
            }
            b'=' => Tok::Assign,
            b'?' => Tok::Question,
            b';' => Tok::Semi,
            b'(' => Tok::LParen,
            b')' => Tok::RParen,
            b'+' if p == Some(b'+') => return two(self, Tok::Concat),
            b'-' if p == Some(b'>') => return two(self, Tok::Impl),
            b'+' => Tok::Add,
            b'-' => Tok::Sub,
            b'*' => Tok::Mul,
            b'/' => Tok::Div,
            b'<' if p == Some(b'|') => return two(self, Tok::PipeLeft),
            b'<' if kind == Some(K::Search) => {
                let cs = self.pos;
                self.consume(is_path_char);
                if self.pos == cs {
                    Tok::Lt
                } else if self.peek() != Some(b'>') {
                    return Err(Bail);
                } else {
                    self.pos += 1;
                    Tok::PathSearch
                }
            }
            b'&' if p == Some(b'&') => return two(self, Tok::And),
            b'|' if p == Some(b'>') => return two(self, Tok::PipeRight),
            b'|' if p == Some(b'|') => return two(self, Tok::OrOr),
            b'<' if p == Some(b'=') => return two(self, Tok::Le),
            b'<' => Tok::Lt,
            b'>' if p == Some(b'=') => return two(self, Tok::Ge),
            b'>' => Tok::Gt,
            b'$' if p == Some(b'{') => {
                self.pos += 1;
                self.ctx.push(Ctx::Interp { brackets: 0 });
                Tok::InterpStart
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let uri = kind == Some(K::Uri);
                self.consume(|c| is(c, if uri { IDENT | URI } else { IDENT }));
                if uri {
                    Tok::Uri
                } else {
                    match &self.s[start..self.pos] {
                        b"assert" => Tok::Assert,
                        b"else" => Tok::Else,
                        b"if" => Tok::If,
                        b"in" => Tok::In,
                        b"inherit" => Tok::Inherit,
                        b"let" => Tok::Let,
                        b"or" => Tok::Or,
                        b"rec" => Tok::Rec,
                        b"then" => Tok::Then,
                        b"with" => Tok::With,
                        _ => Tok::Ident,
                    }
                }
            }
            b'"' => {
                self.ctx.push(Ctx::StrBody { multiline: false });
                Tok::StrStart
            }
            b'\'' if p == Some(b'\'') => {
                self.pos += 1;
                self.ctx.push(Ctx::StrBody { multiline: true });
                Tok::StrStart
            }
            b'0'..=b'9' => {
                if c == b'0' && p != Some(b'.') {
                    self.consume(|c| c.is_ascii_digit());
                    Tok::Int
                } else {
                    self.consume(|c| c.is_ascii_digit());
                    if self.peek() == Some(b'.') {
                        self.pos += 1;
                        self.consume(|c| c.is_ascii_digit());
                        self.scientific()?
                    } else {
                        Tok::Int
                    }
                }
            }
            _ => return Err(Bail),
        };
        Ok(Some(Some(t)))
    }

    fn scientific(&mut self) -> Result<Tok, Bail> {
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'-' | b'+')) {
                self.pos += 1;
            }
            if self.consume(|c| c.is_ascii_digit()) == 0 {
                return Err(Bail);
            }
        }
        Ok(Tok::Float)
    }
}
