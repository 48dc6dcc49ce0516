//! The evaluator: IR + environment → value, function calls, forcing,
//! operators, coercions and equality.

use std::cell::{Cell, RefCell};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::error::{Error, ErrorKind, Result};
use crate::io::EvalIO;
use crate::ir::*;
use crate::symbol::{sym, Symbol};
use crate::value::*;

/// Evaluation settings.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Search path entries (`-I` and `NIX_PATH`): (prefix, path); an empty
    /// prefix means the entry is searched for `<name>` directly.
    pub search_path: Vec<(String, String)>,
    /// Calls nested deeper than this (C++ Nix's `max-call-depth`: a call
    /// at depth `max_call_depth + 1` fails) are a "stack overflow".
    pub max_call_depth: usize,
    /// `$HOME` for `~/…` paths.
    pub home: Option<String>,
    /// The store directory (normally `/nix/store`).
    pub store_dir: String,
    /// Allow `builtins.getEnv` to see the real environment.
    pub pure: bool,
    /// `--lint-*` settings.
    pub lints: crate::lower::Lints,
    /// Enabled experimental features (`--extra-experimental-features`).
    pub experimental: Vec<String>,
    /// `abort-on-warn`: `builtins.warn` fails after printing the warning.
    pub abort_on_warn: bool,
    /// Every thunk and closure keeps all the frames around its expression
    /// (no `ir::trim_thunks`): slower and bigger, a reference for tests.
    pub keep_frames: bool,
    /// Builtins' arguments are all suspended, none evaluated before the
    /// call (no [`PrimOpDef::forces`]): a reference for tests.
    pub lazy_builtin_args: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            search_path: Vec::new(),
            max_call_depth: 100_000,
            home: std::env::var("HOME").ok(),
            store_dir: std::env::var("NIX_STORE_DIR").unwrap_or_else(|_| "/nix/store".into()),
            pure: false,
            lints: Default::default(),
            experimental: Vec::new(),
            abort_on_warn: false,
            keep_frames: false,
            lazy_builtin_args: false,
        }
    }
}

/// How `coerce_to_string` treats non-string values.
#[derive(Clone, Copy)]
pub struct Coerce {
    /// Also convert null, booleans, numbers and lists (like `toString`).
    pub more: bool,
    /// Copy paths into the store (interpolation) instead of using them as is.
    pub copy_to_store: bool,
}

/// The evaluator. Holds the base environment, the import cache and the I/O
/// implementation. Single-threaded.
pub struct Eval {
    pub io: Box<dyn EvalIO>,
    pub opts: EvalOptions,
    pub(crate) globals: RefCell<Vec<Value>>,
    pub(crate) global_names: FxHashMap<Symbol, u32>,
    pub(crate) import_cache: RefCell<FxHashMap<String, Value>>,
    pub(crate) call_depth: Cell<usize>,
    /// See [`Eval::stack_ok`]: the lowest stack address known to be safe
    /// and the length of the range above it.
    pub(crate) stack_bounds: Cell<(usize, usize)>,
    pub(crate) root_env: Env,
    /// Path → store path copies made so far (for `"${./file}"`).
    pub(crate) copied: RefCell<FxHashMap<String, String>>,
}

/// Stack a recursion point needs left before it continues without growing.
const STACK_RED_ZONE: usize = 256 * 1024;
/// The size of a new stack segment.
const STACK_SEGMENT: usize = 8 * 1024 * 1024;
/// How far above the point where [`Eval::grow`] found enough stack its
/// bounds still count as this stack (far less than any segment's size, so
/// a stack pointer on another segment within them still has more than
/// [`STACK_RED_ZONE`] left).
const STACK_SLACK: usize = 64 * 1024;

/// The current stack pointer (near enough elsewhere: the address of a local).
#[inline(always)]
fn stack_pointer() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let sp: usize;
        // SAFETY: copies the stack pointer register into another; touches
        // no memory and no flags.
        unsafe { std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
        sp
    }
    #[cfg(target_arch = "aarch64")]
    {
        let sp: usize;
        // SAFETY: as above.
        unsafe { std::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
        sp
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let marker = 0u8;
        std::hint::black_box(&marker) as *const u8 as usize
    }
}

fn type_err(v: &Value, want: &str) -> Error {
    Error::eval(format!("expected {want} but found {}", show_value_short(v)))
}

/// `a string: "foo"`-style description used in type errors.
pub fn show_value_short(v: &Value) -> String {
    format!("{}: {}", v.show_type(), crate::print::print_error_value(v))
}

impl Eval {
    /// Evaluate `e` in `env` to weak head normal form. Constants and
    /// variables (most operands) are handled here, at the call site,
    /// without a call of the big `eval_inner`.
    #[inline(always)]
    pub fn eval(&self, e: &'static Expr, env: &Env) -> Result<Value> {
        match e {
            Expr::Const(v) => Ok(v.clone()),
            Expr::Var { depth, slot, .. } => env.up(*depth).force_slot(*slot as usize, self),
            _ => self.eval_inner(e, env),
        }
    }

    /// [`Eval::eval`] at a recursion point (function bodies, thunks): grows
    /// the stack on demand so deep programs never overflow it.
    #[inline]
    pub fn eval_deep(&self, e: &'static Expr, env: &Env) -> Result<Value> {
        if self.stack_ok() {
            return self.eval_here(e, env);
        }
        self.grow(|| self.eval(e, env))
    }

    /// Whether the stack pointer is within the part of the current stack
    /// segment known to have [`STACK_RED_ZONE`] bytes left below it (set by
    /// [`Eval::grow`]; a segment stacker switched to elsewhere is outside
    /// the bounds, so it gets checked).
    #[inline(always)]
    pub(crate) fn stack_ok(&self) -> bool {
        let sp = stack_pointer();
        let (low, span) = self.stack_bounds.get();
        // one comparison: below `low` the difference wraps to a huge value
        sp.wrapping_sub(low) < span
    }

