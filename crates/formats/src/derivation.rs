//! Derivations: the ATerm `.drv` format, validation, hash-derivation-modulo,
//! output and `.drv` path computation, and `nix show-derivation` JSON.

use std::collections::{BTreeMap, BTreeSet};

use crate::ca::{CAHash, CaError, CaMethod};
use crate::hash::{HashAlgo, NixHash, sha256};
use crate::store_path::{StoreDir, StorePath, StorePathError};

/// A derivation output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The output path; `None` while it is not known yet (masked or deferred).
    pub path: Option<StorePath>,
    /// Content addressing, for fixed-output and floating CA outputs.
    pub ca: Option<OutputCa>,
}

/// The content-addressing part of an output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputCa {
    /// A fixed-output derivation: hash known up front.
    Fixed(CAHash),
    /// A floating content-addressed output: only method and algorithm known.
    Floating { method: CaMethod, algo: HashAlgo },
}

impl Output {
    /// An input-addressed output with a known path.
    pub fn input_addressed(path: StorePath) -> Output {
        Output {
            path: Some(path),
            ca: None,
        }
    }
}

/// A derivation, as stored in a `.drv` file.
///
/// Strings that may hold arbitrary bytes (builder, args, env, system) are
/// bytes; output names and store paths are validated text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Derivation {
    pub outputs: BTreeMap<String, Output>,
    pub input_drvs: BTreeMap<StorePath, BTreeSet<String>>,
    pub input_srcs: BTreeSet<StorePath>,
    pub system: Vec<u8>,
    pub builder: Vec<u8>,
    pub args: Vec<Vec<u8>>,
    pub env: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Why an ATerm could not be parsed or a derivation is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DerivationError {
    #[error("derivation parse error at byte {pos}: expected {expected}")]
    Syntax { pos: usize, expected: &'static str },
    #[error("derivation parse error at byte {pos}: {msg}")]
    Invalid { pos: usize, msg: String },
    #[error("derivation has no outputs")]
    NoOutputs,
    #[error("invalid derivation output name '{0}'")]
    BadOutputName(String),
    #[error("duplicate {what} '{name}' in derivation")]
    Duplicate { what: &'static str, name: String },
    #[error("fixed-output derivation must have exactly one output, named 'out'")]
    FixedOutputNotOut,
    #[error("derivation output '{0}' has a hash but no hash algorithm")]
    HashWithoutAlgo(String),
    #[error("input derivation '{0}' has no known modulo hash")]
    UnknownInputDrv(String),
    #[error("derivation output '{0}' has no path")]
    MissingOutputPath(String),
    #[error("derivation name '{0}' is not a valid store path name")]
    BadName(String),
    #[error("{0}")]
    BadAttr(String),
    #[error(transparent)]
    StorePath(#[from] StorePathError),
    #[error(transparent)]
    Ca(#[from] CaError),
}

/// Where an ATerm is written.
trait AtermOut {
    fn put(&mut self, b: &[u8]);
    /// Bytes written so far.
    fn pos(&self) -> usize;
    fn byte(&mut self, b: u8) {
        self.put(&[b]);
    }
}

impl AtermOut for Vec<u8> {
    #[inline]
    fn put(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
    #[inline]
    fn byte(&mut self, b: u8) {
        self.push(b);
    }
    fn pos(&self) -> usize {
        self.len()
    }
}

/// The bytes an ATerm string escapes: `"`, `\`, newline, carriage return, tab.
static ESCAPED: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'\n' as usize] = true;
    t[b'\r' as usize] = true;
    t[b'\t' as usize] = true;
    t
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of the word is below `n` (`n` ≤ 128; exact).
#[inline]
const fn any_below(w: u64, n: u8) -> bool {
    w.wrapping_sub(ONES * n as u64) & !w & HIGHS != 0
}

/// Whether the eight bytes of `w` may hold one that needs escaping: a quote,
/// a backslash or a byte below 14 (tab, newline and carriage return are;
/// other control bytes are false alarms that the table then clears).
#[inline]
const fn maybe_escaped(w: u64) -> bool {
    any_below(w ^ (ONES * b'"' as u64), 1) || any_below(w ^ (ONES * b'\\' as u64), 1) || any_below(w, 14)
}

/// The index of the first byte of `s` that needs escaping, or `s.len()`.
/// Eight bytes at a time: most ATerm strings (paths, names, hashes, most of
/// the environment) have none.
#[inline]
fn next_escaped(s: &[u8]) -> usize {
    let mut i = 0;
    while i + 8 <= s.len() {
        let w = u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
        if maybe_escaped(w) {
            for (j, &c) in s[i..i + 8].iter().enumerate() {
                if ESCAPED[c as usize] {
                    return i + j;
                }
            }
        }
        i += 8;
    }
    s[i..].iter().position(|&c| ESCAPED[c as usize]).map_or(s.len(), |j| i + j)
}

/// `s` as an ATerm string literal: runs without special bytes are copied
/// whole.
fn escape_into(out: &mut impl AtermOut, s: &[u8]) {
    out.byte(b'"');
    escape_body(out, s);
    out.byte(b'"');
}

/// The inside of an ATerm string literal (without the quotes).
fn escape_body(out: &mut impl AtermOut, s: &[u8]) {
    let mut rest = s;
    loop {
        let i = next_escaped(rest);
        out.put(&rest[..i]);
        let Some(&c) = rest.get(i) else { break };
        out.put(match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => b"\\t",
        });
        rest = &rest[i + 1..];
    }
}

/// A store path as an ATerm string literal, without building its text.
fn path_into(out: &mut impl AtermOut, sd: &StoreDir, p: &StorePath) {
    out.byte(b'"');
    let dir = sd.as_str().as_bytes();
    if next_escaped(dir) == dir.len() {
        out.put(dir);
    } else {
        // a store directory with bytes to escape: unusual, take the slow way
        let mut o = Vec::new();
        escape_into(&mut o, dir);
        out.put(&o[1..o.len() - 1]);
    }
    out.byte(b'/');
    // hash part (nix32) and name (validated): nothing to escape
    out.put(p.hash_part().as_bytes());
    out.byte(b'-');
    out.put(p.name().as_bytes());
    out.byte(b'"');
}

fn list_into<T, O: AtermOut>(out: &mut O, items: impl IntoIterator<Item = T>, mut f: impl FnMut(&mut O, T)) {
    out.byte(b'[');
    for (i, it) in items.into_iter().enumerate() {
        if i > 0 {
            out.byte(b',');
        }
        f(out, it);
    }
    out.byte(b']');
}

/// The rest of an input derivation entry after its key: `,[outputs])`.
fn outs_into(o: &mut impl AtermOut, outs: &BTreeSet<String>) {
    o.byte(b',');
    list_into(o, outs.iter(), |o, s| escape_into(o, s.as_bytes()));
    o.byte(b')');
}

/// The input derivations as hash-derivation-modulo writes them: keyed by
/// the hex of their modulo hashes.
fn hashed_inputs_into(o: &mut impl AtermOut, h: &[HashedInput<'_>]) {
    list_into(o, h, |o, (hash, outs)| {
        let mut hex = [0u8; 64];
        hex::encode_to_slice(hash, &mut hex).expect("64 hex digits for 32 bytes");
        o.put(b"(\"");
        o.put(&hex);
        o.byte(b'"');
        outs_into(o, outs);
    });
}

/// An input derivation's modulo hash and the outputs used from it.
type HashedInput<'a> = ([u8; 32], std::borrow::Cow<'a, BTreeSet<String>>);

/// Run `f` on an empty scratch buffer of at least `cap` bytes (one per
/// thread, reused: hashing an ATerm then allocates nothing).
fn with_scratch<T>(cap: usize, f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let mut f = Some(f);
    let r = SCRATCH
        .try_with(|s| {
            let mut buf = s.try_borrow_mut().ok()?;
            buf.clear();
            buf.reserve(cap);
            let r = (f.take().expect("called once"))(&mut buf);
            if buf.capacity() > 1 << 20 {
                *buf = Vec::new(); // an unusually big ATerm: do not keep its buffer
            }
            Some(r)
        })
        .ok()
        .flatten();
    match r {
        Some(r) => r,
        // thread-local storage gone, or already in use further up the stack
        None => (f.take().expect("not called yet"))(&mut Vec::with_capacity(cap)),
    }
}

/// Set an environment variable, reusing the key if it is there.
fn set_env(env: &mut BTreeMap<Vec<u8>, Vec<u8>>, key: &str, value: Vec<u8>) {
    match env.get_mut(key.as_bytes()) {
        Some(v) => *v = value,
        None => {
            env.insert(key.as_bytes().to_vec(), value);
        }
    }
}

/// `Derive(` and the list of outputs, each with the path `path_of` gives
/// (`None`: written as "", masked or not known), and the `,` after it.
fn head_into<'a, O: AtermOut>(
    o: &mut O,
    sd: &StoreDir,
    outputs: &'a BTreeMap<String, Output>,
    path_of: impl Fn(usize, &'a Output) -> Option<&'a StorePath>,
) {
    o.put(b"Derive(");
    list_into(o, outputs.iter().enumerate(), |o, (i, (name, out))| {
        o.byte(b'(');
        escape_into(o, name.as_bytes());
        o.byte(b',');
        match path_of(i, out) {
            Some(p) => path_into(o, sd, p),
            None => o.put(b"\"\""),
        }
        o.byte(b',');
        match &out.ca {
            None => o.put(b"\"\",\"\""),
            Some(OutputCa::Fixed(ca)) => {
                escape_into(o, ca.method_algo().as_bytes());
                o.byte(b',');
                escape_into(o, hex::encode(ca.hash.digest()).as_bytes());
            }
            Some(OutputCa::Floating { method, algo }) => {
                escape_into(o, format!("{}{}", method.algo_prefix(), algo).as_bytes());
                o.put(b",\"\"");
            }
        }
        o.byte(b')');
    });
    o.byte(b',');
}

/// The input derivations by store path, as the `.drv` file has them.
fn paths_inputs_into(o: &mut impl AtermOut, sd: &StoreDir, input_drvs: &BTreeMap<StorePath, BTreeSet<String>>) {
    list_into(o, input_drvs, |o, (path, outs)| {
        o.byte(b'(');
        path_into(o, sd, path);
        outs_into(o, outs);
    });
}

/// An environment value as [`tail_into`] writes it.
#[derive(Clone, Copy)]
enum EnvVal<'a> {
    Bytes(&'a [u8]),
    /// The value of output `i` (in output name order), written by the
    /// caller between the quotes.
    Out(usize),
}

/// What the part after the input derivations needs besides the arguments
/// and the environment.
struct Tail<'a> {
    input_srcs: &'a BTreeSet<StorePath>,
    system: &'a [u8],
    builder: &'a [u8],
}

/// Everything after the input derivations: `,[sources],system,builder,
/// [args],[env])`. An [`EnvVal::Out`] value's text is written by `out_val`
/// (or left empty, for it to be spliced in later at the position it is
/// called at).
fn tail_into<'a, O: AtermOut>(
    o: &mut O,
    sd: &StoreDir,
    t: &Tail<'_>,
    args: impl IntoIterator<Item = &'a [u8]>,
    env: impl IntoIterator<Item = (&'a [u8], EnvVal<'a>)>,
    out_val: &mut dyn FnMut(&mut O, usize),
) {
    o.byte(b',');
    list_into(o, t.input_srcs, |o, p| path_into(o, sd, p));
    o.byte(b',');
    escape_into(o, t.system);
    o.byte(b',');
    escape_into(o, t.builder);
    o.byte(b',');
    list_into(o, args, |o, a| escape_into(o, a));
    o.byte(b',');
    list_into(o, env, |o, (k, v)| {
        o.byte(b'(');
        escape_into(o, k);
        o.byte(b',');
        match v {
            EnvVal::Bytes(v) => escape_into(o, v),
            EnvVal::Out(i) => {
                o.byte(b'"');
                out_val(o, i);
                o.byte(b'"');
            }
        }
        o.byte(b')');
    });
    o.byte(b')');
}

/// How the input derivations are written: by store path (the `.drv` file)
/// or by the hex of their modulo hashes (hash-derivation-modulo; sorted and
/// merged, as C++ Nix's map keyed by that text gives them).
enum InputKeys<'a> {
    Paths,
    Hashes(&'a [HashedInput<'a>]),
}

