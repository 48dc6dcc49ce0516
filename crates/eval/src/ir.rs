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
    /// `e` evaluated in the frame `k` levels up: set by [`trim_thunks`]
    /// where a lazily evaluated expression reads nothing from the `k`
    /// innermost frames, so its thunk (or closure) does not keep them.
    Shift { k: u32, e: Box<Expr> },
}

/// The smallest frame depth, counted from the frame `e` is evaluated in,
/// that `e` reads a variable from (`u32::MAX`: none). `level` is how many
/// frames the walk has entered below that frame.
pub fn min_free(e: &Expr, level: u32) -> u32 {
    let v = |d: u32| if d >= level { d - level } else { u32::MAX };
    let m = |a: u32, b: u32| a.min(b);
    match e {
        Expr::Const(_) | Expr::Global(_) | Expr::SearchPath { .. } | Expr::CurPos(_) => u32::MAX,
        Expr::Var { depth, .. } => v(*depth),
        Expr::WithVar { withs, .. } => withs.iter().map(|d| v(*d)).min().unwrap_or(u32::MAX),
        Expr::Attrs(a) => {
            let l = if a.rec { level + 1 } else { level };
            let mut r = u32::MAX;
            for d in &a.attrs {
                r = m(r, min_free(&d.value, l));
            }
            for d in &a.dynamic {
                r = m(r, m(min_free(&d.name, l), min_free(&d.value, l)));
            }
            for h in &a.hidden {
                r = m(r, min_free(h, l));
            }
            r
        }
        Expr::List(items) => items.iter().map(|i| min_free(i, level)).min().unwrap_or(u32::MAX),
        Expr::Lambda(l) => {
            let mut r = min_free(&l.body, level + 1);
            if let Some(f) = &l.formals {
                for x in &f.entries {
                    if let Some(d) = &x.default {
                        r = m(r, min_free(d, level + 1));
                    }
                }
            }
            r
        }
        Expr::Apply { f, args, .. } => args.iter().map(|a| min_free(a, level)).fold(min_free(f, level), m),
        Expr::Select { e, path, default, .. } => {
            let mut r = m(min_free(e, level), path_free(path, level));
            if let Some(d) = default {
                r = m(r, min_free(d, level));
            }
            r
        }
        Expr::HasAttr { e, path, .. } => m(min_free(e, level), path_free(path, level)),
        Expr::Let { binds, body } => binds.iter().map(|b| min_free(b, level + 1)).fold(min_free(body, level + 1), m),
        Expr::With { ns, body } => m(min_free(ns, level), min_free(body, level + 1)),
        Expr::If { cond, then, else_, .. } => m(min_free(cond, level), m(min_free(then, level), min_free(else_, level))),
        Expr::Assert { cond, body, .. } => m(min_free(cond, level), min_free(body, level)),
        Expr::Bin { l, r, .. } => m(min_free(l, level), min_free(r, level)),
        Expr::Not(x, _) | Expr::Neg(x, _) => min_free(x, level),
        Expr::Shift { k, e } => {
            let r = min_free(e, level);
            if r == u32::MAX { r } else { r + k }
        }
        Expr::Interp { parts, .. } | Expr::PathInterp { parts, .. } => parts
            .iter()
            .map(|p| match p {
                StrPart::Lit(_) => u32::MAX,
                StrPart::Interp(x, _) => min_free(x, level),
            })
            .min()
            .unwrap_or(u32::MAX),
    }
}

fn path_free(path: &[AttrName], level: u32) -> u32 {
    path.iter()
        .map(|n| match n {
            AttrName::Static(..) => u32::MAX,
            AttrName::Dynamic(d) => min_free(&d.0, level),
        })
        .min()
        .unwrap_or(u32::MAX)
}

