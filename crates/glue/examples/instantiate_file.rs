//! Profiling helper: instantiate a file like `ferrix instantiate FILE`
//! (derivations written to the store `FERRIX_STORE` names, default
//! `memory://`) and print the `.drv` paths. It uses the system allocator, so
//! heap profilers (heaptrack, massif) see every block; lighter to build than
//! the `ferrix` binary (`cargo build --release -p ferrix-glue --example
//! instantiate_file`).

fn main() {
    let (opts, file) = ferrix_eval::example_args("instantiate_file [-I name=path] FILE");
    let url = std::env::var("FERRIX_STORE").unwrap_or_else(|_| "memory://".into());
    let ev = ferrix_glue::new_eval(opts, Box::new(ferrix_glue::LazyFerrixStore::new(Ok(url))));
    let r = ev.eval_file(&file.to_string_lossy()).and_then(|v| {
        let drvs = ferrix_glue::instantiate::get_derivations(&ev, &v, &Ok)?;
        ferrix_glue::io::store_io(&ev)?.flush()?;
        Ok(drvs)
    });
    match r {
        Ok(drvs) => {
            for d in drvs {
                println!("{}", d.display());
            }
        }
        Err(e) => {
            eprintln!("{}", e.render(true));
            std::process::exit(1);
        }
    }
}