impl Derivation {
    /// Whether this is a fixed-output derivation (one output `out` with a fixed hash).
    pub fn is_fixed_output(&self) -> bool {
        fixed_output_of(&self.outputs).is_some()
    }

    /// The `.drv` file contents.
    pub fn to_aterm(&self, store_dir: &StoreDir) -> Vec<u8> {
        let mut o = Vec::with_capacity(self.aterm_size_hint());
        self.unparse(&mut o, store_dir, false, InputKeys::Paths);
        o
    }

    /// A guess at the ATerm's length, so it is written into one allocation.
    fn aterm_size_hint(&self) -> usize {
        let env: usize = self.env.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
        let args: usize = self.args.iter().map(|a| a.len() + 3).sum();
        256 + env + args + 128 * (self.outputs.len() + self.input_drvs.len() + self.input_srcs.len())
    }

    /// Write the ATerm; `mask_outputs` prints output paths as "". Returns
    /// where the list of input derivations starts and ends (by
    /// [`AtermOut::pos`]): the only part that differs between the `.drv`
    /// file and the text hash-derivation-modulo hashes when outputs are not
    /// masked.
    fn unparse(&self, o: &mut impl AtermOut, sd: &StoreDir, mask_outputs: bool, inputs: InputKeys<'_>) -> (usize, usize) {
        head_into(o, sd, &self.outputs, |_, out| if mask_outputs { None } else { out.path.as_ref() });
        let start = o.pos();
        match inputs {
            InputKeys::Paths => paths_inputs_into(o, sd, &self.input_drvs),
            InputKeys::Hashes(h) => hashed_inputs_into(o, h),
        }
        let end = o.pos();
        let tail = Tail {
            input_srcs: &self.input_srcs,
            system: &self.system,
            builder: &self.builder,
        };
        tail_into(
            o,
            sd,
            &tail,
            self.args.iter().map(|a| a.as_slice()),
            self.env.iter().map(|(k, v)| (k.as_slice(), EnvVal::Bytes(v))),
            &mut |_, _| {},
        );
        (start, end)
    }

