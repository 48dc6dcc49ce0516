//! Runtime values: the 16-byte [`Value`], strings with context, sorted
//! attribute sets, lists, closures, primops and thunks.

use std::alloc::Layout;
use std::cell::{Cell, UnsafeCell};
use std::ptr::NonNull;
use std::fmt;
use std::rc::Rc;


use crate::error::{Error, Result};
use crate::ir::{Expr, Hint, LambdaIR, Pos, Span};
use crate::symbol::Symbol;
use crate::Eval;

/// A Nix value. Anything not yet evaluated is a [`Thunk`]; call
/// [`Eval::force`] to get a value in weak head normal form.
///
/// The kinds that hold no count come first: every kind from `String` on
/// holds, after its one-byte tag, a pointer to a block that starts with
/// its [`Count`] (see `Value::clone` and `Value::drop`).
#[repr(u8)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    PrimOp(&'static PrimOpDef),
    String(Held<NixString>),
    /// An absolute, canonical path (bytes, no context).
    Path(Held<NixString>),
    Attrs(Held<AttrSet>),
    List(Held<Shared<List>>),
    Lambda(Held<Shared<Closure>>),
    PrimOpApp(Held<Shared<PrimOpApp>>),
    Thunk(Held<Thunk>),
}

/// A handle inside a [`Value`]: dropped by `Value`'s own `Drop`, not by
/// drop glue (see there). It reads as the handle (`Deref`), and has no
/// `Clone` of its own, so `h.clone()` of a borrowed one clones the handle
/// (an owned `Held` would never be dropped). Made by `Value`'s
/// constructors (`Value::attrs`, `Value::from_string`, …), taken out by
/// its `into_*` methods.
#[repr(transparent)]
pub struct Held<T>(std::mem::ManuallyDrop<T>);

impl<T> Held<T> {
    #[inline(always)]
    pub(crate) fn new(h: T) -> Held<T> {
        Held(std::mem::ManuallyDrop::new(h))
    }
}

impl<T> std::ops::Deref for Held<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.0
    }
}

impl Drop for Value {
    /// Inlined at every drop: nothing for the kinds that own nothing, one
    /// decrement for a handle that is not the last (found, as in `clone`,
    /// by one comparison of the tag); only the last handle of a block goes
    /// out of line to free it. Drop glue would be a jump table over the
    /// kinds at each of ~4 million drops in evalModules over 10 000
    /// modules, one indirect jump that predicts badly.
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(block) = self.counted_block() {
            // SAFETY: the block of a live handle starts with its `Count`.
            let c = unsafe { &*(block as *const Count) };
            if !c.dec_unless_last() {
                self.drop_last();
            }
        }
    }
}

/// The handle moved out of a value of its kind, else the value back.
macro_rules! into_handle {
    ($name:ident, $ty:ty, $($kind:ident)|+) => {
        #[inline(always)]
        pub fn $name(self) -> std::result::Result<$ty, Value> {
            match &self {
                $(Value::$kind(h))|+ => {
                    // SAFETY: the handle is read out once and `self`
                    // forgotten, so its count moves with it.
                    let h = unsafe { std::ptr::read(&**h) };
                    std::mem::forget(self);
                    Ok(h)
                }
                _ => Err(self),
            }
        }
    };
}

impl Value {
    /// Free the block of a handle whose count is 1 (its own drop takes
    /// the count to zero and frees it).
    #[inline(never)]
    fn drop_last(&mut self) {
        // SAFETY: called once, from `drop`; the value is not used after.
        unsafe {
            match self {
                Value::String(h) | Value::Path(h) => std::mem::ManuallyDrop::drop(&mut h.0),
                Value::Attrs(h) => std::mem::ManuallyDrop::drop(&mut h.0),
                Value::List(h) => std::mem::ManuallyDrop::drop(&mut h.0),
                Value::Lambda(h) => std::mem::ManuallyDrop::drop(&mut h.0),
                Value::PrimOpApp(h) => std::mem::ManuallyDrop::drop(&mut h.0),
                Value::Thunk(h) => std::mem::ManuallyDrop::drop(&mut h.0),
                Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::PrimOp(_) => {}
            }
        }
    }

    into_handle!(into_string, NixString, String);
    into_handle!(into_path, NixString, Path);
    into_handle!(into_attrs, AttrSet, Attrs);
    into_handle!(into_list, Shared<List>, List);
    into_handle!(into_lambda, Shared<Closure>, Lambda);
    into_handle!(into_primop_app, Shared<PrimOpApp>, PrimOpApp);
    into_handle!(into_thunk, Thunk, Thunk);

    #[inline(always)]
    pub fn from_string(s: NixString) -> Value {
        Value::String(Held::new(s))
    }
    #[inline(always)]
    pub fn from_path(s: NixString) -> Value {
        Value::Path(Held::new(s))
    }
    #[inline(always)]
    pub fn from_thunk(t: Thunk) -> Value {
        Value::Thunk(Held::new(t))
    }
    #[inline(always)]
    pub fn from_lambda(c: Shared<Closure>) -> Value {
        Value::Lambda(Held::new(c))
    }
    #[inline(always)]
    pub fn from_primop_app(p: Shared<PrimOpApp>) -> Value {
        Value::PrimOpApp(Held::new(p))
    }
}

const _: () = assert!(std::mem::size_of::<Value>() == 16);
const _: () = assert!(std::mem::size_of::<Option<Value>>() == 16);
/// The tag of the first kind that holds a counted handle.
const FIRST_COUNTED: u8 = 5;
// every counted kind's block starts with its count
const _: () = assert!(
    std::mem::offset_of!(StrHeader, rc) == 0
        && std::mem::offset_of!(SetHeader, rc) == 0
        && std::mem::offset_of!(ThunkBox, rc) == 0
        && std::mem::offset_of!(SharedBox<List>, rc) == 0
        && std::mem::offset_of!(SharedBox<Closure>, rc) == 0
        && std::mem::offset_of!(SharedBox<PrimOpApp>, rc) == 0
);

impl Clone for Value {
    /// Inlined at every use: a copy of the 16 bytes plus, for the kinds
    /// that hold a counted handle, one increment of the count that starts
    /// the handle's block, found by one comparison of the tag (a match over
    /// the kinds was a jump table at each of ~7 million clones in
    /// evalModules over 10 000 modules).
    #[inline(always)]
    fn clone(&self) -> Value {
        if let Some(block) = self.counted_block() {
            // SAFETY: the block of a live handle starts with its `Count`
            // (asserted above).
            unsafe { (*(block as *const Count)).inc() };
        }
        // SAFETY: a bitwise copy, which owns the count just raised.
        unsafe { std::ptr::read(self) }
    }
}

impl Value {
    /// The block a counted kind's handle points to (`None` for the kinds
    /// that own nothing), read without a match over the kinds.
    #[inline(always)]
    fn counted_block(&self) -> Option<*mut u8> {
        let me = self as *const Value as *const u8;
        // SAFETY: `Value` is `repr(u8)`: its first byte is the tag, and a
        // kind whose tag is FIRST_COUNTED or more holds, at offset 8 (its
        // field's place after the tag), a handle that is a pointer to its
        // block.
        unsafe { if *me >= FIRST_COUNTED { Some(*(me.add(8) as *const *mut u8)) } else { None } }
    }

    /// Ask for the cache line of the block this value's handle points to
    /// (a hint, for loops over many values: the block of the next one is
    /// on its way while this one is worked on, where each would otherwise
    /// stall on its count or its state in turn).
    #[inline(always)]
    pub(crate) fn prefetch(&self) {
        if let Some(block) = self.counted_block() {
            crate::alloc::prefetch(block);
        }
    }
}

/// `xs`'s values in order, for loops that force or call a function on
/// each: every round asks for the blocks the rounds ahead will read (see
/// [`prefetch_ahead`]).
#[inline(always)]
pub(crate) fn prefetching(xs: &[Value]) -> impl Iterator<Item = &Value> {
    xs.iter().enumerate().map(move |(i, x)| {
        prefetch_ahead(xs, i);
        x
    })
}

/// [`Value::prefetch`] of the value [`PREFETCH_AHEAD`] places after `i` in
/// `xs`, if any, and what forcing the next one reads after its block.
#[inline(always)]
fn prefetch_ahead(xs: &[Value], i: usize) {
    if let Some(v) = xs.get(i + PREFETCH_AHEAD) {
        v.prefetch();
    }
    // the next element's block was asked for one round ago: what its
    // force reads next can be asked for now
    if let Some(Value::Thunk(t)) = xs.get(i + 1) {
        t.block().prefetch_state();
    }
}

/// How many values ahead a loop asks for (see [`Value::prefetch`]).
const PREFETCH_AHEAD: usize = 2;

/// A list's elements: a vector of its own, one element of its own, or a
/// suffix of another list's elements. `builtins.tail` shares instead of copying: nixpkgs walks long
/// lists with `head`/`tail` recursion (texlive's `fastUnique` over ~8 000
/// outputs), where copying tails costs quadratic time and, while the
/// recursion holds every tail, quadratic memory (1.3 GiB for one package).
pub struct List(ListRepr);

thread_local! {
    /// The empty list every [`Value::list`] of no elements shares.
    pub(crate) static EMPTY_LIST: Shared<List> = Shared::new(List::from(Vec::new()));
}

enum ListRepr {
    Own(Vec<Value>),
    /// A list of one element, held in the list's own block (no vector:
    /// evalModules over 10 000 modules makes 140 000 of them, kept in
    /// the options' definitions).
    One(Value),
    /// `base[start..]`; `base` always owns its elements (suffixes of
    /// suffixes point at the original), so reading is one step.
    Suffix(Shared<List>, usize),
}

impl List {
    /// The elements from `start` on, sharing `this`'s storage.
    pub fn suffix(this: &Shared<List>, start: usize) -> List {
        match &this.0 {
            ListRepr::Own(_) | ListRepr::One(_) => List(ListRepr::Suffix(this.clone(), start)),
            ListRepr::Suffix(base, s) => List(ListRepr::Suffix(base.clone(), s + start)),
        }
    }
    /// Append the elements to `out`: moved out when `this` is the last
    /// handle on a list that owns its vector (no count increments, and no
    /// decrements when the list would have been dropped), copied otherwise.
    pub fn append_to(this: Shared<List>, out: &mut Vec<Value>) {
        match Shared::try_unwrap(this) {
            Ok(List(ListRepr::Own(v))) => out.extend(v),
            Ok(List(ListRepr::One(x))) => out.push(x),
            Ok(l) => out.extend_from_slice(&l),
            Err(l) => out.extend_from_slice(&l),
        }
    }
}

const _: () = assert!(std::mem::size_of::<List>() == 24);

impl From<Vec<Value>> for List {
    fn from(mut v: Vec<Value>) -> List {
        if v.len() == 1
            && let Some(x) = v.pop()
        {
            return List(ListRepr::One(x));
        }
        List(ListRepr::Own(v))
    }
}

impl std::ops::Deref for List {
    type Target = [Value];
    #[inline]
    fn deref(&self) -> &[Value] {
        match &self.0 {
            ListRepr::Own(v) => v,
            ListRepr::One(x) => std::slice::from_ref(x),
            ListRepr::Suffix(base, start) => match &base.0 {
                ListRepr::Own(v) => &v[*start..],
                ListRepr::One(x) => &std::slice::from_ref(x)[*start..],
                ListRepr::Suffix(..) => unreachable!("a suffix's base owns its elements"),
            },
        }
    }
}

