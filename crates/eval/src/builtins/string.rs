//! String builtins (context-preserving), regexes, versions, hashes and
//! string-context introspection.

use std::cell::RefCell;
use std::rc::Rc;

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::ir::Span;
use crate::symbol::{sym, Symbol};
use crate::value::{Attr, AttrSet, Context, ContextElem, NixString, PrimOpDef, Want, StrBuf, Value};
use crate::{Coerce, Eval};

pub static DEFS: &[PrimOpDef] = &[
    PrimOpDef { name: "toString", arity: 1, func: to_string, forces: &[] },
    PrimOpDef { name: "stringLength", arity: 1, func: string_length, forces: &[(0, Want::Any)] },
    PrimOpDef { name: "substring", arity: 3, func: substring, forces: &[] },
    PrimOpDef { name: "replaceStrings", arity: 3, func: replace_strings, forces: &[] },
    PrimOpDef { name: "concatStringsSep", arity: 2, func: concat_strings_sep, forces: &[] },
    PrimOpDef { name: "split", arity: 2, func: split, forces: &[] },
    PrimOpDef { name: "match", arity: 2, func: match_, forces: &[] },
    PrimOpDef { name: "compareVersions", arity: 2, func: compare_versions, forces: &[] },
    PrimOpDef { name: "splitVersion", arity: 1, func: split_version, forces: &[] },
    PrimOpDef { name: "parseDrvName", arity: 1, func: parse_drv_name, forces: &[] },
    PrimOpDef { name: "hashString", arity: 2, func: hash_string, forces: &[] },
    PrimOpDef { name: "baseNameOf", arity: 1, func: base_name_of, forces: &[] },
    PrimOpDef { name: "dirOf", arity: 1, func: dir_of, forces: &[] },
    PrimOpDef { name: "getContext", arity: 1, func: get_context, forces: &[] },
    PrimOpDef { name: "hasContext", arity: 1, func: has_context, forces: &[] },
    PrimOpDef { name: "unsafeDiscardStringContext", arity: 1, func: discard_context, forces: &[] },
    PrimOpDef { name: "unsafeDiscardOutputDependency", arity: 1, func: discard_output_dep, forces: &[] },
    PrimOpDef { name: "addDrvOutputDependencies", arity: 1, func: add_drv_output_deps, forces: &[] },
    PrimOpDef { name: "appendContext", arity: 2, func: append_context, forces: &[] },
];

fn coerce(ev: &Eval, v: &Value, ctx: &mut Context, more: bool) -> Result<Vec<u8>> {
    ev.coerce_to_string(v, ctx, Coerce { more, copy_to_store: true })
}