/// Lower the depth of every variable of `e` that reads `level` or more
/// frames up by `k` (`e` will run `k` frames further up).
fn shift(e: &mut Expr, k: u32, level: u32) {
    let sh = |d: &mut u32| {
        if *d >= level {
            *d -= k;
        }
    };
    match e {
        Expr::Const(_) | Expr::Global(_) | Expr::SearchPath { .. } | Expr::CurPos(_) => {}
        Expr::Var { depth, .. } => sh(depth),
        Expr::WithVar { withs, .. } => withs.iter_mut().for_each(sh),
        Expr::Attrs(a) => {
            let l = if a.rec { level + 1 } else { level };
            for d in a.attrs.iter_mut() {
                shift(&mut d.value, k, l);
            }
            for d in a.dynamic.iter_mut() {
                shift(&mut d.name, k, l);
                shift(&mut d.value, k, l);
            }
            for h in a.hidden.iter_mut() {
                shift(h, k, l);
            }
        }
        Expr::List(items) => items.iter_mut().for_each(|i| shift(i, k, level)),
        Expr::Lambda(l) => {
            shift(&mut l.body, k, level + 1);
            if let Some(f) = &mut l.formals {
                for x in f.entries.iter_mut() {
                    if let Some(d) = &mut x.default {
                        shift(d, k, level + 1);
                    }
                }
            }
        }
        Expr::Apply { f, args, .. } => {
            shift(f, k, level);
            args.iter_mut().for_each(|a| shift(a, k, level));
        }
        Expr::Select { e, path, default, .. } => {
            shift(e, k, level);
            shift_path(path, k, level);
            if let Some(d) = default {
                shift(d, k, level);
            }
        }
        Expr::HasAttr { e, path, .. } => {
            shift(e, k, level);
            shift_path(path, k, level);
        }
        Expr::Let { binds, body } => {
            binds.iter_mut().for_each(|b| shift(b, k, level + 1));
            shift(body, k, level + 1);
        }
        Expr::With { ns, body } => {
            shift(ns, k, level);
            shift(body, k, level + 1);
        }
        Expr::If { cond, then, else_, .. } => {
            shift(cond, k, level);
            shift(then, k, level);
            shift(else_, k, level);
        }
        Expr::Assert { cond, body, .. } => {
            shift(cond, k, level);
            shift(body, k, level);
        }
        Expr::Bin { l, r, .. } => {
            shift(l, k, level);
            shift(r, k, level);
        }
        Expr::Not(x, _) | Expr::Neg(x, _) => shift(x, k, level),
        // its own expression runs `k2` further up: the boundary moves too
        Expr::Shift { k: k2, e } => {
            if level > *k2 {
                shift(e, k, level - *k2)
            } else {
                // the wrapper itself reaches past the boundary: the whole
                // jump is shortened instead of its inside
                *k2 -= k.min(*k2);
            }
        }
        Expr::Interp { parts, .. } | Expr::PathInterp { parts, .. } => {
            for p in parts.iter_mut() {
                if let StrPart::Interp(x, _) = p {
                    shift(x, k, level);
                }
            }
        }
    }
}

fn shift_path(path: &mut [AttrName], k: u32, level: u32) {
    for n in path.iter_mut() {
        if let AttrName::Dynamic(d) = n {
            shift(&mut d.0, k, level);
        }
    }
}

/// Wrap each lazily evaluated subexpression of `e` (attribute values, list
/// items, arguments, `let` bindings, formals' defaults, `with`'s set) that
/// reads nothing from the innermost frames in an [`Expr::Shift`] over
/// them, so that its thunk or closure keeps only the frames it reads.
/// `depth` is how many frames lie between `e`'s frame and the one the
/// whole program runs in (a jump goes no further up).
pub fn trim_thunks(e: &mut Expr, depth: u32) {
    trim_in(e, depth, 0)
}

/// How many lazily evaluated expressions, one inside the other, are
/// trimmed: each looks at all of its inside, so without a bound a literal
/// nested 100 000 deep took 26 s to lower instead of 0.1 s. Deeper ones
/// keep their frames.
const TRIM_NESTING: u32 = 64;