/// One element of a string context, interned: equal elements share one id
/// (comparing, hashing and copying one is an integer operation) and the
/// text is stored once per evaluator thread. The text is the encoding
/// `builtins.getContext` keys use: a plain path `/nix/store/…`,
/// `!out!/nix/store/…drv` for an output, `=/nix/store/…drv` for a whole
/// derivation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
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

/// String context: the set of store paths a string depends on. Eight bytes
/// (a tagged word: nothing, one interned element inline, or a pointer to a
/// shared sorted vector of them), cheap to clone and to merge: a union that
/// adds nothing new keeps the set it already has, and one whose result is
/// the other side shares that side's vector. Elements are ordered by
/// interning order, not by text; use [`Context::sorted_strs`] where the
/// textual order shows.
#[repr(C)]
pub struct Context {
    /// 0: empty. Low bit set: one element, its id in the high 32 bits.
    /// Otherwise `Rc::into_raw` of a sorted, duplicate-free vector of at
    /// least two elements (aligned, so the low bit is clear).
    raw: u64,
    _owns: std::marker::PhantomData<Rc<Vec<ContextElem>>>,
}

const _: () = assert!(std::mem::size_of::<Context>() == 8);

/// Where the id of a one-element context sits in its word, in `u32`s.
const ONE_ID_AT: usize = if cfg!(target_endian = "little") { 1 } else { 0 };

impl Default for Context {
    #[inline]
    fn default() -> Context {
        Context::new()
    }
}

impl Clone for Context {
    #[inline]
    fn clone(&self) -> Context {
        if let Some(p) = self.many_ptr() {
            // SAFETY: `p` came from `Rc::into_raw` and this handle keeps it alive.
            unsafe { Rc::increment_strong_count(p) };
        }
        Context { raw: self.raw, _owns: std::marker::PhantomData }
    }
}

impl Drop for Context {
    #[inline]
    fn drop(&mut self) {
        if let Some(p) = self.many_ptr() {
            // SAFETY: this handle owns one count of the `Rc` it was made from.
            unsafe { Rc::decrement_strong_count(p) };
        }
    }
}

impl PartialEq for Context {
    fn eq(&self, other: &Context) -> bool {
        self.raw == other.raw || self.as_slice() == other.as_slice()
    }
}

impl Eq for Context {}

impl Context {
    #[inline]
    pub const fn new() -> Context {
        Context { raw: 0, _owns: std::marker::PhantomData }
    }
    #[inline]
    fn one(e: ContextElem) -> Context {
        Context { raw: (u64::from(e.0) << 32) | 1, _owns: std::marker::PhantomData }
    }
    fn many(v: Rc<Vec<ContextElem>>) -> Context {
        debug_assert!(v.len() >= 2);
        Context { raw: Rc::into_raw(v) as usize as u64, _owns: std::marker::PhantomData }
    }
    #[inline]
    fn many_ptr(&self) -> Option<*const Vec<ContextElem>> {
        (self.raw != 0 && self.raw & 1 == 0).then_some(self.raw as usize as *const Vec<ContextElem>)
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.raw == 0
    }
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }
    /// The elements, in interning order.
    #[inline]
    pub fn as_slice(&self) -> &[ContextElem] {
        if self.raw == 0 {
            &[]
        } else if self.raw & 1 == 1 {
            // SAFETY: `ContextElem` is a transparent `u32`, and the id is the
            // `ONE_ID_AT`th `u32` of the word, which lives as long as `self`.
            std::slice::from_ref(unsafe { &*(self as *const Context as *const ContextElem).add(ONE_ID_AT) })
        } else {
            // SAFETY: a live `Rc`'s value, kept alive by this handle.
            unsafe { &*(self.raw as usize as *const Vec<ContextElem>) }
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
        if self.raw == 0 {
            *self = Context::one(e);
        } else if self.raw & 1 == 1 {
            let x = self.as_slice()[0];
            if x != e {
                *self = Context::many(Rc::new(if x < e { vec![x, e] } else { vec![e, x] }));
            }
        } else if let Err(i) = self.as_slice().binary_search(&e) {
            let mut v = self.as_slice().to_vec();
            v.insert(i, e);
            *self = Context::many(Rc::new(v));
        }
    }
    /// Add every element of `other`.
    #[inline]
    pub fn union(&mut self, other: &Context) {
        if other.raw != 0 && other.raw != self.raw {
            self.union_slow(other)
        }
    }
    #[inline(never)]
    fn union_slow(&mut self, other: &Context) {
        if self.raw == 0 {
            *self = other.clone();
            return;
        }
        if other.raw & 1 == 1 {
            self.insert(other.as_slice()[0]);
            return;
        }
        let w = other.as_slice();
        if self.raw & 1 == 1 {
            let e = self.as_slice()[0];
            if w.binary_search(&e).is_ok() {
                *self = other.clone();
            } else {
                let mut v = Vec::with_capacity(w.len() + 1);
                let i = w.partition_point(|x| *x < e);
                v.extend_from_slice(&w[..i]);
                v.push(e);
                v.extend_from_slice(&w[i..]);
                *self = Context::many(Rc::new(v));
            }
            return;
        }
        match merge_sorted(self.as_slice(), w) {
            Merged::Left => {}
            Merged::Right => *self = other.clone(),
            Merged::New(m) => *self = Context::many(Rc::new(m)),
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
        Context::one(e)
    }
}

impl FromIterator<ContextElem> for Context {
    fn from_iter<I: IntoIterator<Item = ContextElem>>(it: I) -> Context {
        let mut v: Vec<ContextElem> = it.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        match v.len() {
            0 => Context::new(),
            1 => Context::one(v[0]),
            _ => Context::many(Rc::new(v)),
        }
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.sorted_strs()).finish()
    }
}

/// The reference count in the header of a string, frame or thunk block (no
/// weak count; the handles' `Clone` and `Drop` go through it).
#[repr(transparent)]
struct Count(Cell<u32>);

impl Count {
    #[inline(always)]
    fn one() -> Count {
        Count(Cell::new(1))
    }

    #[inline(always)]
    fn inc(&self) {
        // one add to memory and a jump on its carry
        let (n, overflow) = self.0.get().overflowing_add(1);
        self.0.set(n);
        if overflow {
            // more handles than fit in memory: corrupted count
            std::process::abort();
        }
    }

    /// Drops one unless it is the last; false for the last, left for the
    /// caller to free with the block (see `Value::drop`).
    #[inline(always)]
    fn dec_unless_last(&self) -> bool {
        let n = self.0.get();
        if n > 1 {
            self.0.set(n - 1);
        }
        n > 1
    }

    /// Drops one; true when that was the last (the block is to be freed).
    #[inline(always)]
    fn dec(&self) -> bool {
        let n = self.0.get() - 1;
        self.0.set(n);
        n == 0
    }
}

/// A Nix string: bytes (not necessarily UTF-8) plus its context, as a thin
/// reference-counted handle to ONE allocation: an 8-byte header (count,
/// length), the 8-byte context, then the bytes inline (`Rc<str>`-like; a
/// string of up to 16 bytes is one 32-byte block). A string of 2^32 - 1
/// bytes or more keeps its length in 8 more bytes just before the header.
/// Dereferences to [`NixStr`], so `s.bytes` and `s.context` read as fields.
/// Build one piece by piece with [`StrBuf`].
pub struct NixString(NonNull<StrHeader>);

#[repr(C)]
struct StrHeader {
    rc: Count,
    /// The length, or [`LONG`]: the length is the `u64` before the header.
    len: u32,
    // followed by a `NixStr` of the length's bytes
}

/// What a [`NixString`] points at: the context and the bytes.
#[repr(C)]
pub struct NixStr {
    pub context: Context,
    pub bytes: [u8],
}

const STR_HEADER: usize = std::mem::size_of::<StrHeader>();
/// Offset of the bytes from the header.
const STR_BYTES: usize = STR_HEADER + std::mem::size_of::<Context>();
/// The `len` of a string whose length does not fit in `u32` (below `LONG`).
const LONG: u32 = u32::MAX;
/// Strings this long keep their length before the header (lower in the
/// crate's unit tests, so that they exercise the layout).
const LONG_FROM: usize = if cfg!(test) { 40 } else { LONG as usize };
/// The extra bytes before a long string's header.
const LONG_PREFIX: usize = 8;
const STR_ALIGN: usize = 8;
const _: () = assert!(STR_HEADER == 8 && STR_BYTES == 16 && std::mem::size_of::<NixString>() == 8);
const _: () = assert!(std::mem::align_of::<StrHeader>() <= STR_ALIGN && std::mem::align_of::<Context>() <= STR_ALIGN);

/// The layout of a block holding `prefix` bytes, a header, a context and
/// `len` bytes.
#[inline]
fn str_layout(prefix: usize, len: usize) -> Layout {
    match (prefix + STR_BYTES).checked_add(len).map(|n| Layout::from_size_align(n, STR_ALIGN)) {
        Some(Ok(l)) => l,
        // as `Vec` does for a capacity beyond isize::MAX
        _ => panic!("string of {len} bytes is too large"),
    }
}

#[inline]
fn is_long(len: usize) -> bool {
    len >= LONG_FROM
}

impl NixString {
    /// A string without context.
    #[inline]
    pub fn new(bytes: impl AsRef<[u8]>) -> Self {
        NixString::build(bytes.as_ref(), Context::new())
    }
    #[inline]
    pub fn with_context(bytes: impl AsRef<[u8]>, context: Context) -> Self {
        NixString::build(bytes.as_ref(), context)
    }
    /// The concatenation of `parts`, in one allocation of the exact size.
    pub fn concat(parts: &[&[u8]], context: Context) -> Self {
        let n = parts.iter().map(|p| p.len()).sum();
        let mut b = StrBuf::with_capacity(n);
        for p in parts {
            b.push(p);
        }
        b.finish(context)
    }
    fn build(bytes: &[u8], context: Context) -> Self {
        let mut b = StrBuf::with_capacity(bytes.len());
        b.push(bytes);
        b.finish(context)
    }
    #[inline]
    fn header(&self) -> &StrHeader {
        // SAFETY: the block lives while any handle does.
        unsafe { self.0.as_ref() }
    }
    #[inline]
    fn len(&self) -> usize {
        let n = self.header().len;
        if n != LONG {
            return n as usize;
        }
        // SAFETY: a long string's length is the u64 right before its header.
        unsafe { ((self.0.as_ptr() as *const u8).sub(LONG_PREFIX) as *const u64).read() as usize }
    }
    /// Whether two handles name the same string.
    pub fn ptr_eq(a: &NixString, b: &NixString) -> bool {
        a.0 == b.0
    }
}

impl std::ops::Deref for NixString {
    type Target = NixStr;
    #[inline]
    fn deref(&self) -> &NixStr {
        let len = self.len();
        // SAFETY: a `NixStr` of `len` bytes starts right after the header;
        // the cast keeps the slice length as the unsized tail's length.
        unsafe {
            let body = (self.0.as_ptr() as *const u8).add(STR_HEADER);
            &*(std::ptr::slice_from_raw_parts(body, len) as *const NixStr)
        }
    }
}