/// `toString 1` → `"1"`
fn to_string(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let v = ev.force(&a[0])?;
    match &v {
        // the string itself, context and all
        Value::String(_) => return Ok(v),
        Value::Int(i) => return Ok(Value::from_string(NixString::new(itoa::Buffer::new().format(*i)))),
        _ => {}
    }
    let mut ctx = Context::new();
    let s = ev.coerce_to_string(&v, &mut ctx, Coerce { more: true, copy_to_store: false }).map_err(|e| {
        // C++ Nix adds the argument frame to any error from a list element.
        if matches!(v, Value::List(_)) {
            e.while_("while evaluating the first argument passed to builtins.toString", Span::NONE)
        } else {
            e
        }
    })?;
    Ok(Value::string_ctx(s, ctx))
}
/// `builtins.stringLength "abc"` → `3`
fn string_length(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let v = ev.force(&a[0])?;
    if let Value::String(s) = &v {
        return Ok(Value::Int(s.bytes.len() as i64));
    }
    let mut ctx = Context::new();
    Ok(Value::Int(coerce(ev, &v, &mut ctx, false)?.len() as i64))
}
/// `builtins.substring 1 2 "abcd"` → `"bc"`
fn substring(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let start = ev.force_int(&a[0])?;
    let len = ev.force_int(&a[1])?;
    let v = ev.force(&a[2])?;
    if start < 0 {
        // C++ Nix checks the string first
        if !matches!(v, Value::String(_)) {
            coerce(ev, &v, &mut Context::new(), false)?;
        }
        return Err(Error::eval("negative start position in 'substring'"));
    }
    let range = |n: usize| {
        let start = (start as u64).min(n as u64) as usize;
        let end = if len < 0 { n } else { (start as u64).saturating_add(len as u64).min(n as u64) as usize };
        start..end
    };
    if let Value::String(s) = &v {
        let r = range(s.bytes.len());
        if r.len() == s.bytes.len() {
            // the whole string: itself (the context is kept either way)
            return Ok(v);
        }
        return Ok(Value::from_string(NixString::with_context(&s.bytes[r], s.context.clone())));
    }
    let mut ctx = Context::new();
    let s = coerce(ev, &v, &mut ctx, false)?;
    Ok(Value::string_ctx(&s[range(s.len())], ctx))
}
/// `builtins.replaceStrings [ "a" ] [ "b" ] "aa"` → `"bb"`
fn replace_strings(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let from = ev.force_list(&a[0])?;
    let to = ev.force_list(&a[1])?;
    if from.len() != to.len() {
        return Err(Error::eval("'from' and 'to' arguments passed to builtins.replaceStrings have different lengths"));
    }
    let mut froms = Vec::with_capacity(from.len());
    for f in from.iter() {
        froms.push(ev.force_string(f).map_err(|e| {
            e.while_("while evaluating one of the strings to replace passed to builtins.replaceStrings", Span::NONE)
        })?);
    }
    let mut ctx = Context::new();
    let s = ev.force_string(&a[2])?;
    s.collect_context(&mut ctx);
    let mut r = Replacer { ev, to: &to, tos: vec![None; to.len()], ctx };
    let bytes = &s.bytes;
    let out = if froms.iter().any(|f| f.bytes.is_empty()) {
        replace_with_empty(&mut r, &froms, bytes)?
    } else {
        match replace_nonempty(&mut r, &froms, bytes)? {
            Some(out) => out,
            // nothing matched: the string itself (no replacement was forced)
            None => return Ok(Value::from_string(s)),
        }
    };
    Ok(Value::from_string(out.finish(r.ctx)))
}

/// The replacement strings of a `replaceStrings` call, forced on first use
/// (C++ Nix forces only those it needs), with the result's context.
struct Replacer<'a> {
    ev: &'a Eval,
    to: &'a [Value],
    tos: Vec<Option<NixString>>,
    ctx: Context,
}

impl Replacer<'_> {
    #[inline]
    fn get(&mut self, i: usize) -> Result<&[u8]> {
        if self.tos[i].is_none() {
            self.force(i)?;
        }
        Ok(&self.tos[i].as_ref().expect("forced above").bytes)
    }
    #[inline(never)]
    fn force(&mut self, i: usize) -> Result<()> {
        let t = self.ev.force_string(&self.to[i]).map_err(|e| {
            e.while_("while evaluating one of the replacement strings passed to builtins.replaceStrings", Span::NONE)
        })?;
        t.collect_context(&mut self.ctx);
        self.tos[i] = Some(t);
        Ok(())
    }
}

