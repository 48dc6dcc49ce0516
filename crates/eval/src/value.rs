//! Runtime values: the 16-byte [`Value`], strings with context, sorted
//! attribute sets, lists, closures, primops and thunks.

use std::cell::UnsafeCell;
use std::fmt;
use std::rc::Rc;

use smallvec::SmallVec;

use crate::error::{Error, Result};
use crate::ir::{Expr, LambdaIR, Span};
use crate::symbol::Symbol;
use crate::Eval;

/// A Nix value. Anything not yet evaluated is a [`Thunk`]; call
/// [`Eval::force`] to get a value in weak head normal form.
#[derive(Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(Rc<NixString>),
    /// An absolute, canonical path (bytes, no context).
    Path(Rc<NixString>),
    Attrs(Rc<AttrSet>),
    List(Rc<Vec<Value>>),
    Lambda(Rc<Closure>),
    PrimOp(&'static PrimOpDef),
    PrimOpApp(Rc<PrimOpApp>),
    Thunk(Rc<Thunk>),
}

const _: () = assert!(std::mem::size_of::<Value>() == 16);

/// One element of a string context, interned: equal elements share one id
/// (comparing, hashing and copying one is an integer operation) and the
/// text is stored once per evaluator thread. The text is the encoding
/// `builtins.getContext` keys use: a plain path `/nix/store/…`,
/// `!out!/nix/store/…drv` for an output, `=/nix/store/…drv` for a whole
/// derivation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContextElem(u32);

#[derive(Default)]
struct ContextInterner {
    texts: Vec<&'static str>,
    map: rustc_hash::FxHashMap<&'static str, u32>,
}

thread_local! {
    static CONTEXT_ELEMS: std::cell::RefCell<ContextInterner> = std::cell::RefCell::new(ContextInterner::default());
}

impl ContextElem {
    /// Intern an element given in its `getContext` encoding.
    pub fn new(text: &str) -> ContextElem {
        CONTEXT_ELEMS.with(|i| {
            let mut i = i.borrow_mut();
            if let Some(&id) = i.map.get(text) {
                return ContextElem(id);
            }
            // Like symbols, elements live as long as the evaluator's thread.
            let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
            let id = u32::try_from(i.texts.len()).expect("fewer than 2^32 context elements");
            i.texts.push(leaked);
            i.map.insert(leaked, id);
            ContextElem(id)
        })
    }
    /// A plain store path (`/nix/store/…`).
    pub fn opaque(path: &str) -> ContextElem {
        ContextElem::new(path)
    }
    /// A derivation with everything it needs (`=/nix/store/….drv`).
    pub fn drv_deep(drv_path: &str) -> ContextElem {
        ContextElem::new(&format!("={drv_path}"))
    }
    /// One output of a derivation (`!out!/nix/store/….drv`).
    pub fn built(output: &str, drv_path: &str) -> ContextElem {
        ContextElem::new(&format!("!{output}!{drv_path}"))
    }
    /// The element in its `getContext` encoding.
    pub fn as_str(self) -> &'static str {
        CONTEXT_ELEMS.with(|i| i.borrow().texts[self.0 as usize])
    }
}

impl fmt::Debug for ContextElem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for ContextElem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// String context: the set of store paths a string depends on. Cheap to
/// clone (no element, one element inline, or a shared sorted vector of
/// interned elements) and to merge: a union that adds nothing new keeps the
/// set it already has, and one whose result is the other side shares that
/// side's vector. Elements are ordered by interning order, not by text; use
/// [`Context::sorted_strs`] where the textual order shows.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Context(ContextRepr);

#[derive(Clone, Default, PartialEq, Eq)]
enum ContextRepr {
    #[default]
    Empty,
    One(ContextElem),
    /// Sorted, without duplicates, at least two elements.
    Many(Rc<Vec<ContextElem>>),
}

const _: () = assert!(std::mem::size_of::<Context>() == 16);