    /// Parse a `.drv` file.
    pub fn from_aterm(data: &[u8], store_dir: &StoreDir) -> Result<Derivation, DerivationError> {
        let mut p = Parser { d: data, pos: 0 };
        let mut drv = Derivation::default();
        p.expect(b"Derive([")?;
        p.list(|p| {
            p.expect(b"(")?;
            let name_pos = p.pos;
            let name = p.utf8_string()?;
            p.expect(b",")?;
            let path_pos = p.pos;
            let path = p.utf8_string()?;
            p.expect(b",")?;
            let algo_pos = p.pos;
            let algo = p.utf8_string()?;
            p.expect(b",")?;
            let hash_pos = p.pos;
            let hash = p.utf8_string()?;
            p.expect(b")")?;
            let path = if path.is_empty() {
                None
            } else {
                Some(parse_path(store_dir, &path).map_err(|e| p.err(path_pos, e.to_string()))?)
            };
            let ca = match (algo.is_empty(), hash.is_empty()) {
                (true, true) => None,
                (true, false) => {
                    return Err(p.err(
                        hash_pos,
                        format!("output '{name}' has a hash but no algorithm"),
                    ));
                }
                (false, h_empty) => {
                    let (method, a) = CaMethod::parse_method_algo(&algo)
                        .map_err(|e| p.err(algo_pos, e.to_string()))?;
                    if h_empty {
                        Some(OutputCa::Floating { method, algo: a })
                    } else {
                        if hash.len() != a.size() * 2 {
                            return Err(p.err(
                                hash_pos,
                                format!("hash '{hash}' has wrong length for '{a}'"),
                            ));
                        }
                        let h = NixHash::parse_bare(&hash, a)
                            .map_err(|e| p.err(hash_pos, e.to_string()))?;
                        if hex::encode(h.digest()) != hash {
                            return Err(
                                p.err(hash_pos, format!("hash '{hash}' is not lowercase base16"))
                            );
                        }
                        Some(OutputCa::Fixed(CAHash::new(method, h)))
                    }
                }
            };
            if drv
                .outputs
                .insert(name.clone(), Output { path, ca })
                .is_some()
            {
                return Err(p.err(name_pos, format!("duplicate output '{name}'")));
            }
            Ok(())
        })?;
        p.expect(b",[")?;
        p.list(|p| {
            p.expect(b"(")?;
            let pos = p.pos;
            let path = p.utf8_string()?;
            let path = parse_path(store_dir, &path).map_err(|e| p.err(pos, e.to_string()))?;
            p.expect(b",[")?;
            let mut outs = BTreeSet::new();
            p.list(|p| {
                let pos = p.pos;
                let o = p.utf8_string()?;
                if !outs.insert(o.clone()) {
                    return Err(p.err(pos, format!("duplicate output '{o}'")));
                }
                Ok(())
            })?;
            p.expect(b")")?;
            if drv.input_drvs.insert(path.clone(), outs).is_some() {
                return Err(p.err(pos, format!("duplicate input derivation '{path}'")));
            }
            Ok(())
        })?;
        p.expect(b",[")?;
        p.list(|p| {
            let pos = p.pos;
            let path = p.utf8_string()?;
            let path = parse_path(store_dir, &path).map_err(|e| p.err(pos, e.to_string()))?;
            if !drv.input_srcs.insert(path.clone()) {
                return Err(p.err(pos, format!("duplicate input source '{path}'")));
            }
            Ok(())
        })?;
        p.expect(b",")?;
        drv.system = p.string()?;
        p.expect(b",")?;
        drv.builder = p.string()?;
        p.expect(b",[")?;
        p.list(|p| {
            drv.args.push(p.string()?);
            Ok(())
        })?;
        p.expect(b",[")?;
        p.list(|p| {
            p.expect(b"(")?;
            let pos = p.pos;
            let k = p.string()?;
            p.expect(b",")?;
            let v = p.string()?;
            p.expect(b")")?;
            if drv.env.insert(k.clone(), v).is_some() {
                return Err(p.err(
                    pos,
                    format!("duplicate env var '{}'", String::from_utf8_lossy(&k)),
                ));
            }
            Ok(())
        })?;
        p.expect(b")")?;
        if p.pos != data.len() {
            return Err(p.err(p.pos, "trailing data after derivation".into()));
        }
        Ok(drv)
    }

    /// Check the rules C++ Nix enforces when a derivation is created: at least
    /// one output, valid output names, a fixed-output derivation has exactly
    /// one output `out`.
    pub fn validate(&self) -> Result<(), DerivationError> {
        validate_outputs(&self.outputs)
    }

    /// Nix's `hashDerivationModulo`: for a fixed-output derivation the hash of
    /// `fixed:out:<method algo>:<hex>:<out path>`; otherwise sha256 of the
    /// ATerm with each input derivation replaced by the hex of its own modulo
    /// hash (given by `input_hash`). `mask_outputs` blanks the output paths,
    /// as when the output paths are being computed.
    pub fn hash_modulo(
        &self,
        store_dir: &StoreDir,
        mask_outputs: bool,
        input_hash: &mut dyn FnMut(&StorePath) -> Option<[u8; 32]>,
    ) -> Result<[u8; 32], DerivationError> {
        if self.is_fixed_output() {
            return self.fixed_modulo(store_dir);
        }
        let inputs = Self::hashed_inputs(&self.input_drvs, store_dir, input_hash)?;
        Ok(self.hash_rendered(store_dir, mask_outputs, &inputs))
    }

    /// The modulo hash of a fixed-output derivation (its output path must
    /// be known): `fixed:out:<method algo>:<hex>:<out path>`.
    fn fixed_modulo(&self, store_dir: &StoreDir) -> Result<[u8; 32], DerivationError> {
        let out = &self.outputs["out"];
        let Some(OutputCa::Fixed(ca)) = &out.ca else {
            unreachable!("is_fixed_output checked")
        };
        let path = out
            .path
            .as_ref()
            .ok_or_else(|| DerivationError::MissingOutputPath("out".into()))?;
        Ok(fixed_modulo_hash(store_dir, ca, path))
    }