/// `replaceStrings` without an empty pattern: find the next byte that
/// starts some pattern (a table lookup per byte for a few bytes, then
/// memchr for up to three distinct first bytes), try the patterns that
/// start with it in list order, copy unmatched runs whole. `None` when
/// nothing matched.
fn replace_nonempty(r: &mut Replacer<'_>, froms: &[NixString], s: &[u8]) -> Result<Option<StrBuf>> {
    const NONE: usize = usize::MAX;
    // by_first[b]: 1 + the first pattern (in list order) starting with b, or 0;
    // then[i]: the next pattern after i that starts with the same byte
    let mut by_first = [0u32; 256];
    let mut then = vec![NONE; froms.len()];
    let mut last = [NONE; 256];
    let mut firsts: Vec<u8> = Vec::with_capacity(3);
    for (i, f) in froms.iter().enumerate() {
        let b = f.bytes[0] as usize;
        if by_first[b] == 0 {
            by_first[b] = u32::try_from(i + 1).expect("fewer than 2^32 patterns");
            firsts.push(b as u8);
        } else {
            then[last[b]] = i;
        }
        last[b] = i;
    }
    let next = |p: usize| -> Option<usize> {
        let h = &s[p..];
        let i = match firsts[..] {
            [a] => memchr::memchr(a, h),
            [a, b] => memchr::memchr2(a, b, h),
            [a, b, c] => memchr::memchr3(a, b, c, h),
            _ => h.iter().position(|&c| by_first[c as usize] != 0),
        };
        i.map(|i| p + i)
    };
    let n = s.len();
    let mut out: Option<StrBuf> = None;
    let (mut p, mut copied) = (0, 0);
    'scan: while p < n {
        let mut k = by_first[s[p] as usize];
        if k == 0 {
            // matches are often close together: look at a few bytes first
            let lim = (p + 16).min(n);
            p += 1;
            while p < lim && by_first[s[p] as usize] == 0 {
                p += 1;
            }
            if p == n {
                break;
            }
            if p == lim {
                match next(p) {
                    Some(q) => p = q,
                    None => break,
                }
            }
            k = by_first[s[p] as usize];
        }
        let rest = &s[p..];
        let mut i = k as usize - 1;
        while i != NONE {
            let f = &froms[i].bytes;
            // (the first byte matches)
            if f.len() == 1 || (rest.len() >= f.len() && rest[1..f.len()] == f[1..]) {
                let o = out.get_or_insert_with(|| StrBuf::with_capacity(n));
                if copied < p {
                    o.push(&s[copied..p]);
                }
                o.push(r.get(i)?);
                p += f.len();
                copied = p;
                continue 'scan;
            }
            i = then[i];
        }
        p += 1;
    }
    Ok(out.map(|mut o| {
        o.push(&s[copied..]);
        o
    }))
}

/// `replaceStrings` with an empty pattern among them: at every position
/// (also the end) the first matching pattern in list order wins; an empty
/// one inserts its replacement and lets one byte through.
fn replace_with_empty(r: &mut Replacer<'_>, froms: &[NixString], s: &[u8]) -> Result<StrBuf> {
    let mut out = StrBuf::with_capacity(s.len());
    let mut p = 0;
    while p <= s.len() {
        match froms.iter().position(|f| s[p..].starts_with(&f.bytes)) {
            Some(i) => {
                out.push(r.get(i)?);
                let n = froms[i].bytes.len();
                if n == 0 {
                    if p < s.len() {
                        out.push_byte(s[p]);
                    }
                    p += 1;
                } else {
                    p += n;
                }
            }
            None => {
                if p < s.len() {
                    out.push_byte(s[p]);
                }
                p += 1;
            }
        }
    }
    Ok(out)
}
/// `builtins.concatStringsSep "," [ "a" "b" ]` → `"a,b"`
///
/// Two passes: the first forces (and, for non-strings, coerces) every
/// element and adds up the length, the second copies the strings, read
/// again from the now forced elements, into one block of the exact size.
fn concat_strings_sep(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let mut ctx = Context::new();
    let sep = ev.force_string(&a[0])?;
    sep.collect_context(&mut ctx);
    let l = ev.force_list(&a[1])?;
    let frame = |e: Error| {
        e.while_("while evaluating one element of the list of strings to concat passed to builtins.concatStringsSep", Span::NONE)
    };
    let mut total = sep.bytes.len().saturating_mul(l.len().saturating_sub(1));
    // the coerced bytes of the elements that are not strings, by index
    let mut coerced: Vec<(usize, Vec<u8>)> = Vec::new();
    for (i, x) in l.iter().enumerate() {
        match ev.force_ref(x).map_err(frame)? {
            Value::String(s) => {
                s.collect_context(&mut ctx);
                total = total.saturating_add(s.bytes.len());
            }
            v => {
                let b = coerce(ev, v, &mut ctx, false).map_err(frame)?;
                total = total.saturating_add(b.len());
                coerced.push((i, b));
            }
        }
    }
    if l.len() == 1 && coerced.is_empty() && ctx.is_empty() {
        // one context-free string: itself
        return ev.force(&l[0]);
    }
    let mut out = StrBuf::with_capacity(total);
    let mut coerced = coerced.iter().peekable();
    for (i, x) in l.iter().enumerate() {
        if i > 0 {
            out.push(&sep.bytes);
        }
        if let Some((_, b)) = coerced.next_if(|(j, _)| *j == i) {
            out.push(b);
            continue;
        }
        // forced in the first pass: reading it again evaluates nothing
        match ev.force_ref(x).map_err(frame)? {
            Value::String(s) => out.push(&s.bytes),
            v => out.push(&coerce(ev, v, &mut ctx, false).map_err(frame)?),
        }
    }
    Ok(Value::from_string(out.finish(ctx)))
}