impl Clone for NixString {
    #[inline]
    fn clone(&self) -> NixString {
        let h = self.header();
        h.rc.inc();
        NixString(self.0)
    }
}

impl Drop for NixString {
    #[inline]
    fn drop(&mut self) {
        let h = self.header();
        if !h.rc.dec() {
            return;
        }
        free_string(self);
    }
}

#[inline(never)]
fn free_string(s: &NixString) {
    let len = s.len();
    let p = s.0.as_ptr() as *mut u8;
    // SAFETY: the count reached zero: this was the last handle. Drop the
    // context, then free the block (from its start: before the header for
    // a long string) with the layout it was made with.
    unsafe {
        std::ptr::drop_in_place(p.add(STR_HEADER) as *mut Context);
        if is_long(len) {
            std::alloc::dealloc(p.sub(LONG_PREFIX), str_layout(LONG_PREFIX, len));
        } else {
            std::alloc::dealloc(p, str_layout(0, len));
        }
    }
}

/// A [`NixString`] being built: bytes appended into the block the string
/// will live in (grown like a `Vec`), so finishing it copies nothing.
pub struct StrBuf {
    /// The block: room for the header and the context, then `cap` bytes.
    p: NonNull<u8>,
    len: usize,
    cap: usize,
}

impl StrBuf {
    pub fn new() -> StrBuf {
        StrBuf::with_capacity(0)
    }
    pub fn with_capacity(cap: usize) -> StrBuf {
        let layout = str_layout(0, cap);
        // SAFETY: the layout is non-zero (at least STR_BYTES).
        let p = unsafe { std::alloc::alloc(layout) };
        let Some(p) = NonNull::new(p) else { std::alloc::handle_alloc_error(layout) };
        StrBuf { p, len: 0, cap }
    }
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The bytes so far.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: the first `len` bytes after STR_BYTES are initialised.
        unsafe { std::slice::from_raw_parts(self.p.as_ptr().add(STR_BYTES), self.len) }
    }
    #[inline]
    pub fn push(&mut self, b: &[u8]) {
        if self.cap - self.len < b.len() {
            self.grow(b.len());
        }
        // SAFETY: room for `b.len()` more bytes was made above; `b` cannot
        // overlap the block, which only this builder can reach.
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), self.p.as_ptr().add(STR_BYTES + self.len), b.len()) };
        self.len += b.len();
    }
    #[inline]
    pub fn push_byte(&mut self, b: u8) {
        self.push(std::slice::from_ref(&b))
    }
    #[cold]
    #[inline(never)]
    fn grow(&mut self, more: usize) {
        let need = self.len.checked_add(more).unwrap_or_else(|| panic!("string too large"));
        let cap = need.max(self.cap.saturating_mul(2)).max(16);
        self.realloc(cap);
    }
    fn realloc(&mut self, cap: usize) {
        let new = str_layout(0, cap);
        // SAFETY: the block was allocated with `str_layout(0, self.cap)`;
        // the new size is non-zero and valid for the alignment.
        let p = unsafe { std::alloc::realloc(self.p.as_ptr(), str_layout(0, self.cap), new.size()) };
        let Some(p) = NonNull::new(p) else { std::alloc::handle_alloc_error(new) };
        self.p = p;
        self.cap = cap;
    }
    /// The string, with `context`.
    pub fn finish(mut self, context: Context) -> NixString {
        let len = self.len;
        if self.cap != len {
            self.realloc(len);
        }
        let mut p = self.p.as_ptr();
        std::mem::forget(self);
        let short_len = if is_long(len) {
            let layout = str_layout(LONG_PREFIX, len);
            // SAFETY: the block was made with `str_layout(0, len)`; grow it
            // by the prefix and move its contents up to make room.
            unsafe {
                p = std::alloc::realloc(p, str_layout(0, len), layout.size());
                if p.is_null() {
                    std::alloc::handle_alloc_error(layout)
                }
                std::ptr::copy(p, p.add(LONG_PREFIX), STR_BYTES + len);
                (p as *mut u64).write(len as u64);
                p = p.add(LONG_PREFIX);
            }
            LONG
        } else {
            len as u32
        };
        // SAFETY: `p` starts a block with room for the header and context
        // (8-aligned: the prefix is 8 bytes), followed by `len` initialised bytes.
        unsafe {
            (p as *mut StrHeader).write(StrHeader { rc: Count::one(), len: short_len });
            (p.add(STR_HEADER) as *mut Context).write(context);
            NixString(NonNull::new_unchecked(p as *mut StrHeader))
        }
    }
}

impl Default for StrBuf {
    fn default() -> StrBuf {
        StrBuf::new()
    }
}

impl Drop for StrBuf {
    fn drop(&mut self) {
        // SAFETY: an unfinished builder's block, made with this layout.
        unsafe { std::alloc::dealloc(self.p.as_ptr(), str_layout(0, self.cap)) }
    }
}

impl Default for NixString {
    fn default() -> Self {
        NixString::new(b"")
    }
}

impl PartialEq for NixString {
    fn eq(&self, other: &NixString) -> bool {
        self.bytes == other.bytes && self.context == other.context
    }
}

impl fmt::Debug for NixString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_str_lossy())?;
        if self.has_context() {
            write!(f, " {:?}", self.context)?;
        }
        Ok(())
    }
}

