//! The fast parser's syntax tree: one arena of fixed-size nodes plus side
//! tables for variable-length children, all indexed by `u32`. Node offsets
//! are the same as rnix's node text ranges (first to last token, trivia
//! outside), so spans and source snippets come out identical.

/// Index into [`Ast::nodes`].
pub type NodeId = u32;

/// A slice of one of the side tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: u32,
    pub len: u32,
}

impl Range {
    pub fn iter(self) -> std::ops::Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind {
    Abs,
    Rel,
    Home,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinKind {
    Concat,
    Update,
    Add,
    Sub,
    Mul,
    Div,
    And,
    Or,
    Impl,
    Eq,
    Neq,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Copy, Debug)]
pub enum NodeKind {
    Int,
    Float,
    Uri,
    Ident,
    /// `<name>`: the node text is the whole token.
    SearchPath,
    /// Parts in [`Ast::parts`].
    Str { multiline: bool, parts: Range },
    /// Parts in [`Ast::parts`] (literal parts are raw path tokens).
    Path { kind: PathKind, parts: Range },
    Paren(NodeId),
    /// Items in [`Ast::ids`].
    List(Range),
    /// Entries in [`Ast::entries`].
    AttrSet { rec: bool, entries: Range },
    LetIn { entries: Range, body: NodeId },
    LegacyLet { entries: Range },
    With { ns: NodeId, body: NodeId },
    If { cond: NodeId, then: NodeId, else_: NodeId },
    Assert { cond: NodeId, body: NodeId },
    /// `x: body`; the parameter's text is `name_start..name_end`.
    LambdaIdent { name_start: u32, name_end: u32, body: NodeId },
    /// Index into [`Ast::patterns`].
    LambdaPat { pat: u32, body: NodeId },
    /// `f a b …` (rnix nests these to the left; the lowering flattens them,
    /// so the parser builds the flat form). Arguments in [`Ast::ids`].
    Apply { f: NodeId, args: Range },
    /// Attribute path in [`Ast::attrs`].
    Select { e: NodeId, path: Range, default: Option<NodeId> },
    HasAttr { e: NodeId, path: Range },
    Not(NodeId),
    Neg(NodeId),
    Bin { op: BinKind, l: NodeId, r: NodeId, op_pos: u32 },
}

#[derive(Clone, Copy, Debug)]
pub struct Node {
    pub kind: NodeKind,
    pub start: u32,
    pub end: u32,
}

#[derive(Clone, Copy, Debug)]
pub enum Part {
    /// Raw token text (escapes and indentation still in).
    Lit { start: u32, end: u32 },
    /// `${e}`; `start` is where `${` is.
    Interp { e: NodeId, start: u32 },
}

#[derive(Clone, Copy, Debug)]
pub enum Attr {
    /// A plain name (also `or`), text `start..end`.
    Ident { start: u32, end: u32 },
    /// A string attribute name: a [`NodeKind::Str`] node.
    Str(NodeId),
    /// `${e}`; `start` is where `${` is.
    Dynamic { e: NodeId, start: u32 },
}

#[derive(Clone, Copy, Debug)]
pub enum Entry {
    /// `inherit (from) a b;`: names in [`Ast::attrs`].
    Inherit { from: Option<NodeId>, attrs: Range },
    /// `a.b = value;`: path in [`Ast::attrs`].
    Value { path: Range, value: NodeId },
}

#[derive(Clone, Copy, Debug)]
pub struct PatEntry {
    pub name_start: u32,
    pub name_end: u32,
    pub default: Option<NodeId>,
}

#[derive(Clone, Copy, Debug)]
pub struct Pattern {
    /// In [`Ast::pat_entries`].
    pub entries: Range,
    pub ellipsis: bool,
    /// The `@` name's text range and the position C++ Nix and rnix give the
    /// binding (`x @ {…}`: `x`; `{…} @ x`: the `@`).
    pub at: Option<(u32, u32, u32)>,
}

#[derive(Default)]
pub struct Ast {
    pub nodes: Vec<Node>,
    pub ids: Vec<NodeId>,
    pub parts: Vec<Part>,
    pub attrs: Vec<Attr>,
    pub entries: Vec<Entry>,
    pub patterns: Vec<Pattern>,
    pub pat_entries: Vec<PatEntry>,
}

impl Ast {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }
    pub fn add(&mut self, kind: NodeKind, start: u32, end: u32) -> NodeId {
        self.nodes.push(Node { kind, start, end });
        (self.nodes.len() - 1) as NodeId
    }
    /// Parentheses removed.
    pub fn strip_parens(&self, mut id: NodeId) -> NodeId {
        while let NodeKind::Paren(inner) = self.node(id).kind {
            id = inner;
        }
        id
    }
}