impl Context {
    pub fn new() -> Context {
        Context(ContextRepr::Empty)
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        matches!(self.0, ContextRepr::Empty)
    }
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }
    /// The elements, in interning order.
    #[inline]
    pub fn as_slice(&self) -> &[ContextElem] {
        match &self.0 {
            ContextRepr::Empty => &[],
            ContextRepr::One(e) => std::slice::from_ref(e),
            ContextRepr::Many(v) => v,
        }
    }
    /// The elements, in interning order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = ContextElem> + '_ {
        self.as_slice().iter().copied()
    }
    pub fn contains(&self, e: ContextElem) -> bool {
        self.as_slice().binary_search(&e).is_ok()
    }
    /// The elements' texts in byte order (how C++ Nix's sets of strings
    /// iterate: the order error messages and anything printed must use).
    pub fn sorted_strs(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self.iter().map(ContextElem::as_str).collect();
        v.sort_unstable();
        v
    }
    /// Add one element.
    pub fn insert(&mut self, e: ContextElem) {
        match &mut self.0 {
            ContextRepr::Empty => self.0 = ContextRepr::One(e),
            ContextRepr::One(x) => {
                let x = *x;
                if x != e {
                    self.0 = ContextRepr::Many(Rc::new(if x < e { vec![x, e] } else { vec![e, x] }));
                }
            }
            ContextRepr::Many(v) => {
                if let Err(i) = v.binary_search(&e) {
                    Rc::make_mut(v).insert(i, e);
                }
            }
        }
    }
    /// Add every element of `other`.
    pub fn union(&mut self, other: &Context) {
        match (&mut self.0, &other.0) {
            (_, ContextRepr::Empty) => {}
            (ContextRepr::Empty, _) => *self = other.clone(),
            (_, ContextRepr::One(e)) => self.insert(*e),
            (ContextRepr::One(e), ContextRepr::Many(w)) => {
                if w.binary_search(e).is_ok() {
                    *self = other.clone();
                } else {
                    let e = *e;
                    let mut v = Vec::with_capacity(w.len() + 1);
                    let i = w.partition_point(|x| *x < e);
                    v.extend_from_slice(&w[..i]);
                    v.push(e);
                    v.extend_from_slice(&w[i..]);
                    self.0 = ContextRepr::Many(Rc::new(v));
                }
            }
            (ContextRepr::Many(v), ContextRepr::Many(w)) => {
                if Rc::ptr_eq(v, w) {
                    return;
                }
                match merge_sorted(v, w) {
                    Merged::Left => {}
                    Merged::Right => *self = other.clone(),
                    Merged::New(m) => *v = Rc::new(m),
                }
            }
        }
    }
}

enum Merged {
    /// The union is the left side.
    Left,
    /// The union is the right side.
    Right,
    New(Vec<ContextElem>),
}

/// The union of two sorted sets, without building it when it equals one side.
fn merge_sorted(a: &[ContextElem], b: &[ContextElem]) -> Merged {
    // does `a` contain all of `b`, or `b` all of `a`?
    let (mut i, mut j) = (0, 0);
    let (mut a_has_extra, mut b_has_extra) = (false, false);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                a_has_extra = true;
                i += 1
            }
            std::cmp::Ordering::Greater => {
                b_has_extra = true;
                j += 1
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1
            }
        }
        if a_has_extra && b_has_extra {
            break;
        }
    }
    a_has_extra |= i < a.len();
    b_has_extra |= j < b.len();
    if !b_has_extra {
        return Merged::Left;
    }
    if !a_has_extra {
        return Merged::Right;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    Merged::New(out)
}

impl From<ContextElem> for Context {
    fn from(e: ContextElem) -> Context {
        Context(ContextRepr::One(e))
    }
}

impl FromIterator<ContextElem> for Context {
    fn from_iter<I: IntoIterator<Item = ContextElem>>(it: I) -> Context {
        let mut v: Vec<ContextElem> = it.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        match v.len() {
            0 => Context::new(),
            1 => Context(ContextRepr::One(v[0])),
            _ => Context(ContextRepr::Many(Rc::new(v))),
        }
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.sorted_strs()).finish()
    }
}

/// A Nix string: bytes (not necessarily UTF-8) plus its context.
#[derive(Clone, Default, PartialEq)]
pub struct NixString {
    pub bytes: Box<[u8]>,
    pub context: Context,
}