    /// The input derivations keyed by their modulo hashes, in the order
    /// hash-derivation-modulo writes them.
    fn hashed_inputs<'a>(
        input_drvs: &'a BTreeMap<StorePath, BTreeSet<String>>,
        store_dir: &StoreDir,
        input_hash: &mut dyn FnMut(&StorePath) -> Option<[u8; 32]>,
    ) -> Result<Vec<HashedInput<'a>>, DerivationError> {
        let mut inputs: Vec<HashedInput<'a>> = Vec::with_capacity(input_drvs.len());
        for (p, outs) in input_drvs {
            let h = input_hash(p)
                .ok_or_else(|| DerivationError::UnknownInputDrv(store_dir.display(p)))?;
            inputs.push((h, std::borrow::Cow::Borrowed(outs)));
        }
        // By hex text, which is the order of the bytes.
        inputs.sort_by_key(|a| a.0);
        // Two inputs with the same modulo hash merge in C++ Nix's map (the
        // first one wins); output sets are unioned there as well.
        inputs.dedup_by(|later, kept| {
            if later.0 != kept.0 {
                return false;
            }
            kept.1.to_mut().extend(later.1.iter().cloned());
            true
        });
        Ok(inputs)
    }

    /// sha256 of the ATerm with input derivations written as `inputs`.
    fn hash_rendered(&self, sd: &StoreDir, mask_outputs: bool, inputs: &[HashedInput<'_>]) -> [u8; 32] {
        with_scratch(self.aterm_size_hint(), |buf| {
            self.unparse(buf, sd, mask_outputs, InputKeys::Hashes(inputs));
            sha256(buf)
        })
    }

    /// Fill in output paths (and the matching `env` entries) the way
    /// `derivationStrict` does. `name` is the derivation name; `input_hash`
    /// gives each input derivation's modulo hash.
    pub fn fill_output_paths(
        &mut self,
        store_dir: &StoreDir,
        name: &str,
        input_hash: &mut dyn FnMut(&StorePath) -> Option<[u8; 32]>,
    ) -> Result<(), DerivationError> {
        self.validate()?;
        let input_drvs = std::mem::take(&mut self.input_drvs);
        let r = (|| {
            let inputs = if self.is_fixed_output() {
                Vec::new()
            } else {
                Self::hashed_inputs(&input_drvs, store_dir, input_hash)?
            };
            self.fill_output_paths_with(store_dir, name, &inputs)
        })();
        self.input_drvs = input_drvs;
        r
    }

    /// [`Derivation::fill_output_paths`] with the input derivations' modulo
    /// hashes already looked up (`hashed_inputs`; unused for fixed outputs).
    fn fill_output_paths_with(
        &mut self,
        store_dir: &StoreDir,
        name: &str,
        inputs: &[HashedInput<'_>],
    ) -> Result<(), DerivationError> {
        if self.is_fixed_output() {
            let out = self.outputs.get_mut("out").expect("fixed output has out");
            let Some(OutputCa::Fixed(ca)) = &out.ca else {
                unreachable!("is_fixed_output checked")
            };
            let p = store_dir.make_ca_path(name, ca)?;
            self.env
                .insert(b"out".to_vec(), store_dir.display(&p).into_bytes());
            out.path = Some(p);
            return Ok(());
        }
        for (o, out) in self.outputs.iter_mut() {
            out.path = None;
            set_env(&mut self.env, o, Vec::new());
        }
        if self.outputs.values().any(|o| o.ca.is_some()) {
            // Floating CA outputs (experimental ca-derivations): paths are
            // known only after building; env gets the output placeholders.
            for o in self.outputs.keys() {
                set_env(&mut self.env, o, crate::store_path::hash_placeholder(o).into_bytes());
            }
            return Ok(());
        }
        let h = self.hash_rendered(store_dir, true, inputs);
        for (o, out) in self.outputs.iter_mut() {
            let p = store_dir.make_output_path(o, &h, name)?;
            set_env(&mut self.env, o, store_dir.display(&p).into_bytes());
            out.path = Some(p);
        }
        Ok(())
    }

    /// The `.drv` store path (a text path referencing input sources and derivations).
    pub fn drv_path(&self, store_dir: &StoreDir, name: &str) -> Result<StorePath, DerivationError> {
        let aterm = self.to_aterm(store_dir);
        self.drv_path_for_aterm(store_dir, name, &aterm)
    }

    /// The `.drv` path for already rendered ATerm bytes.
    pub fn drv_path_for_aterm(
        &self,
        store_dir: &StoreDir,
        name: &str,
        aterm: &[u8],
    ) -> Result<StorePath, DerivationError> {
        let refs: BTreeSet<&StorePath> = self
            .input_srcs
            .iter()
            .chain(self.input_drvs.keys())
            .collect();
        let mut drv_name = String::with_capacity(name.len() + 4);
        drv_name.push_str(name);
        drv_name.push_str(".drv");
        Ok(store_dir.compute_text_path(&drv_name, aterm, refs)?)
    }

    /// The JSON object `nix show-derivation` (2.8) prints for this derivation
    /// (without the outer `{ "<drv path>": … }`), as bytes (strings need not be UTF-8).
    pub fn to_json(&self, store_dir: &StoreDir) -> Vec<u8> {
        let mut j = JsonWriter::default();
        j.begin_object();
        j.key("outputs");
        j.begin_object();
        for (name, out) in &self.outputs {
            j.key(name);
            j.begin_object();
            if let Some(p) = &out.path {
                j.key("path");
                j.string(store_dir.display(p).as_bytes());
            }
            match &out.ca {
                None => {}
                Some(OutputCa::Fixed(ca)) => {
                    j.key("hashAlgo");
                    j.string(ca.method_algo().as_bytes());
                    j.key("hash");
                    j.string(hex::encode(ca.hash.digest()).as_bytes());
                }
                Some(OutputCa::Floating { method, algo }) => {
                    j.key("hashAlgo");
                    j.string(format!("{}{}", method.algo_prefix(), algo).as_bytes());
                }
            }
            j.end_object();
        }
        j.end_object();
        j.key("inputSrcs");
        j.begin_array();
        for p in &self.input_srcs {
            j.elem();
            j.string(store_dir.display(p).as_bytes());
        }
        j.end_array();
        j.key("inputDrvs");
        j.begin_object();
        for (p, outs) in &self.input_drvs {
            j.key(&store_dir.display(p));
            j.begin_array();
            for o in outs {
                j.elem();
                j.string(o.as_bytes());
            }
            j.end_array();
        }
        j.end_object();
        j.key("system");
        j.string(&self.system);
        j.key("builder");
        j.string(&self.builder);
        j.key("args");
        j.begin_array();
        for a in &self.args {
            j.elem();
            j.string(a);
        }
        j.end_array();
        j.key("env");
        j.begin_object();
        for (k, v) in &self.env {
            j.key_bytes(k);
            j.string(v);
        }
        j.end_object();
        j.end_object();
        j.out
    }
}

/// The content address of a fixed-output derivation from its
/// `outputHash`, `outputHashAlgo` and `outputHashMode` attributes, as
/// `derivationStrict` in C++ Nix 2.8 reads them: the algorithm may come from
/// the attribute or from the hash's own prefix (SRI or `algo:`), the mode is
/// `flat` (default) or `recursive`, and an empty hash with a known algorithm
/// means the all-zero hash.
pub fn fixed_output_ca(
    output_hash: &str,
    algo: Option<&str>,
    mode: Option<&str>,
) -> Result<CAHash, DerivationError> {
    let method = match mode {
        None | Some("flat") => CaMethod::Flat,
        Some("recursive") => CaMethod::Recursive,
        Some(m) => {
            return Err(DerivationError::BadAttr(format!(
                "invalid value '{m}' for 'outputHashMode' attribute"
            )));
        }
    };
    let algo = match algo {
        None | Some("") => None,
        Some(a) => Some(
            a.parse::<HashAlgo>()
                .map_err(|e| DerivationError::BadAttr(e.to_string()))?,
        ),
    };
    let hash = if output_hash.is_empty() {
        let a = algo.ok_or_else(|| {
            DerivationError::BadAttr("empty hash requires explicit hash type".into())
        })?;
        NixHash::from_digest(a, &[0u8; 64][..a.size()]).expect("size matches")
    } else {
        NixHash::parse(output_hash, algo).map_err(|e| match e {
            crate::hash::HashError::MissingAlgo(h) => DerivationError::BadAttr(format!(
                "hash '{h}' does not include a type, nor is the type otherwise known from context"
            )),
            e => DerivationError::BadAttr(e.to_string()),
        })?
    };
    Ok(CAHash::new(method, hash))
}

/// What the evaluator's `derivationStrict` needs back: the finished
/// derivation, its `.drv` path and the exact `.drv` file bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedDerivation {
    pub derivation: Derivation,
    pub drv_path: StorePath,
    pub aterm: Vec<u8>,
    /// `hash_modulo(mask_outputs = false)` of the finished derivation (what
    /// derivations that depend on it need), computed from `aterm`.
    pub modulo_hash: [u8; 32],
}