    /// Run `f` with at least [`STACK_RED_ZONE`] bytes of stack (cheap when
    /// [`Eval::stack_ok`]).
    #[inline]
    pub(crate) fn with_stack<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.stack_ok() { f() } else { self.grow(f) }
    }

    /// Run `f` with at least [`STACK_RED_ZONE`] bytes of stack, switching
    /// to a new segment (stacker) if needed, and record the bounds within
    /// which [`Eval::stack_ok`] needs no further check while `f` runs.
    #[inline(never)]
    pub(crate) fn grow<R>(&self, f: impl FnOnce() -> R) -> R {
        let sp = stack_pointer();
        match stacker::remaining_stack() {
            Some(rem) if rem >= STACK_RED_ZONE => {
                // enough left here (stacker would not switch either): the
                // bounds also hold for the caller's frames a little above
                // this one (a builtin's loop calling functions), so they
                // stay after `f`
                let low = (sp - rem).saturating_add(STACK_RED_ZONE);
                self.stack_bounds.set((low, sp.saturating_add(STACK_SLACK).saturating_sub(low)));
                f()
            }
            _ => {
                let saved = self.stack_bounds.get();
                let r = stacker::grow(STACK_SEGMENT, || {
                    let sp = stack_pointer();
                    let bounds = match stacker::remaining_stack() {
                        // `sp - remaining` is the segment's usable end
                        Some(rem) => {
                            let low = sp.saturating_sub(rem).saturating_add(STACK_RED_ZONE);
                            (low, sp.saturating_sub(low))
                        }
                        None => (usize::MAX, 0),
                    };
                    self.stack_bounds.set(bounds);
                    f()
                });
                // back on the caller's segment
                self.stack_bounds.set(saved);
                r
            }
        }
    }

    /// A lazy value for `e` in `env`: constants and variables are returned
    /// directly, anything else becomes a thunk.
    #[inline]
    pub fn thunk(&self, e: &'static Expr, env: &Env) -> Value {
        // a variable (a third of the calls on evalModules): the slot's
        // value, copied right here
        if let Expr::Var { depth, slot, .. } = e {
            return env.up(*depth).get(*slot as usize);
        }
        self.thunk_other(e, env)
    }

    #[inline(never)]
    fn thunk_other(&self, e: &'static Expr, env: &Env) -> Value {
        match e {
            Expr::Const(v) => v.clone(),
            Expr::Var { depth, slot, .. } => env.up(*depth).get(*slot as usize),
            Expr::Global(g) => self.globals.borrow()[*g as usize].clone(),
            Expr::Lambda(l) => Value::from_lambda(Shared::new(Closure { lambda: l, env: env.clone() })),
            Expr::Select { e: target, path, .. } => match peek_select(target, path, env) {
                Some(v) => v,
                None => Thunk::suspended(e, env.clone()),
            },
            // (what a wrapper holds is never a variable or a constant)
            Expr::Shift { k, e } => self.thunk_other(e, env.up(*k)),
            _ => Thunk::suspended(e, env.clone()),
        }
    }

    /// [`Eval::thunk`] for a function argument: integer arithmetic on
    /// evaluated operands is done right away (see `speculate_int`).
    #[inline]
    fn arg_thunk(&self, e: &'static Expr, env: &Env) -> Value {
        // one dispatch on the node's kind, the variable first
        match e {
            Expr::Var { depth, slot, .. } => env.up(*depth).get(*slot as usize),
            Expr::Bin { op, l, r, .. } => match self.speculate_int(*op, l, r, env) {
                Some(v) => v,
                None => self.thunk_other(e, env),
            },
            Expr::Shift { k, e } => self.arg_thunk(e, env.up(*k)),
            _ => self.thunk_other(e, env),
        }
    }

    /// Integer arithmetic or comparison whose operands are already
    /// evaluated integers cannot fail or diverge (overflow excepted, which
    /// returns None), so it is computed right away instead of allocating a
    /// thunk. Evaluation is pure, so this is not observable.
    #[inline]
    fn speculate_int(&self, op: BinOp, l: &'static Expr, r: &'static Expr, env: &Env) -> Option<Value> {
        let peek = |e: &'static Expr| -> Option<i64> {
            match e {
                Expr::Const(Value::Int(i)) => Some(*i),
                Expr::Var { depth, slot, .. } => env.up(*depth).peek_int(*slot as usize),
                _ => None,
            }
        };
        let x = peek(l)?;
        let y = peek(r)?;
        Some(match op {
            BinOp::Add => Value::Int(x.checked_add(y)?),
            BinOp::Sub => Value::Int(x.checked_sub(y)?),
            BinOp::Mul => Value::Int(x.checked_mul(y)?),
            BinOp::Lt => Value::Bool(x < y),
            BinOp::Le => Value::Bool(x <= y),
            BinOp::Gt => Value::Bool(x > y),
            BinOp::Ge => Value::Bool(x >= y),
            BinOp::Eq => Value::Bool(x == y),
            BinOp::Neq => Value::Bool(x != y),
            _ => return None,
        })
    }

    /// Like [`Eval::thunk`] for a frame whose first `filled` slots are
    /// written: a variable of one of those is its value (shared, as C++
    /// Nix's `maybeThunk` shares it), a variable of a slot not written
    /// yet stays lazy.
    #[inline]
    pub(crate) fn thunk_rec(&self, e: &'static Expr, env: &Env, filled: usize) -> Value {
        match e {
            Expr::Var { depth: 0, slot, .. } if *slot as usize >= filled => Thunk::suspended(e, env.clone()),
            _ => self.thunk(e, env),
        }
    }

    /// Force a value to weak head normal form. Forcing an evaluated thunk
    /// does not allocate.
    #[inline]
    pub fn force(&self, v: &Value) -> Result<Value> {
        match v {
            Value::Thunk(t) => t.force(self),
            _ => Ok(v.clone()),
        }
    }

    /// [`Eval::force`] that borrows the result from `v` (no count changes).
    #[inline]
    pub(crate) fn force_ref<'a>(&self, v: &'a Value) -> Result<&'a Value> {
        match v {
            Value::Thunk(t) => t.force_ref(self),
            _ => Ok(v),
        }
    }

    // Every arm but the leaves is a call of its own non-inlined method
    // taking the node (so this is a jump table of tail calls with no frame
    // of its own, and the frames on deep recursion stay small).
    #[inline(never)]
    fn eval_inner(&self, e: &'static Expr, env: &Env) -> Result<Value> {
        self.eval_here(e, env)
    }

    /// [`Eval::eval`] with the match over the node kinds inlined at the
    /// call site: used where most evaluations start (a thunk's or a
    /// function body's, an `if`'s, an operator's operands, a `let`'s
    /// body), so that each of these has an indirect
    /// jump of its own, predicted from what is evaluated there, instead of
    /// all sharing the one in `eval_inner`.
    #[inline(always)]
    fn eval_here(&self, e: &'static Expr, env: &Env) -> Result<Value> {
        match e {
            Expr::Const(v) => Ok(v.clone()),
            Expr::Var { depth, slot, .. } => env.up(*depth).force_slot(*slot as usize, self),
            Expr::Global(_) => self.x_global(e),
            Expr::WithVar { .. } => self.x_with_var(e, env),
            Expr::Attrs(_) => self.x_attrs(e, env),
            Expr::List(_) => self.x_list(e, env),
            Expr::Lambda(_) => self.x_lambda(e, env),
            Expr::Apply { .. } => self.x_apply(e, env),
            Expr::Select { .. } => self.x_select(e, env),
            Expr::HasAttr { .. } => self.x_has_attr(e, env),
            Expr::Let { .. } => self.x_let(e, env),
            Expr::With { .. } => self.x_with(e, env),
            Expr::If { .. } => self.x_if(e, env),
            Expr::Assert { .. } => self.x_assert(e, env),
            Expr::Not(..) => self.x_not(e, env),
            Expr::Neg(..) => self.x_neg(e, env),
            Expr::Bin { .. } => self.x_bin(e, env),
            Expr::Interp { .. } | Expr::PathInterp { .. } | Expr::SearchPath { .. } | Expr::CurPos(_) | Expr::Shift { .. } => {
                self.x_other(e, env)
            }
        }
    }

    #[inline(never)]
    fn x_global(&self, e: &'static Expr) -> Result<Value> {
        let Expr::Global(g) = e else { unreachable!("x_global of a global") };
        let v = self.globals.borrow()[*g as usize].clone();
        self.force(&v)
    }
    #[inline(never)]
    fn x_with_var(&self, e: &'static Expr, env: &Env) -> Result<Value> {
        let Expr::WithVar { name, hint, withs, pos } = e else { unreachable!("x_with_var of a with variable") };
        self.eval_with_var(*name, hint, withs, *pos, env)
    }
    #[inline(never)]
    fn x_attrs(&self, e: &'static Expr, env: &Env) -> Result<Value> {
        let Expr::Attrs(a) = e else { unreachable!("x_attrs of a set") };
        self.eval_attrs(a, env)
    }
    #[inline(never)]
    fn x_list(&self, e: &'static Expr, env: &Env) -> Result<Value> {
        let Expr::List(items) = e else { unreachable!("x_list of a list") };
        self.eval_list(items, env)
    }
    #[inline(never)]
    fn x_lambda(&self, e: &'static Expr, env: &Env) -> Result<Value> {
        let Expr::Lambda(l) = e else { unreachable!("x_lambda of a lambda") };
        Ok(Value::from_lambda(Shared::new(Closure { lambda: l, env: env.clone() })))
    }
    #[inline(never)]
    fn x_apply(&self, e: &'static Expr, env: &Env) -> Result<Value> {
        let Expr::Apply { f, args, .. } = e else { unreachable!("x_apply of an application") };
        // A builtin in a variable given all its arguments (more than half
        // the calls on evalModules) goes straight to the builtin's call,
        // in a frame of its own, without the saved registers and stack of
        // the general path; that gets the variable's slot, so it is found
        // once.
        let fr = match **f {
            Expr::Var { depth, slot, .. } => {
                let v = env.up(depth).slot_ref(slot as usize);
                let done = match v {
                    Value::Thunk(t) => t.value(),
                    v => Some(v),
                };
                if let Some(Value::PrimOp(op)) = done
                    && op.arity == args.len()
                {
                    return self.x_call_primop(op, e, env);
                }
                Some(v)
            }
            Expr::Global(g) => {
                let op = match self.globals.borrow()[g as usize] {
                    Value::PrimOp(op) if op.arity == args.len() => Some(op),
                    _ => None,
                };
                if let Some(op) = op {
                    return self.x_call_primop(op, e, env);
                }
                None
            }
            _ => None,
        };
        self.x_apply_general(e, env, fr)
    }
    #[inline(never)]
    fn x_call_primop(&self, op: &'static PrimOpDef, e: &'static Expr, env: &Env) -> Result<Value> {
        let Expr::Apply { args, pos, .. } = e else { unreachable!("x_call_primop of an application") };
        self.call_primop_here(op, args, env, *pos)
    }
    /// [`Eval::x_apply`] of anything but a builtin in a variable or a
    /// global given all its arguments; `fr` is the variable's slot if `f`
    /// is one.
    #[inline(never)]
    fn x_apply_general(&self, e: &'static Expr, env: &Env, fr: Option<&Value>) -> Result<Value> {
        let Expr::Apply { f, args, pos } = e else { unreachable!("x_apply of an application") };
        self.eval_apply(f, fr, args, *pos, env)
    }
    #[inline(never)]
    fn x_select(&self, e: &'static Expr, env: &Env) -> Result<Value> {
        let Expr::Select { e: target, path, default, pos } = e else { unreachable!("x_select of a selection") };
        // a variable (most selections): its set is borrowed from the frame
        if let Expr::Var { depth, slot, .. } = **target {
            let v = self
                .force_ref(env.up(depth).slot_ref(slot as usize))
                .map_err(|err| select_target_frame(err.at_reentered_var(target), default.is_some(), (*pos).into()))?;
            // `x.name`: the attribute's value borrowed too, one clone
            if let [AttrName::Static(n, ref hint)] = **path
                && let Value::Attrs(a) = v
                && let Some(x) = a.get_attr_hinted(n, hint)
            {
                return match &x.value {
                    Value::Thunk(t) => match t.force_ref(self) {
                        Ok(v) => Ok(v.clone()),
                        // forced at the attribute's definition (C++ Nix's
                        // `forceValue(*v, posAttr)`)
                        Err(err) => Err(select_frames(err.found_here(x.pos), path, Some((0, x.pos)), (*pos).into())),
                    },
                    v => Ok(v.clone()),
                };
            }
            return self.select_in(v, path, default.as_deref(), *pos, env);
        }
        self.eval_select(target, path, default.as_deref(), *pos, env)
    }
    #[inline(never)]
    fn x_has_attr(&self, e: &'static Expr, env: &Env) -> Result<Value> {
        let Expr::HasAttr { e: target, path, pos } = e else { unreachable!("x_has_attr of `?`") };
        // `x ? name` of a variable that is a set
        if let Expr::Var { depth, slot, .. } = **target
            && let [AttrName::Static(n, ref hint)] = **path
        {
            return match self.force_ref(env.up(depth).slot_ref(slot as usize)) {
                Ok(Value::Attrs(a)) => Ok(Value::Bool(a.get_attr_hinted(n, hint).is_some())),
                Ok(_) => Ok(Value::Bool(false)),
                Err(err) => Err(err.at_reentered_var(target).while_("in the argument of '?'", *pos)),
            };
        }
        self.eval_has_attr(target, path, *pos, env)
    }
    #[inline(never)]
    fn x_let(&self, e: &'static Expr, env: &Env) -> Result<Value> {
        let Expr::Let { binds, body } = e else { unreachable!("x_let of a let") };
        self.eval_let(binds, body, env)
    }
    #[inline(never)]
    fn x_with(&self, e: &'static Expr, env: &Env) -> Result<Value> {
        let Expr::With { ns, body } = e else { unreachable!("x_with of a with") };
        self.eval_with(ns, body, env)
    }
    #[inline(never)]
    fn x_if(&self, e: &'static Expr, env: &Env) -> Result<Value> {
        let Expr::If { cond, then, else_, pos } = e else { unreachable!("x_if of an if") };
        let c = self.eval_here(cond, env).map_err(|err| err.at_reentered_var(cond))?;
        if let Value::Bool(b) = c {
            // a Boolean: nothing to drop
            std::mem::forget(c);
            return self.eval_here(if b { then } else { else_ }, env);
        }
        Err(type_err(&c, "a Boolean").at(*pos))
    }
    #[inline(never)]
    fn x_assert(&self, e: &'static Expr, env: &Env) -> Result<Value> {
        let Expr::Assert { cond, body, text, pos } = e else { unreachable!("x_assert of an assert") };
        self.eval_assert(cond, body, text, *pos, env)
    }
    #[inline(never)]
    fn x_not(&self, e: &'static Expr, env: &Env) -> Result<Value> {
        let Expr::Not(x, pos) = e else { unreachable!("x_not of a `!`") };
        self.eval_not(x, *pos, env)
    }
    #[inline(never)]
    fn x_neg(&self, e: &'static Expr, env: &Env) -> Result<Value> {
        let Expr::Neg(x, pos) = e else { unreachable!("x_neg of a `-`") };
        self.eval_neg(x, *pos, env)
    }
    #[inline(never)]
    fn x_bin(&self, e: &'static Expr, env: &Env) -> Result<Value> {
        let Expr::Bin { op, l, r, .. } = e else { unreachable!("x_bin of an operator") };
        // (the short-circuiting ones in their own frame, not this one's)
        if matches!(op, BinOp::And | BinOp::Or | BinOp::Impl) {
            return self.x_logic(e, env);
        }
        self.eval_bin(*op, l, r, e, env)
    }
    #[inline(never)]
    fn x_logic(&self, e: &'static Expr, env: &Env) -> Result<Value> {
        let Expr::Bin { op, l, r, .. } = e else { unreachable!("x_logic of an operator") };
        self.eval_logic(*op, l, r, e, env)
    }
    #[inline(never)]
    fn x_other(&self, e: &'static Expr, env: &Env) -> Result<Value> {
        match e {
            Expr::Interp { parts, pos } => self.eval_interp(parts, env, *pos),
            Expr::PathInterp { parts, pos } => self.eval_path_interp(parts, *pos, env),
            Expr::SearchPath { path, pos } => self.find_search_path(path).map_err(|e| e.at(*pos)),
            Expr::CurPos(span) => Ok(self.pos_value(*span)),
            Expr::Shift { k, e } => self.eval(e, env.up(*k)),
            _ => unreachable!("x_other of an interpolation, search path or position"),
        }
    }

    #[inline]
    fn eval_with_var(&self, name: Symbol, hint: &Hint, withs: &'static [u32], pos: Span, env: &Env) -> Result<Value> {
        for d in withs.iter() {
            let ns = self.force_ref(env.up(*d).slot_ref(0))?;
            let Value::Attrs(a) = ns else {
                return Err(type_err(ns, "a set").at(pos));
            };
            // (one hint for all the `with`s: it is checked before use)
            if let Some(x) = a.get_attr_hinted(name, hint) {
                return self.force(&x.value);
            }
        }
        Err(Error::eval(format!("undefined variable '{name}'")).at(pos))
    }

    #[inline]
    fn eval_list(&self, items: &'static [Expr], env: &Env) -> Result<Value> {
        Ok(Value::list(items.iter().map(|i| self.thunk(i, env)).collect()))
    }

    #[inline]
    fn eval_apply(&self, f: &'static Expr, slot: Option<&Value>, args: &'static [Expr], pos: Span, env: &Env) -> Result<Value> {
        // a function in a variable is borrowed from its frame, not cloned
        let owned;
        let fr: &Value = match slot {
            Some(v) => self.force_ref(v).map_err(|err| err.at_reentered_var(f))?,
            _ => {
                owned = self.eval(f, env)?;
                &owned
            }
        };
        if let Value::PrimOp(op) = fr
            && op.arity == args.len()
        {
            return self.call_primop_args(op, args, env, pos);
        }
        if matches!(fr, Value::PrimOp(_) | Value::PrimOpApp(_)) {
            return self.apply_primop(fr.clone(), args, pos, env);
        }
        match args {
            [a] => {
                let arg = self.arg_thunk(a, env);
                let depth = self.call_depth.get();
                if depth > self.opts.max_call_depth {
                    return Err(stack_overflow(pos));
                }
                self.call_depth.set(depth + 1);
                // a plain `x: …` lambda is entered right here
                let r = match fr {
                    Value::Lambda(c) if c.lambda.formals.is_none() => {
                        let env = Env::one(Some(c.env.clone()), arg);
                        match self.eval_deep(&c.lambda.body, &env) {
                            Ok(v) => Ok(v),
                            Err(e) => Err(lambda_frames(e, c.lambda, pos)),
                        }
                    }
                    _ => self.call_inner(fr, arg, pos),
                };
                self.call_depth.set(depth);
                return r;
            }
            [a, b] => return self.call2(fr, self.arg_thunk(a, env), self.arg_thunk(b, env), pos),
            _ => {}
        }
        let mut fv = fr.clone();
        let mut rest = args;
        while rest.len() >= 2 {
            fv = self.call2(&fv, self.arg_thunk(&rest[0], env), self.arg_thunk(&rest[1], env), pos)?;
            rest = &rest[2..];
        }
        if let [a] = rest {
            fv = self.call(&fv, self.arg_thunk(a, env), pos)?;
        }
        Ok(fv)
    }

    /// [`Eval::eval_apply`] of a builtin: given all its missing arguments,
    /// it is called directly, without the partial applications in between
    /// (kept apart so the lambda path stays as short as it was).
    #[inline(never)]
    fn apply_primop(&self, mut fv: Value, args: &'static [Expr], pos: Span, env: &Env) -> Result<Value> {
        let mut rest = args;
        while !rest.is_empty() {
            if let Some(n) = primop_missing(&fv)
                && n <= rest.len()
            {
                fv = self.call_primop_exprs(&fv, &rest[..n], env, pos)?;
                rest = &rest[n..];
                continue;
            }
            if rest.len() >= 2 {
                fv = self.call2(&fv, self.arg_thunk(&rest[0], env), self.arg_thunk(&rest[1], env), pos)?;
                rest = &rest[2..];
            } else {
                fv = self.call(&fv, self.arg_thunk(&rest[0], env), pos)?;
                rest = &rest[1..];
            }
        }
        Ok(fv)
    }

    /// A builtin applied to exactly its arity's arguments (the usual
    /// `map f xs`, `length xs`): their values are made into an array on
    /// the stack and it is called.
    #[inline(never)]
    fn call_primop_args(&self, op: &'static PrimOpDef, args: &'static [Expr], env: &Env, pos: Span) -> Result<Value> {
        self.call_primop_here(op, args, env, pos)
    }

    /// [`Eval::call_primop_args`]'s body, inlined into `x_call_primop`.
    #[inline(always)]
    fn call_primop_here(&self, op: &'static PrimOpDef, args: &'static [Expr], env: &Env, pos: Span) -> Result<Value> {
        // the level is entered first: the arguments the builtin forces
        // first are evaluated inside it (`primop_arg`)
        let depth = self.enter_call(pos)?;
        let mut next = op.forces;
        let r = match args {
            [a] => {
                let x = self.primop_arg(&mut next, 0, a, env);
                self.run_primop(op, &[x], pos)
            }
            [a, b] => {
                let x = self.primop_arg(&mut next, 0, a, env);
                let y = self.primop_arg(&mut next, 1, b, env);
                self.run_primop(op, &[x, y], pos)
            }
            [a, b, c] => {
                let x = self.primop_arg(&mut next, 0, a, env);
                let y = self.primop_arg(&mut next, 1, b, env);
                let z = self.primop_arg(&mut next, 2, c, env);
                self.run_primop(op, &[x, y, z], pos)
            }
            _ => {
                self.call_depth.set(depth);
                return self.apply_primop(Value::PrimOp(op), args, pos, env);
            }
        };
        self.call_depth.set(depth);
        r
    }

    /// Argument `i` of a builtin call, given as `e`: a value to force
    /// later ([`Eval::arg_thunk`]), or, when it is the next of the
    /// arguments the builtin forces first ([`PrimOpDef::forces`], whose
    /// rest `next` holds), evaluated now instead of made a thunk the
    /// builtin would force at once (`length (f x)`, `map g (h y)`: 42 of
    /// the 200 thunks a module of evalModules used to make).
    ///
    /// Nothing observable changes: they are evaluated in the builtin's
    /// order, each only once the one before it is what the builtin wants
    /// (so the builtin would have gone on to force it), inside the call's
    /// level as the builtin would; an evaluation that fails becomes a
    /// thunk that throws its error when the builtin forces it
    /// ([`Thunk::failing`]), so the builtin adds its frames as before.
    #[inline(always)]
    fn primop_arg(&self, next: &mut &'static [(u8, Want)], i: u8, e: &'static Expr, env: &Env) -> Value {
        match next {
            [(j, want), rest @ ..] if *j == i => {
                let v = self.arg_forced(e, env);
                *next = if want.admits(&v) { rest } else { &[] };
                v
            }
            _ => self.arg_thunk(e, env),
        }
    }

    /// Call the builtin (or partial application of one) `f` with exactly
    /// the arguments it is missing, given as expressions.
    #[inline(never)]
    fn call_primop_exprs(&self, f: &Value, args: &'static [Expr], env: &Env, pos: Span) -> Result<Value> {
        let (op, prefix): (&'static PrimOpDef, &[Value]) = match f {
            Value::PrimOp(op) => (op, &[]),
            Value::PrimOpApp(app) => (app.op, &app.args),
            _ => unreachable!("primop_missing said f is a builtin"),
        };
        let depth = self.enter_call(pos)?;
        use std::mem::MaybeUninit;
        // only the arguments are written and dropped (no null fill)
        let mut buf: [MaybeUninit<Value>; MAX_ARITY] = [const { MaybeUninit::uninit() }; MAX_ARITY];
        let mut next = op.forces;
        let mut k = 0;
        for v in prefix {
            // an argument given before: the builtin goes on past it only
            // if it is evaluated and what it wants
            if let [(j, want), rest @ ..] = next
                && *j as usize == k
            {
                next = if want.admits(v) { rest } else { &[] };
            }
            buf[k].write(v.clone());
            k += 1;
        }
        for a in args {
            buf[k].write(self.primop_arg(&mut next, k as u8, a, env));
            k += 1;
        }
        // SAFETY: the first k slots were written just above.
        let vals = unsafe { std::slice::from_raw_parts(buf.as_ptr() as *const Value, k) };
        let vals = &vals[..op.arity.min(k)];
        let r = self.run_primop(op, vals, pos);
        self.call_depth.set(depth);
        for b in &mut buf[..k] {
            // SAFETY: initialised above, dropped once.
            unsafe { std::ptr::drop_in_place(b.as_mut_ptr()) };
        }
        r
    }

    /// Run a builtin on all its arguments (one call level, like the last
    /// of the curried calls it replaces).
    #[inline]
    fn call_primop(&self, op: &'static PrimOpDef, args: &[Value], pos: Span) -> Result<Value> {
        let depth = self.enter_call(pos)?;
        let r = self.run_primop(op, args, pos);
        self.call_depth.set(depth);
        r
    }

    /// Enter one call level for a call at `pos`: the depth to set back
    /// when it returns, or the stack overflow past `max-call-depth`.
    #[inline(always)]
    fn enter_call(&self, pos: Span) -> Result<usize> {
        let depth = self.call_depth.get();
        if depth > self.opts.max_call_depth {
            return Err(stack_overflow(pos));
        }
        self.call_depth.set(depth + 1);
        Ok(depth)
    }

    /// Builtin `op` on all its arguments, a failure given the builtin's
    /// frames.
    #[inline(always)]
    fn run_primop(&self, op: &'static PrimOpDef, args: &[Value], pos: Span) -> Result<Value> {
        (op.func)(self, args, pos).map_err(|e| builtin_error(e, op, args, pos))
    }

    /// A builtin's argument `e` that the builtin forces first, evaluated:
    /// [`Eval::arg_thunk`]'s value forced, without the thunk it would
    /// make for an expression. A failure is kept for the builtin to throw.
    #[inline]
    fn arg_forced(&self, e: &'static Expr, env: &Env) -> Value {
        let v = match e {
            Expr::Var { depth, slot, .. } => env.up(*depth).get(*slot as usize),
            Expr::Shift { k, e } => return self.arg_forced(e, env.up(*k)),
            Expr::Const(_) | Expr::Global(_) | Expr::Lambda(_) => self.thunk_other(e, env),
            Expr::Select { e: target, path, .. } => match peek_select(target, path, env) {
                Some(v) => v,
                None => return self.eval_kept(e, env),
            },
            Expr::Bin { op, l, r, .. } => match self.speculate_int(*op, l, r, env) {
                Some(v) => return v,
                None => return self.eval_kept(e, env),
            },
            _ => return self.eval_kept(e, env),
        };
        // a value shared with its holder (a frame's slot, a set): forced
        // there, and a failure handed on as forcing it would throw it
        if let Value::Thunk(t) = &v
            && t.value().is_none()
            && let Err(err) = t.force_ref(self)
        {
            return Thunk::failing(err);
        }
        v
    }

    /// `e` evaluated in `env`; if that fails, a thunk that throws the
    /// error as the one [`Eval::arg_thunk`] would have made throws it.
    #[inline]
    fn eval_kept(&self, e: &'static Expr, env: &Env) -> Value {
        match self.eval_deep(e, env) {
            Ok(v) => v,
            Err(err) => Thunk::failing(err.unwound()),
        }
    }


    #[inline]
    fn eval_select(
        &self,
        target: &'static Expr,
        path: &'static [AttrName],
        default: Option<&'static Expr>,
        pos: Pos,
        env: &Env,
    ) -> Result<Value> {
        // (a variable is x_select's: borrowed from its frame, not cloned)
        let v = self.eval(target, env).map_err(|err| select_target_frame(err, default.is_some(), pos.into()))?;
        self.select_in(&v, path, default, pos, env)
    }

    /// `v.path or default` for an evaluated `v`, with the error frames.
    #[inline(never)]
    fn select_in(
        &self,
        v: &Value,
        path: &'static [AttrName],
        default: Option<&'static Expr>,
        pos: Pos,
        env: &Env,
    ) -> Result<Value> {
        let mut found = None;
        self.select(v, path, default, pos, env, &mut found).map_err(|e| select_frames(e, path, found, pos.into()))
    }

    #[inline]
    fn eval_has_attr(&self, target: &'static Expr, path: &'static [AttrName], pos: Span, env: &Env) -> Result<Value> {
        // a variable's value is borrowed from its frame, not cloned
        let first;
        let v = match target {
            Expr::Var { depth, slot, .. } => self.force_ref(env.up(*depth).slot_ref(*slot as usize)),
            _ => match self.eval(target, env) {
                Ok(v) => {
                    first = v;
                    Ok(&first)
                }
                Err(e) => Err(e),
            },
        };
        let mut v = v.map_err(|e| e.while_("in the argument of '?'", pos))?;
        let last = path.len().saturating_sub(1);
        for (i, name) in path.iter().enumerate() {
            let n = self.attr_name(name, env)?;
            match v {
                // `x ? a.b` forces `x.a` but never `x.a.b` itself.
                Value::Attrs(a) => match lookup(a, n, name) {
                    Some(_) if i == last => return Ok(Value::Bool(true)),
                    Some(x) => v = self.force_ref(&x.value)?,
                    None => return Ok(Value::Bool(false)),
                },
                _ => return Ok(Value::Bool(false)),
            }
        }
        Ok(Value::Bool(true))
    }

    #[inline]
    fn eval_let(&self, binds: &'static [Expr], body: &'static Expr, env: &Env) -> Result<Value> {
        let new = Env::with_len(Some(env.clone()), binds.len());
        for (i, b) in binds.iter().enumerate() {
            new.init(i, self.thunk_rec(b, &new, i));
        }
        let r = self.eval_here(body, &new);
        new.release();
        r
    }

    #[inline]
    fn eval_with(&self, ns: &'static Expr, body: &'static Expr, env: &Env) -> Result<Value> {
        let new = Env::one(Some(env.clone()), self.thunk(ns, env));
        self.eval(body, &new)
    }

    #[inline]
    fn eval_assert(&self, cond: &'static Expr, body: &'static Expr, text: &str, pos: Pos, env: &Env) -> Result<Value> {
        let frame = |e: Error| e.while_(format!("while evaluating the condition of the assertion '{text}'"), pos);
        if let Expr::Bin { op: BinOp::Eq, l, r, pos: eq_pos, .. } = cond {
            // `assert a == b` explains the first difference, like C++ Nix
            let lv = self.eval(l, env).map_err(frame)?;
            let rv = self.eval(r, env).map_err(frame)?;
            if self.equal(&lv, &rv).map_err(frame)? {
                return self.eval(body, env);
            }
            return Err(frame(self.explain_unequal(&lv, &rv, *eq_pos)));
        }
        let c = self.eval(cond, env).map_err(|e| frame(e.at_reentered_var(cond)))?;
        match c {
            Value::Bool(true) => self.eval(body, env),
            Value::Bool(false) => Err(Error::new(ErrorKind::Assert, format!("assertion '{text}' failed")).at(pos)),
            other => Err(type_err(&other, "a Boolean").at(pos)),
        }
    }

    #[inline]
    fn eval_not(&self, x: &'static Expr, pos: Span, env: &Env) -> Result<Value> {
        match self.eval(x, env).map_err(|e| e.at_reentered_var(x).while_("in the argument of '!'", pos))? {
            Value::Bool(b) => Ok(Value::Bool(!b)),
            other => Err(type_err(&other, "a Boolean").at(pos)),
        }
    }

    #[inline]
    fn eval_neg(&self, x: &'static Expr, pos: Span, env: &Env) -> Result<Value> {
        // `-x` is `__sub 0 x` in C++ Nix
        let v = self.eval(x, env).map_err(|e| builtin_op_frame(e, BinOp::Sub, pos))?;
        self.arith(BinOp::Sub, Value::Int(0), v).map_err(|e| builtin_op_frame(e.at(pos), BinOp::Sub, pos))
    }

    #[inline(never)]
    fn eval_path_interp(&self, parts: &'static [StrPart], pos: Span, env: &Env) -> Result<Value> {
        let mut out = Vec::new();
        let mut ctx = Context::new();
        for p in parts.iter() {
            match p {
                StrPart::Lit(l) => out.extend_from_slice(l),
                StrPart::Interp(e, ipos) => {
                    let v = self.eval(e, env)?;
                    let s = self
                        .coerce_to_string(&v, &mut ctx, Coerce { more: false, copy_to_store: false })
                        .map_err(|e| e.in_path_segment(*ipos))?;
                    out.extend_from_slice(&s);
                }
            }
        }
        if !ctx.is_empty() {
            return Err(Error::eval("a string that refers to a store path cannot be appended to a path").at(pos));
        }
        Ok(Value::path(crate::lower::canon_path(&String::from_utf8_lossy(&out)).into_bytes()))
    }

    /// `{ file, line, column }` for a position (or null).
    #[inline(never)]
    pub fn pos_value(&self, span: Span) -> Value {
        match crate::source::get(span.file) {
            Some((name, text)) if !span.is_none() => {
                let (l, c) = crate::source::line_col(&text, span.offset as usize);
                Value::attrs_from([
                    (sym::file(), Value::str(&name)),
                    (sym::line(), Value::Int(l as i64)),
                    (sym::column(), Value::Int(c as i64)),
                ])
            }
            _ => Value::Null,
        }
    }

    /// `v.path or default`; `found` records the last attribute found (its
    /// index in `path` and position) for the error frames.
    fn select(
        &self,
        v: &Value,
        path: &'static [AttrName],
        default: Option<&'static Expr>,
        pos: Pos,
        env: &Env,
        found: &mut Option<(usize, Pos)>,
    ) -> Result<Value> {
        // each set on the path is borrowed from the one before (whose
        // thunk holds it; sets are immutable), only the result is cloned
        let mut v = v;
        for (i, name) in path.iter().enumerate() {
            let n = self.attr_name(name, env)?;
            match v {
                Value::Attrs(a) => match lookup(a, n, name) {
                    Some(x) => {
                        *found = Some((i, x.pos));
                        v = self.force_ref(&x.value).map_err(|e| e.found_here(x.pos))?;
                    }
                    None => {
                        if let Some(d) = default {
                            return self.eval(d, env);
                        }
                        // no position: the "while evaluating the attribute" frame has it
                        return Err(missing_attr(n, a));
                    }
                },
                _ => {
                    if let Some(d) = default {
                        return self.eval(d, env);
                    }
                    return Err(Error::eval(format!("expected a set but found {}", show_value_short(v))).at(pos));
                }
            }
        }
        Ok(v.clone())
    }

    #[inline]
    fn attr_name(&self, n: &'static AttrName, env: &Env) -> Result<Symbol> {
        match n {
            AttrName::Static(s, _) => Ok(*s),
            AttrName::Dynamic(..) => self.dynamic_attr_name(n, env),
        }
    }

    #[inline(never)]
    fn dynamic_attr_name(&self, n: &'static AttrName, env: &Env) -> Result<Symbol> {
        match n {
            AttrName::Static(s, _) => Ok(*s),
            AttrName::Dynamic(d) => {
                let (e, pos, _) = &**d;
                let v = self.eval(e, env).map_err(|e| e.while_("while evaluating an attribute name", *pos))?;
                match &v {
                    Value::String(s) => Ok(Symbol::of_string(s.as_bytes())),
                    _ => Err(type_err(&v, "a string").at(*pos).while_("while evaluating an attribute name", *pos)),
                }
            }
        }
    }

    #[inline]
    fn eval_attrs(&self, a: &'static AttrsIR, env: &Env) -> Result<Value> {
        let inner;
        let venv = if a.rec {
            let n = a.attrs.len();
            inner = Env::with_len(Some(env.clone()), n + a.hidden.len());
            for (i, d) in a.attrs.iter().enumerate() {
                inner.init(i, self.thunk_rec(&d.value, &inner, i));
            }
            for (i, h) in a.hidden.iter().enumerate() {
                inner.init(n + i, self.thunk_rec(h, &inner, n + i));
            }
            &inner
        } else {
            env
        };
        if a.dynamic.is_empty() && !(a.rec && a.attrs.binary_search_by_key(&sym::overrides(), |d| d.name).is_ok()) {
            // the usual set: made in place, in the IR's (sorted) order
            let d = &a.attrs;
            return Ok(Value::attrs(if a.rec {
                AttrSet::from_fn(d.len(), |i| Attr { name: d[i].name, value: venv.get(i), pos: d[i].pos })
            } else {
                AttrSet::from_fn(d.len(), |i| Attr { name: d[i].name, value: self.thunk(&d[i].value, venv), pos: d[i].pos })
            }));
        }
        let mut attrs: Vec<Attr> = if a.rec {
            a.attrs
                .iter()
                .enumerate()
                .map(|(i, d)| Attr { name: d.name, value: venv.get(i), pos: d.pos })
                .collect()
        } else {
            a.attrs.iter().map(|d| Attr { name: d.name, value: self.thunk(&d.value, venv), pos: d.pos }).collect()
        };
        if a.rec
            && let Ok(i) = attrs.binary_search_by_key(&sym::overrides(), |x| x.name)
        {
            let ov = self.force(&attrs[i].value)?;
            let Value::Attrs(ov) = &ov else {
                return Err(type_err(&ov, "a set").while_("while evaluating the `__overrides` attribute", Span::NONE));
            };
            for o in ov.attrs() {
                match attrs.binary_search_by_key(&o.name, |x| x.name) {
                    Ok(j) => {
                        attrs[j].value = o.value.clone();
                        venv.set(j, o.value.clone());
                    }
                    Err(j) => attrs.insert(j, o.clone()),
                }
            }
        }
        if a.dynamic.is_empty() {
            return Ok(Value::attrs(AttrSet::from_sorted(attrs)));
        }
        for d in &a.dynamic {
            let n = self.eval(&d.name, venv)?;
            let name = match &n {
                Value::Null => continue,
                Value::String(s) => Symbol::of_string(s.as_bytes()),
                _ => return Err(type_err(&n, "a string").at(d.pos)),
            };
            if let Some(existing) = attrs.iter().find(|x| x.name == name) {
                let _ = existing;
                return Err(Error::eval(format!(
                    "dynamic attribute '{name}' already defined at {}",
                    crate::print::pos_string(attrs.iter().find(|x| x.name == name).map_or(d.pos, |x| x.pos.span()))
                ))
                .at(d.pos));
            }
            attrs.push(Attr { name, value: self.thunk(&d.value, venv), pos: d.pos.into() });
        }
        attrs.sort_by_key(|x| x.name);
        Ok(Value::attrs(AttrSet::from_sorted(attrs)))
    }

    /// A binary operator (`node` is the `Expr::Bin`, for the positions).
    /// Integer arithmetic and comparisons are done here; everything else
    /// goes to `bin_slow`, so this frame stays small.
    #[inline]
    fn eval_bin(&self, op: BinOp, l: &'static Expr, r: &'static Expr, node: &'static Expr, env: &Env) -> Result<Value> {
        let a = match self.eval_here(l, env) {
            Ok(a) => a,
            Err(e) => return Err(bin_operand_err(e, op, true, node)),
        };
        let b = match self.eval_here(r, env) {
            Ok(b) => b,
            Err(e) => return Err(bin_operand_err(e, op, false, node)),
        };
        if let (Value::Int(x), Value::Int(y)) = (&a, &b) {
            let (x, y) = (*x, *y);
            let fast = match op {
                BinOp::Add => x.checked_add(y).map(Value::Int),
                BinOp::Sub => x.checked_sub(y).map(Value::Int),
                BinOp::Mul => x.checked_mul(y).map(Value::Int),
                BinOp::Lt => Some(Value::Bool(x < y)),
                BinOp::Le => Some(Value::Bool(x <= y)),
                BinOp::Gt => Some(Value::Bool(x > y)),
                BinOp::Ge => Some(Value::Bool(x >= y)),
                BinOp::Eq => Some(Value::Bool(x == y)),
                BinOp::Neq => Some(Value::Bool(x != y)),
                _ => None,
            };
            if let Some(v) = fast {
                // integers: nothing to drop (spares two calls of the drop glue)
                std::mem::forget(a);
                std::mem::forget(b);
                return Ok(v);
            }
        }
        self.bin_slow(op, a, b, node)
    }

    /// [`Eval::eval_bin`] on evaluated operands that are not both integers
    /// (or overflowed).
    #[inline(never)]
    fn bin_slow(&self, op: BinOp, a: Value, b: Value, node: &Expr) -> Result<Value> {
        let pos = match node {
            Expr::Bin { pos, .. } => *pos,
            _ => Span::NONE,
        };
        let rpos = || bin_spans(node)[2];
        {
            if matches!(op, BinOp::Add) && matches!(a, Value::String(_) | Value::Path(_)) {
                // C++ Nix parses this as string concatenation: a failed
                // coercion of the right side is "a path segment" there.
                return self.add(a, b).map_err(|e| {
                    if e.msg().starts_with("cannot coerce ") { e.in_path_segment(rpos()) } else { e.at(pos) }
                });
            }
            if matches!(op, BinOp::Add) && matches!(a, Value::Int(_) | Value::Float(_)) {
                // C++ Nix reports a numeric `+` at its right operand.
                return self.add(a, b).map_err(|e| e.at(rpos()));
            }
            self.bin_values(op, a, b, pos).map_err(|e| builtin_op_frame(e, op, pos))
        }
    }

    /// `&&`, `||`, `->` (short-circuiting).
    #[inline(always)]
    fn eval_logic(&self, op: BinOp, l: &'static Expr, r: &'static Expr, node: &Expr, env: &Env) -> Result<Value> {
        let side = |e: Error, left: bool| {
            let [_, lpos, rpos] = bin_spans(node);
            let (which, at) = if left { ("left", lpos) } else { ("right", rpos) };
            e.while_(format!("in the {which} operand of '{}'", op_name(op)), at)
        };
        let lv = self.eval(l, env).map_err(|e| side(e.at_reentered_var(l), true))?;
        let lb = match lv {
            Value::Bool(b) => b,
            other => return Err(side(type_err(&other, "a Boolean").at(bin_spans(node)[1]), true)),
        };
        let short = match op {
            BinOp::And => (!lb).then_some(false),
            BinOp::Or => lb.then_some(true),
            _ => (!lb).then_some(true),
        };
        if let Some(b) = short {
            return Ok(Value::Bool(b));
        }
        match self.eval(r, env).map_err(|e| side(e.at_reentered_var(r), false))? {
            Value::Bool(b) => Ok(Value::Bool(b)),
            other => Err(side(type_err(&other, "a Boolean").at(bin_spans(node)[2]), false)),
        }
    }

    #[inline(never)]
    fn bin_values(&self, op: BinOp, a: Value, b: Value, pos: Span) -> Result<Value> {
        match op {
            BinOp::Eq => self.equal(&a, &b).map(Value::Bool).map_err(|e| e.at(pos)),
            BinOp::Neq => self.equal(&a, &b).map(|x| Value::Bool(!x)).map_err(|e| e.at(pos)),
            BinOp::Lt => self.less_than(&a, &b).map(Value::Bool),
            BinOp::Gt => self.less_than(&b, &a).map(Value::Bool),
            BinOp::Le => self.less_than(&b, &a).map(|x| Value::Bool(!x)),
            BinOp::Ge => self.less_than(&a, &b).map(|x| Value::Bool(!x)),
            BinOp::Update => match (&a, &b) {
                (Value::Attrs(x), Value::Attrs(y)) => {
                    Ok(unless_empty(&a, &b, x.is_empty(), y.is_empty(), || Value::attrs(AttrSet::update(x, y))))
                }
                (Value::Attrs(_), _) => Err(type_err(&b, "a set").at(pos)),
                _ => Err(type_err(&a, "a set").at(pos)),
            },
            BinOp::Concat => match (&a, &b) {
                (Value::List(x), Value::List(y)) => Ok(unless_empty(&a, &b, x.is_empty(), y.is_empty(), || {
                    let mut v = Vec::with_capacity(x.len() + y.len());
                    v.extend_from_slice(x);
                    v.extend_from_slice(y);
                    Value::list(v)
                })),
                (Value::List(_), _) => {
                    Err(type_err(&b, "a list").while_("while evaluating one of the elements to concatenate", pos))
                }
                _ => Err(type_err(&a, "a list").while_("while evaluating one of the elements to concatenate", pos)),
            },
            BinOp::Add => self.add(a, b).map_err(|e| e.at(pos)),
            // builtin calls in C++ Nix (`__sub`, …): their errors carry no position
            BinOp::Div => crate::builtins::arith::div_values(a, b),
            BinOp::Sub | BinOp::Mul => self.arith(op, a, b),
            BinOp::And | BinOp::Or | BinOp::Impl => unreachable!("short-circuit operators are handled in eval_bin"),
        }
    }

    /// `+` on numbers, strings and paths.
    pub fn add(&self, a: Value, b: Value) -> Result<Value> {
        match (&a, &b) {
            (Value::Int(_), Value::Int(_) | Value::Float(_)) | (Value::Float(_), Value::Int(_) | Value::Float(_)) => {
                self.arith(BinOp::Add, a, b)
            }
            (Value::Int(_) | Value::Float(_), _) => Err(Error::eval(format!(
                "cannot add {} to {}",
                b.show_type(),
                if matches!(a, Value::Int(_)) { "an integer" } else { "a float" }
            ))),
            (Value::Path(p), _) => {
                let mut ctx = Context::new();
                let s = self.coerce_to_string(&b, &mut ctx, Coerce { more: false, copy_to_store: false })?;
                if !ctx.is_empty() {
                    return Err(Error::eval("a string that refers to a store path cannot be appended to a path".to_string()));
                }
                let mut out = p.as_bytes().to_vec();
                out.extend_from_slice(&s);
                Ok(Value::path(crate::lower::canon_path(&String::from_utf8_lossy(&out)).into_bytes()))
            }
            (Value::String(s), _) => {
                let mut ctx = s.context.clone();
                if let Value::String(t) = &b {
                    t.collect_context(&mut ctx);
                    return Ok(Value::from_string(NixString::concat(&[&s.bytes, &t.bytes], ctx)));
                }
                let rhs = self.coerce_to_string(&b, &mut ctx, Coerce { more: false, copy_to_store: true })?;
                Ok(Value::from_string(NixString::concat(&[&s.bytes, &rhs], ctx)))
            }
            _ => {
                // As in C++ Nix, paths are copied to the store only when the
                // first operand is a string (`drv + /sub` appends "/sub").
                let mut ctx = Context::new();
                let ls = self.coerce_to_string(&a, &mut ctx, Coerce { more: false, copy_to_store: false });
                match ls {
                    Ok(ls) => {
                        let rhs = self.coerce_to_string(&b, &mut ctx, Coerce { more: false, copy_to_store: false })?;
                        let mut out = ls;
                        out.extend_from_slice(&rhs);
                        Ok(Value::string_ctx(out, ctx))
                    }
                    // Only a value that cannot be coerced at all gets the
                    // "cannot add" message; an error raised while coercing
                    // (a `throw` in an `outPath`, say) propagates as itself.
                    Err(e) if !e.msg().starts_with("cannot coerce") => Err(e),
                    Err(_) => Err(Error::eval(format!(
                        "cannot add {} to {}",
                        b.show_type(),
                        a.show_type()
                    ))),
                }
            }
        }
    }

    /// Integer/float arithmetic with overflow checks.
    pub fn arith(&self, op: BinOp, a: Value, b: Value) -> Result<Value> {
        match (&a, &b) {
            (Value::Int(x), Value::Int(y)) => {
                let (x, y) = (*x, *y);
                let r = match op {
                    BinOp::Add => x.checked_add(y),
                    BinOp::Sub => x.checked_sub(y),
                    BinOp::Mul => x.checked_mul(y),
                    _ => {
                        if y == 0 {
                            return Err(Error::eval("division by zero"));
                        }
                        x.checked_div(y)
                    }
                };
                match r {
                    Some(r) => Ok(Value::Int(r)),
                    None => Err(Error::eval(format!(
                        "integer overflow in {} {x} {} {y}",
                        match op {
                            BinOp::Add => "adding",
                            BinOp::Sub => "subtracting",
                            BinOp::Mul => "multiplying",
                            _ => "dividing",
                        },
                        match op {
                            BinOp::Add => "+",
                            BinOp::Sub => "-",
                            BinOp::Mul => "*",
                            _ => "/",
                        }
                    ))),
                }
            }
            (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
                let f = |v: &Value| match v {
                    Value::Int(i) => *i as f64,
                    Value::Float(x) => *x,
                    _ => 0.0,
                };
                let (x, y) = (f(&a), f(&b));
                Ok(Value::Float(match op {
                    BinOp::Add => x + y,
                    BinOp::Sub => x - y,
                    BinOp::Mul => x * y,
                    _ => {
                        if y == 0.0 {
                            return Err(Error::eval("division by zero"));
                        }
                        x / y
                    }
                }))
            }
            (Value::Int(_) | Value::Float(_), _) => Err(type_err(&b, "an integer")),
            _ => Err(type_err(&a, "an integer")),
        }
    }

    /// `"a${b}c"`: the parts are evaluated first, then copied into one
    /// block of the exact size (no buffer grown and copied again).
    #[inline(never)]
    fn eval_interp(&self, parts: &'static [StrPart], env: &Env, _pos: Span) -> Result<Value> {
        enum Piece {
            Str(NixString),
            Coerced(Vec<u8>),
        }
        let mut pieces: smallvec::SmallVec<[Piece; 4]> = smallvec::SmallVec::new();
        let mut len = 0usize;
        let mut ctx = Context::new();
        for p in parts {
            match p {
                StrPart::Lit(l) => len += l.len(),
                StrPart::Interp(e, ipos) => match self.eval(e, env).map_err(|err| err.at_reentered_var(e))?.into_string() {
                    Ok(s) => {
                        len += s.bytes.len();
                        s.collect_context(&mut ctx);
                        pieces.push(Piece::Str(s));
                    }
                    Err(v) => {
                        let s = self
                            .coerce_to_string(&v, &mut ctx, Coerce { more: false, copy_to_store: true })
                            .map_err(|e| e.in_path_segment(*ipos))?;
                        len += s.len();
                        pieces.push(Piece::Coerced(s));
                    }
                },
            }
        }
        let mut out = StrBuf::with_capacity(len);
        let mut pieces = pieces.iter();
        for p in parts {
            match p {
                StrPart::Lit(l) => out.push(l),
                StrPart::Interp(..) => match pieces.next().expect("one piece per interpolation") {
                    Piece::Str(s) => out.push(&s.bytes),
                    Piece::Coerced(b) => out.push(b),
                },
            }
        }
        Ok(Value::from_string(out.finish(ctx)))
    }

    /// Call a function value with one (lazy) argument.
    pub fn call(&self, f: &Value, arg: Value, pos: Span) -> Result<Value> {
        let depth = self.enter_call(pos)?;
        let r = self.call_inner(f, arg, pos);
        self.call_depth.set(depth);
        r
    }

    /// `f a b`. A curried two-argument lambda (`a: b: …`) is entered
    /// directly, without allocating the intermediate closure.
    pub fn call2(&self, f: &Value, a: Value, b: Value, pos: Span) -> Result<Value> {
        if let Value::Lambda(c) = f
            && c.lambda.formals.is_none()
            && let Expr::Lambda(inner) = &c.lambda.body
            && inner.formals.is_none()
        {
            let depth = self.call_depth.get();
            if depth + 1 > self.opts.max_call_depth {
                return Err(Error::new(ErrorKind::StackOverflow, "stack overflow; max-call-depth exceeded").at(pos));
            }
            self.call_depth.set(depth + 2);
            let env1 = Env::one(Some(c.env.clone()), a);
            let env2 = Env::one(Some(env1), b);
            let r = self
                .eval_deep(&inner.body, &env2)
                .map_err(|e| lambda_frames(e, inner, pos));
            self.call_depth.set(depth);
            return r;
        }
        if let Value::PrimOp(op) = f
            && op.arity == 2
        {
            return self.call_primop(op, &[a, b], pos);
        }
        let g = self.call(f, a, pos)?;
        self.call(&g, b, pos)
    }

    #[inline]
    fn call_inner(&self, f: &Value, arg: Value, pos: Span) -> Result<Value> {
        match f {
            Value::Lambda(c) => self.call_lambda(c, arg, pos),
            _ => self.call_other(f, arg, pos),
        }
    }

    /// Calls of builtins, functors and thunks (kept apart so the lambda
    /// path's stack frame stays small).
    #[inline(never)]
    fn call_other(&self, f: &Value, arg: Value, pos: Span) -> Result<Value> {
        match f {
            Value::Lambda(c) => self.call_lambda(c, arg, pos),
            Value::PrimOp(op) => {
                if op.arity == 1 {
                    self.run_primop(op, &[arg], pos)
                } else {
                    Ok(Value::from_primop_app(Shared::new(PrimOpApp { op, args: vec![arg] })))
                }
            }
            Value::PrimOpApp(app) => {
                let mut args = Vec::with_capacity(app.args.len() + 1);
                args.extend_from_slice(&app.args);
                args.push(arg);
                if args.len() == app.op.arity {
                    self.run_primop(app.op, &args, pos)
                } else {
                    Ok(Value::from_primop_app(Shared::new(PrimOpApp { op: app.op, args })))
                }
            }
            Value::Attrs(a) => match a.get(sym::functor()) {
                Some(functor) => {
                    let functor = self.force(functor)?;
                    let g = self.call(&functor, f.clone(), pos)?;
                    self.call(&g, arg, pos)
                }
                None => Err(Error::eval(format!(
                    "attempt to call something which is not a function but {}",
                    show_value_short(f)
                ))
                .at(pos)),
            },
            Value::Thunk(_) => {
                let f = self.force(f)?;
                self.call_inner(&f, arg, pos)
            }
            _ => Err(Error::eval(format!(
                "attempt to call something which is not a function but {}",
                show_value_short(f)
            ))
            .at(pos)),
        }
    }

    fn lambda_name(l: &LambdaIR) -> String {
        match l.name {
            Some(n) => format!("'{n}'"),
            None => "'anonymous lambda'".into(),
        }
    }

    #[inline(never)]
    fn call_lambda(&self, c: &Shared<Closure>, arg: Value, pos: Span) -> Result<Value> {
        let l = c.lambda;
        let Some(formals) = &l.formals else {
            let env = Env::one(Some(c.env.clone()), arg);
            return self.eval_deep(&l.body, &env).map_err(|e| lambda_frames(e, l, pos));
        };
        let (env, defaults) = self.bind_formals(c, formals, arg, pos)?;
        let r = self.eval_deep(&l.body, &env).map_err(|e| lambda_frames(e, l, pos));
        if defaults {
            env.release();
        }
        r
    }

    /// The frame of a call to a `{ a, b ? d, ... }@x:` function. Also says
    /// whether a default was used (its thunk refers to the frame).
    #[inline(never)]
    fn bind_formals(&self, c: &Shared<Closure>, formals: &'static Formals, arg: Value, pos: Span) -> Result<(Env, bool)> {
        let l = c.lambda;
        // (the argument is forced at the call, as C++ Nix's callFunction does)
        let argv = self.force_ref(&arg).map_err(|e| e.found_here(pos))?;
        let Value::Attrs(attrs) = argv else {
            return Err(type_err(argv, "a set").at(pos));
        };
        let n = l.frame_size();
        let env = Env::with_len(Some(c.env.clone()), n);
        let mut used = 0;
        let mut defaults = false;
        for (i, f) in formals.entries.iter().enumerate() {
            match attrs.get(f.name) {
                Some(v) => {
                    used += 1;
                    env.init(i, v.clone());
                }
                None => match &f.default {
                    Some(d) => {
                        defaults = true;
                        env.init(i, self.thunk_rec(d, &env, i))
                    }
                    None => {
                        return Err(Error::eval(format!(
                            "function {} called without required argument '{}'",
                            Self::lambda_name(l),
                            f.name
                        ))
                        .at(l.pos)
                        .while_calling("from call site", pos));
                    }
                },
            }
        }
        if !formals.ellipsis && used != attrs.len() {
            for a in attrs.attrs() {
                if !formals.entries.iter().any(|f| f.name == a.name) {
                    let mut err = Error::eval(format!(
                        "function {} called with unexpected argument '{}'",
                        Self::lambda_name(l),
                        a.name
                    ));
                    if let Some(h) =
                        suggestions(&a.name.as_str(), formals.entries.iter().map(|f| f.name.as_str().into_owned()))
                    {
                        err = err.with_hint(h);
                    }
                    return Err(err.at(l.pos).while_calling("from call site", pos));
                }
            }
        }
        if formals.at.is_some() {
            env.init(formals.entries.len(), argv.clone());
        }
        Ok((env, defaults))
    }

    /// Deep equality as `==` defines it.
    pub fn equal(&self, a: &Value, b: &Value) -> Result<bool> {
        self.with_stack(|| self.equal_inner(a, b))
    }

    fn equal_inner(&self, a: &Value, b: &Value) -> Result<bool> {
        // borrowed: comparing changes no count
        let a = self.force_ref(a)?;
        let b = self.force_ref(b)?;
        Ok(match (a, b) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(x), Value::Bool(y)) => x == y,
            (Value::Int(x), Value::Int(y)) => x == y,
            (Value::Float(x), Value::Float(y)) => x == y,
            (Value::Int(x), Value::Float(y)) => (*x as f64) == *y,
            (Value::Float(x), Value::Int(y)) => *x == (*y as f64),
            (Value::String(x), Value::String(y)) => x.bytes == y.bytes,
            (Value::Path(x), Value::Path(y)) => x.bytes == y.bytes,
            (Value::List(x), Value::List(y)) => {
                if Shared::ptr_eq(x, y) {
                    return Ok(true);
                }
                if x.len() != y.len() {
                    return Ok(false);
                }
                for (p, q) in x.iter().zip(y.iter()) {
                    if !(same(p, q) || self.equal(p, q)?) {
                        return Ok(false);
                    }
                }
                true
            }
            (Value::Attrs(x), Value::Attrs(y)) => {
                if AttrSet::ptr_eq(x, y) {
                    return Ok(true);
                }
                if self.is_derivation(x)? && self.is_derivation(y)?
                    && let (Some(p), Some(q)) = (x.get(sym::out_path()), y.get(sym::out_path())) {
                        return self.equal(p, q);
                    }
                if x.len() != y.len() {
                    return Ok(false);
                }
                for (p, q) in x.attrs().iter().zip(y.attrs().iter()) {
                    if p.name != q.name {
                        return Ok(false);
                    }
                    if !(same(&p.value, &q.value) || self.equal(&p.value, &q.value)?) {
                        return Ok(false);
                    }
                }
                true
            }
            _ => false,
        })
    }

    /// Why two values that `==` found unequal differ: an assertion error
    /// with `… while comparing …` frames (C++ Nix's assertEqValues).
    #[cold]
    fn explain_unequal(&self, a: &Value, b: &Value, pos: Span) -> Error {
        stacker::maybe_grow(128 * 1024, 4 * 1024 * 1024, || match self.explain_inner(a, b, pos) {
            Ok(e) => e,
            Err(e) => e,
        })
    }

    fn explain_inner(&self, a: &Value, b: &Value, pos: Span) -> Result<Error> {
        use crate::print::print_error_value as pv;
        let a = self.force(a)?;
        let b = self.force(b)?;
        let err = |m: String| Error::new(ErrorKind::Assert, m);
        Ok(match (&a, &b) {
            (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => err(format!(
                "{} with value '{}' is not equal to {} with value '{}'",
                a.show_type(),
                pv(&a),
                b.show_type(),
                pv(&b)
            )),
            _ if std::mem::discriminant(&a) != std::mem::discriminant(&b)
                && !(a.is_function() && b.is_function()) =>
            {
                err(format!(
                    "{} of value '{}' is not equal to {} of value '{}'",
                    a.show_type(),
                    pv(&a),
                    b.show_type(),
                    pv(&b)
                ))
            }
            (Value::Bool(x), Value::Bool(y)) => err(format!("boolean '{x}' is not equal to boolean '{y}'")),
            (Value::String(_), Value::String(_)) => {
                err(format!("string '{}' is not equal to string '{}'", pv(&a), pv(&b)))
            }
            (Value::Path(x), Value::Path(y)) => err(format!(
                "path '{}' is not equal to path '{}'",
                String::from_utf8_lossy(&x.bytes),
                String::from_utf8_lossy(&y.bytes)
            )),
            (Value::List(x), Value::List(y)) => {
                if x.len() != y.len() {
                    return Ok(err(format!(
                        "list of size '{}' is not equal to list of size '{}', left hand side is '{}', right hand side is '{}'",
                        x.len(),
                        y.len(),
                        pv(&a),
                        pv(&b)
                    )));
                }
                for (i, (p, q)) in x.iter().zip(y.iter()).enumerate() {
                    if !self.equal(p, q)? {
                        return Ok(self.explain_unequal(p, q, pos).while_(format!("while comparing list element {i}"), pos));
                    }
                }
                err("values differ".into())
            }
            (Value::Attrs(x), Value::Attrs(y)) => {
                if self.is_derivation(x)? && self.is_derivation(y)?
                    && let (Some(p), Some(q)) = (x.get(sym::out_path()), y.get(sym::out_path()))
                {
                    return Ok(self
                        .explain_unequal(p, q, pos)
                        .while_("while comparing a derivation by its 'outPath' attribute", pos));
                }
                if x.len() != y.len() || x.attrs().iter().zip(y.attrs().iter()).any(|(p, q)| p.name != q.name) {
                    return Ok(err(format!(
                        "attribute names of attribute set '{}' differs from attribute set '{}'",
                        pv(&a),
                        pv(&b)
                    )));
                }
                for (p, q) in x.attrs().iter().zip(y.attrs().iter()) {
                    if !self.equal(&p.value, &q.value)? {
                        return Ok(self
                            .explain_unequal(&p.value, &q.value, pos)
                            .while_("where right hand side is", q.pos)
                            .while_("where left hand side is", p.pos)
                            .while_(format!("while comparing attribute '{}'", p.name), pos));
                    }
                }
                err("values differ".into())
            }
            _ if a.is_function() => err("distinct functions and immediate comparisons of identical functions compare as unequal".into()),
            _ => err(format!("{} is not equal to {}", pv(&a), pv(&b))),
        })
    }

    /// Whether an attribute set is a derivation (`type == "derivation"`).
    pub fn is_derivation(&self, a: &AttrSet) -> Result<bool> {
        match a.get(sym::type_()) {
            Some(t) => match self.force_ref(t)? {
                Value::String(s) => Ok(s.bytes == *b"derivation"),
                _ => Ok(false),
            },
            None => Ok(false),
        }
    }

    /// `<` on numbers, strings, paths and lists.
    pub fn less_than(&self, a: &Value, b: &Value) -> Result<bool> {
        let a = self.force(a)?;
        let b = self.force(b)?;
        Ok(match (&a, &b) {
            (Value::Int(x), Value::Int(y)) => x < y,
            (Value::Float(x), Value::Float(y)) => x < y,
            (Value::Int(x), Value::Float(y)) => (*x as f64) < *y,
            (Value::Float(x), Value::Int(y)) => *x < (*y as f64),
            (Value::String(x), Value::String(y)) => x.bytes < y.bytes,
            (Value::Path(x), Value::Path(y)) => x.bytes < y.bytes,
            (Value::List(x), Value::List(y)) => {
                for (p, q) in x.iter().zip(y.iter()) {
                    if !self.equal(p, q)? {
                        return self
                            .less_than(p, q)
                            .map_err(|e| e.while_("while comparing two list elements", Span::NONE));
                    }
                }
                x.len() < y.len()
            }
            _ => {
                use crate::print::print_error_value as pv;
                return Err(Error::eval(if a.type_name() != b.type_name() {
                    format!("cannot compare {} with {}; values are {} and {}", a.show_type(), b.show_type(), pv(&a), pv(&b))
                } else {
                    format!(
                        "cannot compare {} with {}; values of that type are incomparable (values are {} and {})",
                        a.show_type(),
                        b.show_type(),
                        pv(&a),
                        pv(&b)
                    )
                }));
            }
        })
    }

    /// Coerce a value to string bytes, collecting its context into `ctx`.
    pub fn coerce_to_string(&self, v: &Value, ctx: &mut Context, how: Coerce) -> Result<Vec<u8>> {
        let v = self.force(v)?;
        match &v {
            Value::String(s) => {
                s.collect_context(ctx);
                Ok(s.bytes.to_vec())
            }
            Value::Path(p) => {
                if how.copy_to_store {
                    let path = p.to_str_lossy().into_owned();
                    let sp = self.copy_path_to_store(&path)?;
                    ctx.insert(crate::value::ContextElem::opaque(&sp));
                    Ok(sp.into_bytes())
                } else {
                    Ok(p.bytes.to_vec())
                }
            }
            Value::Attrs(a) => {
                if let Some(attr) = a.get_attr(sym::to_string()) {
                    let pos = attr.pos;
                    let r = self
                        .force(&attr.value)
                        .and_then(|f| self.call(&f, v.clone(), pos.span()))
                        .map_err(|e| e.while_("while calling the `__toString` attribute", pos))?;
                    return self
                        .coerce_to_string(&r, ctx, how)
                        .map_err(|e| e.while_("while using the result of the `__toString` attribute", pos));
                }
                if let Some(attr) = a.get_attr(sym::out_path()) {
                    return self
                        .coerce_to_string(&attr.value, ctx, how)
                        .map_err(|e| e.while_("while evaluating the `outPath` attribute", attr.pos));
                }
                Err(Error::eval(format!("cannot coerce {} to a string: {}", v.show_type(), crate::print::print_error_value(&v))))
            }
            Value::Null if how.more => Ok(Vec::new()),
            Value::Bool(b) if how.more => Ok(if *b { b"1".to_vec() } else { Vec::new() }),
            Value::Int(i) if how.more => Ok(i.to_string().into_bytes()),
            Value::Float(f) if how.more => Ok(format!("{f:.6}").into_bytes()),
            Value::List(l) if how.more => {
                let mut out = Vec::new();
                for (i, x) in l.iter().enumerate() {
                    let s = self.coerce_to_string(x, ctx, how)?;
                    out.extend_from_slice(&s);
                    // like C++ Nix: no separator after an empty list
                    if i + 1 < l.len() && !matches!(self.force(x)?, Value::List(ref p) if p.is_empty()) {
                        out.push(b' ');
                    }
                }
                Ok(out)
            }
            _ => Err(Error::eval(format!(
                "cannot coerce {} to a string: {}",
                v.show_type(),
                crate::print::print_error_value(&v)
            ))),
        }
    }

    /// Copy a host path into the store (through [`EvalIO::import_path`]),
    /// caching the result.
    pub fn copy_path_to_store(&self, path: &str) -> Result<String> {
        if let Some(p) = self.copied.borrow().get(path) {
            return Ok(p.clone());
        }
        let sp = self.io.import_path(path).map_err(Error::eval)?;
        self.copied.borrow_mut().insert(path.to_string(), sp.clone());
        Ok(sp)
    }

    /// Force a value and everything inside it (for `--strict`, `deepSeq`).
    pub fn force_deep(&self, v: &Value) -> Result<Value> {
        let mut seen = FxHashSet::default();
        let r = self.force_deep_inner(v, &mut seen)?;
        Ok(r)
    }

    fn force_deep_inner(&self, v: &Value, seen: &mut FxHashSet<usize>) -> Result<Value> {
        let v = self.force(v)?;
        stacker::maybe_grow(128 * 1024, 4 * 1024 * 1024, || {
            let depth = self.call_depth.get();
            if depth > self.opts.max_call_depth {
                return Err(Error::new(ErrorKind::StackOverflow, "stack overflow; max-call-depth exceeded"));
            }
            self.call_depth.set(depth + 1);
            let r = (|| {
                match &v {
                    Value::Attrs(a)
                        if seen.insert(a.as_ptr() as usize) => {
                            for x in a.attrs() {
                                self.force_deep_inner(&x.value, seen).map_err(|e| {
                                    e.while_(format!("while evaluating the attribute '{}'", x.name), x.pos)
                                })?;
                            }
                        }
                    Value::List(l)
                        if seen.insert(Shared::as_ptr(l) as usize) => {
                            for (i, x) in l.iter().enumerate() {
                                self.force_deep_inner(x, seen).map_err(|e| {
                                    e.while_(format!("while evaluating list element at index {i}"), Span::NONE)
                                })?;
                            }
                        }
                    _ => {}
                }
                Ok(())
            })();
            self.call_depth.set(depth);
            r
        })?;
        Ok(v)
    }

    /// Resolve `<name/rest>` against the search path.
    #[inline(never)]
    pub fn find_search_path(&self, path: &str) -> Result<Value> {
        for (prefix, dir) in &self.opts.search_path {
            let rest = if prefix.is_empty() {
                Some(path.to_string())
            } else if path == prefix {
                Some(String::new())
            } else { path.strip_prefix(prefix.as_str()).and_then(|r| r.strip_prefix('/')).map(|r| r.to_string()) };
            let Some(rest) = rest else { continue };
            let full = if rest.is_empty() { dir.clone() } else { format!("{dir}/{rest}") };
            let full = if full.starts_with('/') {
                full
            } else {
                format!("{}/{}", std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(), full)
            };
            let full = crate::lower::canon_path(&full);
            if self.io.path_exists(&full) {
                return Ok(Value::path(full.into_bytes()));
            }
        }
        if let Some(p) = self.io.search_path_fallback(path) {
            return Ok(Value::path(p.into_bytes()));
        }
        Err(Error::throw(format!(
            "file '{path}' was not found in the Nix search path (add it using $NIX_PATH or -I)"
        )))
    }

    /// Force and expect specific types (for builtins).
    pub fn force_int(&self, v: &Value) -> Result<i64> {
        match self.force(v)? {
            Value::Int(i) => Ok(i),
            other => Err(type_err(&other, "an integer")),
        }
    }
    pub fn force_bool(&self, v: &Value) -> Result<bool> {
        match self.force(v)? {
            Value::Bool(b) => Ok(b),
            other => Err(type_err(&other, "a Boolean")),
        }
    }
    pub fn force_list(&self, v: &Value) -> Result<Shared<List>> {
        self.force(v)?.into_list().map_err(|other| type_err(&other, "a list"))
    }
    pub fn force_attrs(&self, v: &Value) -> Result<AttrSet> {
        self.force(v)?.into_attrs().map_err(|other| type_err(&other, "a set"))
    }
    pub fn force_function(&self, v: &Value) -> Result<Value> {
        let f = self.force(v)?;
        match &f {
            Value::Lambda(_) | Value::PrimOp(_) | Value::PrimOpApp(_) => Ok(f),
            Value::Attrs(a) if a.get(sym::functor()).is_some() => Ok(f),
            _ => Err(type_err(&f, "a function")),
        }
    }
    /// Force to a string (no coercion), returning it with its context.
    pub fn force_string(&self, v: &Value) -> Result<NixString> {
        self.force(v)?.into_string().map_err(|other| type_err(&other, "a string"))
    }
    /// A string without context (errors if it has one? no: context is ignored).
    pub fn force_str_nocontext(&self, v: &Value) -> Result<String> {
        Ok(self.force_string(v)?.to_str_lossy().into_owned())
    }
    /// Coerce to a path string (paths, strings starting with '/').
    pub fn coerce_to_path(&self, v: &Value) -> Result<String> {
        let mut ctx = Context::new();
        let s = self.coerce_to_string(v, &mut ctx, Coerce { more: false, copy_to_store: false })?;
        let s = String::from_utf8_lossy(&s).into_owned();
        if !s.starts_with('/') {
            return Err(Error::eval(format!("string '{s}' doesn't represent an absolute path")));
        }
        Ok(s)
    }
}