impl NixStr {
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

thread_local! {
    /// The string value of each attribute name that has been asked for.
    static SYM_STRINGS: std::cell::RefCell<Vec<Option<NixString>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One attribute: name, value and where it was defined.
#[derive(Clone)]
pub struct Attr {
    pub name: Symbol,
    /// Where it was defined (convert with `.into()` / [`Pos::span`]).
    pub pos: Pos,
    pub value: Value,
}

const _: () = assert!(std::mem::size_of::<Attr>() == 24);

/// An attribute set: attributes sorted by [`Symbol`] id (not by name), so
/// lookup is a binary search and `//` a linear merge. [`AttrSet::attrs`]
/// gives the sorted slice of all attributes.
///
/// A reference-counted handle (8 bytes) to one block: an 8-byte header
/// (count, and the number of attributes) with the attributes inline, so a
/// set of n attributes is 8 + 24n bytes in one allocation and a lookup
/// follows one pointer (sets are the evaluator's most numerous objects after
/// thunks and frames: evalModules keeps hundreds of thousands alive, most of
/// them of one to seven attributes). `big // small` instead makes a block
/// holding a [`Layer`]: the small set over the shared big one (the nixpkgs
/// overlay pattern would otherwise copy the whole package set per overlay),
/// flattened once, on first iteration.
pub struct AttrSet(NonNull<SetHeader>);

#[repr(C)]
struct SetHeader {
    rc: Count,
    /// The number of attributes that follow, or [`LAYERED`]: a [`Layer`]
    /// follows.
    len: u32,
}

/// `SetHeader::len` of a block that holds a [`Layer`].
const LAYERED: u32 = u32::MAX;

const SET_BODY: usize = std::mem::size_of::<SetHeader>();
const _: () = assert!(SET_BODY == 8 && SET_BODY.is_multiple_of(std::mem::align_of::<Attr>()));
const _: () = assert!(SET_BODY.is_multiple_of(std::mem::align_of::<Layer>()));
const _: () = assert!(std::mem::size_of::<AttrSet>() == 8);

/// How many small `//` layers may stack on a set before it is flattened.
const MAX_LAYERS: u32 = 16;

/// A `//` layer: its own attributes over a shared base set.
struct Layer {
    /// This layer's attributes (a flat set: `//`'s right operand, shared).
    own: AttrSet,
    /// The set this layer overrides.
    base: AttrSet,
    /// Number of layers below this one.
    depth: u32,
    /// Number of distinct names in all layers.
    len: u32,
    /// All attributes, once iterated.
    flat: std::cell::OnceCell<AttrSet>,
}

#[inline]
fn flat_layout(len: usize) -> Layout {
    Layout::from_size_align(SET_BODY + len * std::mem::size_of::<Attr>(), std::mem::align_of::<Attr>())
        .expect("an attribute set fits in memory")
}

#[inline]
fn layer_layout() -> Layout {
    // SAFETY: a small fixed size; the alignment (8) divides SET_BODY.
    unsafe { Layout::from_size_align_unchecked(SET_BODY + std::mem::size_of::<Layer>(), std::mem::align_of::<Layer>()) }
}

/// Allocate a set block (its body left uninitialised) with a count of one.
fn alloc_set(layout: Layout, tag: u32) -> NonNull<SetHeader> {
    // SAFETY: the layout is never zero-sized (it includes the header).
    let p = unsafe { std::alloc::alloc(layout) } as *mut SetHeader;
    let Some(p) = NonNull::new(p) else { std::alloc::handle_alloc_error(layout) };
    // SAFETY: freshly allocated, large and aligned enough for the header.
    unsafe { p.as_ptr().write(SetHeader { rc: Count::one(), len: tag }) };
    p
}

impl AttrSet {
    #[inline(always)]
    fn header(&self) -> &SetHeader {
        // SAFETY: the handle keeps its block alive.
        unsafe { self.0.as_ref() }
    }
    #[inline(always)]
    fn body(&self) -> *mut u8 {
        // SAFETY: the body starts right after the header, inside the block.
        unsafe { (self.0.as_ptr() as *mut u8).add(SET_BODY) }
    }
    /// The layer of a layered set.
    #[inline]
    fn layer(&self) -> Option<&Layer> {
        if self.header().len == LAYERED {
            // SAFETY: a block tagged LAYERED holds an initialised Layer after the header.
            Some(unsafe { &*(self.body() as *const Layer) })
        } else {
            None
        }
    }
    /// The inline attributes of a flat set (None for a layered one).
    #[inline(always)]
    fn flat(&self) -> Option<&[Attr]> {
        let len = self.header().len;
        if len == LAYERED {
            return None;
        }
        // SAFETY: a flat block holds `len` initialised attributes after the header.
        Some(unsafe { std::slice::from_raw_parts(self.body() as *const Attr, len as usize) })
    }

    /// A set of `len` attributes, the i-th being `f(i)`; they must be
    /// sorted by symbol id, without duplicates. The first error is returned
    /// (and the attributes made so far dropped).
    #[inline]
    pub fn try_from_fn<E>(len: usize, mut f: impl FnMut(usize) -> std::result::Result<Attr, E>) -> std::result::Result<AttrSet, E> {
        let mut b = SetBuilder::with_capacity(len);
        for i in 0..len {
            b.push(f(i)?);
        }
        Ok(b.finish())
    }
    /// See [`AttrSet::try_from_fn`].
    #[inline]
    pub fn from_fn(len: usize, mut f: impl FnMut(usize) -> Attr) -> AttrSet {
        let mut b = SetBuilder::with_capacity(len);
        for i in 0..len {
            b.push(f(i));
        }
        b.finish()
    }
    /// From attributes already sorted by symbol id, without duplicates.
    pub fn from_sorted(attrs: Vec<Attr>) -> AttrSet {
        let mut it = attrs.into_iter();
        AttrSet::from_fn(it.len(), |_| it.next().expect("the vector has len attributes"))
    }
    /// A copy of sorted attributes.
    pub fn from_slice(attrs: &[Attr]) -> AttrSet {
        AttrSet::from_fn(attrs.len(), |i| attrs[i].clone())
    }
    /// Build from unsorted attributes; for equal names the first wins.
    pub fn from_unsorted(mut attrs: Vec<Attr>) -> AttrSet {
        // a stable sort keeps the first of equal names first
        attrs.sort_by_key(|a| a.name);
        // keep the first of equal names (callers push in priority order)
        attrs.dedup_by_key(|a| a.name);
        AttrSet::from_sorted(attrs)
    }
    fn layered(layer: Layer) -> AttrSet {
        let p = alloc_set(layer_layout(), LAYERED);
        // SAFETY: the block was allocated for a header and a Layer.
        unsafe { ((p.as_ptr() as *mut u8).add(SET_BODY) as *mut Layer).write(layer) };
        AttrSet(p)
    }
    /// The same set (one block).
    #[inline]
    pub fn ptr_eq(a: &AttrSet, b: &AttrSet) -> bool {
        a.0 == b.0
    }
    /// The block's address: the set's identity.
    #[inline]
    pub fn as_ptr(&self) -> *const () {
        self.0.as_ptr() as *const ()
    }
    /// All attributes, sorted by symbol id (a layered set is flattened
    /// once, on first use).
    #[inline]
    pub fn attrs(&self) -> &[Attr] {
        match self.flat() {
            Some(v) => v,
            None => self.attrs_layered(),
        }
    }
    #[cold]
    fn attrs_layered(&self) -> &[Attr] {
        let l = self.layer().expect("a set that is not flat is layered");
        l.flat.get_or_init(|| self.flatten_over(&[])).attrs()
    }
    /// All attributes with `extra` on top, as a flat set made in one pass
    /// over the bottom layer (without caching anything in the layers below).
    fn flatten_over(&self, extra: &[Attr]) -> AttrSet {
        // overrides, highest priority first: `extra`, then each layer's own
        let mut over: Vec<&Attr> = extra.iter().collect();
        let mut s = self;
        let bottom: &[Attr] = loop {
            if let Some(v) = s.flat() {
                break v;
            }
            let l = s.layer().expect("a set that is not flat is layered");
            if let Some(f) = l.flat.get() {
                break f.attrs();
            }
            over.extend(l.own.attrs().iter());
            s = &l.base;
        };
        // a stable sort keeps the highest-priority one first among equal names
        over.sort_by_key(|a| a.name);
        over.dedup_by_key(|a| a.name);
        merge(bottom, &over)
    }
    #[inline]
    fn depth(&self) -> u32 {
        self.layer().map_or(0, |l| l.depth)
    }
    #[inline]
    pub fn get(&self, name: Symbol) -> Option<&Value> {
        self.get_attr(name).map(|a| &a.value)
    }
    #[inline]
    pub fn get_attr(&self, name: Symbol) -> Option<&Attr> {
        match self.flat() {
            Some(v) => find(v, name),
            None => self.get_layered(name, None),
        }
    }
    /// [`AttrSet::get_attr`] for a lookup site with an inline cache.
    #[inline]
    pub fn get_attr_hinted(&self, name: Symbol, hint: &Hint) -> Option<&Attr> {
        match self.flat() {
            Some(v) => find_hinted(v, name, hint),
            None => self.get_layered(name, Some(hint)),
        }
    }
    /// The hint, if any, is for the slice the name is found in (the layers
    /// above it are searched first, so a name they override is never
    /// taken from below).
    fn get_layered(&self, name: Symbol, hint: Option<&Hint>) -> Option<&Attr> {
        fn search<'a>(v: &'a [Attr], name: Symbol, hint: Option<&Hint>) -> Option<&'a Attr> {
            match hint {
                Some(h) => find_hinted(v, name, h),
                None => find(v, name),
            }
        }
        let mut s = self;
        loop {
            if let Some(v) = s.flat() {
                return search(v, name, hint);
            }
            let l = s.layer().expect("a set that is not flat is layered");
            if let Some(f) = l.flat.get() {
                return search(f.attrs(), name, hint);
            }
            if let Some(a) = find(l.own.attrs(), name) {
                return Some(a);
            }
            s = &l.base;
        }
    }
    #[inline]
    pub fn len(&self) -> usize {
        match self.layer() {
            None => self.header().len as usize,
            Some(l) => l.len as usize,
        }
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Attributes sorted by name (how Nix prints and lists them).
    pub fn sorted_by_name(&self) -> impl ExactSizeIterator<Item = &Attr> {
        // names are distinct, so an unstable sort is deterministic
        // the first 8 bytes (big-endian, zero-padded) decide most comparisons
        // without a call to memcmp; equal prefixes fall back to the bytes
        let key = |b: &[u8]| {
            let mut k = [0u8; 8];
            let n = b.len().min(8);
            k[..n].copy_from_slice(&b[..n]);
            u64::from_be_bytes(k)
        };
        let mut v: Vec<(u64, &'static [u8], &Attr)> =
            self.attrs().iter().map(|a| (key(a.name.as_bytes()), a.name.as_bytes(), a)).collect();
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        v.into_iter().map(|(_, _, a)| a)
    }
    /// `this // other`, `other` wins: a linear merge, or a layer over `this`
    /// when `other` is small next to it. An empty side gives the other set.
    pub fn update(this: &AttrSet, other: &AttrSet) -> AttrSet {
        if other.is_empty() {
            return this.clone();
        }
        if this.is_empty() {
            return other.clone();
        }
        // chains stay short (bounded lookups, and dropping never recurses deeply)
        let depth = this.depth();
        if other.len() * 2 <= this.len() && depth < MAX_LAYERS {
            // the layer's own attributes: `other` itself when it is flat
            let own = if other.flat().is_some() { other.clone() } else { AttrSet::from_slice(other.attrs()) };
            let b = own.attrs();
            let new = b.iter().filter(|x| this.get(x.name).is_none()).count();
            let len = u32::try_from(this.len() + new).ok().filter(|&n| n != LAYERED).expect("fewer than 2^32 - 1 attributes");
            return AttrSet::layered(Layer { own, base: this.clone(), depth: depth + 1, len, flat: Default::default() });
        }
        let b = other.attrs();
        // two flat sets (the usual case): one merge, no list of overrides
        let flat = match this.layer() {
            None => this.flat(),
            Some(l) => l.flat.get().map(|f| f.attrs()),
        };
        if let Some(a) = flat {
            return merge(a, b);
        }
        this.flatten_over(b)
    }
}

/// The attribute named `name` in a sorted slice: a linear scan of a short
/// slice (no mispredicted halving), a binary search of a longer one.
#[inline(always)]
fn find(v: &[Attr], name: Symbol) -> Option<&Attr> {
    find_index(v, name).map(|i| &v[i])
}

#[inline(always)]
fn find_index(v: &[Attr], name: Symbol) -> Option<usize> {
    if v.len() <= 8 {
        return v.iter().position(|a| a.name == name);
    }
    v.binary_search_by_key(&name, |a| a.name).ok()
}

/// [`find`] that first tries the index where the site found its name last
/// time (see [`Hint`]) and remembers where it finds it now.
#[inline(always)]
fn find_hinted<'a>(v: &'a [Attr], name: Symbol, hint: &Hint) -> Option<&'a Attr> {
    if let Some(a) = v.get(hint.get())
        && a.name == name
    {
        return Some(a);
    }
    let i = find_index(v, name)?;
    hint.set(i);
    Some(&v[i])
}

impl Clone for AttrSet {
    #[inline]
    fn clone(&self) -> AttrSet {
        self.header().rc.inc();
        AttrSet(self.0)
    }
}

impl Drop for AttrSet {
    #[inline]
    fn drop(&mut self) {
        if self.header().rc.dec() {
            // SAFETY: that was the last handle: the block and its contents
            // are dropped once and freed with the layout they were made with.
            unsafe { free_set(self.0) }
        }
    }
}

/// Drop a set's contents and free its block.
///
/// # Safety
/// `p` is a set block whose count just reached zero.
#[inline(never)]
unsafe fn free_set(p: NonNull<SetHeader>) {
    // SAFETY: per the contract, the block is initialised as its tag says.
    unsafe {
        let len = (*p.as_ptr()).len;
        let body = (p.as_ptr() as *mut u8).add(SET_BODY);
        if len == LAYERED {
            std::ptr::drop_in_place(body as *mut Layer);
            std::alloc::dealloc(p.as_ptr() as *mut u8, layer_layout());
        } else {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(body as *mut Attr, len as usize));
            std::alloc::dealloc(p.as_ptr() as *mut u8, flat_layout(len as usize));
        }
    }
}

impl Default for AttrSet {
    /// The empty set.
    fn default() -> AttrSet {
        AttrSet::from_fn(0, |_| unreachable!("an empty set has no attributes"))
    }
}

impl<'a> IntoIterator for &'a AttrSet {
    type Item = &'a Attr;
    type IntoIter = std::slice::Iter<'a, Attr>;
    fn into_iter(self) -> Self::IntoIter {
        self.attrs().iter()
    }
}

/// Count the names of `b` that `a` also has (both sorted).
fn shared_names<B: std::borrow::Borrow<Attr>>(a: &[Attr], b: &[B]) -> usize {
    use std::cmp::Ordering::*;
    let mut shared = 0;
    if a.len() > 64 && b.len() * 16 <= a.len() {
        // a few overrides of a big set (overlays): look them up, no pass over `a`
        for y in b {
            shared += usize::from(a.binary_search_by_key(&y.borrow().name, |x| x.name).is_ok());
        }
    } else {
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            match a[i].name.cmp(&b[j].borrow().name) {
                Less => i += 1,
                Greater => j += 1,
                Equal => {
                    shared += 1;
                    i += 1;
                    j += 1
                }
            }
        }
    }
    shared
}

/// Merge two sorted attribute slices into a set; `b` wins on equal names.
/// The set is allocated once, at its exact size (names both sides have are
/// counted first).
fn merge<B: std::borrow::Borrow<Attr>>(a: &[Attr], b: &[B]) -> AttrSet {
    use std::cmp::Ordering::*;
    let mut out = SetBuilder::with_capacity(a.len() + b.len() - shared_names(a, b));
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let y = b[j].borrow();
        match a[i].name.cmp(&y.name) {
            Less => {
                out.push(a[i].clone());
                i += 1
            }
            Greater => {
                out.push(y.clone());
                j += 1
            }
            Equal => {
                out.push(y.clone());
                i += 1;
                j += 1
            }
        }
    }
    for x in &a[i..] {
        out.push(x.clone());
    }
    for y in &b[j..] {
        out.push(y.borrow().clone());
    }
    out.finish()
}

/// A flat set being filled in order: a block allocated for `cap`
/// attributes, `len` of them written so far (the header counts them).
/// Attributes must be pushed sorted by symbol id, without duplicates.
pub struct SetBuilder {
    p: NonNull<SetHeader>,
    cap: u32,
}

