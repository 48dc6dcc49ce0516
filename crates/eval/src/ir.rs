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
    /// A variable in frame `depth` levels up, slot `slot`; `pos` is read
    /// only to report infinite recursion at the variable that re-entered
    /// the value being evaluated, as C++ Nix does.
    Var { depth: u32, slot: u32, pos: Pos },
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

/// Whether a child expression runs in a frame of its own (a lambda's body
/// and formals' defaults, a `let`'s bindings and body, the values of a
/// `rec` set, a `with`'s body) and whether it is evaluated lazily (it
/// becomes a thunk or, for a lambda, a closure: attribute values, list
/// items, arguments, `let` bindings, formals' defaults, `with`'s set).
#[derive(Clone, Copy)]
struct Child {
    new_frame: bool,
    lazy: bool,
}

const NOW: Child = Child { new_frame: false, lazy: false };
const LAZY: Child = Child { new_frame: false, lazy: true };
const INNER: Child = Child { new_frame: true, lazy: false };
const INNER_LAZY: Child = Child { new_frame: true, lazy: true };

/// Call `f` on each direct subexpression of `e` with how it runs. An
/// [`Expr::Shift`]'s inside runs in another frame altogether: the callers
/// handle it themselves.
fn for_each_child(e: &mut Expr, mut f: impl FnMut(&mut Expr, Child)) {
    match e {
        Expr::Const(_)
        | Expr::Var { .. }
        | Expr::Global(_)
        | Expr::WithVar { .. }
        | Expr::SearchPath { .. }
        | Expr::CurPos(_)
        | Expr::Shift { .. } => {}
        Expr::Attrs(a) => {
            let (now, lazy) = if a.rec { (INNER, INNER_LAZY) } else { (NOW, LAZY) };
            for x in a.attrs.iter_mut() {
                f(&mut x.value, lazy);
            }
            for x in a.dynamic.iter_mut() {
                f(&mut x.name, now);
                f(&mut x.value, lazy);
            }
            for h in a.hidden.iter_mut() {
                f(h, lazy);
            }
        }
        Expr::List(items) => items.iter_mut().for_each(|i| f(i, LAZY)),
        Expr::Lambda(l) => {
            f(&mut l.body, INNER);
            if let Some(fs) = &mut l.formals {
                for x in fs.entries.iter_mut() {
                    if let Some(d) = &mut x.default {
                        f(d, INNER_LAZY);
                    }
                }
            }
        }
        Expr::Apply { f: g, args, .. } => {
            f(g, NOW);
            args.iter_mut().for_each(|a| f(a, LAZY));
        }
        Expr::Select { e, path, default, .. } => {
            f(e, NOW);
            for_each_dynamic(path, &mut f);
            if let Some(d) = default {
                f(d, NOW);
            }
        }
        Expr::HasAttr { e, path, .. } => {
            f(e, NOW);
            for_each_dynamic(path, &mut f);
        }
        Expr::Let { binds, body } => {
            binds.iter_mut().for_each(|b| f(b, INNER_LAZY));
            f(body, INNER);
        }
        Expr::With { ns, body } => {
            f(ns, LAZY);
            f(body, INNER);
        }
        Expr::If { cond, then, else_, .. } => {
            f(cond, NOW);
            f(then, NOW);
            f(else_, NOW);
        }
        Expr::Assert { cond, body, .. } => {
            f(cond, NOW);
            f(body, NOW);
        }
        Expr::Bin { l, r, .. } => {
            f(l, NOW);
            f(r, NOW);
        }
        Expr::Not(x, _) | Expr::Neg(x, _) => f(x, NOW),
        Expr::Interp { parts, .. } | Expr::PathInterp { parts, .. } => {
            for p in parts.iter_mut() {
                if let StrPart::Interp(x, _) = p {
                    f(x, NOW);
                }
            }
        }
    }
}

fn for_each_dynamic(path: &mut [AttrName], f: &mut impl FnMut(&mut Expr, Child)) {
    for n in path.iter_mut() {
        if let AttrName::Dynamic(d) = n {
            f(&mut d.0, NOW);
        }
    }
}

/// Which frames an expression reads, counted from the frame it runs in:
/// bit `d` for a variable `d` frames up. Bit 63 stands for any depth from
/// 63 on, and a bit may stand for a deeper frame than its own (never a
/// shallower one), so the lowest set bit is at most the nearest frame read.
type Reads = u64;

/// The most frames one [`Expr::Shift`] skips (what [`Reads`] tells exactly).
const MAX_SKIP: u32 = 63;

fn read_at(depth: u32) -> Reads {
    1 << depth.min(MAX_SKIP)
}

