//! What reaches the [`StoreSink`] seam: derivations with their references,
//! text files, and imported host paths with the filter the hash was made with.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use ferrix_formats::{CAHash, StorePath};
use ferrix_glue::StoreSink;

/// (store path, source, (entry, kept by the filter))
type Import = (String, PathBuf, Vec<(PathBuf, bool)>);

#[derive(Default)]
struct Log {
    drvs: Vec<(String, BTreeSet<String>)>,
    texts: Vec<(String, Vec<u8>)>,
    imports: Vec<Import>,
}

struct Recording(Rc<RefCell<Log>>);

impl StoreSink for Recording {
    fn add_text(&self, path: &StorePath, contents: &[u8], _refs: &BTreeSet<StorePath>) -> Result<(), String> {
        self.0.borrow_mut().texts.push((path.to_string(), contents.to_vec()));
        Ok(())
    }
    fn add_derivation(&self, path: &StorePath, _aterm: Vec<u8>, refs: BTreeSet<StorePath>) -> Result<(), String> {
        self.0.borrow_mut().drvs.push((path.to_string(), refs.iter().map(|r| r.to_string()).collect()));
        Ok(())
    }
    fn add_host_path(&self, path: &StorePath, src: &Path, _ca: &CAHash, filter: Option<&dyn Fn(&Path) -> bool>) -> Result<(), String> {
        let mut decisions = Vec::new();
        for name in ["a.txt", "b.o", "sub", "sub/c.o"] {
            let p = src.join(name);
            decisions.push((PathBuf::from(name), filter.map(|f| f(&p)).unwrap_or(true)));
        }
        self.0.borrow_mut().imports.push((path.to_string(), src.to_path_buf(), decisions));
        Ok(())
    }
}

#[test]
fn sink_sees_drvs_texts_and_filtered_imports() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), "a").unwrap();
    std::fs::write(src.join("b.o"), "b").unwrap();
    std::fs::write(src.join("sub/c.o"), "c").unwrap();
    let log = Rc::new(RefCell::new(Log::default()));
    let ev = ferrix_glue::new_eval(Default::default(), Box::new(Recording(log.clone())));
    let expr = format!(
        r#"let
          a = derivation {{ name = "a"; builder = "/bin/sh"; system = "x"; t = builtins.toFile "t" "hi"; }};
          s = builtins.filterSource (p: t: builtins.match ".*\\.o" p == null) {src};
        in (derivation {{ name = "b"; builder = "/bin/sh"; system = "x"; inherit a s; }}).drvPath"#,
        src = src.display()
    );
    let v = ev.eval_string(&expr, "/").unwrap();
    ev.force_deep(&v).unwrap();
    let log = log.borrow();
    assert_eq!(log.texts.len(), 1);
    assert_eq!(log.texts[0].1, b"hi");
    assert_eq!(log.drvs.len(), 2);
    // b refers to a's .drv and the filtered source
    let (b, b_refs) = &log.drvs[1];
    assert!(b.ends_with("-b.drv"));
    assert!(b_refs.iter().any(|r| r.ends_with("-a.drv")));
    assert!(b_refs.iter().any(|r| r.ends_with("-src")));
    let (_, _, decisions) = &log.imports[0];
    let kept: Vec<_> = decisions.iter().filter(|d| d.1).map(|d| d.0.display().to_string()).collect();
    assert_eq!(kept, ["a.txt", "sub"]);
}

/// The ferrix store as the sink: everything evaluation makes is registered
/// with its references, and a filtered import stores exactly the kept tree.
#[test]
fn ferrix_store_sink_registers_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), "a").unwrap();
    std::fs::write(src.join("b.o"), "b").unwrap();
    let sink = ferrix_glue::FerrixStore::open("memory://").unwrap();
    let pis = sink.store.path_info.clone();
    let ev = ferrix_glue::new_eval(Default::default(), Box::new(sink));
    let expr = format!(
        r#"let
          t = builtins.toFile "t" "hi";
          s = builtins.filterSource (p: t: builtins.match ".*\\.o" p == null) {src};
          a = derivation {{ name = "a"; builder = "/bin/sh"; system = "x"; inherit t s; }};
        in [ a.drvPath t s "${{{src}/a.txt}}" ]"#,
        src = src.display()
    );
    let v = ev.eval_string(&expr, "/").unwrap();
    let v = ev.force_deep(&v).unwrap();
    let printed = ferrix_eval::print::print_value(&v);
    // `.drv` and text paths are registered in batches, on flush at the latest
    ferrix_glue::io::store_io(&ev).unwrap().flush().unwrap();
    let infos = pis.list().unwrap();
    let names: BTreeSet<String> = infos.iter().map(|i| i.store_path.name().to_string()).collect();
    assert_eq!(names, BTreeSet::from(["a.drv".to_string(), "t".into(), "src".into(), "a.txt".into()]), "{printed}");
    let drv = infos.iter().find(|i| i.store_path.name() == "a.drv").unwrap();
    let refs: BTreeSet<&str> = drv.references.iter().map(|r| r.name()).collect();
    assert_eq!(refs, BTreeSet::from(["t", "src"]));
    for i in &infos {
        assert!(printed.contains(&i.store_path.to_string()), "{} not in {printed}", i.store_path);
    }
}