impl Derivation {
    /// A derivation with these outputs (all input-addressed, paths unknown)
    /// and nothing else set yet; fill in inputs, system, builder, args and env,
    /// then call [`Derivation::finish`].
    pub fn with_outputs<'a>(outputs: impl IntoIterator<Item = &'a str>) -> Derivation {
        Derivation {
            outputs: outputs
                .into_iter()
                .map(|o| {
                    (
                        o.to_owned(),
                        Output {
                            path: None,
                            ca: None,
                        },
                    )
                })
                .collect(),
            ..Derivation::default()
        }
    }

    /// A fixed-output derivation (single output `out`).
    pub fn fixed_output(ca: CAHash) -> Derivation {
        let mut d = Derivation::default();
        d.outputs.insert(
            "out".into(),
            Output {
                path: None,
                ca: Some(OutputCa::Fixed(ca)),
            },
        );
        d
    }

    /// Validate, fill in output paths (and their `env` entries), and compute
    /// the `.drv` path and bytes. `name` is the derivation name;
    /// `input_hash` gives each input derivation's [`Derivation::hash_modulo`].
    /// (Through [`finish_parts`]: one way of writing a new derivation.)
    pub fn finish(
        mut self,
        store_dir: &StoreDir,
        name: &str,
        input_hash: &mut dyn FnMut(&StorePath) -> Option<[u8; 32]>,
    ) -> Result<FinishedDerivation, DerivationError> {
        let args: Vec<&[u8]> = self.args.iter().map(|a| a.as_slice()).collect();
        let env: Vec<(&[u8], &[u8])> = self.env.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
        let parts = DerivationParts {
            outputs: &self.outputs,
            input_drvs: &self.input_drvs,
            input_srcs: &self.input_srcs,
            system: &self.system,
            builder: &self.builder,
            args: &args,
            env: &env,
        };
        let f = finish_parts(&parts, store_dir, name, input_hash)?;
        drop((args, env));
        for ((o, out), (path, value)) in self.outputs.iter_mut().zip(f.outputs) {
            set_env(&mut self.env, o, value);
            out.path = path;
        }
        Ok(FinishedDerivation {
            derivation: self,
            drv_path: f.drv_path,
            aterm: f.aterm,
            modulo_hash: f.modulo_hash,
        })
    }

    /// Output name → path, for outputs whose path is known.
    pub fn output_paths(&self) -> BTreeMap<&str, &StorePath> {
        self.outputs
            .iter()
            .filter_map(|(n, o)| o.path.as_ref().map(|p| (n.as_str(), p)))
            .collect()
    }
}

/// A new derivation to finish, its strings borrowed (what
/// `derivationStrict` collected, without copying it into a [`Derivation`]).
/// Output paths are computed by [`finish_parts`]; the environment gets
/// their values there too (an entry named after an output is replaced).
pub struct DerivationParts<'a> {
    /// The outputs (paths unknown: `path` is ignored).
    pub outputs: &'a BTreeMap<String, Output>,
    pub input_drvs: &'a BTreeMap<StorePath, BTreeSet<String>>,
    pub input_srcs: &'a BTreeSet<StorePath>,
    pub system: &'a [u8],
    pub builder: &'a [u8],
    pub args: &'a [&'a [u8]],
    /// Sorted by name, each name once.
    pub env: &'a [(&'a [u8], &'a [u8])],
}

/// What [`finish_parts`] gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedParts {
    pub drv_path: StorePath,
    /// The `.drv` file.
    pub aterm: Vec<u8>,
    /// `hash_modulo(mask_outputs = false)` of the finished derivation.
    pub modulo_hash: [u8; 32],
    /// Per output (in name order): its path (`None` for a floating
    /// content-addressed one) and its environment value.
    pub outputs: Vec<(Option<StorePath>, Vec<u8>)>,
}

/// The environment with the outputs' entries merged in (both in name
/// order; an output replaces an entry of the same name).
struct MergedEnv<'a> {
    env: &'a [(&'a [u8], &'a [u8])],
    outs: std::iter::Peekable<std::iter::Enumerate<std::collections::btree_map::Keys<'a, String, Output>>>,
}

impl<'a> Iterator for MergedEnv<'a> {
    type Item = (&'a [u8], EnvVal<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        use std::cmp::Ordering;
        let e = self.env.first().copied();
        let take_env = match (e, self.outs.peek()) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((k, _)), Some((_, o))) => match k.cmp(o.as_bytes()) {
                Ordering::Less => true,
                Ordering::Greater => false,
                Ordering::Equal => {
                    self.env = &self.env[1..];
                    false
                }
            },
        };
        if take_env {
            let (k, v) = e.expect("an entry is left");
            self.env = &self.env[1..];
            Some((k, EnvVal::Bytes(v)))
        } else {
            let (i, o) = self.outs.next().expect("an output is left");
            Some((o.as_bytes(), EnvVal::Out(i)))
        }
    }
}

/// hash-derivation-modulo of a fixed-output derivation whose `out` is
/// `path`: `fixed:out:<method algo>:<hex>:<out path>` hashed.
fn fixed_modulo_hash(sd: &StoreDir, ca: &CAHash, path: &StorePath) -> [u8; 32] {
    sha256(format!("fixed:out:{}:{}:{}", ca.method_algo(), hex::encode(ca.hash.digest()), sd.display(path)).as_bytes())
}

/// The hash of a fixed-output derivation's outputs: one output, `out`,
/// with a fixed hash (None for any other outputs).
fn fixed_output_of(outputs: &BTreeMap<String, Output>) -> Option<&CAHash> {
    match (outputs.len(), outputs.get("out")) {
        (1, Some(Output { ca: Some(OutputCa::Fixed(ca)), .. })) => Some(ca),
        _ => None,
    }
}

/// C++ Nix's rules for a derivation's outputs (see [`Derivation::validate`]).
fn validate_outputs(outputs: &BTreeMap<String, Output>) -> Result<(), DerivationError> {
    if outputs.is_empty() {
        return Err(DerivationError::NoOutputs);
    }
    for name in outputs.keys() {
        if name.is_empty() || name == "drv" || crate::store_path::validate_name(name.as_bytes(), name).is_err() {
            return Err(DerivationError::BadOutputName(name.clone()));
        }
    }
    let fixed = outputs.values().filter(|o| matches!(o.ca, Some(OutputCa::Fixed(_)))).count();
    if fixed > 0 && fixed_output_of(outputs).is_none() {
        return Err(DerivationError::FixedOutputNotOut);
    }
    Ok(())
}