/// Add C++ Nix's frames to an error raised inside a builtin: which argument
/// had the wrong type (found by matching the message against the evaluated
/// arguments) and "while calling the 'NAME' builtin".
#[cold]
fn builtin_error(e: Error, op: &PrimOpDef, args: &[Value], pos: Span) -> Error {
    // (a builtin that finds a value being evaluated reports no position,
    // as in modern Nix, and neither do the places the error unwinds to)
    let mut e = e.unwound();
    let coerce = e.msg().starts_with("cannot coerce ");
    if e.0.trace.is_empty()
        && e.0.span.is_none()
        && e.kind() == ErrorKind::Eval
        && (e.msg().starts_with("expected ") || coerce)
    {
        for (i, a) in args.iter().enumerate() {
            let v = match a {
                Value::Thunk(t) => match t.value() {
                    Some(v) => v.clone(),
                    None => continue,
                },
                v => v.clone(),
            };
            let matches = if coerce {
                e.msg().starts_with(&format!("cannot coerce {} ", v.show_type()))
                    && e.msg().ends_with(&crate::print::print_error_value(&v))
            } else {
                e.msg().ends_with(&show_value_short(&v))
            };
            if matches {
                let which = if matches!(op.name, "attrNames" | "attrValues" | "derivationStrict" | "listToAttrs" | "stringLength") {
                    "the argument".to_string()
                } else {
                    format!("the {} argument", ["first", "second", "third", "fourth"][i.min(3)])
                };
                let name = if op.name == "foldl'" { "foldlStrict" } else { op.name };
                let nth = ["first", "second", "third", "fourth"][i.min(3)];
                let frame = match (op.name, i) {
                    ("add", _) => format!("while evaluating the {nth} argument of the addition"),
                    ("sub", _) => format!("while evaluating the {nth} argument of the subtraction"),
                    ("mul", _) => format!("while evaluating the {nth} argument of the multiplication"),
                    ("div", _) => format!("while evaluating the {nth} operand of the division"),
                    ("elemAt" | "head" | "tail", _) => format!("while evaluating the {nth} argument passed to 'builtins.{name}'"),
                    ("concatStringsSep", 0) => format!("while evaluating {which} (the separator string) passed to builtins.{name}"),
                    ("concatStringsSep", 1) => {
                        format!("while evaluating {which} (the list of strings to concat) passed to builtins.{name}")
                    }
                    ("substring", 0) => format!("while evaluating {which} (the start offset) passed to builtins.{name}"),
                    ("substring", 1) => format!("while evaluating {which} (the substring length) passed to builtins.{name}"),
                    ("substring", 2) => format!("while evaluating {which} (the string) passed to builtins.{name}"),
                    _ => format!("while evaluating {which} passed to builtins.{name}"),
                };
                e = e.while_(frame, Span::NONE);
                break;
            }
        }
    }
    if e.kind() == ErrorKind::StackOverflow {
        return e.at(pos);
    }
    // C++ Nix adds no frame of its own for `addErrorContext`, only the
    // context it was given
    if op.name == "addErrorContext" {
        return e;
    }
    e.while_calling(format!("while calling the '{}' builtin", op.name), pos)
}

