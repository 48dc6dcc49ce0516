//! The syntax tree both parsers build and `crate::lower` lowers: one arena
//! of fixed-size nodes plus side tables for variable-length children, all
//! indexed by `u32`. Node offsets are rnix's node text ranges (first to last
//! token, trivia outside), so spans and source snippets are the same
//! whichever parser built the tree.

pub use crate::ir::BinOp;

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
    Bin { op: BinOp, l: NodeId, r: NodeId, op_pos: u32 },
    /// `l |> r` or `l <| r`: only rnix parses them; lowering rejects them
    /// as C++ Nix does without the experimental feature.
    Pipe { l: NodeId, r: NodeId, op_pos: u32 },
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

impl Ast {
    /// A canonical text form of the tree under `root`, every offset
    /// included but independent of where nodes sit in the arena: for
    /// comparing the trees of the two front ends.
    pub fn dump(&self, root: NodeId) -> String {
        let mut out = String::new();
        self.dump_node(root, &mut out);
        out
    }

    fn dump_node(&self, id: NodeId, out: &mut String) {
        stacker::maybe_grow(32 * 1024, 1024 * 1024, || self.dump_inner(id, out))
    }

    fn dump_ids(&self, r: Range, out: &mut String) {
        for i in r.iter() {
            self.dump_node(self.ids[i], out);
            out.push_str(", ");
        }
    }

    /// `label` then the tree under `e`.
    fn dump_sub(&self, label: &str, e: NodeId, out: &mut String) {
        out.push_str(label);
        self.dump_node(e, out);
    }

    /// `open`, the parts, `)`.
    fn dump_parts(&self, open: &str, r: Range, out: &mut String) {
        out.push_str(open);
        for p in &self.parts[r.iter()] {
            match *p {
                Part::Lit { start, end } => out.push_str(&format!("lit {start}..{end}")),
                Part::Interp { e, start } => self.dump_sub(&format!("interp@{start} "), e, out),
            }
            out.push_str(", ");
        }
        out.push(')');
    }

    fn dump_attrs(&self, r: Range, out: &mut String) {
        for a in &self.attrs[r.iter()] {
            match *a {
                Attr::Ident { start, end } => out.push_str(&format!("{start}..{end}")),
                Attr::Str(n) => self.dump_node(n, out),
                Attr::Dynamic { e, start } => self.dump_sub(&format!("dyn@{start} "), e, out),
            }
            out.push_str(" . ");
        }
    }

    /// `open`, the entries, `}`.
    fn dump_entries(&self, open: &str, r: Range, out: &mut String) {
        out.push_str(open);
        for en in &self.entries[r.iter()] {
            match *en {
                Entry::Inherit { from, attrs } => {
                    out.push_str("inherit ");
                    if let Some(f) = from {
                        self.dump_sub("from ", f, out);
                        out.push(' ');
                    }
                    self.dump_attrs(attrs, out);
                }
                Entry::Value { path, value } => {
                    self.dump_attrs(path, out);
                    self.dump_sub("= ", value, out);
                }
            }
            out.push_str("; ");
        }
        out.push('}');
    }

    fn dump_inner(&self, id: NodeId, out: &mut String) {
        let n = self.node(id);
        out.push_str(&format!("{}..{} ", n.start, n.end));
        let sub = |label: &str, e: NodeId, out: &mut String| self.dump_sub(label, e, out);
        match n.kind {
            NodeKind::Int => out.push_str("int"),
            NodeKind::Float => out.push_str("float"),
            NodeKind::Uri => out.push_str("uri"),
            NodeKind::Ident => out.push_str("ident"),
            NodeKind::SearchPath => out.push_str("search"),
            NodeKind::Str { multiline, parts } => self.dump_parts(&format!("str multiline={multiline} ("), parts, out),
            NodeKind::Path { kind, parts } => self.dump_parts(&format!("path {kind:?} ("), parts, out),
            NodeKind::Paren(e) => sub("paren ", e, out),
            NodeKind::List(items) => {
                out.push('[');
                self.dump_ids(items, out);
                out.push(']');
            }
            NodeKind::AttrSet { rec, entries } => self.dump_entries(&format!("set rec={rec} {{"), entries, out),
            NodeKind::LetIn { entries, body } => {
                self.dump_entries("let {", entries, out);
                sub(" in ", body, out);
            }
            NodeKind::LegacyLet { entries } => self.dump_entries("legacy let {", entries, out),
            NodeKind::With { ns, body } => {
                sub("with ", ns, out);
                sub("; ", body, out);
            }
            NodeKind::If { cond, then, else_ } => {
                sub("if ", cond, out);
                sub(" then ", then, out);
                sub(" else ", else_, out);
            }
            NodeKind::Assert { cond, body } => {
                sub("assert ", cond, out);
                sub("; ", body, out);
            }
            NodeKind::LambdaIdent { name_start, name_end, body } => {
                sub(&format!("lambda {name_start}..{name_end}: "), body, out);
            }
            NodeKind::LambdaPat { pat, body } => {
                let p = self.patterns[pat as usize];
                out.push_str(&format!("lambda ellipsis={} at={:?} {{", p.ellipsis, p.at));
                for pe in &self.pat_entries[p.entries.iter()] {
                    out.push_str(&format!("{}..{}", pe.name_start, pe.name_end));
                    if let Some(d) = pe.default {
                        sub(" ? ", d, out);
                    }
                    out.push_str(", ");
                }
                sub("}: ", body, out);
            }
            NodeKind::Apply { f, args } => {
                sub("apply(", f, out);
                out.push_str(" | ");
                self.dump_ids(args, out);
                out.push(')');
            }
            NodeKind::Select { e, path, default } => {
                sub("select(", e, out);
                out.push_str(" . ");
                self.dump_attrs(path, out);
                if let Some(d) = default {
                    sub(" or ", d, out);
                }
                out.push(')');
            }
            NodeKind::HasAttr { e, path } => {
                sub("has(", e, out);
                out.push_str(" ? ");
                self.dump_attrs(path, out);
                out.push(')');
            }
            NodeKind::Not(e) => sub("not ", e, out),
            NodeKind::Neg(e) => sub("neg ", e, out),
            NodeKind::Pipe { l, r, op_pos } => {
                sub(&format!("pipe @{op_pos} ("), l, out);
                sub(", ", r, out);
                out.push(')');
            }
            NodeKind::Bin { op, l, r, op_pos } => {
                sub(&format!("bin {op:?}@{op_pos} ("), l, out);
                sub(", ", r, out);
                out.push(')');
            }
        }
    }
}