thread_local! {
    static REGEX_CACHE: RefCell<FxHashMap<Vec<u8>, Rc<regex::bytes::Regex>>> = RefCell::new(FxHashMap::default());
}

/// Compile a POSIX extended regular expression (cached).
fn regex(re: &[u8], anchored: bool) -> Result<Rc<regex::bytes::Regex>> {
    let mut key = re.to_vec();
    key.push(u8::from(anchored));
    if let Some(r) = REGEX_CACHE.with(|c| c.borrow().get(&key).cloned()) {
        return Ok(r);
    }
    let text = String::from_utf8_lossy(re);
    let translated = translate_ere(&text);
    let pat = if anchored { format!("^(?:{translated})$") } else { translated };
    let r = regex::bytes::RegexBuilder::new(&pat)
        .unicode(false)
        .dot_matches_new_line(true)
        .build()
        .map_err(|_| Error::eval(format!("invalid regular expression '{text}'")))?;
    let r = Rc::new(r);
    REGEX_CACHE.with(|c| c.borrow_mut().insert(key, r.clone()));
    Ok(r)
}

/// POSIX ERE → regex-crate syntax: inside brackets a backslash is literal,
/// and `{` not starting a repetition is literal.
fn translate_ere(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '[' {
            // copy a bracket expression
            out.push('[');
            i += 1;
            if i < chars.len() && chars[i] == '^' {
                out.push('^');
                i += 1;
            }
            if i < chars.len() && chars[i] == ']' {
                out.push_str("\\]");
                i += 1;
            }
            while i < chars.len() && chars[i] != ']' {
                if chars[i] == '[' && i + 1 < chars.len() && matches!(chars[i + 1], ':' | '.' | '=') {
                    let close = chars[i + 1];
                    let start = i;
                    i += 2;
                    while i + 1 < chars.len() && !(chars[i] == close && chars[i + 1] == ']') {
                        i += 1;
                    }
                    i += 2;
                    out.extend(&chars[start..i.min(chars.len())]);
                    continue;
                }
                match chars[i] {
                    '\\' => out.push_str("\\\\"),
                    '[' => out.push_str("\\["),
                    '&' | '~' | '-' if false => {}
                    c => out.push(c),
                }
                i += 1;
            }
            out.push(']');
            i += 1;
            continue;
        }
        if c == '\\' && i + 1 < chars.len() {
            out.push('\\');
            out.push(chars[i + 1]);
            i += 2;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

fn captures_list(caps: &regex::bytes::Captures<'_>) -> Value {
    Value::list(
        (1..caps.len())
            .map(|i| match caps.get(i) {
                Some(m) => Value::string(m.as_bytes()),
                None => Value::Null,
            })
            .collect(),
    )
}
/// `builtins.match "a(b)" "ab"` → `[ "b" ]`
fn match_(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let re = ev.force_string(&a[0])?;
    let s = ev.force_string(&a[1])?;
    let r = regex(&re.bytes, true)?;
    match r.captures(&s.bytes) {
        Some(c) => Ok(captures_list(&c)),
        None => Ok(Value::Null),
    }
}
/// `builtins.split "(a)" "xay"` → `[ "x" [ "a" ] "y" ]`
fn split(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let re = ev.force_string(&a[0])?;
    let s = ev.force_string(&a[1])?;
    let s = &s.bytes;
    if let Some(lit) = literal_regex(&re.bytes) {
        return Ok(split_literal(&lit, s));
    }
    let r = regex(&re.bytes, false)?;
    let mut out = Vec::new();
    let mut last = 0;
    if r.captures_len() == 1 {
        // no groups: every match gives the same empty list, shared
        let empty = Value::list(Vec::new());
        for m in r.find_iter(s) {
            out.push(Value::string(&s[last..m.start()]));
            out.push(empty.clone());
            last = m.end();
        }
    } else {
        for c in r.captures_iter(s) {
            let m = c.get(0).expect("group 0");
            out.push(Value::string(&s[last..m.start()]));
            out.push(captures_list(&c));
            last = m.end();
        }
    }
    out.push(Value::string(&s[last..]));
    Ok(super::list::grown_list(out))
}

/// The bytes a POSIX extended regular expression matches if it is a plain
/// ASCII literal (ordinary characters, and special ones escaped with a
/// backslash, as `lib.escapeRegex` writes them), not empty.
fn literal_regex(re: &[u8]) -> Option<Vec<u8>> {
    const SPECIAL: &[u8] = b".[]()*+?{}|^$\\";
    let mut lit = Vec::with_capacity(re.len());
    let mut i = 0;
    while i < re.len() {
        let c = re[i];
        if !c.is_ascii() {
            return None;
        }
        if c == b'\\' {
            let e = *re.get(i + 1)?;
            if !SPECIAL.contains(&e) {
                return None;
            }
            lit.push(e);
            i += 2;
        } else if SPECIAL.contains(&c) {
            return None;
        } else {
            lit.push(c);
            i += 1;
        }
    }
    (!lit.is_empty()).then_some(lit)
}

/// `builtins.split` by a literal: the matches are counted first, so the
/// list is allocated once at its size.
fn split_literal(lit: &[u8], s: &[u8]) -> Value {
    let finder = memchr::memmem::Finder::new(lit);
    let n = if let [b] = lit { memchr::memchr_iter(*b, s).count() } else { finder.find_iter(s).count() };
    let mut out = Vec::with_capacity(2 * n + 1);
    let empty = Value::list(Vec::new());
    let mut last = 0;
    let mut piece = |at: usize, out: &mut Vec<Value>| {
        out.push(Value::string(&s[last..at]));
        out.push(empty.clone());
        last = at + lit.len();
    };
    if let [b] = lit {
        memchr::memchr_iter(*b, s).for_each(|at| piece(at, &mut out));
    } else {
        finder.find_iter(s).for_each(|at| piece(at, &mut out));
    }
    out.push(Value::string(&s[last..]));
    Value::list(out)
}

fn next_component<'a>(s: &'a [u8], p: &mut usize) -> &'a [u8] {
    while *p < s.len() && (s[*p] == b'.' || s[*p] == b'-') {
        *p += 1;
    }
    let start = *p;
    if *p < s.len() && s[*p].is_ascii_digit() {
        while *p < s.len() && s[*p].is_ascii_digit() {
            *p += 1;
        }
    } else {
        while *p < s.len() && !s[*p].is_ascii_digit() && s[*p] != b'.' && s[*p] != b'-' {
            *p += 1;
        }
    }
    &s[start..*p]
}