/// Files evaluation wrote are readable back through the evaluator's IO,
/// whichever sink holds them (not only when the host store has a copy).
#[test]
fn read_back_what_was_written() {
    let expr = r#"let
        f = builtins.toFile "ferrix-read-back-test" "contents of f";
        d = derivation { name = "ferrix-read-back"; builder = "/bin/sh"; system = "x"; inherit f; };
      in [ (builtins.readFile f) (builtins.substring 0 7 (builtins.readFile d.drvPath)) (builtins.pathExists f) ]"#;
    let tmp = tempfile::tempdir().unwrap();
    let sinks: Vec<Box<dyn StoreSink>> = vec![
        Box::new(ferrix_glue::MemoryStore::default()),
        Box::new(ferrix_glue::FerrixStore::open("memory://").unwrap()),
        Box::new(ferrix_glue::DirStore { root: tmp.path().to_path_buf() }),
    ];
    for sink in sinks {
        let ev = ferrix_glue::new_eval(Default::default(), sink);
        let v = ev.eval_string(expr, "/").and_then(|v| ev.force_deep(&v)).map_err(|e| e.render(false)).unwrap();
        assert_eq!(ferrix_eval::print::print_value(&v), r#"[ "contents of f" "Derive(" true ]"#);
    }
}

/// Many derivations written into a redb store are all registered, in one
/// batch, by the time `get_derivations` returns them; the store then
/// verifies clean.
#[test]
fn ferrix_store_registers_a_batch_of_derivations() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("redb://{}", tmp.path().join("store").display());
    let sink = ferrix_glue::FerrixStore::open(&url).unwrap();
    let pis = sink.store.path_info.clone();
    let ev = ferrix_glue::new_eval(Default::default(), Box::new(sink));
    let expr = r#"let
        mk = n: prev: derivation { name = "chain-${toString n}"; builder = "/bin/sh"; system = "x"; inherit prev; };
        go = n: if n == 0 then "" else mk n (go (n - 1));
      in mk 0 (go 300)"#;
    let v = ev.eval_string(expr, "/").map_err(|e| e.render(false)).unwrap();
    let drvs = ferrix_glue::instantiate::get_derivations(&ev, &v, &|x| Ok(x)).map_err(|e| e.render(false)).unwrap();
    assert_eq!(drvs.len(), 1);
    let infos = pis.list().unwrap();
    assert_eq!(infos.len(), 301);
    assert!(infos.iter().all(|i| i.store_path.name().ends_with(".drv")));
}

/// On a redb store, imported sources, `toFile` texts and `.drv` files are
/// registered together on flush (not one durable commit each), every one
/// whole (the store verifies clean), and evaluating the same again on the
/// reopened store registers nothing new and reads the files back.
#[test]
fn redb_sink_registers_imports_in_a_batch_and_rewrites_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    for (f, c) in [("a.txt", "a"), ("b.sh", "echo b"), ("sub/c.o", "c")] {
        std::fs::write(src.join(f), c).unwrap();
    }
    let url = format!("redb://{}", tmp.path().join("store").display());
    let expr = format!(
        r#"let
          t = builtins.toFile "t" "hi";
          whole = builtins.path {{ path = {src}; name = "whole"; }};
          some = builtins.filterSource (p: t: builtins.match ".*\\.o" p == null) {src};
          d = derivation {{ name = "d"; builder = "${{{src}/b.sh}}"; system = "x"; inherit t whole some; a = {src}/a.txt; }};
        in [ d.drvPath (builtins.readFile d.drvPath) (builtins.readFile "${{whole}}/sub/c.o") ]"#,
        src = src.display()
    );
    let run = || {
        let sink = ferrix_glue::FerrixStore::open(&url).unwrap();
        let store = sink.store.clone();
        let ev = ferrix_glue::new_eval(Default::default(), Box::new(sink));
        let v = ev.eval_string(&expr, "/").and_then(|v| ev.force_deep(&v)).map_err(|e| e.render(false)).unwrap();
        let before: BTreeSet<String> = store.path_info.list().unwrap().iter().map(|i| i.store_path.to_string()).collect();
        ferrix_glue::io::store_io(&ev).unwrap().flush().unwrap();
        let after: Vec<ferrix_store::PathInfo> = store.path_info.list().unwrap();
        (ferrix_eval::print::print_value(&v), before, after, store)
    };
    let (printed, before, after, store) = run();
    // nothing of this evaluation was registered before the flush
    assert!(before.is_empty(), "{before:?}");
    let names: BTreeSet<&str> = after.iter().map(|i| i.store_path.name()).collect();
    assert_eq!(names, BTreeSet::from(["t", "whole", "src", "b.sh", "a.txt", "d.drv"]), "{printed}");
    assert!(printed.contains("Derive("), "{printed}");
    assert!(printed.ends_with("\"c\" ]"), "{printed}");
    let report = ferrix_store::verify::verify_store(&store, &mut |_, _| {}).unwrap();
    assert_eq!((report.checked, report.damaged.len()), (6, 0));
    drop(store);
    let (printed2, before2, after2, _store) = run();
    assert_eq!(printed2, printed);
    assert_eq!(before2.len(), 6);
    assert_eq!(after2, after, "a second evaluation changed what is registered");
}