/// The frame of an error in the set a selection selects from: none when
/// the selection has an `or` default (as C++ Nix's ExprSelect).
#[cold]
fn select_target_frame(e: Error, has_default: bool, pos: Span) -> Error {
    if has_default { e } else { e.while_("while selecting an attribute", pos) }
}

/// Frames for an error raised while selecting `e.a.b` (C++ Nix's
/// ExprSelect): the attribute path, and where the last attribute found was
/// defined.
#[cold]
fn select_frames(mut e: Error, path: &[AttrName], found: Option<(usize, Pos)>, pos: Span) -> Error {
    if e.kind() == ErrorKind::StackOverflow {
        return e;
    }
    if let Some((i, def)) = found
        && !def.is_none()
    {
        let shown: Vec<String> = path[..=i].iter().map(AttrName::show).collect();
        e = e.while_(format!("from the definition of '{}'", shown.join(".")), def);
    }
    let shown: Vec<String> = path.iter().map(AttrName::show).collect();
    e.while_(format!("while evaluating the attribute '{}'", shown.join(".")), pos)
}

/// The error of a call nested deeper than `max_call_depth`.
#[cold]
#[inline(never)]
fn stack_overflow(pos: Span) -> Error {
    Error::new(ErrorKind::StackOverflow, "stack overflow; max-call-depth exceeded").at(pos)
}