impl SetBuilder {
    /// Room for exactly `cap` attributes.
    pub fn with_capacity(cap: usize) -> SetBuilder {
        let n = u32::try_from(cap).ok().filter(|&n| n != LAYERED).expect("fewer than 2^32 - 1 attributes");
        SetBuilder { p: alloc_set(flat_layout(cap), 0), cap: n }
    }
    /// Append an attribute (past the capacity is a bug: it panics).
    #[inline(always)]
    pub fn push(&mut self, a: Attr) {
        // SAFETY: the builder owns its block.
        let h = unsafe { &mut *self.p.as_ptr() };
        assert!(h.len < self.cap, "more attributes than the set was made for");
        debug_assert!(h.len == 0 || self.last().is_some_and(|l| l.name < a.name), "attributes pushed in symbol order");
        // SAFETY: slot `len` < cap lies inside the block and is unwritten;
        // the header then counts it.
        unsafe { ((self.p.as_ptr() as *mut u8).add(SET_BODY) as *mut Attr).add(h.len as usize).write(a) };
        h.len += 1;
    }
    fn last(&self) -> Option<&Attr> {
        // SAFETY: the first `len` attributes are initialised.
        let len = unsafe { (*self.p.as_ptr()).len } as usize;
        let attrs = unsafe { std::slice::from_raw_parts((self.p.as_ptr() as *const u8).add(SET_BODY) as *const Attr, len) };
        attrs.last()
    }
    /// The set (its block shrunk if fewer than `cap` attributes were pushed).
    pub fn finish(self) -> AttrSet {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: the builder owns its block, allocated for `cap` attributes.
        let len = unsafe { (*this.p.as_ptr()).len };
        if len == this.cap {
            return AttrSet(this.p);
        }
        // SAFETY: shrinking the block to the layout of its real length;
        // the attributes written so far move with it.
        unsafe {
            let old = flat_layout(this.cap as usize);
            let new = flat_layout(len as usize);
            let q = std::alloc::realloc(this.p.as_ptr() as *mut u8, old, new.size()) as *mut SetHeader;
            let Some(q) = NonNull::new(q) else { std::alloc::handle_alloc_error(new) };
            AttrSet(q)
        }
    }
}

impl Drop for SetBuilder {
    fn drop(&mut self) {
        // SAFETY: the first `len` attributes were written; the block was
        // allocated for `cap` attributes.
        unsafe {
            let len = (*self.p.as_ptr()).len as usize;
            let attrs = (self.p.as_ptr() as *mut u8).add(SET_BODY) as *mut Attr;
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(attrs, len));
            std::alloc::dealloc(self.p.as_ptr() as *mut u8, flat_layout(self.cap as usize));
        }
    }
}

/// An environment frame: the values bound by one `let`, `rec`, lambda call
/// or `with`. A reference-counted handle to one allocation holding a small
/// header (count, length, parent) and the slots inline, so a one-slot frame
/// (most calls) is 32 bytes and no frame needs a second allocation.
pub struct Env(NonNull<EnvHeader>);

#[repr(C)]
struct EnvHeader {
    rc: Count,
    len: u32,
    parent: Option<Env>,
    // followed by `len` values
}

const SLOTS_OFFSET: usize = std::mem::size_of::<EnvHeader>();
const _: () = assert!(SLOTS_OFFSET == 16 && SLOTS_OFFSET.is_multiple_of(std::mem::align_of::<Value>()));

#[inline]
fn env_layout(len: usize) -> Layout {
    // SAFETY: a frame has at most a few thousand slots (one per binding of
    // one expression), far below isize::MAX bytes; the alignment is Value's.
    unsafe {
        Layout::from_size_align_unchecked(SLOTS_OFFSET + len * std::mem::size_of::<Value>(), std::mem::align_of::<Value>())
    }
}

impl Env {
    /// A frame holding `slots` (missing ones are null).
    pub fn new<I>(parent: Option<Env>, slots: I) -> Env
    where
        I: IntoIterator<Item = Value>,
        I::IntoIter: ExactSizeIterator,
    {
        let mut it = slots.into_iter();
        let len = it.len();
        let e = Env::alloc(parent, len);
        for i in 0..len {
            // SAFETY: slot i of a fresh frame, not yet initialised.
            unsafe { e.slots_ptr().add(i).write(it.next().unwrap_or(Value::Null)) };
        }
        e
    }

    /// A frame of `len` null slots, to be filled in with [`Env::set`].
    #[inline]
    pub fn with_len(parent: Option<Env>, len: usize) -> Env {
        let e = Env::alloc(parent, len);
        for i in 0..len {
            // SAFETY: slot i of a fresh frame, not yet initialised.
            unsafe { e.slots_ptr().add(i).write(Value::Null) };
        }
        e
    }

    /// A frame with one slot (a plain `x: …` call, `with`).
    #[inline]
    pub fn one(parent: Option<Env>, v: Value) -> Env {
        let e = Env::alloc(parent, 1);
        // SAFETY: slot 0 of a fresh one-slot frame.
        unsafe { e.slots_ptr().write(v) };
        e
    }

    /// A frame with uninitialised slots: the caller writes every one.
    #[inline]
    fn alloc(parent: Option<Env>, len: usize) -> Env {
        let len32 = u32::try_from(len).expect("frames have fewer than 2^32 slots");
        let layout = env_layout(len);
        // SAFETY: the layout is non-zero (the header alone is 16 bytes).
        let p = unsafe { std::alloc::alloc(layout) } as *mut EnvHeader;
        let Some(p) = NonNull::new(p) else { std::alloc::handle_alloc_error(layout) };
        // SAFETY: freshly allocated, properly aligned for the header.
        unsafe { p.as_ptr().write(EnvHeader { rc: Count::one(), len: len32, parent }) };
        Env(p)
    }

    #[inline]
    fn header(&self) -> &EnvHeader {
        // SAFETY: the allocation lives while any handle does.
        unsafe { self.0.as_ref() }
    }

    #[inline]
    fn slots_ptr(&self) -> *mut Value {
        // SAFETY: the slots follow the header in the same allocation.
        unsafe { (self.0.as_ptr() as *mut u8).add(SLOTS_OFFSET) as *mut Value }
    }

    /// The enclosing frame.
    #[inline]
    pub fn parent(&self) -> Option<&Env> {
        self.header().parent.as_ref()
    }