impl NixString {
    pub fn new(bytes: impl Into<Box<[u8]>>) -> Self {
        NixString { bytes: bytes.into(), context: Context::new() }
    }
    pub fn with_context(bytes: impl Into<Box<[u8]>>, context: Context) -> Self {
        NixString { bytes: bytes.into(), context }
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    pub fn to_str_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }
    #[inline]
    pub fn has_context(&self) -> bool {
        !self.context.is_empty()
    }
    /// Add this string's context to `into`.
    #[inline]
    pub fn collect_context(&self, into: &mut Context) {
        into.union(&self.context);
    }
}

/// One attribute: name, value and where it was defined.
#[derive(Clone)]
pub struct Attr {
    pub name: Symbol,
    pub value: Value,
    pub pos: Span,
}

/// An attribute set: attributes sorted by [`Symbol`] id (not by name), so
/// lookup is a binary search and `//` a linear merge. Dereference
/// [`AttrSet::attrs`] for the sorted slice of all attributes.
#[derive(Clone, Default)]
pub struct AttrSet {
    pub attrs: Attrs,
}

/// How many small `//` layers may stack on a set before it is flattened.
const MAX_LAYERS: u32 = 16;

/// The attributes of an [`AttrSet`]. Usually one sorted vector; `big // small`
/// instead stacks the small set as a layer over the shared big one (the
/// nixpkgs overlay pattern would otherwise copy the whole package set per
/// overlay). Dereferencing gives the flattened, sorted attributes (computed
/// once, on first use, for a layered set).
#[derive(Clone, Default)]
pub struct Attrs {
    /// This layer's attributes (all of them when `base` is None).
    own: Vec<Attr>,
    /// The set this layer overrides.
    base: Option<Rc<AttrSet>>,
    /// Number of layers below this one.
    depth: u32,
    /// Number of distinct names in all layers.
    len: usize,
    flat: std::cell::OnceCell<Vec<Attr>>,
}

impl From<Vec<Attr>> for Attrs {
    /// From attributes sorted by symbol id, without duplicates.
    fn from(own: Vec<Attr>) -> Attrs {
        Attrs { len: own.len(), own, base: None, depth: 0, flat: Default::default() }
    }
}

impl std::ops::Deref for Attrs {
    type Target = [Attr];
    #[inline]
    fn deref(&self) -> &[Attr] {
        if self.base.is_none() {
            return &self.own;
        }
        self.flat.get_or_init(|| self.collect_over(&[]))
    }
}

impl<'a> IntoIterator for &'a Attrs {
    type Item = &'a Attr;
    type IntoIter = std::slice::Iter<'a, Attr>;
    fn into_iter(self) -> Self::IntoIter {
        self[..].iter()
    }
}

impl Attrs {
    /// All attributes with `extra` on top, sorted, in one pass over the
    /// bottom layer (and without caching anything in the layers below).
    fn collect_over(&self, extra: &[Attr]) -> Vec<Attr> {
        // overrides, highest priority first: `extra`, then each layer's own
        let mut over: Vec<&Attr> = extra.iter().collect();
        let mut s = self;
        let bottom: &[Attr] = loop {
            if let Some(f) = s.flat.get() {
                break f;
            }
            match &s.base {
                None => break &s.own,
                Some(b) => {
                    over.extend(s.own.iter());
                    s = &b.attrs;
                }
            }
        };
        // a stable sort keeps the highest-priority one first among equal names
        over.sort_by_key(|a| a.name);
        over.dedup_by_key(|a| a.name);
        merge(bottom, &over)
    }
}