/// "while calling 'f'" and "from call site" frames for an error raised in a
/// function body.
#[cold]
fn lambda_frames(e: Error, l: &LambdaIR, pos: Span) -> Error {
    let what = match l.name {
        Some(n) => format!("while calling '{n}'"),
        None => "while calling anonymous lambda".to_string(),
    };
    let e = e.while_calling(what, l.pos);
    if pos.is_none() { e } else { e.while_calling("from call site", pos) }
}

/// The largest arity of a builtin.
const MAX_ARITY: usize = 4;

/// How many arguments a builtin or a partial application of one still
/// needs before it runs (None for anything else).
#[inline]
fn primop_missing(f: &Value) -> Option<usize> {
    match f {
        Value::PrimOp(op) if op.arity <= MAX_ARITY => Some(op.arity),
        Value::PrimOpApp(app) if app.op.arity <= MAX_ARITY => Some(app.op.arity - app.args.len()),
        _ => None,
    }
}

/// Identity of two values (same heap object), as C++ Nix's `&v1 == &v2`.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Thunk(x), Value::Thunk(y)) => Thunk::ptr_eq(x, y),
        (Value::Lambda(x), Value::Lambda(y)) => Shared::ptr_eq(x, y),
        (Value::Attrs(x), Value::Attrs(y)) => AttrSet::ptr_eq(x, y),
        (Value::List(x), Value::List(y)) => Shared::ptr_eq(x, y),
        (Value::PrimOp(x), Value::PrimOp(y)) => std::ptr::eq(*x, *y),
        (Value::PrimOpApp(x), Value::PrimOpApp(y)) => Shared::ptr_eq(x, y),
        _ => false,
    }
}