/// The reads of an expression running one frame further in, seen from the
/// frame outside it (its own frame dropped; bit 63 stays set, and the
/// depths it stood for are now also claimed by bit 62: shallower, so safe).
fn outward(r: Reads) -> Reads {
    (r >> 1) | (r & read_at(MAX_SKIP))
}

/// Let each thunk and closure keep only the frames its expression reads:
/// each lazily evaluated subexpression of `e` (attribute values, list
/// items, arguments, `let` bindings, formals' defaults, `with`'s set) that
/// reads nothing from its `k` innermost frames is wrapped in an
/// [`Expr::Shift`] over them, with its variables' depths lowered to match.
/// `depth` is how many frames lie between `e`'s frame and the one the
/// whole program runs in (no jump goes further up). Runs once on freshly
/// lowered IR, in two walks: one up the tree finding what each expression
/// reads and wrapping (with the jump counted in frames of the syntax), one
/// down it rewriting depths and jumps into frames of the chain that is
/// actually there at run time (an outer wrapper may already have left some
/// frames out). Both walks are linear in the size of `e`.
pub fn trim_thunks(e: &mut Expr, depth: u32) {
    mark(e, depth);
    let mut chain: Vec<u32> = (0..=depth).collect();
    place(e, &mut chain);
}

/// The walk up: returns what `e` reads, and wraps its lazy subexpressions
/// with jumps counted in syntactic frames. `limit`: frames between `e`'s
/// frame and the program's.
fn mark(e: &mut Expr, limit: u32) -> Reads {
    stacker::maybe_grow(64 * 1024, 1024 * 1024, || mark_inner(e, limit))
}

fn mark_inner(e: &mut Expr, limit: u32) -> Reads {
    match e {
        Expr::Var { depth, .. } => return read_at(*depth),
        Expr::WithVar { withs, .. } => return withs.iter().fold(0, |r, d| r | read_at(*d)),
        // (not made by lowering; reading "everything" keeps outer jumps off it)
        Expr::Shift { .. } => return Reads::MAX,
        _ => {}
    }
    let mut reads = 0;
    for_each_child(e, |c, how| {
        let limit = limit + u32::from(how.new_frame);
        let r = mark(c, limit);
        if how.lazy && !matches!(c, Expr::Const(_) | Expr::Global(_) | Expr::Var { .. }) {
            // constants and variables make no thunk
            let k = r.trailing_zeros().min(limit).min(MAX_SKIP);
            if k > 0 {
                let inner = std::mem::replace(c, Expr::Const(Value::Null));
                *c = Expr::Shift { k, e: Box::new(inner) };
            }
        }
        reads |= if how.new_frame { outward(r) } else { r };
    });
    reads
}

/// The walk down. `chain[j]` is how many of the syntactic frames `1..=j`
/// around `e` (outermost first) are in `e`'s chain of frames at run time;
/// the last entry is `e`'s own frame.
fn place(e: &mut Expr, chain: &mut Vec<u32>) {
    stacker::maybe_grow(64 * 1024, 1024 * 1024, || place_inner(e, chain))
}

fn place_inner(e: &mut Expr, chain: &mut Vec<u32>) {
    let n = chain.len() - 1;
    // a variable `d` syntactic frames up is as many frames up as there
    // are frames of the chain below the one it reads
    let runtime = |chain: &[u32], d: u32| -> u32 {
        let d = d as usize;
        if d <= n { chain[n] - chain[n - d] } else { chain[n] + (d - n) as u32 }
    };
    match e {
        Expr::Var { depth, .. } => *depth = runtime(chain, *depth),
        Expr::WithVar { withs, .. } => withs.iter_mut().for_each(|d| *d = runtime(chain, *d)),
        Expr::Shift { k, e: inner } => {
            let skip = *k as usize;
            if skip > n {
                return; // (only `mark` makes these, within the frames around)
            }
            let jump = runtime(chain, *k);
            if jump == 0 {
                // outer jumps already left those frames out
                let Expr::Shift { e: inner, .. } = std::mem::replace(e, Expr::Const(Value::Null)) else {
                    unreachable!("matched a shift")
                };
                *e = *inner;
                return place(e, chain);
            }
            *k = jump;
            // the skipped frames leave the chain while the inside is walked
            let saved: Vec<u32> = chain[n + 1 - skip..].to_vec();
            let below = chain[n - skip];
            chain[n + 1 - skip..].fill(below);
            place(inner, chain);
            chain[n + 1 - skip..].copy_from_slice(&saved);
        }
        _ => for_each_child(e, |c, how| {
            if how.new_frame {
                chain.push(chain[n] + 1);
            }
            place(c, chain);
            if how.new_frame {
                chain.pop();
            }
        }),
    }
}
