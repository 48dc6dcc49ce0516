//! Interned attribute names and identifiers: a `Symbol` is a u32 index into a
//! per-thread table, so comparing two names is an integer compare.

use std::cell::RefCell;
use std::fmt;

use rustc_hash::FxHashMap;

/// An interned name (attribute name or identifier). Symbols order by
/// interning order, not alphabetically; use [`Symbol::as_bytes`] to sort by name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol(pub u32);

struct Interner {
    names: Vec<&'static [u8]>,
    map: FxHashMap<&'static [u8], u32>,
    /// The symbols of the string values interned last, by the address of
    /// their bytes (see [`Symbol::of_string`]).
    recent: [(usize, u32); RECENT],
}

/// Entries of [`Interner::recent`].
const RECENT: usize = 256;

impl Interner {
    fn intern(&mut self, name: &[u8]) -> Symbol {
        if let Some(&id) = self.map.get(name) {
            return Symbol(id);
        }
        let leaked: &'static [u8] = Box::leak(name.to_vec().into_boxed_slice());
        let id = self.names.len() as u32;
        self.names.push(leaked);
        self.map.insert(leaked, id);
        Symbol(id)
    }

    /// A table that starts with the names of [`sym`], in order, so each of
    /// them has a fixed id on every thread.
    fn with_predefined() -> Interner {
        let mut i = Interner { names: Vec::new(), map: FxHashMap::default(), recent: [(0, 0); RECENT] };
        for (id, name) in sym::PREDEFINED.iter().enumerate() {
            let name: &'static [u8] = name.as_bytes();
            assert!(i.map.insert(name, id as u32).is_none(), "predefined symbols are distinct");
            i.names.push(name);
        }
        i
    }
}

thread_local! {
    static INTERNER: RefCell<Interner> = RefCell::new(Interner::with_predefined());
}

impl Symbol {
    /// Intern a name.
    pub fn new(name: impl AsRef<[u8]>) -> Symbol {
        INTERNER.with(|i| i.borrow_mut().intern(name.as_ref()))
    }

    /// Intern the bytes of a string value. The same string value is often
    /// made a name over and over (a literal list of names given to
    /// `removeAttrs` on every call, `opts ? ${k}` with a literal `k`), so
    /// the names of the last strings interned are remembered by the
    /// address of their bytes and checked by comparing the bytes (an
    /// address freed and reused by another string is just a miss).
    #[inline]
    pub fn of_string(bytes: &[u8]) -> Symbol {
        INTERNER.with(|i| {
            let mut i = i.borrow_mut();
            let addr = bytes.as_ptr() as usize;
            let slot = ((addr >> 3) ^ (addr >> 11)) % RECENT;
            let (seen, id) = i.recent[slot];
            if seen == addr && i.names[id as usize] == bytes {
                return Symbol(id);
            }
            let s = i.intern(bytes);
            i.recent[slot] = (addr, s.0);
            s
        })
    }

    /// The name's bytes (names need not be UTF-8).
    pub fn as_bytes(self) -> &'static [u8] {
        INTERNER.with(|i| i.borrow().names[self.0 as usize])
    }

    /// The name as text (lossy for non-UTF-8 names).
    pub fn as_str(self) -> std::borrow::Cow<'static, str> {
        String::from_utf8_lossy(self.as_bytes())
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_str())
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

/// Frequently used symbols: the first entries of every thread's table,
/// so each is a constant (no table lookup on the hot paths that use them).
pub mod sym {
    use super::Symbol;
    macro_rules! syms {
        ($($name:ident = $text:expr;)*) => {
            pub(super) const PREDEFINED: &[&str] = &[$($text),*];
            #[allow(non_camel_case_types, dead_code)]
            #[repr(u32)]
            enum Id { $($name),* }
            $(
                #[allow(non_snake_case, dead_code)]
                #[inline]
                pub fn $name() -> Symbol {
                    Symbol(Id::$name as u32)
                }
            )*
        };
    }
    syms! {
        out_path = "outPath";
        type_ = "type";
        functor = "__functor";
        to_string = "__toString";
        name = "name";
        value = "value";
        success = "success";
        file = "file";
        line = "line";
        column = "column";
        body = "body";
        drv_path = "drvPath";
        outputs = "outputs";
        key = "key";
        right = "right";
        wrong = "wrong";
        version = "version";
        prefix = "prefix";
        path = "path";
        out_name = "outputName";
        overrides = "__overrides";
        recurse_for_derivations = "recurseForDerivations";
        combine_channels = "_combineChannels";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn of_string_checks_the_bytes_behind_a_remembered_address() {
        // one buffer holding different names in turn: the same address
        // must not give the earlier name's symbol
        let mut buf = *b"alpha";
        let a = Symbol::of_string(&buf);
        assert_eq!(a, Symbol::new("alpha"));
        assert_eq!(Symbol::of_string(&buf), a);
        buf.copy_from_slice(b"omega");
        let o = Symbol::of_string(&buf);
        assert_eq!(o, Symbol::new("omega"));
        assert_ne!(a, o);
        // a shorter name at the same address
        assert_eq!(Symbol::of_string(&buf[..3]), Symbol::new("ome"));
        assert_eq!(Symbol::of_string(&buf), o);
    }
}