fn components_lt(c1: &[u8], c2: &[u8]) -> bool {
    let num = |c: &[u8]| -> Option<i64> {
        if c.is_empty() || !c.iter().all(|b| b.is_ascii_digit()) {
            return None;
        }
        std::str::from_utf8(c).ok()?.parse().ok()
    };
    let (n1, n2) = (num(c1), num(c2));
    match (n1, n2) {
        (Some(a), Some(b)) => a < b,
        _ if c1.is_empty() && n2.is_some() => true,
        _ if c1 == b"pre" && c2 != b"pre" => true,
        _ if c2 == b"pre" => false,
        (_, Some(_)) => true,
        (Some(_), _) => false,
        _ => c1 < c2,
    }
}

/// Compare two version strings like `nix-env` (-1, 0 or 1).
pub fn compare_versions_bytes(v1: &[u8], v2: &[u8]) -> i64 {
    let (mut p1, mut p2) = (0, 0);
    while p1 < v1.len() || p2 < v2.len() {
        let c1 = next_component(v1, &mut p1);
        let c2 = next_component(v2, &mut p2);
        if components_lt(c1, c2) {
            return -1;
        } else if components_lt(c2, c1) {
            return 1;
        }
    }
    0
}
/// `builtins.compareVersions "1.2" "1.10"` → `-1`
fn compare_versions(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let x = ev.force_string(&a[0])?;
    let y = ev.force_string(&a[1])?;
    Ok(Value::Int(compare_versions_bytes(&x.bytes, &y.bytes)))
}
/// `builtins.splitVersion "1.2pre3"` → `[ "1" "2" "pre" "3" ]`
fn split_version(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let s = ev.force_string(&a[0])?;
    let mut p = 0;
    let mut out = Vec::new();
    loop {
        let c = next_component(&s.bytes, &mut p);
        if c.is_empty() {
            break;
        }
        out.push(Value::string(c));
    }
    Ok(Value::list(out))
}
/// `builtins.parseDrvName "hello-2.1"` → `{ name = "hello"; version = "2.1"; }`
fn parse_drv_name(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let s = ev.force_string(&a[0])?;
    let b = &s.bytes;
    let mut name = b;
    let mut version: &[u8] = b"";
    for i in 0..b.len() {
        if b[i] == b'-' && i + 1 < b.len() && !b[i + 1].is_ascii_alphabetic() {
            name = &b[..i];
            version = &b[i + 1..];
            break;
        }
    }
    Ok(Value::attrs_from([(sym::name(), Value::string(name)), (sym::version(), Value::string(version))]))
}