/// Validate a new derivation, compute its output paths, its `.drv` file
/// and path and its own modulo hash. `name` is the derivation name;
/// `input_hash` gives each input derivation's [`Derivation::hash_modulo`]
/// (each is looked up once).
///
/// An input-addressed derivation is written in full once: the text
/// hash-derivation-modulo hashes for its output paths (outputs masked,
/// input derivations by their hashes) goes into a scratch buffer, recording
/// where the outputs' environment values go; the `.drv` file is then its
/// outputs and input derivations written again (short) and the rest copied
/// from the scratch buffer with the output paths spliced in. Its own modulo
/// hash is the `.drv` bytes with the hashed input list from the scratch
/// buffer in place of the paths (three SHA-256 passes over the text, as in
/// C++ Nix, two renderings of the short parts, one of the rest).
pub fn finish_parts(
    d: &DerivationParts<'_>,
    sd: &StoreDir,
    name: &str,
    input_hash: &mut dyn FnMut(&StorePath) -> Option<[u8; 32]>,
) -> Result<FinishedParts, DerivationError> {
    crate::store_path::validate_name(name.as_bytes(), name).map_err(|_| DerivationError::BadName(name.to_owned()))?;
    validate_outputs(d.outputs)?;
    if let Some(w) = d.env.windows(2).find(|w| w[0].0 >= w[1].0) {
        return Err(DerivationError::BadAttr(format!(
            "environment not in name order at '{}'",
            String::from_utf8_lossy(w[1].0)
        )));
    }
    let tail = Tail {
        input_srcs: d.input_srcs,
        system: d.system,
        builder: d.builder,
    };
    let env = || MergedEnv {
        env: d.env,
        outs: d.outputs.keys().enumerate().peekable(),
    };
    let hint = 256
        + d.env.iter().map(|(k, v)| k.len() + v.len() + 8).sum::<usize>()
        + d.args.iter().map(|a| a.len() + 3).sum::<usize>()
        + 128 * (2 * d.outputs.len() + d.input_drvs.len() + d.input_srcs.len());
    let fixed = fixed_output_of(d.outputs);
    let floating = fixed.is_none() && d.outputs.values().any(|o| o.ca.is_some());
    let mut aterm = Vec::with_capacity(hint);

    if let Some(ca) = fixed {
        let p = sd.make_ca_path(name, ca)?;
        let value = sd.display(&p).into_bytes();
        let paths = [Some(p)];
        head_into(&mut aterm, sd, d.outputs, |i, _| paths[i].as_ref());
        paths_inputs_into(&mut aterm, sd, d.input_drvs);
        tail_into(&mut aterm, sd, &tail, d.args.iter().copied(), env(), &mut |o, _| escape_body(o, &value));
        let [p] = paths;
        let p = p.expect("computed above");
        let modulo_hash = fixed_modulo_hash(sd, ca, &p);
        let drv_path = drv_path_of(sd, d, name, &aterm)?;
        return Ok(FinishedParts {
            drv_path,
            aterm,
            modulo_hash,
            outputs: vec![(Some(p), value)],
        });
    }

    let inputs = Derivation::hashed_inputs(d.input_drvs, sd, input_hash)?;
    if floating {
        // experimental ca-derivations: paths known only after building;
        // the environment gets placeholders
        let values: Vec<Vec<u8>> = d.outputs.keys().map(|o| crate::store_path::hash_placeholder(o).into_bytes()).collect();
        head_into(&mut aterm, sd, d.outputs, |_, _| None);
        let start = aterm.len();
        paths_inputs_into(&mut aterm, sd, d.input_drvs);
        let end = aterm.len();
        tail_into(&mut aterm, sd, &tail, d.args.iter().copied(), env(), &mut |o, i| escape_body(o, &values[i]));
        let mut hashed = Vec::new();
        hashed_inputs_into(&mut hashed, &inputs);
        let modulo_hash = sha256_parts(&[&aterm[..start], &hashed, &aterm[end..]]);
        let drv_path = drv_path_of(sd, d, name, &aterm)?;
        return Ok(FinishedParts {
            drv_path,
            aterm,
            modulo_hash,
            outputs: values.into_iter().map(|v| (None, v)).collect(),
        });
    }

    with_scratch(hint, |masked| {
        // the text whose hash gives the output paths
        head_into(masked, sd, d.outputs, |_, _| None);
        let hashed_start = masked.len();
        hashed_inputs_into(masked, &inputs);
        let tail_start = masked.len();
        let mut splices: Vec<(usize, usize)> = Vec::with_capacity(d.outputs.len());
        tail_into(masked, sd, &tail, d.args.iter().copied(), env(), &mut |o, i| splices.push((o.pos(), i)));
        let h = sha256(masked);
        let mut paths = Vec::with_capacity(d.outputs.len());
        let mut values = Vec::with_capacity(d.outputs.len());
        for o in d.outputs.keys() {
            let p = sd.make_output_path(o, &h, name)?;
            values.push(sd.display(&p).into_bytes());
            paths.push(Some(p));
        }
        // the `.drv` file
        head_into(&mut aterm, sd, d.outputs, |i, _| paths[i].as_ref());
        let start = aterm.len();
        paths_inputs_into(&mut aterm, sd, d.input_drvs);
        let end = aterm.len();
        let mut from = tail_start;
        for (at, i) in splices {
            aterm.extend_from_slice(&masked[from..at]);
            escape_body(&mut aterm, &values[i]);
            from = at;
        }
        aterm.extend_from_slice(&masked[from..]);
        let modulo_hash = sha256_parts(&[&aterm[..start], &masked[hashed_start..tail_start], &aterm[end..]]);
        let drv_path = drv_path_of(sd, d, name, &aterm)?;
        Ok(FinishedParts {
            drv_path,
            aterm,
            modulo_hash,
            outputs: paths.into_iter().zip(values).collect(),
        })
    })
}

/// sha256 of the concatenation of `parts`.
fn sha256_parts(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The `.drv` path of a finished derivation's ATerm.
fn drv_path_of(sd: &StoreDir, d: &DerivationParts<'_>, name: &str, aterm: &[u8]) -> Result<StorePath, DerivationError> {
    let refs: BTreeSet<&StorePath> = d.input_srcs.iter().chain(d.input_drvs.keys()).collect();
    let mut drv_name = String::with_capacity(name.len() + 4);
    drv_name.push_str(name);
    drv_name.push_str(".drv");
    Ok(sd.compute_text_path(&drv_name, aterm, refs)?)
}

/// Render `{ "<drv path>": <drv json>, … }` like `nix show-derivation`.
pub fn show_derivations_json<'a>(
    store_dir: &StoreDir,
    drvs: impl IntoIterator<Item = (&'a StorePath, &'a Derivation)>,
) -> Vec<u8> {
    let mut j = JsonWriter::default();
    j.begin_object();
    for (p, d) in drvs {
        j.key(&store_dir.display(p));
        let inner = d.to_json(store_dir);
        // re-indent the inner object by one level
        let mut ind = Vec::with_capacity(inner.len() + inner.len() / 8);
        for &c in &inner {
            ind.push(c);
            if c == b'\n' {
                ind.extend_from_slice(b"  ");
            }
        }
        j.raw(&ind);
    }
    j.end_object();
    j.out
}

fn parse_path(sd: &StoreDir, s: &str) -> Result<StorePath, StorePathError> {
    sd.parse(s).map(|p| p.to_owned())
}

struct Parser<'a> {
    d: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, pos: usize, msg: String) -> DerivationError {
        DerivationError::Invalid { pos, msg }
    }

    fn expect(&mut self, lit: &'static [u8]) -> Result<(), DerivationError> {
        if self.d[self.pos..].starts_with(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(DerivationError::Syntax {
                pos: self.pos,
                expected: std::str::from_utf8(lit).expect("ascii literal"),
            })
        }
    }

    fn peek(&self) -> Option<u8> {
        self.d.get(self.pos).copied()
    }

    /// Elements up to and including `]`, separated by `,`; the `[` is already consumed.
    fn list(
        &mut self,
        mut f: impl FnMut(&mut Self) -> Result<(), DerivationError>,
    ) -> Result<(), DerivationError> {
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            f(self)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => {
                    return Err(DerivationError::Syntax {
                        pos: self.pos,
                        expected: "',' or ']'",
                    });
                }
            }
        }
    }

    fn string(&mut self) -> Result<Vec<u8>, DerivationError> {
        self.expect(b"\"")?;
        let mut out = Vec::new();
        loop {
            let rest = &self.d[self.pos..];
            let Some(i) = rest.iter().position(|&c| c == b'"' || c == b'\\') else {
                return Err(DerivationError::Syntax {
                    pos: self.d.len(),
                    expected: "'\"' ending a string",
                });
            };
            out.extend_from_slice(&rest[..i]);
            self.pos += i;
            if rest[i] == b'"' {
                self.pos += 1;
                return Ok(out);
            }
            let Some(&c) = self.d.get(self.pos + 1) else {
                return Err(DerivationError::Syntax {
                    pos: self.d.len(),
                    expected: "escaped character",
                });
            };
            out.push(match c {
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                c => c,
            });
            self.pos += 2;
        }
    }

    fn utf8_string(&mut self) -> Result<String, DerivationError> {
        let pos = self.pos;
        let s = self.string()?;
        String::from_utf8(s).map_err(|_| self.err(pos, "expected UTF-8 text".into()))
    }
}

