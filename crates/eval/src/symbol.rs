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
}

impl Interner {
    /// A table that starts with the names of [`sym`], in order, so each of
    /// them has a fixed id on every thread.
    fn with_predefined() -> Interner {
        let mut i = Interner { names: Vec::new(), map: FxHashMap::default() };
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
        let name = name.as_ref();
        INTERNER.with(|i| {
            let mut i = i.borrow_mut();
            if let Some(&id) = i.map.get(name) {
                return Symbol(id);
            }
            let leaked: &'static [u8] = Box::leak(name.to_vec().into_boxed_slice());
            let id = i.names.len() as u32;
            i.names.push(leaked);
            i.map.insert(leaked, id);
            Symbol(id)
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