/// Hash bytes with a Nix hash algorithm name; returns the raw digest.
pub fn hash_bytes(algo: &str, data: &[u8]) -> Result<Vec<u8>> {
    use sha2::Digest;
    Ok(match algo {
        "md5" => md5::Md5::digest(data).to_vec(),
        "sha1" => sha1::Sha1::digest(data).to_vec(),
        "sha256" => sha2::Sha256::digest(data).to_vec(),
        "sha512" => sha2::Sha512::digest(data).to_vec(),
        _ => return Err(Error::eval(format!("unknown hash algorithm '{algo}', expect 'md5', 'sha1', 'sha256', or 'sha512'"))),
    })
}

pub fn hex(b: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(b)
}
/// `builtins.hashString "sha256" ""` → `"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"`
fn hash_string(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let algo = ev.force_str_nocontext(&a[0])?;
    let s = ev.force_string(&a[1])?;
    Ok(Value::str(&hex(&hash_bytes(&algo, &s.bytes)?)))
}
/// `baseNameOf "/a/b"` → `"b"`
fn base_name_of(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let mut ctx = Context::new();
    let s = ev.coerce_to_string(&a[0], &mut ctx, Coerce { more: false, copy_to_store: false })?;
    let mut end = s.len();
    if end > 0 && s[end - 1] == b'/' {
        end -= 1;
    }
    let start = s[..end].iter().rposition(|&c| c == b'/').map_or(0, |p| p + 1);
    Ok(Value::string_ctx(&s[start..end], ctx))
}
/// `dirOf "/a/b"` → `"/a"`
fn dir_of(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let v = ev.force(&a[0])?;
    let mut ctx = Context::new();
    let s = ev.coerce_to_string(&v, &mut ctx, Coerce { more: false, copy_to_store: false })?;
    let d: Vec<u8> = match s.iter().rposition(|&c| c == b'/') {
        None => b".".to_vec(),
        Some(0) => b"/".to_vec(),
        Some(p) => s[..p].to_vec(),
    };
    if let Value::Path(_) = v {
        return Ok(Value::path(d));
    }
    Ok(Value::string_ctx(d, ctx))
}

