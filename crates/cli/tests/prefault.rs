//! The instantiate command's waiting thread populates heap pages ahead of
//! the evaluator (src/prefault.rs). These runs take well past the point
//! where it starts and check that the result is right and that the process
//! always ends: the waiting thread must notice the evaluator's end however
//! the two interleave.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run `ferrix instantiate --eval --strict -E expr`; stdout and exit code,
/// or a failure if it has not ended within a minute.
fn eval(expr: &str) -> (String, i32) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrix"))
        .args(["instantiate", "--eval", "--strict", "-E", expr])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ferrix runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ferrix instantiate did not end within a minute: {expr}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().expect("output");
    (String::from_utf8_lossy(&out.stdout).trim().to_string(), out.status.code().unwrap_or(-1))
}

#[test]
fn a_large_evaluation_is_right_and_ends() {
    // ~300 000 live sets and thunks: tens of MiB, far past the start mark
    let n: i64 = 300_000;
    let (out, code) =
        eval(&format!("let xs = builtins.genList (i: {{ a = i; b = [ i ]; }}) {n}; in builtins.foldl' (s: x: s + x.a + builtins.head x.b) 0 xs"));
    assert_eq!(code, 0);
    assert_eq!(out, (n * (n - 1)).to_string());
}

#[test]
fn short_and_failing_evaluations_end() {
    for i in 0..20 {
        // small (the helper never starts), and medium (it starts, and the
        // evaluator may end at any point of its work)
        let (out, code) = eval(&format!("{i} + 1"));
        assert_eq!((out, code), ((i + 1).to_string(), 0));
        let n = 40_000 + i * 1000;
        let (out, code) = eval(&format!("builtins.length (builtins.filter (x: x.a >= 0) (builtins.genList (i: {{ a = i; }}) {n}))"));
        assert_eq!((out, code), (n.to_string(), 0));
    }
    // an evaluation error ends it too (exit code 1, like nix-instantiate)
    let (_, code) = eval("let xs = builtins.genList (i: { a = i; }) 200000; in builtins.foldl' (s: x: s + x.a) 0 xs + throw \"no\"");
    assert_eq!(code, 1);
}