/// An operator as written.
pub(crate) fn op_name(op: BinOp) -> &'static str {
    match op {
        BinOp::And => "&&",
        BinOp::Or => "||",
        BinOp::Impl => "->",
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::Eq => "==",
        BinOp::Neq => "!=",
        BinOp::Lt => "<",
        BinOp::Le => "<=",
        BinOp::Gt => ">",
        BinOp::Ge => ">=",
        BinOp::Update => "//",
        BinOp::Concat => "++",
    }
}

/// The frame C++ Nix adds when evaluating an operand fails: operators it
/// desugars to builtin calls (`-`, `*`, `/`, `<`, …) say so.
#[cold]
fn operand_frame(e: Error, op: BinOp, left: bool, pos: Span, at: Span) -> Error {
    match op {
        BinOp::Add => e.while_("in an operand of '+'", at),
        BinOp::Eq | BinOp::Neq | BinOp::Update | BinOp::Concat => {
            e.while_(format!("in the {} operand of '{}'", if left { "left" } else { "right" }, op_name(op)), at)
        }
        _ => builtin_op_frame(e, op, pos),
    }
}

/// `[operator, left operand, right operand]` positions of an `Expr::Bin`.
fn bin_spans(node: &Expr) -> [Span; 3] {
    match node {
        Expr::Bin { pos, lpos, rpos, .. } => [*pos, (*lpos).into(), (*rpos).into()],
        _ => [Span::NONE; 3],
    }
}