    /// Number of slots.
    #[inline]
    pub fn len(&self) -> usize {
        self.header().len as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    fn slot(&self, slot: usize) -> &Value {
        assert!(slot < self.len(), "lowering resolved the slot within the frame");
        // SAFETY: in bounds; single-threaded, and a slot is only overwritten
        // (`set`) while a frame is being built, before code runs in it, so no
        // reference handed out here is live across a write.
        unsafe { &*self.slots_ptr().add(slot) }
    }

    #[inline(always)]
    pub fn get(&self, slot: usize) -> Value {
        self.slot(slot).clone()
    }

    /// The value in a slot, borrowed (no count changes).
    #[inline]
    pub(crate) fn slot_ref(&self, slot: usize) -> &Value {
        self.slot(slot)
    }

    /// Force the value in a slot without cloning the thunk handle.
    #[inline]
    pub fn force_slot(&self, slot: usize, ev: &Eval) -> Result<Value> {
        // the thunk is kept alive by this frame while it is forced
        match self.slot(slot) {
            Value::Thunk(t) => t.force(ev),
            other => Ok(other.clone()),
        }
    }

    /// The slot's value if it is an already evaluated integer.
    #[inline]
    pub fn peek_int(&self, slot: usize) -> Option<i64> {
        match self.slot(slot) {
            Value::Int(i) => Some(*i),
            Value::Thunk(t) => match t.value() {
                Some(Value::Int(i)) => Some(*i),
                _ => None,
            },
            _ => None,
        }
    }

    /// Write a slot of a frame being filled, still holding the null that
    /// [`Env::with_len`] put there (nothing to drop).
    #[inline]
    pub fn init(&self, slot: usize, v: Value) {
        assert!(slot < self.len(), "lowering resolved the slot within the frame");
        // SAFETY: in bounds; the slot holds a null (asserted in debug
        // builds), which owns nothing, so overwriting it leaks nothing.
        unsafe {
            let p = self.slots_ptr().add(slot);
            debug_assert!(matches!(*p, Value::Null), "a slot is initialised once");
            p.write(v);
        }
    }

    /// Replace a slot's value (a `rec` set's `__overrides`).
    #[inline]
    pub fn set(&self, slot: usize, v: Value) {
        assert!(slot < self.len(), "lowering resolved the slot within the frame");
        // SAFETY: in bounds; see `slot`. The old value is dropped after the write.
        let old = unsafe { std::ptr::replace(self.slots_ptr().add(slot), v) };
        drop(old);
    }

    #[inline]
    pub fn up(&self, depth: u32) -> &Env {
        let mut e: &Env = self;
        for _ in 0..depth {
            e = e.parent().expect("lowering resolved depth within the frame chain");
        }
        e
    }

    /// Drop the handle of a frame whose slots were filled in after it was
    /// made (`let`, formals' defaults), once the code that runs in it has
    /// finished. If the frame's other handles are all held by its own
    /// slots (an unforced binding's thunk, a local function's closure,
    /// each held by nothing but the slot), the frame and its slots keep
    /// each other alive and nothing else can reach them: the reference
    /// cycle is broken by emptying the slots, and the frame is freed.
    ///
    /// Sound because every count is a handle: a frame whose count equals
    /// the handles held by objects only its slots hold is unreachable once
    /// this handle goes (a borrow of the frame or a slot is always taken
    /// through some counted handle, which would be counted here). A thunk
    /// being forced is a blackhole, never counted as one of the slots' own.
    #[inline]
    pub fn release(self) {
        if self.header().rc.0.get() > 1 {
            self.release_slow();
        }
    }

    #[inline(never)]
    fn release_slow(self) {
        let me = self.0;
        // this handle, plus one per slot object that only the slot holds
        // and that holds this frame
        let mut own = 1u32;
        for i in 0..self.len() {
            match self.slot(i) {
                Value::Thunk(t) if t.block().rc.0.get() == 1 && t.block().tag.get() == T_SUSPENDED => {
                    // SAFETY: the tag says the data holds a suspended
                    // expression and its frame.
                    let (_, env) = unsafe { &*(t.block().data_ptr() as *const (&'static Expr, Env)) };
                    if env.0 == me {
                        own += 1;
                    }
                }
                Value::Lambda(c) if Shared::strong_count(c) == 1 && c.env.0 == me => own += 1,
                _ => {}
            }
        }
        if own != self.header().rc.0.get() {
            return;
        }
        for i in 0..self.len() {
            // SAFETY: in bounds; nothing can borrow a slot of a frame no
            // other handle reaches. Dropping the old value may drop counts
            // of this frame; this handle keeps it alive meanwhile.
            let old = unsafe { std::ptr::replace(self.slots_ptr().add(i), Value::Null) };
            drop(old);
        }
    }

    /// Whether two handles name the same frame.
    pub fn ptr_eq(a: &Env, b: &Env) -> bool {
        a.0 == b.0
    }
}

impl Clone for Env {
    #[inline]
    fn clone(&self) -> Env {
        let h = self.header();
        h.rc.inc();
        Env(self.0)
    }
}

impl Drop for Env {
    #[inline]
    fn drop(&mut self) {
        let h = self.header();
        if !h.rc.dec() {
            return;
        }
        free_env_chain(self.0);
    }
}

/// Free a frame whose count reached zero, then its parents that become
/// unreferenced, iteratively (a long chain of frames does not recurse).
#[inline(never)]
fn free_env_chain(mut p: NonNull<EnvHeader>) {
    loop {
        // SAFETY: the count is zero, so this is the last handle: drop the
        // slots, move the parent out, free the block with its layout.
        let parent = unsafe {
            let len = p.as_ref().len as usize;
            let slots = (p.as_ptr() as *mut u8).add(SLOTS_OFFSET) as *mut Value;
            for i in 0..len {
                std::ptr::drop_in_place(slots.add(i));
            }
            let parent = std::ptr::read(&p.as_ref().parent);
            std::alloc::dealloc(p.as_ptr() as *mut u8, env_layout(len));
            parent
        };
        let Some(parent) = parent else { return };
        let q = parent.0;
        std::mem::forget(parent);
        // SAFETY: `parent` was a live handle, now consumed by hand.
        let h = unsafe { q.as_ref() };
        if !h.rc.dec() {
            return;
        }
        p = q;
    }
}

/// A counted handle to one block holding a [`Count`] and a `T`: `Rc`
/// without the weak count, and with the count first in the block, where
/// `Value::clone` finds every counted kind's.
pub struct Shared<T> {
    ptr: NonNull<SharedBox<T>>,
    _owns: std::marker::PhantomData<T>,
}

#[repr(C)]
struct SharedBox<T> {
    rc: Count,
    value: T,
}

impl<T> Shared<T> {
    pub fn new(value: T) -> Shared<T> {
        let b = Box::new(SharedBox { rc: Count::one(), value });
        Shared { ptr: NonNull::from(Box::leak(b)), _owns: std::marker::PhantomData }
    }

    /// Whether two handles name the same block.
    #[inline]
    pub fn ptr_eq(a: &Shared<T>, b: &Shared<T>) -> bool {
        a.ptr == b.ptr
    }

    /// The address of the value (an identity).
    #[inline]
    pub fn as_ptr(this: &Shared<T>) -> *const T {
        // SAFETY: the block lives while any handle does.
        unsafe { &raw const (*this.ptr.as_ptr()).value }
    }

    /// How many handles there are.
    #[inline]
    pub fn strong_count(this: &Shared<T>) -> usize {
        // SAFETY: the block lives while any handle does.
        unsafe { this.ptr.as_ref() }.rc.0.get() as usize
    }

    /// The value, if this is the only handle.
    pub fn try_unwrap(this: Shared<T>) -> std::result::Result<T, Shared<T>> {
        if Shared::strong_count(&this) != 1 {
            return Err(this);
        }
        let this = std::mem::ManuallyDrop::new(this);
        // SAFETY: the last handle: the block came from `Box::new` and
        // nothing else reads it; the value is moved out and the box freed
        // without dropping it again.
        unsafe {
            let b = Box::from_raw(this.ptr.as_ptr() as *mut std::mem::ManuallyDrop<SharedBox<T>>);
            Ok(std::ptr::read(&b.value))
        }
    }

    #[cold]
    #[inline(never)]
    fn free(&mut self) {
        // SAFETY: the count reached zero: this was the last handle to the
        // block `Box::new` made.
        drop(unsafe { Box::from_raw(self.ptr.as_ptr()) });
    }
}

impl<T> Clone for Shared<T> {
    #[inline(always)]
    fn clone(&self) -> Shared<T> {
        // SAFETY: the block lives while any handle does.
        unsafe { self.ptr.as_ref() }.rc.inc();
        Shared { ptr: self.ptr, _owns: std::marker::PhantomData }
    }
}

impl<T> Drop for Shared<T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the block lives while this handle does.
        if unsafe { self.ptr.as_ref() }.rc.dec() {
            self.free();
        }
    }
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        // SAFETY: the block lives while any handle does.
        unsafe { &self.ptr.as_ref().value }
    }
}

/// A lambda together with the environment it closes over.
pub struct Closure {
    pub lambda: &'static LambdaIR,
    pub env: Env,
}

/// A builtin function: `arity` arguments (unforced) are passed to `func`.
pub struct PrimOpDef {
    pub name: &'static str,
    pub arity: usize,
    pub func: fn(&Eval, &[Value], Span) -> Result<Value>,
    /// The arguments the builtin forces before it does anything else, in
    /// its order, each with what it must be for the builtin to go on to
    /// the next. A call that gives them as expressions evaluates them
    /// before the call instead of suspending them (`Eval::arg_forced`).
    pub forces: &'static [(u8, Want)],
}

/// What a builtin's argument must be (in weak head normal form) for the
/// builtin to go on without an error (see [`PrimOpDef::forces`]); a
/// subset of what it accepts is enough.
#[derive(Clone, Copy, Debug)]
pub enum Want {
    Any,
    List,
    Attrs,
    Function,
    String,
}

impl Want {
    #[inline]
    pub(crate) fn admits(self, v: &Value) -> bool {
        let v = match v {
            Value::Thunk(t) => match t.value() {
                Some(v) => v,
                // not evaluated, or failed: the builtin stops there
                None => return false,
            },
            v => v,
        };
        match self {
            Want::Any => true,
            Want::List => matches!(v, Value::List(_)),
            Want::Attrs => matches!(v, Value::Attrs(_)),
            Want::Function => matches!(v, Value::Lambda(_) | Value::PrimOp(_) | Value::PrimOpApp(_)),
            Want::String => matches!(v, Value::String(_)),
        }
    }
}

/// A partially applied builtin.
pub struct PrimOpApp {
    pub op: &'static PrimOpDef,
    pub args: Vec<Value>,
}

/// A delayed computation with its state machine: a reference-counted
/// handle to one 24-byte block (count, state tag, 16 bytes of state), the
/// smallest block a 16-byte value and a count fit in (the pool allocator
/// has 8-byte size classes). The state is stored by hand rather than as a
/// [`ThunkState`] (whose own tag would make the block 32 bytes: thunks are
/// the evaluator's most numerous objects).
pub struct Thunk(NonNull<ThunkBox>);

#[repr(C)]
struct ThunkBox {
    rc: Count,
    /// Which [`ThunkState`] the data holds (the `T_*` constants).
    tag: Cell<u32>,
    /// The state's fields, written as the variant's payload type.
    data: UnsafeCell<std::mem::MaybeUninit<[u64; 2]>>,
}

pub enum ThunkState {
    /// An expression waiting to be evaluated in an environment.
    Suspended(&'static Expr, Env),
    /// A function application waiting to happen (built by builtins).
    Apply(Box<(Value, Value)>),
    /// `f i` for an integer argument (genList: the elements share `f`).
    ApplyInt(Rc<Value>, i64),
    /// `f list[i]` (map: the elements share `f` and the input list, so an
    /// element costs one small block).
    ApplyElem(Rc<(Value, Shared<List>)>, usize),
    /// `f name value` of attribute `i` of a set (mapAttrs, zipAttrsWith:
    /// the attributes share `f` and the set, so one costs one thunk block).
    /// (An index with [`PLACED_AT_FUNCTION`] set: the call is shown at the
    /// function's position, see [`Thunk::apply_attr`].)
    ApplyAttr(Rc<(Value, AttrSet)>, usize),
    /// Being evaluated: forcing it again is infinite recursion.
    Blackhole,
    Done(Value),
    /// Evaluation failed; forcing again gives the same error (like Nix ≥ 2.34).
    Failed(Error),
}

const T_SUSPENDED: u32 = 0;
const T_APPLY: u32 = 1;
const T_APPLY_INT: u32 = 2;
const T_APPLY_ELEM: u32 = 3;
const T_BLACKHOLE: u32 = 5;
const T_DONE: u32 = 6;
const T_FAILED: u32 = 7;
const T_APPLY_ATTR: u32 = 8;
/// [`T_FAILED`] whose error has not been thrown yet: the first force
/// hands it on as it is (see [`Thunk::failing`]).
const T_FAILED_FIRST: u32 = 9;

const _: () = assert!(std::mem::size_of::<ThunkBox>() == 24);
const _: () = assert!(std::mem::size_of::<(&'static Expr, Env)>() <= 16 && std::mem::align_of::<(&'static Expr, Env)>() <= 8);
const _: () = assert!(std::mem::size_of::<(Rc<Value>, i64)>() <= 16 && std::mem::size_of::<(Rc<(Value, Shared<List>)>, usize)>() <= 16);
const _: () = assert!(std::mem::size_of::<(Rc<(Value, AttrSet)>, usize)>() <= 16);
const _: () = assert!(std::mem::size_of::<Value>() <= 16 && std::mem::align_of::<Value>() <= 8);
const _: () = assert!(std::mem::size_of::<Error>() <= 16 && std::mem::align_of::<Error>() <= 8);

impl ThunkBox {
    #[inline(always)]
    fn data_ptr(&self) -> *mut u8 {
        self.data.get() as *mut u8
    }