/// A tiny pretty JSON writer matching the layout of Nix 2.8's JSON printer
/// (two-space indent, `"key": value`, empty containers as `{}` / `[]`).
#[derive(Default)]
struct JsonWriter {
    out: Vec<u8>,
    /// per open container: number of items so far
    stack: Vec<usize>,
}

impl JsonWriter {
    fn newline_indent(&mut self) {
        self.out.push(b'\n');
        for _ in 0..self.stack.len() {
            self.out.extend_from_slice(b"  ");
        }
    }
    fn item(&mut self) {
        let n = self.stack.last_mut().expect("inside a container");
        if *n > 0 {
            self.out.push(b',');
        }
        *n += 1;
        self.newline_indent();
    }
    fn open(&mut self, bracket: u8) {
        self.out.push(bracket);
        self.stack.push(0);
    }
    fn close(&mut self, bracket: u8) {
        let n = self.stack.pop().expect("an open object or array");
        if n > 0 {
            self.newline_indent();
        }
        self.out.push(bracket);
    }
    fn begin_object(&mut self) {
        self.open(b'{');
    }
    fn end_object(&mut self) {
        self.close(b'}');
    }
    fn begin_array(&mut self) {
        self.open(b'[');
    }
    fn end_array(&mut self) {
        self.close(b']');
    }
    fn elem(&mut self) {
        self.item();
    }
    fn key(&mut self, k: &str) {
        self.key_bytes(k.as_bytes());
    }
    fn key_bytes(&mut self, k: &[u8]) {
        self.item();
        self.string(k);
        self.out.extend_from_slice(b": ");
    }
    fn raw(&mut self, s: &[u8]) {
        self.out.extend_from_slice(s);
    }
    fn string(&mut self, s: &[u8]) {
        json_string_into(&mut self.out, s);
    }
}

/// Append a JSON string literal escaped the way Nix 2.8 does: `"`, `\\`,
/// `\n`, `\r`, `\t`; other control characters (`\b` and `\f` too) as `\u00XX`;
/// every other byte (including non-UTF-8) is copied as is.
pub fn json_string_into(o: &mut Vec<u8>, s: &[u8]) {
    o.push(b'"');
    for &c in s {
        match c {
            b'"' => o.extend_from_slice(b"\\\""),
            b'\\' => o.extend_from_slice(b"\\\\"),
            b'\n' => o.extend_from_slice(b"\\n"),
            b'\r' => o.extend_from_slice(b"\\r"),
            b'\t' => o.extend_from_slice(b"\\t"),
            c if c < 0x20 => o.extend_from_slice(format!("\\u{:04x}", c).as_bytes()),
            c => o.push(c),
        }
    }
    o.push(b'"');
}
#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of /work/shared/vectors/derivations.tsv, built through the glue-facing API.
    #[test]
    fn glue_api_matches_vectors() {
        let sd = StoreDir::default();
        let q = "sha256-Q3QXOoy+iN4VK2CflvRulYvPZXYgF0dO7FoF7CvWFTA=";
        type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a str, &'a str);
        let cases: &[Case] = &[
            (
                q,
                Some("sha256"),
                Some("recursive"),
                "17wgs52s7kcamcyin4ja58njkf91ipq8-foo",
                "j1xpqyk662dyzsrkkj4idwfllh78bymp-foo.drv",
            ),
            (
                q,
                None,
                Some("recursive"),
                "17wgs52s7kcamcyin4ja58njkf91ipq8-foo",
                "2ssy12mvzhgckm1c7gpybyxy9xc40kry-foo.drv",
            ),
            (
                q,
                None,
                None,
                "q4pkwkxdib797fhk22p0k3g1q32jmxvf-foo",
                "m77ka2bg7ngbyyl58kbwxdbc90z01cwj-foo.drv",
            ),
            (
                "4374173a8cbe88de152b609f96f46e958bcf65762017474eec5a05ec2bd61530",
                Some("sha256"),
                Some("recursive"),
                "17wgs52s7kcamcyin4ja58njkf91ipq8-foo",
                "hmhk6z9f09wcha8hj2q8nyym4iakks16-foo.drv",
            ),
            (
                "md5-07BzhNET7exJ6qYjitX/AA==",
                Some("md5"),
                Some("flat"),
                "jfhcwnq1852ccy9ad9nakybp2wadngnd-foo",
                "r9ain5mccyzqbh3q23nv934239wsqc79-foo.drv",
            ),
        ];
        for &(h, algo, mode, out, drv) in cases {
            let ca = fixed_output_ca(h, algo, mode).unwrap();
            let mut d = Derivation::fixed_output(ca);
            d.system = b"x86_64-linux".to_vec();
            d.builder = b"/bin/sh".to_vec();
            let mut env: Vec<(&str, &str)> = vec![
                ("builder", "/bin/sh"),
                ("name", "foo"),
                ("system", "x86_64-linux"),
                ("outputHash", h),
            ];
            if let Some(a) = algo {
                env.push(("outputHashAlgo", a));
            }
            if let Some(m) = mode {
                env.push(("outputHashMode", m));
            }
            for (k, v) in env {
                d.env.insert(k.as_bytes().to_vec(), v.as_bytes().to_vec());
            }
            let f = d.finish(&sd, "foo", &mut |_| None).unwrap();
            assert_eq!(f.derivation.output_paths()["out"].to_string(), out);
            assert_eq!(f.drv_path.to_string(), drv);
        }
        // input-addressed, two outputs
        let mut d = Derivation::with_outputs(["foo", "bar"]);
        d.system = b"x86_64-linux".to_vec();
        d.builder = b"/bin/sh".to_vec();
        for (k, v) in [
            ("builder", "/bin/sh"),
            ("name", "foo"),
            ("system", "x86_64-linux"),
            ("outputs", "foo bar"),
        ] {
            d.env.insert(k.as_bytes().to_vec(), v.as_bytes().to_vec());
        }
        let f = d.finish(&sd, "foo", &mut |_| None).unwrap();
        assert_eq!(
            f.derivation.output_paths()["foo"].to_string(),
            "hkwdinvz2jpzgnjy9lv34d2zxvclj4s3-foo-foo"
        );
        assert_eq!(
            f.drv_path.to_string(),
            "la0scvv0d3qgm2drg561gpflynh7iswx-foo.drv"
        );
        assert!(
            matches!(fixed_output_ca("abc", None, None), Err(DerivationError::BadAttr(m)) if m.contains("does not include a type"))
        );
        assert!(fixed_output_ca(q, None, Some("text")).is_err());
        assert!(
            Derivation::with_outputs(["drv"])
                .finish(&sd, "x", &mut |_| None)
                .is_err()
        );
    }
}

#[cfg(test)]
mod store_dir_tests {
    use super::*;

