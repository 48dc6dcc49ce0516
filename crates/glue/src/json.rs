//! The `__json` environment entry of structured-attrs derivations, written
//! as C++ Nix 2.8's `printValueAsJSON` does (compact, keys sorted, paths
//! copied to the store, floats like `std::ostream <<`).

use ferrix_eval::{Coerce, Context, Error, Eval, Result, Span, Symbol, Value};

/// A JSON string literal, escaped like libutil's `toJSON`.
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            c if c < 0x20 => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            c => out.push(c),
        }
    }
    out.push(b'"');
}

/// `%g` with 6 significant digits, as `std::ostream << double` prints.
pub fn float(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    if !f.is_finite() {
        return if f.is_nan() { "nan".into() } else if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // round to 6 significant digits first; rounding may bump the exponent
    let s = format!("{:.5e}", f);
    let (mant, e) = s.split_once('e').expect("exponent");
    let e: i32 = e.parse().expect("int exponent");
    if (-4..6).contains(&e) {
        let decimals = (5 - e).max(0) as usize;
        let s = format!("{:.*}", decimals, f);
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
    } else {
        let m = if mant.contains('.') { mant.trim_end_matches('0').trim_end_matches('.') } else { mant };
        format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
    }
}

/// Serialise a value (forcing it deeply), collecting string context.
pub fn value(ev: &Eval, v: &Value, ctx: &mut Context, out: &mut Vec<u8>) -> Result<()> {
    let v = ev.force(v)?;
    match &v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Float(f) => out.extend_from_slice(float(*f).as_bytes()),
        Value::String(s) => {
            s.collect_context(ctx);
            string(out, &s.bytes);
        }
        Value::Path(_) => {
            let s = ev.coerce_to_string(&v, ctx, Coerce { more: false, copy_to_store: true })?;
            string(out, &s);
        }
        Value::Attrs(a) => {
            if a.get(Symbol::new("__toString")).is_some() {
                let s = ev.coerce_to_string(&v, ctx, Coerce { more: false, copy_to_store: false })?;
                string(out, &s);
                return Ok(());
            }
            if let Some(o) = a.get(Symbol::new("outPath")) {
                return value(ev, o, ctx, out);
            }
            out.push(b'{');
            for (i, attr) in a.sorted_by_name().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(out, attr.name.as_bytes());
                out.push(b':');
                value(ev, &attr.value, ctx, out)
                    .map_err(|e| e.while_(format!("while evaluating attribute '{}'", attr.name), attr.pos))?;
            }
            out.push(b'}');
        }
        Value::List(l) => {
            out.push(b'[');
            for (i, x) in l.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                value(ev, x, ctx, out)?;
            }
            out.push(b']');
        }
        other => {
            return Err(Error::eval(format!("cannot convert {} to JSON", other.show_type())).at(Span::NONE));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn floats_like_ostream() {
        for (f, s) in [(1.5, "1.5"), (0.1, "0.1"), (3.0, "3"), (1e20, "1e+20"), (123456.0, "123456"), (1234567.0, "1.23457e+06"), (0.0001, "0.0001"), (0.00001, "1e-05"), (-2.5, "-2.5")] {
            assert_eq!(super::float(f), s, "{f}");
        }
    }
}