/// [`trim_thunks`] with `nest` lazily evaluated expressions around `e`.
fn trim_in(e: &mut Expr, depth: u32, nest: u32) {
    match e {
        Expr::Const(_) | Expr::Global(_) | Expr::SearchPath { .. } | Expr::CurPos(_) | Expr::Var { .. } | Expr::WithVar { .. } => {}
        Expr::Attrs(a) => {
            let d = if a.rec { depth + 1 } else { depth };
            for x in a.attrs.iter_mut() {
                lazy(&mut x.value, d, nest);
            }
            for x in a.dynamic.iter_mut() {
                trim_in(&mut x.name, d, nest);
                lazy(&mut x.value, d, nest);
            }
            for h in a.hidden.iter_mut() {
                lazy(h, d, nest);
            }
        }
        Expr::List(items) => items.iter_mut().for_each(|i| lazy(i, depth, nest)),
        Expr::Lambda(l) => {
            trim_in(&mut l.body, depth + 1, nest);
            if let Some(f) = &mut l.formals {
                for x in f.entries.iter_mut() {
                    if let Some(d) = &mut x.default {
                        lazy(d, depth + 1, nest);
                    }
                }
            }
        }
        Expr::Apply { f, args, .. } => {
            trim_in(f, depth, nest);
            args.iter_mut().for_each(|a| lazy(a, depth, nest));
        }
        Expr::Select { e, path, default, .. } => {
            trim_in(e, depth, nest);
            trim_path(path, depth, nest);
            if let Some(d) = default {
                trim_in(d, depth, nest);
            }
        }
        Expr::HasAttr { e, path, .. } => {
            trim_in(e, depth, nest);
            trim_path(path, depth, nest);
        }
        Expr::Let { binds, body } => {
            binds.iter_mut().for_each(|b| lazy(b, depth + 1, nest));
            trim_in(body, depth + 1, nest);
        }
        Expr::With { ns, body } => {
            lazy(ns, depth, nest);
            trim_in(body, depth + 1, nest);
        }
        Expr::If { cond, then, else_, .. } => {
            trim_in(cond, depth, nest);
            trim_in(then, depth, nest);
            trim_in(else_, depth, nest);
        }
        Expr::Assert { cond, body, .. } => {
            trim_in(cond, depth, nest);
            trim_in(body, depth, nest);
        }
        Expr::Bin { l, r, .. } => {
            trim_in(l, depth, nest);
            trim_in(r, depth, nest);
        }
        Expr::Not(x, _) | Expr::Neg(x, _) => trim_in(x, depth, nest),
        Expr::Shift { k, e } => trim_in(e, depth - (*k).min(depth), nest),
        Expr::Interp { parts, .. } | Expr::PathInterp { parts, .. } => {
            for p in parts.iter_mut() {
                if let StrPart::Interp(x, _) = p {
                    trim_in(x, depth, nest);
                }
            }
        }
    }
}

fn trim_path(path: &mut [AttrName], depth: u32, nest: u32) {
    for n in path.iter_mut() {
        if let AttrName::Dynamic(d) = n {
            trim_in(&mut d.0, depth, nest);
        }
    }
}

/// [`trim_thunks`] for an expression that becomes a thunk or closure.
fn lazy(e: &mut Expr, depth: u32, nest: u32) {
    let nest = nest + 1;
    // constants and variables make no thunk
    if nest <= TRIM_NESTING && !matches!(e, Expr::Const(_) | Expr::Global(_) | Expr::Var { .. }) {
        let k = min_free(e, 0).min(depth);
        if k > 0 {
            shift(e, k, 0);
            let inner = std::mem::replace(e, Expr::Const(Value::Null));
            *e = Expr::Shift { k, e: Box::new(inner) };
            if let Expr::Shift { e: inner, .. } = e {
                trim_in(inner, depth - k, nest);
            }
            return;
        }
    }
    trim_in(e, depth, nest);
}