/// `builtins.getContext "x"` → `{ }`
fn get_context(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let s = ev.force_string(&a[0])?;
    struct Info {
        path: bool,
        all: bool,
        outputs: Vec<String>,
    }
    let mut m: std::collections::BTreeMap<&'static str, Info> = Default::default();
    for e in s.context.iter() {
        let e = e.as_str();
        let (key, kind) = if let Some(rest) = e.strip_prefix('=') {
            (rest, 1)
        } else if let Some(rest) = e.strip_prefix('!') {
            let (out, path) = rest.split_once('!').unwrap_or(("out", rest));
            let info = m.entry(path).or_insert(Info { path: false, all: false, outputs: vec![] });
            info.outputs.push(out.to_string());
            continue;
        } else {
            (e, 0)
        };
        let info = m.entry(key).or_insert(Info { path: false, all: false, outputs: vec![] });
        if kind == 0 {
            info.path = true
        } else {
            info.all = true
        }
    }
    let attrs = m
        .into_iter()
        .map(|(k, info)| {
            let mut inner = Vec::new();
            if info.path {
                inner.push((Symbol::new("path"), Value::Bool(true)));
            }
            if info.all {
                inner.push((Symbol::new("allOutputs"), Value::Bool(true)));
            }
            if !info.outputs.is_empty() {
                let mut o = info.outputs;
                o.sort();
                inner.push((Symbol::new("outputs"), Value::list(o.iter().map(|x| Value::str(x)).collect())));
            }
            Attr { name: Symbol::new(k), value: Value::attrs_from(inner), pos: crate::ir::Pos::NONE }
        })
        .collect();
    Ok(Value::attrs(AttrSet::from_unsorted(attrs)))
}
/// `builtins.hasContext "x"` → `false`
fn has_context(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    Ok(Value::Bool(ev.force_string(&a[0])?.has_context()))
}
/// `builtins.unsafeDiscardStringContext "x"` → `"x"`
fn discard_context(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let mut ctx = Context::new();
    let s = coerce(ev, &a[0], &mut ctx, false)?;
    Ok(Value::string(s))
}
fn discard_output_dep(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let mut ctx = Context::new();
    let s = coerce(ev, &a[0], &mut ctx, false)?;
    let ctx: Context = ctx
        .iter()
        .map(|e| match e.as_str().strip_prefix('=') {
            Some(p) => ContextElem::opaque(p),
            None => e,
        })
        .collect();
    Ok(Value::string_ctx(s, ctx))
}
fn add_drv_output_deps(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let mut ctx = Context::new();
    let s = coerce(ev, &a[0], &mut ctx, false)?;
    if ctx.len() != 1 {
        return Err(Error::eval(format!(
            "context of string '{}' must have exactly one element, but has {}",
            String::from_utf8_lossy(&s),
            ctx.len()
        )));
    }
    let e = ctx.iter().next().expect("one element").as_str();
    if e.starts_with('!') {
        return Err(Error::eval(format!(
            "`addDrvOutputDependencies` can only act on derivations, not on a derivation output such as '{}'",
            e.split('!').nth(1).unwrap_or("out")
        )));
    }
    if e.starts_with('=') {
        return Ok(Value::string_ctx(s, ctx));
    }
    if !e.ends_with(".drv") {
        return Err(Error::eval(format!(
            "path '{e}' is not a derivation"
        )));
    }
    Ok(Value::string_ctx(s, ContextElem::drv_deep(e).into()))
}
fn append_context(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let s = ev.force_string(&a[0])?;
    let mut ctx = Context::new();
    s.collect_context(&mut ctx);
    let m = ev.force_attrs(&a[1])?;
    for attr in m.attrs() {
        let path = attr.name.as_str().into_owned();
        if !path.starts_with(&ev.opts.store_dir) {
            return Err(Error::eval(format!("context key '{path}' is not a store path")));
        }
        let info = ev.force_attrs(&attr.value)?;
        if let Some(p) = info.get(Symbol::new("path"))
            && ev.force_bool(p)?
        {
            ctx.insert(ContextElem::opaque(&path));
        }
        if let Some(p) = info.get(Symbol::new("allOutputs"))
            && ev.force_bool(p)?
        {
            if !path.ends_with(".drv") {
                return Err(Error::eval(format!(
                    "tried to add all-outputs context of {path}, which is not a derivation, to a string"
                )));
            }
            ctx.insert(ContextElem::drv_deep(&path));
        }
        if let Some(p) = info.get(sym::outputs()) {
            let outs = ev.force_list(p)?;
            if !outs.is_empty() && !path.ends_with(".drv") {
                return Err(Error::eval(format!(
                    "tried to add derivation output context of {path}, which is not a derivation, to a string"
                )));
            }
            for o in outs.iter() {
                let o = ev.force_str_nocontext(o)?;
                ctx.insert(ContextElem::built(&o, &path));
            }
        }
    }
    Ok(Value::string_ctx(&s.bytes, ctx))
}
