//! The lowered program: variables resolved to (depth, slot), names interned,
//! literal attribute sets pre-sorted. IR nodes live for the whole process
//! (files are lowered once and never freed, like C++ Nix's AST).

use crate::symbol::Symbol;
use crate::value::Value;

/// A source position: file id (see [`crate::source`]) and byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub file: u32,
    pub offset: u32,
}

impl Span {
    pub const NONE: Span = Span { file: u32::MAX, offset: 0 };
    pub fn is_none(self) -> bool {
        self.file == u32::MAX
    }
}

/// A [`Span`] in four bytes: an offset into the space where all loaded
/// files lie end to end (see [`crate::source`]), 0 for none. Attributes
/// keep their position this way, so an [`Attr`](crate::value::Attr) is 24
/// bytes rather than 32.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Pos(u32);

impl Pos {
    pub const NONE: Pos = Pos(0);
    pub fn is_none(self) -> bool {
        self.0 == 0
    }
    /// The span this position stands for.
    pub fn span(self) -> Span {
        if self.0 == 0 {
            return Span::NONE;
        }
        match crate::source::locate(self.0) {
            Some((file, offset)) => Span { file, offset },
            None => Span::NONE,
        }
    }
}

impl From<Span> for Pos {
    fn from(s: Span) -> Pos {
        if s.is_none() { Pos::NONE } else { Pos(crate::source::global(s.file, s.offset)) }
    }
}

impl From<Pos> for Span {
    fn from(p: Pos) -> Span {
        p.span()
    }
}

impl std::fmt::Debug for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.span())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Eq,
    Neq,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Impl,
    Update,
    Concat,
}

pub enum AttrName {
    /// A name, with where it was found the last time this selection ran.
    Static(Symbol, Hint),
    /// `${e}`: the expression, its position and how C++ Nix shows it in
    /// attribute paths (`"${e}"`).
    /// Boxed: a path's names are mostly static, which then take 16 bytes
    /// instead of the size of an expression and its text.
    Dynamic(Box<(Expr, Span, Box<str>)>),
}

impl AttrName {
    /// The name as C++ Nix's `showAttrPath` prints it.
    pub fn show(&self) -> String {
        match self {
            AttrName::Static(s, _) => s.to_string(),
            AttrName::Dynamic(d) => d.2.to_string(),
        }
    }
}

/// An inline cache for one attribute lookup site: the index at which the
/// name was found in the sorted attributes searched last time. A selection
/// like `lib.optional` runs again and again on the same set (or on sets of
/// the same shape), so checking that one slot usually replaces a binary
/// search, whose probes into a set of hundreds of attributes miss the cache
/// (the hottest function of a whole-nixpkgs walk). A stale hint only costs
/// the check: the name at the hinted index is compared before it is used.
#[derive(Default)]
pub struct Hint(std::cell::Cell<u32>);

impl Hint {
    #[inline(always)]
    pub fn get(&self) -> usize {
        self.0.get() as usize
    }
    #[inline(always)]
    pub fn set(&self, i: usize) {
        self.0.set(i as u32)
    }
}

pub struct AttrDef {
    pub name: Symbol,
    pub value: Expr,
    pub pos: Pos,
}

pub struct DynAttr {
    pub name: Expr,
    pub value: Expr,
    pub pos: Span,
}

pub struct AttrsIR {
    /// `rec { }`: values are evaluated in a new frame whose slots are the
    /// static attributes in order.
    pub rec: bool,
    /// Sorted by symbol id.
    pub attrs: Vec<AttrDef>,
    pub dynamic: Vec<DynAttr>,
    /// Sources of `inherit (e) …` in a recursive set: frame slots after
    /// the attributes.
    pub hidden: Vec<Expr>,
}

pub struct Formal {
    pub name: Symbol,
    pub default: Option<Expr>,
    pub pos: Span,
}

pub struct LambdaIR {
    pub name: Option<Symbol>,
    /// Simple `x: body` parameter name (slot 0).
    pub arg: Option<Symbol>,
    /// `{ a, b ? d, ... }` formals (slots 0..n, then the `@` name if any).
    pub formals: Option<Formals>,
    pub body: Expr,
    pub pos: Span,
}

pub struct Formals {
    /// In source order.
    pub entries: Vec<Formal>,
    pub ellipsis: bool,
    pub at: Option<Symbol>,
}

impl LambdaIR {
    pub fn frame_size(&self) -> usize {
        match &self.formals {
            Some(f) => f.entries.len() + usize::from(f.at.is_some()),
            None => 1,
        }
    }
}

pub enum StrPart {
    Lit(Box<[u8]>),
    /// An interpolated expression and where its `${` starts.
    Interp(Box<Expr>, Span),
}

const _: () = assert!(std::mem::size_of::<AttrName>() == 16);
const _: () = assert!(std::mem::size_of::<Expr>() == 40);

pub enum Expr {
    Const(Value),
    /// A variable in frame `depth` levels up, slot `slot`.
    Var { depth: u32, slot: u32 },
    /// A builtin from the base environment.
    Global(u32),
    /// A name only found through enclosing `with`s: depths of the with
    /// frames, innermost first.
    WithVar { name: Symbol, hint: Hint, withs: Box<[u32]>, pos: Span },
    Attrs(Box<AttrsIR>),
    List(Box<[Expr]>),
    Lambda(Box<LambdaIR>),
    Apply { f: Box<Expr>, args: Box<[Expr]>, pos: Span },
    /// (`pos` as a four-byte [`Pos`], read only for errors: an `Expr` stays 40 bytes.)
    Select { e: Box<Expr>, path: Box<[AttrName]>, default: Option<Box<Expr>>, pos: Pos },
    /// `e ? path`; `pos` is the position of `e`.
    HasAttr { e: Box<Expr>, path: Box<[AttrName]>, pos: Span },
    Let { binds: Box<[Expr]>, body: Box<Expr> },
    With { ns: Box<Expr>, body: Box<Expr> },
    If { cond: Box<Expr>, then: Box<Expr>, else_: Box<Expr>, pos: Span },
    Assert { cond: Box<Expr>, body: Box<Expr>, text: Box<str>, pos: Pos },
    /// `pos` is the operator's position (the expression's for `&&`, `||`,
    /// `->`, `<`, …); `lpos`/`rpos` are the operands' positions.
    /// (`lpos`, `rpos` are only read for error messages: four bytes each.)
    Bin { op: BinOp, l: Box<Expr>, r: Box<Expr>, pos: Span, lpos: Pos, rpos: Pos },
    /// `!e`; the position is `e`'s, as in C++ Nix.
    Not(Box<Expr>, Span),
    Neg(Box<Expr>, Span),
    /// String interpolation (`"a${b}"`); `path` when the first part is a path.
    Interp { parts: Box<[StrPart]>, pos: Span },
    /// A path literal with interpolation: first part is the base directory.
    PathInterp { parts: Box<[StrPart]>, pos: Span },
    /// `<name>`: looked up in the search path.
    SearchPath { path: Box<str>, pos: Span },
    CurPos(Span),
}