/// [`operand_frame`] for the operand of an `Expr::Bin` node.
#[cold]
#[inline(never)]
fn bin_operand_err(e: Error, op: BinOp, left: bool, node: &Expr) -> Error {
    let [pos, lpos, rpos] = bin_spans(node);
    let e = match node {
        Expr::Bin { l, r, .. } => e.at_reentered_var(if left { l } else { r }),
        _ => e,
    };
    operand_frame(e, op, left, pos, if left { lpos } else { rpos })
}

/// `a - b` is `__sub a b` in C++ Nix, `a <= b` is `!(__lessThan b a)`, …
#[cold]
fn builtin_op_frame(e: Error, op: BinOp, pos: Span) -> Error {
    match op {
        BinOp::Sub => e.while_calling("while calling the 'sub' builtin", pos),
        BinOp::Mul => e.while_calling("while calling the 'mul' builtin", pos),
        BinOp::Div => e.while_calling("while calling the 'div' builtin", pos),
        BinOp::Lt | BinOp::Gt => e.while_calling("while calling the 'lessThan' builtin", pos),
        BinOp::Le | BinOp::Ge => {
            e.while_calling("while calling the 'lessThan' builtin", pos).while_("in the argument of '!'", pos)
        }
        _ => e,
    }
}

/// "attribute 'x' missing" with a suggestion.
pub fn missing_attr(n: Symbol, a: &AttrSet) -> Error {
    let e = Error::eval(format!("attribute '{n}' missing"));
    match suggestions(&n.as_str(), a.attrs().iter().map(|x| x.name.as_str().into_owned())) {
        Some(h) => e.with_hint(h),
        None => e,
    }
}