/// Merge two sorted attribute slices; `b` wins on equal names.
fn merge(a: &[Attr], b: &[&Attr]) -> Vec<Attr> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].name.cmp(&b[j].name) {
            std::cmp::Ordering::Less => {
                out.push(a[i].clone());
                i += 1
            }
            std::cmp::Ordering::Greater => {
                out.push((*b[j]).clone());
                j += 1
            }
            std::cmp::Ordering::Equal => {
                out.push((*b[j]).clone());
                i += 1;
                j += 1
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend(b[j..].iter().map(|x| (*x).clone()));
    out
}

impl AttrSet {
    /// From attributes already sorted by symbol id, without duplicates.
    pub fn from_sorted(attrs: Vec<Attr>) -> AttrSet {
        AttrSet { attrs: attrs.into() }
    }
    /// Build from unsorted attributes; later duplicates win.
    pub fn from_unsorted(mut attrs: Vec<Attr>) -> AttrSet {
        attrs.sort_by_key(|a| a.name);
        // keep the first of equal names (callers push in priority order)
        attrs.dedup_by_key(|a| a.name);
        AttrSet::from_sorted(attrs)
    }
    #[inline]
    pub fn get(&self, name: Symbol) -> Option<&Value> {
        self.get_attr(name).map(|a| &a.value)
    }
    pub fn get_attr(&self, name: Symbol) -> Option<&Attr> {
        let mut s = self;
        loop {
            let a = &s.attrs;
            let v: &[Attr] = a.flat.get().unwrap_or(&a.own);
            if let Ok(i) = v.binary_search_by_key(&name, |a| a.name) {
                return Some(&v[i]);
            }
            if a.flat.get().is_some() {
                return None;
            }
            s = a.base.as_deref()?;
        }
    }
    #[inline]
    pub fn len(&self) -> usize {
        self.attrs.len
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.attrs.len == 0
    }
    /// Attributes sorted by name (how Nix prints and lists them).
    pub fn sorted_by_name(&self) -> Vec<&Attr> {
        // names are distinct, so an unstable sort is deterministic
        let mut v: Vec<(&'static [u8], &Attr)> = self.attrs.iter().map(|a| (a.name.as_bytes(), a)).collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v.into_iter().map(|(_, a)| a).collect()
    }
    /// `this // other`, `other` wins: a linear merge, or a layer over `this`
    /// when `other` is small next to it.
    pub fn update(this: &Rc<AttrSet>, other: &AttrSet) -> AttrSet {
        let b: &[Attr] = &other.attrs;
        // chains stay short (bounded lookups, and dropping never recurses deeply)
        let depth = this.attrs.depth;
        if b.len() * 8 <= this.len() && depth < MAX_LAYERS {
            let new = b.iter().filter(|x| this.get(x.name).is_none()).count();
            return AttrSet {
                attrs: Attrs {
                    own: b.to_vec(),
                    base: Some(this.clone()),
                    depth: depth + 1,
                    len: this.len() + new,
                    flat: Default::default(),
                },
            };
        }
        AttrSet::from_sorted(this.attrs.collect_over(b))
    }
}

/// An environment frame: the values bound by one `let`, `rec`, lambda call
/// or `with`.
pub struct Env {
    pub parent: Option<Rc<Env>>,
    slots: UnsafeCell<SmallVec<[Value; 3]>>,
}

impl Env {
    pub fn new(parent: Option<Rc<Env>>, slots: SmallVec<[Value; 3]>) -> Rc<Env> {
        Rc::new(Env { parent, slots: UnsafeCell::new(slots) })
    }
    #[inline]
    pub fn get(&self, slot: usize) -> Value {
        // SAFETY: single-threaded; no reference into the slots outlives this call.
        unsafe { (&(*self.slots.get()))[slot].clone() }
    }
    /// Force the value in a slot without cloning the thunk handle.
    #[inline]
    pub fn force_slot(&self, slot: usize, ev: &Eval) -> Result<Value> {
        // SAFETY: single-threaded; slots are only written while a frame is
        // being built, before any code runs in it, so the reference stays
        // valid while the thunk (kept alive by this frame) is forced.
        let v: &Value = unsafe { &(&(*self.slots.get()))[slot] };
        match v {
            Value::Thunk(t) => t.force(ev),
            other => Ok(other.clone()),
        }
    }

    /// The slot's value if it is an already evaluated integer.
    #[inline]
    pub fn peek_int(&self, slot: usize) -> Option<i64> {
        // SAFETY: as in `get`.
        match unsafe { &(&(*self.slots.get()))[slot] } {
            Value::Int(i) => Some(*i),
            Value::Thunk(t) => match t.value() {
                Some(Value::Int(i)) => Some(*i),
                _ => None,
            },
            _ => None,
        }
    }

    /// Set a slot (used while building recursive frames).
    #[inline]
    pub fn set(&self, slot: usize, v: Value) {
        // SAFETY: as in `get`; the old value is dropped after the write.
        let old = unsafe { std::mem::replace(&mut (&mut (*self.slots.get()))[slot], v) };
        drop(old);
    }
    #[inline]
    pub fn up(self: &Rc<Env>, depth: u32) -> &Env {
        let mut e: &Env = self;
        for _ in 0..depth {
            e = e.parent.as_deref().expect("lowering resolved depth within the frame chain");
        }
        e
    }
}

/// A lambda together with the environment it closes over.
pub struct Closure {
    pub lambda: &'static LambdaIR,
    pub env: Rc<Env>,
}

/// A builtin function: `arity` arguments (unforced) are passed to `func`.
pub struct PrimOpDef {
    pub name: &'static str,
    pub arity: usize,
    pub func: fn(&Eval, &[Value], Span) -> Result<Value>,
}

/// A partially applied builtin.
pub struct PrimOpApp {
    pub op: &'static PrimOpDef,
    pub args: Vec<Value>,
}

/// A delayed computation with its state machine.
pub struct Thunk(UnsafeCell<ThunkState>);

pub enum ThunkState {
    /// An expression waiting to be evaluated in an environment.
    Suspended(&'static Expr, Rc<Env>),
    /// A function application waiting to happen (built by builtins).
    Apply(Box<(Value, Value)>),
    /// `f i` for an integer argument (genList): no second allocation.
    ApplyInt(Value, i64),
    /// `f a b` (mapAttrs, zipAttrsWith): one thunk instead of two.
    Apply2(Box<(Value, Value, Value)>),
    /// Being evaluated: forcing it again is infinite recursion.
    Blackhole,
    Done(Value),
    /// Evaluation failed; forcing again gives the same error (like Nix ≥ 2.34).
    Failed(Error),
}

impl Thunk {
    pub fn suspended(e: &'static Expr, env: Rc<Env>) -> Value {
        Value::Thunk(Rc::new(Thunk(UnsafeCell::new(ThunkState::Suspended(e, env)))))
    }
    pub fn apply(f: Value, arg: Value) -> Value {
        Value::Thunk(Rc::new(Thunk(UnsafeCell::new(ThunkState::Apply(Box::new((f, arg)))))))
    }
    /// `f a b` as one thunk.
    pub fn apply2(f: Value, a: Value, b: Value) -> Value {
        Value::Thunk(Rc::new(Thunk(UnsafeCell::new(ThunkState::Apply2(Box::new((f, a, b)))))))
    }
    /// `f i` as a thunk (one allocation).
    pub fn apply_int(f: Value, i: i64) -> Value {
        Value::Thunk(Rc::new(Thunk(UnsafeCell::new(ThunkState::ApplyInt(f, i)))))
    }
    /// A thunk that is being filled in (used for self-referencing constants).
    pub fn blackhole() -> Rc<Thunk> {
        Rc::new(Thunk(UnsafeCell::new(ThunkState::Blackhole)))
    }
    /// Fill in a thunk made with [`Thunk::blackhole`].
    pub fn set_done(&self, v: Value) {
        // SAFETY: single-threaded; nobody holds a reference into the state.
        unsafe { *self.0.get() = ThunkState::Done(v) }
    }
    /// The value, if already evaluated.
    pub fn value(&self) -> Option<&Value> {
        // SAFETY: single-threaded; Done is never overwritten.
        match unsafe { &*self.0.get() } {
            ThunkState::Done(v) => Some(v),
            _ => None,
        }
    }
    #[inline]
    pub(crate) fn force(&self, ev: &Eval) -> Result<Value> {
        // SAFETY: single-threaded; Done is never overwritten.
        if let ThunkState::Done(v) = unsafe { &*self.0.get() } {
            return Ok(v.clone());
        }
        self.force_slow(ev)
    }

    #[inline(never)]
    fn force_slow(&self, ev: &Eval) -> Result<Value> {
        // SAFETY: single-threaded; we never hold a reference into the state
        // across evaluation (the state is moved out first).
        let state = unsafe { &mut *self.0.get() };
        match state {
            ThunkState::Blackhole => return Err(Error::infinite_recursion_from(self as *const Thunk as usize)),
            ThunkState::Failed(e) => return Err(e.clone()),
            _ => {}
        }
        let taken = std::mem::replace(state, ThunkState::Blackhole);
        let r = match &taken {
            ThunkState::Suspended(e, env) => ev.eval_deep(e, env),
            ThunkState::Apply(fa) => {
                stacker::maybe_grow(256 * 1024, 8 * 1024 * 1024, || ev.call(&fa.0, fa.1.clone(), Span::NONE))
            }
            ThunkState::Apply2(fab) => stacker::maybe_grow(256 * 1024, 8 * 1024 * 1024, || {
                ev.call2(&fab.0, fab.1.clone(), fab.2.clone(), Span::NONE)
            }),
            ThunkState::ApplyInt(f, i) => {
                stacker::maybe_grow(256 * 1024, 8 * 1024 * 1024, || ev.call(f, Value::Int(*i), Span::NONE))
            }
            _ => unreachable!(),
        };
        let state = unsafe { &mut *self.0.get() };
        match r {
            Ok(v) => {
                *state = ThunkState::Done(v.clone());
                drop(taken);
                Ok(v)
            }
            Err(e) => {
                let e = if e.kind() == crate::ErrorKind::InfiniteRecursion { e.leaving_thunk(self as *const Thunk as usize) } else { e };
                if matches!(e.kind(), crate::ErrorKind::StackOverflow | crate::ErrorKind::InfiniteRecursion) {
                    *state = taken;
                } else {
                    *state = ThunkState::Failed(e.clone());
                    drop(taken);
                }
                Err(e)
            }
        }
    }
}

impl Value {
    pub fn string(s: impl Into<Box<[u8]>>) -> Value {
        Value::String(Rc::new(NixString::new(s)))
    }
    /// An attribute name as a string value; one shared string per name.
    pub fn sym_string(n: Symbol) -> Value {
        thread_local! {
            static CACHE: std::cell::RefCell<Vec<Option<Rc<NixString>>>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        CACHE.with(|c| {
            let mut c = c.borrow_mut();
            let i = n.0 as usize;
            if c.len() <= i {
                c.resize(i + 1, None);
            }
            Value::String(c[i].get_or_insert_with(|| Rc::new(NixString::new(n.as_bytes()))).clone())
        })
    }
    pub fn str(s: &str) -> Value {
        Value::string(s.as_bytes())
    }
    pub fn string_ctx(s: impl Into<Box<[u8]>>, ctx: Context) -> Value {
        Value::String(Rc::new(NixString::with_context(s, ctx)))
    }
    pub fn path(p: impl Into<Box<[u8]>>) -> Value {
        Value::Path(Rc::new(NixString::new(p)))
    }
    pub fn list(v: Vec<Value>) -> Value {
        Value::List(Rc::new(v))
    }
    pub fn attrs(a: AttrSet) -> Value {
        Value::Attrs(Rc::new(a))
    }
    /// Build an attribute set from (name, value) pairs.
    pub fn attrs_from(pairs: impl IntoIterator<Item = (Symbol, Value)>) -> Value {
        let attrs = pairs.into_iter().map(|(name, value)| Attr { name, value, pos: Span::NONE }).collect();
        Value::attrs(AttrSet::from_unsorted(attrs))
    }

    /// The type name as `builtins.typeOf` reports it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::String(_) => "string",
            Value::Path(_) => "path",
            Value::Attrs(_) => "set",
            Value::List(_) => "list",
            Value::Lambda(_) | Value::PrimOp(_) | Value::PrimOpApp(_) => "lambda",
            Value::Thunk(_) => "thunk",
        }
    }
    /// The type as error messages show it ("a string", "an integer", …).
    pub fn show_type(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a Boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::String(_) => "a string",
            Value::Path(_) => "a path",
            Value::Attrs(_) => "a set",
            Value::List(_) => "a list",
            Value::Lambda(_) => "a function",
            Value::PrimOp(_) => "a built-in function",
            Value::PrimOpApp(_) => "a partially applied built-in function",
            Value::Thunk(_) => "a thunk",
        }
    }
    pub fn is_function(&self) -> bool {
        matches!(self, Value::Lambda(_) | Value::PrimOp(_) | Value::PrimOpApp(_))
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::String(s) => write!(f, "{:?}", s.to_str_lossy()),
            Value::Path(s) => write!(f, "{}", s.to_str_lossy()),
            other => write!(f, "<{}>", other.type_name()),
        }
    }
}
