//! `builtins.toXML` and the `--xml` output of nix-instantiate.

use crate::error::Result;
use crate::ir::Span;
use crate::symbol::sym;
use crate::value::{PrimOpDef, Value};
use crate::{Coerce, Context, Eval};

pub static DEFS: &[PrimOpDef] = &[PrimOpDef { name: "toXML", arity: 1, func: to_xml, forces: &[] }];

fn esc(s: &[u8]) -> String {
    let mut out = String::new();
    for c in String::from_utf8_lossy(s).chars() {
        match c {
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            '\t' => out.push_str("&#x9;"),
            c => out.push(c),
        }
    }
    out
}

struct W<'a> {
    out: String,
    ev: &'a Eval,
    ctx: &'a mut Context,
    location: bool,
}

impl W<'_> {
    fn empty(&mut self, ind: usize, name: &str, attrs: &[(&str, String)]) {
        self.open_tag(ind, name, attrs);
        self.out.push_str(" />\n");
    }
    fn open_tag(&mut self, ind: usize, name: &str, attrs: &[(&str, String)]) {
        for _ in 0..ind {
            self.out.push_str("  ");
        }
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attrs {
            self.out.push_str(&format!(" {k}=\"{}\"", esc(v.as_bytes())));
        }
    }
    fn open(&mut self, ind: usize, name: &str, attrs: &[(&str, String)]) {
        self.open_tag(ind, name, attrs);
        self.out.push_str(">\n");
    }
    fn close(&mut self, ind: usize, name: &str) {
        for _ in 0..ind {
            self.out.push_str("  ");
        }
        self.out.push_str(&format!("</{name}>\n"));
    }

    fn pos_attrs(&self, span: Span, attrs: &mut Vec<(&str, String)>) {
        if !self.location || span.is_none() {
            return;
        }
        if let Some((name, text)) = crate::source::get(span.file) {
            let (l, c) = crate::source::line_col(&text, span.offset as usize);
            attrs.insert(0, ("column", c.to_string()));
            attrs.insert(1, ("line", l.to_string()));
            attrs.push(("path", name.to_string()));
        }
    }

    fn value(&mut self, v: &Value, ind: usize) -> Result<()> {
        let v = self.ev.force(v)?;
        match &v {
            Value::Null => self.empty(ind, "null", &[]),
            Value::Bool(b) => self.empty(ind, "bool", &[("value", b.to_string())]),
            Value::Int(i) => self.empty(ind, "int", &[("value", i.to_string())]),
            Value::Float(f) => self.empty(ind, "float", &[("value", crate::print::fmt_float(*f))]),
            Value::String(s) => {
                s.collect_context(self.ctx);
                self.empty(ind, "string", &[("value", String::from_utf8_lossy(&s.bytes).into_owned())])
            }
            Value::Path(p) => self.empty(ind, "path", &[("value", p.to_str_lossy().into_owned())]),
            Value::List(l) => {
                if l.is_empty() {
                    self.empty(ind, "list", &[]);
                } else {
                    self.open(ind, "list", &[]);
                    for x in l.iter() {
                        self.value(x, ind + 1)?;
                    }
                    self.close(ind, "list");
                }
            }
            Value::Attrs(a) => {
                if self.ev.is_derivation(a)? {
                    let mut attrs = Vec::new();
                    if let Some(d) = a.get(sym::drv_path()) {
                        let s = self.ev.coerce_to_string(d, self.ctx, Coerce { more: false, copy_to_store: true })?;
                        attrs.push(("drvPath", String::from_utf8_lossy(&s).into_owned()));
                    }
                    if let Some(d) = a.get(sym::out_path()) {
                        let s = self.ev.coerce_to_string(d, self.ctx, Coerce { more: false, copy_to_store: true })?;
                        attrs.push(("outPath", String::from_utf8_lossy(&s).into_owned()));
                    }
                    self.open(ind, "derivation", &attrs);
                    self.attrs(a, ind + 1)?;
                    self.close(ind, "derivation");
                } else if a.is_empty() {
                    self.empty(ind, "attrs", &[]);
                } else {
                    self.open(ind, "attrs", &[]);
                    self.attrs(a, ind + 1)?;
                    self.close(ind, "attrs");
                }
            }
            Value::Lambda(c) => {
                let mut fattrs = Vec::new();
                self.pos_attrs(c.lambda.pos, &mut fattrs);
                self.open(ind, "function", &fattrs);
                match &c.lambda.formals {
                    Some(f) => {
                        let mut attrs = Vec::new();
                        if f.ellipsis {
                            attrs.push(("ellipsis", "1".to_string()));
                        }
                        if let Some(at) = f.at {
                            attrs.push(("name", at.as_str().into_owned()));
                        }
                        self.open(ind + 1, "attrspat", &attrs);
                        let mut names: Vec<String> = f.entries.iter().map(|e| e.name.as_str().into_owned()).collect();
                        names.sort();
                        for n in names {
                            self.empty(ind + 2, "attr", &[("name", n)]);
                        }
                        self.close(ind + 1, "attrspat");
                    }
                    None => {
                        let n = c.lambda.arg.map(|a| a.as_str().into_owned()).unwrap_or_default();
                        self.empty(ind + 1, "varpat", &[("name", n)]);
                    }
                }
                self.close(ind, "function");
            }
            Value::PrimOp(_) | Value::PrimOpApp(_) => self.empty(ind, "unevaluated", &[]),
            Value::Thunk(_) => self.empty(ind, "unevaluated", &[]),
        }
        Ok(())
    }

    fn attrs(&mut self, a: &crate::AttrSet, ind: usize) -> Result<()> {
        for attr in a.sorted_by_name() {
            let mut attrs = vec![("name", attr.name.as_str().into_owned())];
            self.pos_attrs(attr.pos.span(), &mut attrs);
            self.open(ind, "attr", &attrs);
            self.value(&attr.value, ind + 1)?;
            self.close(ind, "attr");
        }
        Ok(())
    }
}

/// Render a value as Nix's XML (`location`: add line/column/path attributes).
pub fn to_xml_string(ev: &Eval, v: &Value, location: bool, ctx: &mut Context) -> Result<String> {
    let mut w = W { out: String::new(), ev, ctx, location };
    w.out.push_str("<?xml version='1.0' encoding='utf-8'?>\n<expr>\n");
    w.value(v, 1)?;
    w.out.push_str("</expr>\n");
    Ok(w.out)
}

/// `builtins.toXML 1`
fn to_xml(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let mut ctx = Context::new();
    let s = to_xml_string(ev, &a[0], false, &mut ctx)?;
    Ok(Value::string_ctx(s.into_bytes(), ctx))
}