/// C++ Nix's "Did you mean …?" for the candidates within edit distance 2
/// of `target`, closest first.
fn suggestions(target: &str, candidates: impl Iterator<Item = String>) -> Option<String> {
    let mut close: Vec<(usize, String)> =
        candidates.map(|s| (levenshtein(&s, target), s)).filter(|(d, _)| *d <= 2).collect();
    close.sort();
    let close: Vec<String> = close.into_iter().map(|(_, s)| s).collect();
    match close.len() {
        0 => None,
        1 => Some(format!("Did you mean {}?", close[0])),
        _ => {
            let (last, rest) = close.split_last().expect("nonempty");
            Some(format!("Did you mean one of {} or {}?", rest.join(", "), last))
        }
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A path component's attribute in `a`: through the site's hint when the
/// name is static.
#[inline(always)]
fn lookup<'a>(a: &'a AttrSet, n: Symbol, name: &AttrName) -> Option<&'a Attr> {
    match name {
        AttrName::Static(_, hint) => a.get_attr_hinted(n, hint),
        AttrName::Dynamic(_) => a.get_attr(n),
    }
}

/// `x.name` (with or without `or`) where `x` is a variable already
/// evaluated to a set whose attribute `name` is evaluated too: that value,
/// without a thunk. Nothing is forced, so nothing can fail or differ; in a
/// frame still being filled, a slot not yet written holds null and the
/// selection stays suspended.
#[inline]
fn peek_select(target: &Expr, path: &[AttrName], env: &Env) -> Option<Value> {
    let (Expr::Var { depth, slot, .. }, [AttrName::Static(n, _)]) = (target, path) else { return None };
    let v = match env.up(*depth).slot_ref(*slot as usize) {
        Value::Thunk(t) => t.value()?,
        v => v,
    };
    let Value::Attrs(a) = v else { return None };
    match &a.get_attr(*n)?.value {
        Value::Thunk(t) => t.value().cloned(),
        v => Some(v.clone()),
    }
}

/// `join()` of two sets or lists, or the one side that is not empty (`//`
/// and `++` with an empty side return the other unchanged).
#[inline]
fn unless_empty(a: &Value, b: &Value, a_empty: bool, b_empty: bool, join: impl FnOnce() -> Value) -> Value {
    if b_empty {
        a.clone()
    } else if a_empty {
        b.clone()
    } else {
        join()
    }
}
