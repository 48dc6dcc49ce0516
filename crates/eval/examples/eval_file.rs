//! Profiling helper: evaluate a file strictly with the core builtins and
//! print the result (`cargo run --release -p ferrix-eval --example eval_file
//! -- [-I name=path] FILE`). Lighter to build than the `ferrix` binary.

#[global_allocator]
static A: ferrix_eval::alloc::PoolAlloc = ferrix_eval::alloc::PoolAlloc;

fn main() {
    let (opts, file) = ferrix_eval::example_args("eval_file [-I name=path] FILE");
    let ev = ferrix_eval::Eval::new(Box::new(ferrix_eval::HostIO), opts, Default::default());
    let v = ev.eval_file(&file.to_string_lossy()).and_then(|v| ev.force_deep(&v));
    match v {
        Ok(v) => println!("{v:?}"),
        Err(e) => {
            eprintln!("error: {}", e.msg());
            std::process::exit(1);
        }
    }
}