    /// C++ Nix 2.8 with `NIX_STORE_DIR=/tmp/mystore --readonly-mode`.
    #[test]
    fn other_store_dir() {
        let sd = StoreDir::new("/tmp/mystore/");
        assert_eq!(sd.as_str(), "/tmp/mystore");
        let p = sd.compute_text_path("x", b"y", []).unwrap();
        assert_eq!(
            sd.display(&p),
            "/tmp/mystore/02qp3sjpcilp3v3kyv603v6vgpkqcdz7-x"
        );
        let mut d = Derivation::with_outputs(["out"]);
        d.system = b"x86_64-linux".to_vec();
        d.builder = b"/bin/sh".to_vec();
        for (k, v) in [
            ("builder", "/bin/sh"),
            ("name", "foo"),
            ("system", "x86_64-linux"),
        ] {
            d.env.insert(k.as_bytes().to_vec(), v.as_bytes().to_vec());
        }
        let f = d.finish(&sd, "foo", &mut |_| None).unwrap();
        assert_eq!(
            sd.display(&f.drv_path),
            "/tmp/mystore/165m5vn6ig76yh41ymkhqz5g41y3gd55-foo.drv"
        );
        assert_eq!(
            sd.display(f.derivation.output_paths()["out"]),
            "/tmp/mystore/1pddqjr4g0wz9sg2sx26l866c0hqps0m-foo"
        );
        // and the ATerm parses back in that store dir only
        assert_eq!(Derivation::from_aterm(&f.aterm, &sd).unwrap(), f.derivation);
        assert!(Derivation::from_aterm(&f.aterm, &StoreDir::default()).is_err());
    }
}

#[cfg(test)]
mod aterm_writer_tests {
    use super::*;
    use proptest::prelude::*;

    /// The byte-at-a-time escape the fast one must equal.
    fn escape_slow(s: &[u8]) -> Vec<u8> {
        let mut o = vec![b'"'];
        for &c in s {
            match c {
                b'"' => o.extend_from_slice(b"\\\""),
                b'\\' => o.extend_from_slice(b"\\\\"),
                b'\n' => o.extend_from_slice(b"\\n"),
                b'\r' => o.extend_from_slice(b"\\r"),
                b'\t' => o.extend_from_slice(b"\\t"),
                c => o.push(c),
            }
        }
        o.push(b'"');
        o
    }

    fn escape_fast(s: &[u8]) -> Vec<u8> {
        let mut o = Vec::new();
        escape_into(&mut o, s);
        o
    }

    #[test]
    fn escape_every_byte_at_every_offset() {
        for c in 0..=255u8 {
            for at in 0..20 {
                let mut s = vec![b'a'; 24];
                s[at] = c;
                assert_eq!(escape_fast(&s), escape_slow(&s), "byte {c} at {at}");
            }
        }
        assert_eq!(escape_fast(b""), b"\"\"");
        assert_eq!(escape_fast(b"\"\\\n\r\t\x01\x0b\x0c\x0e\x7f\x80\xff"), escape_slow(b"\"\\\n\r\t\x01\x0b\x0c\x0e\x7f\x80\xff"));
    }

    proptest! {
        #[test]
        fn escape_matches_byte_at_a_time(s in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(escape_fast(&s), escape_slow(&s));
        }

        #[test]
        fn escape_matches_on_text(s in "[a-z\"\\\\\n\r\t\x01 ]{0,100}") {
            prop_assert_eq!(escape_fast(s.as_bytes()), escape_slow(s.as_bytes()));
        }
    }

    proptest! {
        /// `finish` (one rendering of the tail, output paths spliced in)
        /// gives what the step-by-step way gives: output paths from the
        /// masked text, the `.drv` file written whole, its modulo hash.
        #[test]
        fn finish_equals_step_by_step(
            env in proptest::collection::btree_map("[a-z\"\\\n]{0,6}", "[a-z\"\\\n\t ]{0,20}", 0..8),
            args in proptest::collection::vec("[a-z\"\\\n]{0,10}", 0..3),
            outs in proptest::sample::subsequence(vec!["bin", "dev", "out", "x\"y"].into_iter().filter(|o| !o.contains('"')).collect::<Vec<_>>(), 1..4),
            odd_dir in any::<bool>(),
            user_out in proptest::option::of("[a-z]{0,5}"),
        ) {
            let sd = if odd_dir { StoreDir::new("/tmp/a b") } else { StoreDir::default() };
            let a = StorePath::from_base_name("00000000000000000000000000000000-a.drv").unwrap();
            let mut d = Derivation::with_outputs(outs.iter().copied());
            d.system = b"x86_64-linux".to_vec();
            d.builder = b"/bin/sh".to_vec();
            d.args = args.into_iter().map(String::into_bytes).collect();
            d.env = env.into_iter().map(|(k, v)| (k.into_bytes(), v.into_bytes())).collect();
            if let Some(v) = user_out {
                // an attribute named like an output: the output's path wins
                d.env.insert(b"out".to_vec(), v.into_bytes());
                d.env.insert(b"dev".to_vec(), b"d".to_vec());
            }
            d.input_drvs.insert(a.clone(), ["out".to_string()].into());
            let mut hash = |_: &StorePath| Some([7u8; 32]);
            let mut step = d.clone();
            step.fill_output_paths(&sd, "n", &mut hash).unwrap();
            let f = d.finish(&sd, "n", &mut hash).unwrap();
            prop_assert_eq!(&f.derivation, &step);
            prop_assert_eq!(&f.aterm, &step.to_aterm(&sd));
            prop_assert_eq!(f.modulo_hash, step.hash_modulo(&sd, false, &mut hash).unwrap());
            prop_assert_eq!(f.drv_path, step.drv_path(&sd, "n").unwrap());
        }
    }

    /// The modulo hash is the sha256 of the ATerm with input derivations
    /// written as the hex of their hashes, sorted, and merged when equal.
    #[test]
    fn hash_modulo_hashes_the_rewritten_aterm() {
        let sd = StoreDir::default();
        let a = StorePath::from_base_name("00000000000000000000000000000000-a.drv").unwrap();
        let b = StorePath::from_base_name("11111111111111111111111111111111-b.drv").unwrap();
        let c = StorePath::from_base_name("22222222222222222222222222222222-c.drv").unwrap();
        let mut d = Derivation::with_outputs(["out"]);
        d.system = b"x86_64-linux".to_vec();
        d.builder = b"/bin/sh".to_vec();
        d.args = vec![b"-c".to_vec(), b"echo \"hi\"\n\ttab\\".to_vec()];
        d.env.insert(b"long".to_vec(), vec![b'x'; 10_000]);
        d.input_drvs.insert(a.clone(), ["out".to_string()].into());
        d.input_drvs.insert(b.clone(), ["dev".to_string()].into());
        d.input_drvs.insert(c.clone(), ["lib".to_string(), "out".to_string()].into());
        // a and c have the same modulo hash; b's sorts first
        let hash_of = |p: &StorePath| Some(if p == &b { [0x11; 32] } else { [0xee; 32] });
        let got = d.hash_modulo(&sd, true, &mut |p| hash_of(p)).unwrap();
        let text = String::from_utf8(d.to_aterm(&sd)).unwrap();
        let expect_inputs = format!(
            "[(\"{}\",[\"dev\"]),(\"{}\",[\"lib\",\"out\"])]",
            "11".repeat(32),
            "ee".repeat(32)
        );
        let paths_inputs = format!(
            "[(\"/nix/store/{a}\",[\"out\"]),(\"/nix/store/{b}\",[\"dev\"]),(\"/nix/store/{c}\",[\"lib\",\"out\"])]"
        );
        assert!(text.contains(&paths_inputs), "{text}");
        let expect = text.replace(&paths_inputs, &expect_inputs);
        assert_eq!(got, sha256(expect.as_bytes()));
    }
}
