//! Every builtin's doc comment carries an example of the form
//! ``/// `EXPR` → `RESULT` ``; this test evaluates each EXPR and compares
//! the strict printout with RESULT (a trailing `…` means "starts with").

use std::path::Path;

use ferrix_eval::{print::print_value, Eval};

#[test]
fn doc_examples_evaluate_as_documented() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/builtins");
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("builtins dir").flatten() {
        let text = std::fs::read_to_string(entry.path()).expect("read source");
        for line in text.lines() {
            let Some(doc) = line.trim().strip_prefix("/// `") else { continue };
            let Some((expr, rest)) = doc.split_once("` → `") else { continue };
            let Some(want) = rest.strip_suffix('`') else { continue };
            let ev = Eval::default();
            let got = match ev.eval_string(expr, "/").and_then(|v| ev.force_deep(&v)) {
                Ok(v) => print_value(&v),
                Err(e) => format!("error: {}", e.msg()),
            };
            let ok = match want.strip_suffix('…') {
                Some(prefix) => got.starts_with(prefix),
                None => got == want,
            };
            checked += 1;
            if !ok {
                failures.push(format!("{}: {expr}\n  want: {want}\n  got:  {got}", entry.path().display()));
            }
        }
    }
    assert!(checked > 50, "only {checked} examples found");
    assert!(failures.is_empty(), "{} doc examples differ:\n{}", failures.len(), failures.join("\n"));
}