    /// Write a state into a block whose data holds nothing (fresh, or
    /// just taken out with [`ThunkBox::take`]).
    ///
    /// # Safety
    /// The data owns nothing (else it leaks); single-threaded.
    #[inline(always)]
    unsafe fn put(&self, s: ThunkState) {
        let d = self.data_ptr();
        // SAFETY: each payload type fits the 16 aligned bytes (asserted
        // above) and is read back as the same type by `take`/`done`.
        let tag = unsafe {
            match s {
                ThunkState::Suspended(e, env) => {
                    (d as *mut (&'static Expr, Env)).write((e, env));
                    T_SUSPENDED
                }
                ThunkState::Apply(b) => {
                    (d as *mut Box<(Value, Value)>).write(b);
                    T_APPLY
                }
                ThunkState::ApplyInt(f, i) => {
                    (d as *mut (Rc<Value>, i64)).write((f, i));
                    T_APPLY_INT
                }
                ThunkState::ApplyElem(src, i) => {
                    (d as *mut (Rc<(Value, Shared<List>)>, usize)).write((src, i));
                    T_APPLY_ELEM
                }
                ThunkState::ApplyAttr(src, i) => {
                    (d as *mut (Rc<(Value, AttrSet)>, usize)).write((src, i));
                    T_APPLY_ATTR
                }
                ThunkState::Blackhole => T_BLACKHOLE,
                ThunkState::Done(v) => {
                    (d as *mut Value).write(v);
                    T_DONE
                }
                ThunkState::Failed(e) => {
                    (d as *mut Error).write(e);
                    T_FAILED
                }
            }
        };
        self.tag.set(tag);
    }

    /// Move the state out, leaving [`ThunkState::Blackhole`] (which owns
    /// nothing).
    ///
    /// # Safety
    /// Single-threaded; nothing borrows the data.
    #[inline(always)]
    unsafe fn take(&self) -> ThunkState {
        let d = self.data_ptr();
        let tag = self.tag.replace(T_BLACKHOLE);
        // SAFETY: the tag says which payload type `put` wrote; reading it
        // moves it out (the tag now says the data owns nothing).
        unsafe {
            match tag {
                T_SUSPENDED => {
                    let (e, env) = (d as *const (&'static Expr, Env)).read();
                    ThunkState::Suspended(e, env)
                }
                T_APPLY => ThunkState::Apply((d as *const Box<(Value, Value)>).read()),
                T_APPLY_INT => {
                    let (f, i) = (d as *const (Rc<Value>, i64)).read();
                    ThunkState::ApplyInt(f, i)
                }
                T_APPLY_ELEM => {
                    let (src, i) = (d as *const (Rc<(Value, Shared<List>)>, usize)).read();
                    ThunkState::ApplyElem(src, i)
                }
                T_APPLY_ATTR => {
                    let (src, i) = (d as *const (Rc<(Value, AttrSet)>, usize)).read();
                    ThunkState::ApplyAttr(src, i)
                }
                T_DONE => ThunkState::Done((d as *const Value).read()),
                T_FAILED | T_FAILED_FIRST => ThunkState::Failed((d as *const Error).read()),
                _ => ThunkState::Blackhole,
            }
        }
    }

    /// The value of an evaluated thunk, borrowed. A `Done` state is never
    /// overwritten, so the borrow lasts as long as the block.
    #[inline(always)]
    fn done(&self) -> Option<&Value> {
        if self.tag.get() == T_DONE {
            // SAFETY: the tag says the data holds a `Value`.
            Some(unsafe { &*(self.data_ptr() as *const Value) })
        } else {
            None
        }
    }

    /// Ask for the line that forcing this thunk reads after the block
    /// itself: its value's block, its frame, or the list element it maps.
    #[inline(always)]
    fn prefetch_state(&self) {
        let d = self.data_ptr();
        // SAFETY: each tag's payload is read as the type `put` wrote.
        unsafe {
            match self.tag.get() {
                T_DONE => (*(d as *const Value)).prefetch(),
                T_SUSPENDED => crate::alloc::prefetch((*(d as *const (&'static Expr, Env))).1 .0.as_ptr() as *mut u8),
                T_APPLY_ELEM => {
                    let (src, i) = &*(d as *const (Rc<(Value, Shared<List>)>, usize));
                    if let Some(x) = src.1.get(*i) {
                        x.prefetch();
                    }
                }
                _ => {}
            }
        }
    }

    /// The error of a failed thunk, borrowed.
    #[inline]
    fn failed(&self) -> Option<&Error> {
        if self.tag.get() == T_FAILED {
            // SAFETY: the tag says the data holds an `Error`.
            Some(unsafe { &*(self.data_ptr() as *const Error) })
        } else {
            None
        }
    }
}

impl Clone for Thunk {
    #[inline]
    fn clone(&self) -> Thunk {
        // SAFETY: the block lives while any handle does.
        let h = unsafe { self.0.as_ref() };
        h.rc.inc();
        Thunk(self.0)
    }
}

impl Drop for Thunk {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the block lives while any handle does.
        let h = unsafe { self.0.as_ref() };
        if !h.rc.dec() {
            return;
        }
        free_thunk(self.0);
    }
}

#[inline(never)]
fn free_thunk(p: NonNull<ThunkBox>) {
    // SAFETY: the count reached zero: this was the last handle. The state
    // is dropped (in place, or moved out) before the block is freed.
    unsafe {
        let b = p.as_ref();
        let d = b.data_ptr();
        // the two common states (an evaluated value, a suspended
        // expression) are dropped in place; the rest through `take`
        match b.tag.get() {
            T_DONE => std::ptr::drop_in_place(d as *mut Value),
            T_SUSPENDED => std::ptr::drop_in_place(d as *mut (&'static Expr, Env)),
            T_BLACKHOLE => {}
            _ => drop(b.take()),
        }
        std::alloc::dealloc(p.as_ptr() as *mut u8, Layout::new::<ThunkBox>());
    }
}

/// The flag in an `ApplyAttr` index for a call shown at the function's
/// position (no set has 2^63 attributes).
const PLACED_AT_FUNCTION: usize = 1 << (usize::BITS - 1);

/// Where C++ Nix places a call that has no call site: the function's own
/// position, if it is a lambda.
fn lambda_pos(f: &Value) -> Span {
    match f {
        Value::Lambda(c) => c.lambda.pos,
        _ => Span::NONE,
    }
}

impl Thunk {
    #[inline]
    fn new(state: ThunkState) -> Thunk {
        let layout = Layout::new::<ThunkBox>();
        // SAFETY: non-zero size.
        let p = unsafe { std::alloc::alloc(layout) } as *mut ThunkBox;
        let Some(p) = NonNull::new(p) else { std::alloc::handle_alloc_error(layout) };
        // SAFETY: fresh, aligned block; its data owns nothing yet.
        unsafe {
            p.as_ptr().write(ThunkBox {
                rc: Count::one(),
                tag: Cell::new(T_BLACKHOLE),
                data: UnsafeCell::new(std::mem::MaybeUninit::uninit()),
            });
            p.as_ref().put(state);
        }
        Thunk(p)
    }
    #[inline(always)]
    fn block(&self) -> &ThunkBox {
        // SAFETY: the block lives while any handle does.
        unsafe { self.0.as_ref() }
    }
    /// Whether two handles name the same thunk.
    pub fn ptr_eq(a: &Thunk, b: &Thunk) -> bool {
        a.0 == b.0
    }
    /// The thunk's address (an identity for cycle detection).
    pub fn as_ptr(&self) -> usize {
        self.0.as_ptr() as usize
    }
    pub fn suspended(e: &'static Expr, env: Env) -> Value {
        Value::from_thunk(Thunk::new(ThunkState::Suspended(e, env)))
    }
    pub fn apply(f: Value, arg: Value) -> Value {
        Value::from_thunk(Thunk::new(ThunkState::Apply(Box::new((f, arg)))))
    }
    /// `f i` as a thunk (`f` shared by the caller's thunks).
    pub fn apply_int(f: &Rc<Value>, i: i64) -> Value {
        Value::from_thunk(Thunk::new(ThunkState::ApplyInt(f.clone(), i)))
    }
    /// `f list[i]` as a thunk (`f` and the list shared by the caller's thunks).
    pub fn apply_elem(src: &Rc<(Value, Shared<List>)>, i: usize) -> Value {
        Value::from_thunk(Thunk::new(ThunkState::ApplyElem(src.clone(), i)))
    }
    /// `f name value` of the `i`th attribute (in symbol order) of a set, as
    /// a thunk (`f` and the set shared by the caller's thunks). With
    /// `placed`, the call is shown at `f`'s position (as C++ Nix shows
    /// `zipAttrsWith`'s, whose function it forced, but not `mapAttrs`').
    pub fn apply_attr(src: &Rc<(Value, AttrSet)>, i: usize, placed: bool) -> Value {
        let i = if placed { i | PLACED_AT_FUNCTION } else { i };
        Value::from_thunk(Thunk::new(ThunkState::ApplyAttr(src.clone(), i)))
    }
    /// A thunk standing for an evaluation that already failed with `e`
    /// (a builtin's argument evaluated before the call, see
    /// `Eval::arg_forced`): its first force throws `e` itself, as the
    /// failing evaluation would have, later ones a copy.
    #[cold]
    pub(crate) fn failing(e: Error) -> Value {
        let t = Thunk::new(ThunkState::Failed(e));
        t.block().tag.set(T_FAILED_FIRST);
        Value::from_thunk(t)
    }
    /// A thunk that is being filled in (used for self-referencing constants).
    pub fn blackhole() -> Thunk {
        Thunk::new(ThunkState::Blackhole)
    }
    /// Fill in a thunk made with [`Thunk::blackhole`].
    pub fn set_done(&self, v: Value) {
        // SAFETY: single-threaded; nobody holds a reference into the state.
        unsafe {
            let b = self.block();
            drop(b.take());
            b.put(ThunkState::Done(v));
        }
    }
    /// The value, if already evaluated.
    pub fn value(&self) -> Option<&Value> {
        self.block().done()
    }
    #[inline]
    pub(crate) fn force(&self, ev: &Eval) -> Result<Value> {
        if let Some(v) = self.block().done() {
            return Ok(v.clone());
        }
        self.force_slow(ev).cloned()
    }

    /// Force, and borrow the value from the thunk instead of cloning it.
    /// Sound because a `Done` state is never overwritten and the block
    /// lives while this handle does.
    #[inline]
    pub(crate) fn force_ref(&self, ev: &Eval) -> Result<&Value> {
        if let Some(v) = self.block().done() {
            return Ok(v);
        }
        self.force_slow(ev)
    }

    /// Evaluate a thunk that is not `Done`; the value is borrowed from its
    /// new `Done` state (see [`Thunk::force_ref`]).
    #[inline(never)]
    fn force_slow(&self, ev: &Eval) -> Result<&Value> {
        let b = self.block();
        let d = b.data_ptr();
        if b.tag.get() == T_SUSPENDED {
            // The common state, without the general `take`/`put`.
            // SAFETY: single-threaded; the tag says the data holds a
            // suspended expression and its frame, moved out here (the tag
            // says blackhole, owning nothing, while it is evaluated). The
            // caller's handle keeps the block alive.
            let (e, env) = unsafe { (d as *const (&'static Expr, Env)).read() };
            b.tag.set(T_BLACKHOLE);
            let r = ev.eval_deep(e, &env);
            // A nested force of this thunk only read the blackhole, so the
            // data owns nothing here.
            debug_assert_eq!(b.tag.get(), T_BLACKHOLE);
            return match r {
                Ok(v) => {
                    // SAFETY: the data owns nothing (see above); a `Value`
                    // fits it (asserted with the thunk layout). The frame
                    // is dropped after: this handle keeps the block alive
                    // even if that drops the frame's counts of it.
                    unsafe { (d as *mut Value).write(v) };
                    b.tag.set(T_DONE);
                    drop(env);
                    // SAFETY: written just above; `Done` is never overwritten.
                    Ok(unsafe { &*(d as *const Value) })
                }
                Err(err) => Err(self.record_failure(err, ThunkState::Suspended(e, env))),
            };
        }
        match b.tag.get() {
            T_BLACKHOLE => return Err(Error::infinite_recursion_from(self.as_ptr())),
            T_FAILED => return Err(b.failed().expect("a failed thunk holds its error").rethrown()),
            T_FAILED_FIRST => {
                b.tag.set(T_FAILED);
                return Err(b.failed().expect("a failed thunk holds its error").clone());
            }
            _ => {}
        }
        // SAFETY: single-threaded; nothing borrows a state that is not
        // `Done`. The state is moved out (the thunk is a blackhole while it
        // is evaluated) and the caller's handle keeps the block alive.
        let taken = unsafe { b.take() };
        let r = match &taken {
            ThunkState::Suspended(e, env) => ev.eval_deep(e, env),
            ThunkState::Apply(fa) => {
                ev.with_stack(|| ev.call(&fa.0, fa.1.clone(), Span::NONE))
            }
            // These applications have no call site of their own; C++ Nix
            // then shows the position of the function (when the builtin
            // forced it: `map`, `genList`, `zipAttrsWith`, not `mapAttrs`)
            // as the call's, in "from call site" frames and errors.
            ThunkState::ApplyAttr(src, i) => ev.with_stack(|| {
                let a = &src.1.attrs()[*i & !PLACED_AT_FUNCTION];
                let pos = if *i & PLACED_AT_FUNCTION != 0 { lambda_pos(&src.0) } else { Span::NONE };
                ev.call2(&src.0, Value::sym_string(a.name), a.value.clone(), pos)
            }),
            ThunkState::ApplyElem(src, i) => {
                ev.with_stack(|| ev.call(&src.0, src.1[*i].clone(), lambda_pos(&src.0)))
            }
            ThunkState::ApplyInt(f, i) => {
                ev.with_stack(|| ev.call(f, Value::Int(*i), lambda_pos(f)))
            }
            _ => unreachable!(),
        };
        // A nested force of this thunk only read the blackhole, so the
        // data owns nothing here.
        debug_assert_eq!(b.tag.get(), T_BLACKHOLE);
        match r {
            Ok(v) => {
                // SAFETY: the data owns nothing (see above).
                unsafe { b.put(ThunkState::Done(v)) };
                drop(taken);
                Ok(b.done().expect("just evaluated"))
            }
            Err(e) => Err(self.record_failure(e, taken)),
        }
    }

    /// Record the failure of the evaluation of `taken`, moved out of this
    /// thunk (now a blackhole owning nothing): the thunk keeps the error,
    /// or gets `taken` back after a stack overflow or infinite recursion
    /// (forcing it again from elsewhere may succeed or report it there).
    #[cold]
    #[inline(never)]
    fn record_failure(&self, e: Error, taken: ThunkState) -> Error {
        let b = self.block();
        let id = self.as_ptr();
        // a variable's thunk (a slot of a frame not written yet when it was
        // made) that re-entered its value
        let e = match &taken {
            ThunkState::Suspended(x, _) => e.at_reentered_var(x),
            _ => e,
        }
        .unwound();
        let mut e = if e.kind() == crate::ErrorKind::InfiniteRecursion { e.leaving_thunk(id) } else { e };
        // SAFETY: the data owns nothing (the caller's state was moved out).
        if matches!(e.kind(), crate::ErrorKind::StackOverflow | crate::ErrorKind::InfiniteRecursion) {
            unsafe { b.put(taken) };
        } else {
            unsafe { b.put(ThunkState::Failed(e.memoised())) };
            drop(taken);
        }
        e
    }
}

impl Value {
    pub fn string(s: impl AsRef<[u8]>) -> Value {
        Value::from_string(NixString::new(s))
    }
    /// An attribute name as a string value; one shared string per name.
    pub fn sym_string(n: Symbol) -> Value {
        SYM_STRINGS.with(|c| {
            let mut c = c.borrow_mut();
            let i = n.0 as usize;
            if c.len() <= i {
                c.resize(i + 1, None);
            }
            Value::from_string(c[i].get_or_insert_with(|| NixString::new(n.as_bytes())).clone())
        })
    }
    /// Offer `s`, a context-free string whose bytes are `n`'s name, as the
    /// shared string [`Value::sym_string`] gives for `n` (listToAttrs: the
    /// names a later attrNames or mapAttrs hands out are then not copies).
    pub fn offer_sym_string(n: Symbol, s: &NixString) {
        if s.has_context() {
            return;
        }
        debug_assert!(s.bytes == *n.as_bytes());
        SYM_STRINGS.with(|c| {
            let mut c = c.borrow_mut();
            let i = n.0 as usize;
            if c.len() <= i {
                c.resize(i + 1, None);
            }
            c[i].get_or_insert_with(|| s.clone());
        })
    }
    pub fn str(s: &str) -> Value {
        Value::string(s.as_bytes())
    }
    pub fn string_ctx(s: impl AsRef<[u8]>, ctx: Context) -> Value {
        Value::from_string(NixString::with_context(s, ctx))
    }
    pub fn path(p: impl AsRef<[u8]>) -> Value {
        Value::from_path(NixString::new(p))
    }
    pub fn list(v: Vec<Value>) -> Value {
        if v.is_empty() {
            // one shared block per thread: evalModules over 10 000 modules
            // made 140 000 empty lists, many kept in the options' sets
            return Value::from_list(EMPTY_LIST.with(Shared::clone));
        }
        Value::from_list(Shared::new(List::from(v)))
    }
    pub fn attrs(a: AttrSet) -> Value {
        Value::Attrs(Held::new(a))
    }
    pub fn from_list(l: Shared<List>) -> Value {
        Value::List(Held::new(l))
    }
    /// Build an attribute set from (name, value) pairs.
    pub fn attrs_from(pairs: impl IntoIterator<Item = (Symbol, Value)>) -> Value {
        let attrs = pairs.into_iter().map(|(name, value)| Attr { name, value, pos: Pos::NONE }).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The handle's own count, read through its kind's header.
    fn count_of(v: &Value) -> usize {
        // SAFETY: each handle's block is live while `v` is.
        unsafe {
            match v {
                Value::String(s) | Value::Path(s) => (**s).0.as_ref().rc.0.get() as usize,
                Value::Attrs(a) => (**a).0.as_ref().rc.0.get() as usize,
                Value::List(l) => Shared::strong_count(l),
                Value::Lambda(c) => Shared::strong_count(c),
                Value::PrimOpApp(p) => Shared::strong_count(p),
                Value::Thunk(t) => t.block().rc.0.get() as usize,
                _ => 0,
            }
        }
    }

    /// `Value::clone` finds every counted kind's count by the tag alone:
    /// a clone raises exactly that handle's count and dropping it lowers
    /// it again; the other kinds are copied.
    #[test]
    fn clone_counts_every_kind() {
        let ev = crate::Eval::default();
        let l = ev
            .eval_string(r#"[ "s" /p { a = 1; } [ 1 2 ] (x: x) (builtins.add 1) (1 + 1) 3 true null 1.5 builtins.add ]"#, "/")
            .expect("evaluates");
        let Value::List(items) = &l else { panic!("a list") };
        let mut kinds = Vec::new();
        for (i, raw) in items.iter().enumerate() {
            // the seventh item stays a thunk; the others are forced
            let v = if i == 6 { raw.clone() } else { ev.force(raw).expect("forces") };
            let before = count_of(&v);
            let c = v.clone();
            let counted = !matches!(v, Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::PrimOp(_));
            assert_eq!(count_of(&v), before + usize::from(counted), "item {i}");
            drop(c);
            assert_eq!(count_of(&v), before, "item {i}");
            kinds.push(v.type_name());
        }
        assert_eq!(
            kinds,
            ["string", "path", "set", "list", "lambda", "lambda", "thunk", "int", "bool", "null", "float", "lambda"]
        );
    }

    proptest::proptest! {
        /// A lookup through a hint finds what a plain lookup finds, whatever
        /// the hint held before (stale, out of range, or another name's).
        #[test]
        fn hinted_lookup_agrees_with_plain(
            mut ids in proptest::collection::vec(0u32..400, 0..40),
            probes in proptest::collection::vec((0u32..400, 0u32..60), 1..40),
        ) {
            ids.sort_unstable();
            ids.dedup();
            let attrs: Vec<Attr> = ids.iter().map(|&i| Attr { name: Symbol(i), pos: Pos::NONE, value: Value::Null }).collect();
            let shared = Hint::default();
            for (p, h) in probes {
                let fresh = Hint::default();
                fresh.set(h as usize);
                let want = attrs.iter().position(|a| a.name.0 == p);
                for hint in [&fresh, &shared] {
                    let got = find_hinted(&attrs, Symbol(p), hint).map(|a| a as *const Attr);
                    proptest::prop_assert_eq!(got, want.map(|i| &attrs[i] as *const Attr));
                }
            }
        }
    }

    proptest::proptest! {
        /// Through `//` layers too: a hinted lookup gives the attribute a
        /// plain one gives (a layer's own attribute, never the one it
        /// overrides below), with one hint reused across sets and names.
        #[test]
        fn hinted_lookup_through_layers(
            base in proptest::collection::btree_set(0u32..300, 20..60),
            over in proptest::collection::btree_set(0u32..300, 1..10),
            probes in proptest::collection::vec(0u32..300, 1..60),
        ) {
            let set = |ids: &std::collections::BTreeSet<u32>, tag: i64| {
                AttrSet::from_sorted(ids.iter().map(|&i| Attr { name: Symbol(i), pos: Pos::NONE, value: Value::Int(tag) }).collect())
            };
            let (b, o) = (set(&base, 1), set(&over, 2));
            let layered = AttrSet::update(&b, &o);
            proptest::prop_assert!(layered.layer().is_some(), "the small right side makes a layer");
            let hint = Hint::default();
            for p in probes {
                for s in [&layered, &b, &o] {
                    let plain = s.get_attr(Symbol(p)).map(|a| a as *const Attr);
                    let hinted = s.get_attr_hinted(Symbol(p), &hint).map(|a| a as *const Attr);
                    proptest::prop_assert_eq!(hinted, plain);
                }
            }
        }
    }

    #[test]
    fn strings_short_and_long() {
        for n in [0usize, 1, 15, 16, 17, 39, 40, 41, 200, 5000] {
            let bytes: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let a = NixString::new(&bytes);
            assert_eq!(&a.bytes, &bytes[..]);
            assert!(a.context.is_empty());
            let b = a.clone();
            drop(a);
            assert_eq!(&b.bytes, &bytes[..]);
            // built piece by piece, growing, with a context
            let mut buf = StrBuf::new();
            for c in bytes.chunks(7) {
                buf.push(c);
            }
            assert_eq!(buf.as_bytes(), &bytes[..]);
            let e = ContextElem::opaque("/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x");
            let c = buf.finish(e.into());
            assert_eq!(&c.bytes, &bytes[..]);
            assert_eq!(c.context.as_slice(), &[e]);
            let (l, r) = bytes.split_at(n / 2);
            let d = NixString::concat(&[l, r], c.context.clone());
            assert!(d == c);
            // an unfinished builder frees its block
            let mut unused = StrBuf::with_capacity(n);
            unused.push(&bytes);
            drop(unused);
        }
    }

    #[test]
    fn context_sets() {
        let e: Vec<ContextElem> = (0..4).map(|i| ContextElem::opaque(&format!("/nix/store/{i}-p"))).collect();
        let mut c = Context::new();
        assert!(c.is_empty() && c.as_slice().is_empty());
        c.insert(e[2]);
        c.insert(e[2]);
        assert_eq!(c.as_slice(), &[e[2]]);
        c.insert(e[0]);
        assert_eq!(c.as_slice(), &[e[0], e[2]]);
        let shared = c.clone();
        c.insert(e[1]);
        assert_eq!(c.as_slice(), &[e[0], e[1], e[2]]);
        assert_eq!(shared.as_slice(), &[e[0], e[2]]);
        // unions that add nothing keep (or share) a side
        let mut u = Context::from(e[0]);
        u.union(&shared);
        assert!(u.raw == shared.raw);
        let mut v = c.clone();
        v.union(&shared);
        assert!(v.raw == c.raw);
        let mut w = shared.clone();
        w.union(&c);
        assert!(w.raw == c.raw);
        let mut x = Context::from(e[3]);
        x.union(&c);
        assert_eq!(x.as_slice(), &e[..]);
        let y: Context = [e[3], e[1], e[3], e[0], e[2]].into_iter().collect();
        assert!(x == y && x.raw != y.raw);
        assert_eq!(y.len(), 4);
        assert!(y.contains(e[1]) && !shared.contains(e[1]));
    }
}
