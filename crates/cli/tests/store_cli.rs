//! `ferrix store` end to end: the real binary against real C++ Nix
//! (`nix-store`) as the oracle. Each test has its own redb store in a temp
//! directory. Without `nix-store` the oracle tests fail (they never skip).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A temp directory with a store in it.
struct Env {
    tmp: tempfile::TempDir,
    url: String,
}

impl Env {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let url = format!("redb://{}", tmp.path().join("store").display());
        Env { tmp, url }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ferrix"));
        c.arg("store")
            .arg("--store")
            .arg(&self.url)
            .args(args)
            .current_dir(self.tmp.path());
        c
    }

    /// Runs `ferrix store ARGS` with `stdin`.
    fn run_in(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut input, &data);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        out
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_in(args, b"")
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "ferrix store {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn ok_lines(&self, args: &[&str]) -> Vec<String> {
        lines(&self.ok(args))
    }

    /// Runs and expects failure; returns stderr.
    fn fails(&self, args: &[&str], stdin: &[u8]) -> String {
        let out = self.run_in(args, stdin);
        assert!(
            !out.status.success(),
            "ferrix store {args:?} should have failed"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn lines(b: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(b)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Runs C++ Nix's `nix-store` (the oracle) and returns stdout.
fn nix_store(args: &[&str], dir: &Path) -> Vec<u8> {
    let out = Command::new("nix-store").args(args).current_dir(dir).output().unwrap_or_else(|e| {
        panic!(
            "nix-store (C++ Nix 2.8, the oracle) is required by these tests but could not be run: {e}. \
             Install it (Debian: apt-get install nix-bin) and make sure it is on PATH."
        )
    });
    assert!(
        out.status.success(),
        "nix-store {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

use ferrix_store::testutil::{data, file, make_tree};

/// Roots of every kind: a tree, single files, a symlink, an empty directory.
fn make_roots(env: &Env) -> Vec<&'static str> {
    make_tree(&env.path("tree"), 1);
    file(&env.path("plain.txt"), b"plain\n", false);
    file(&env.path("tool"), b"#!/bin/sh\n", true);
    file(&env.path("nothing"), b"", false);
    symlink("plain.txt", env.path("toplink")).unwrap();
    fs::create_dir(env.path("hollow")).unwrap();
    vec!["tree", "plain.txt", "tool", "nothing", "toplink", "hollow"]
}

#[test]
fn add_matches_nix_store_add() {
    let env = Env::new();
    let roots = make_roots(&env);
    let mut args = vec!["add"];
    args.extend(&roots);
    let ours = env.ok_lines(&args);
    let mut nix_args = vec!["--add"];
    nix_args.extend(&roots);
    assert_eq!(ours, lines(&nix_store(&nix_args, env.tmp.path())));
    // Trailing slash and `./` spellings name the same path.
    assert_eq!(env.ok_lines(&["add", "./tree/"]), ours[..1]);
}

#[test]
fn add_flat_matches_add_fixed() {
    let env = Env::new();
    file(&env.path("data.bin"), &data(3 * 1024 * 1024 + 1, 5), true);
    file(&env.path("small"), b"abc", false);
    let ours = env.ok_lines(&["add", "--flat", "data.bin", "small"]);
    assert_eq!(
        ours,
        lines(&nix_store(
            &["--add-fixed", "sha256", "data.bin", "small"],
            env.tmp.path()
        ))
    );
    // --add-fixed --recursive sha256 is what plain add does.
    make_tree(&env.path("tree"), 2);
    assert_eq!(
        env.ok_lines(&["add", "tree"]),
        lines(&nix_store(
            &["--add-fixed", "--recursive", "sha256", "tree"],
            env.tmp.path()
        ))
    );
    // A flat store path holds a non-executable file: dump matches Nix's dump of it.
    assert!(
        env.ok(&["dump", &ours[0]]) == nix_store(&["--dump", &ours[0]], env.tmp.path()),
        "dump of a flat path"
    );
    let err = env.fails(&["add", "--flat", "tree"], b"");
    assert!(err.contains("needs a regular file"), "{err}");
}

#[test]
fn dump_matches_nix_store_dump() {
    let env = Env::new();
    let roots = make_roots(&env);
    for root in roots {
        let path = env.ok_lines(&["add", root]).remove(0);
        let ours = env.ok(&["dump", &path]);
        assert!(
            ours == nix_store(&["--dump", root], env.tmp.path()),
            "dump of {root} differs from nix-store --dump"
        );
    }
}

#[test]
fn import_nar_gives_nix_store_add_path() {
    let env = Env::new();
    make_tree(&env.path("tree"), 3);
    let nar = nix_store(&["--dump", "tree"], env.tmp.path());
    let hash = String::from_utf8(nix_store(&["--add", "tree"], env.tmp.path())).unwrap();
    let nix_path = hash.trim();
    let nix_hash =
        String::from_utf8(nix_store(&["-q", "--hash", nix_path], env.tmp.path())).unwrap();
    let out = env.run_in(
        &[
            "import-nar",
            "--name",
            "tree",
            "--nar-hash",
            nix_hash.trim(),
        ],
        &nar,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines(&out.stdout), vec![nix_path.to_owned()]);
    assert!(env.ok(&["dump", nix_path]) == nar);
    let info = String::from_utf8(env.ok(&["info", nix_path])).unwrap();
    assert!(
        info.contains(&format!("NarHash: {}", nix_hash.trim())),
        "{info}"
    );
    assert!(
        info.contains(&format!("NarSize: {}\n", nar.len())),
        "{info}"
    );
}

#[test]
fn bad_nar_imports_register_nothing() {
    let env = Env::new();
    make_tree(&env.path("tree"), 4);
    let nar = nix_store(&["--dump", "tree"], env.tmp.path());
    let import = ["import-nar", "--name", "tree"];
    for cut in [0, 7, 100, nar.len() / 2, nar.len() - 1] {
        let err = env.fails(&import, &nar[..cut]);
        assert!(err.contains("truncated"), "cut at {cut}: {err}");
    }
    let mut corrupt = nar.clone();
    let at = nar.windows(9).position(|w| w == b"directory").unwrap();
    corrupt[at] = b'D';
    let err = env.fails(&import, &corrupt);
    assert!(err.contains("unknown node type \"Directory\""), "{err}");
    let err = env.fails(
        &[
            "import-nar",
            "--name",
            "tree",
            "--nar-hash",
            &format!("sha256:{}", "0".repeat(52)),
        ],
        &nar,
    );
    assert!(err.contains("NAR hash mismatch"), "{err}");
    let err = env.fails(&["import-nar", "--name", "tree", "--nar-size", "8"], &nar);
    assert!(err.contains("NAR size mismatch"), "{err}");
    let err = env.fails(&import, &[nar.clone(), b"junk".to_vec()].concat());
    assert!(err.contains("trailing data"), "{err}");
    let err = env.fails(&["import-nar", "--name", "bad/name"], &nar);
    assert!(err.contains("illegal character '/'"), "{err}");
    assert_eq!(
        env.ok_lines(&["list"]),
        Vec::<String>::new(),
        "nothing may be registered"
    );
    assert_eq!(env.ok_lines(&["verify"]), Vec::<String>::new());
    // The good NAR still imports.
    let out = env.run_in(&import, &nar);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.ok_lines(&["list"]), lines(&out.stdout));
}

#[test]
fn restore_ls_cat_info() {
    let env = Env::new();
    make_tree(&env.path("tree"), 5);
    let p = env.ok_lines(&["add", "tree"]).remove(0);
    env.ok(&["restore", &p, "out"]);
    assert!(
        nix_store(&["--dump", "out"], env.tmp.path())
            == nix_store(&["--dump", "tree"], env.tmp.path())
    );
    let ls = env.ok_lines(&["ls", &p]);
    assert_eq!(ls[..4], ["B", "a b", "a.txt", "abs-link"]);
    let ls = env.ok_lines(&["ls", "-l", &format!("{p}/sub")]);
    assert_eq!(
        ls,
        [
            "-r--r--r--            6 a.txt",
            "dr-xr-xr-x            0 deeper",
            "-r--r--r--         1000 y",
        ]
    );
    assert_eq!(
        env.ok_lines(&["ls", "-l", &format!("{p}/link")]),
        ["lrwxrwxrwx            0 link -> a.txt"]
    );
    assert_eq!(env.ok(&["cat", &format!("{p}/a.txt")]), b"hello 5\n");
    assert!(env.ok(&["cat", &format!("{p}/big.bin")]) == data(2 * 1024 * 1024 + 5, 5));
    let info = String::from_utf8(env.ok(&["info", &p])).unwrap();
    // `nix-store -q` only knows the path once Nix has added it.
    let nix_p = String::from_utf8(nix_store(&["--add", "tree"], env.tmp.path())).unwrap();
    assert_eq!(nix_p.trim(), p);
    let nix_hash = String::from_utf8(nix_store(&["-q", "--hash", &p], env.tmp.path())).unwrap();
    assert!(
        info.contains(&format!("NarHash: {}\n", nix_hash.trim())),
        "{info}"
    );
    assert!(info.contains("CA: fixed:r:sha256:"), "{info}");
    let sub = String::from_utf8(env.ok(&["info", &format!("{p}/run.sh")])).unwrap();
    assert!(sub.contains("Node: executable file"), "{sub}");
    // Dumping a sub-path gives the NAR of that node.
    assert!(
        env.ok(&["dump", &format!("{p}/sub")])
            == nix_store(&["--dump", "tree/sub"], env.tmp.path())
    );
}

#[test]
fn clear_errors_for_bad_paths() {
    let env = Env::new();
    make_tree(&env.path("tree"), 6);
    let p = env.ok_lines(&["add", "tree"]).remove(0);
    let unknown = "/nix/store/xpcvxsx5sw4rbq666blz6sxqlmsqphmr-nope";
    for cmd in ["dump", "cat", "info", "ls"] {
        let err = env.fails(&[cmd, unknown], b"");
        assert!(
            err.contains(&format!("error: {unknown} is not in the store")),
            "{cmd}: {err}"
        );
    }
    let err = env.fails(&["info", "/tmp/not-a-store-path"], b"");
    assert!(err.contains("is not in the Nix store"), "{err}");
    let err = env.fails(&["cat", &format!("{p}/missing")], b"");
    assert!(
        err.contains("missing: no such file or directory in the store"),
        "{err}"
    );
    let err = env.fails(&["cat", &format!("{p}/sub")], b"");
    assert!(err.contains("is a directory"), "{err}");
    let err = env.fails(&["add", "no-such-file"], b"");
    assert_eq!(
        err,
        "error: adding no-such-file: reading no-such-file: No such file or directory (os error 2)\n"
    );
    file(&env.path("bad name"), b"x", false);
    let err = env.fails(&["add", "bad name"], b"");
    assert!(
        err.contains("store path 'bad name' contains illegal character ' '"),
        "{err}"
    );
    let err = env.fails(&["restore", &p, "tree"], b"");
    assert!(err.contains("File exists"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_ferrix"))
        .args(["store", "--store", "redb://relative", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected an absolute directory"));
}

#[test]
fn verify_reports_lost_castore() {
    let env = Env::new();
    make_tree(&env.path("tree"), 7);
    let p = env.ok_lines(&["add", "tree"]).remove(0);
    assert_eq!(env.ok_lines(&["verify"]), Vec::<String>::new());
    // Lose every blob and directory; the path infos remain.
    fs::remove_file(env.path("store/castore.redb")).unwrap();
    fs::remove_file(env.path("store/castore.chunks")).unwrap();
    let out = env.run(&["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let report = lines(&out.stdout);
    assert_eq!(report.len(), 1, "{report:?}");
    assert!(
        report[0].starts_with(&format!("damaged: {p}: directory ")),
        "{report:?}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("checked 1 store paths: 1 damaged"));
}

/// kill -9 in the middle of a large add: nothing half-registered, the store
/// verifies clean, and the same add then succeeds.
#[test]
fn sigkill_during_add_leaves_no_damage() {
    let env = Env::new();
    let root = env.path("big");
    fs::create_dir(&root).unwrap();
    for i in 0..100 {
        file(
            &root.join(format!("f{i:03}")),
            &data(2 * 1024 * 1024, 1000 + i),
            i % 7 == 0,
        );
    }
    let (hash, _) =
        ferrix_formats::nar::dump_path_hashed(&root, ferrix_formats::HashAlgo::Sha256).unwrap();
    let ca = ferrix_formats::CAHash::new(ferrix_formats::CaMethod::Recursive, hash);
    let sd = ferrix_formats::StoreDir::default();
    let expected = sd.display(&sd.make_ca_path("big", &ca).unwrap());

    let mut child = env
        .cmd(&["add", "big"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let db = env.path("store/castore.chunks");
    let start = Instant::now();
    // Wait until a good part (but not all) of the data is in.
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("add finished ({status}) before it could be killed; make the tree bigger");
        }
        if fs::metadata(&db).map(|m| m.len()).unwrap_or(0) > 60 << 20 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "add made no progress"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );

    assert_eq!(
        env.ok_lines(&["list"]),
        Vec::<String>::new(),
        "a killed add must register nothing"
    );
    let out = env.run(&["verify"]);
    assert!(
        out.status.success(),
        "verify after kill: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        env.ok_lines(&["add", "big"]),
        std::slice::from_ref(&expected)
    );
    let out = env.run(&["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("checked 1 store paths: 0 damaged"));
    assert_eq!(env.ok_lines(&["list"]), [expected]);
}

/// A `ferrix store daemon` serving a redb store in `env`'s temp directory;
/// stopped with SIGTERM (then SIGKILL) when dropped.
struct Daemon {
    child: std::process::Child,
    url: String,
}

impl Daemon {
    fn start(env: &Env, backend_dir: &str) -> Daemon {
        let backend = format!("redb://{}", env.path(backend_dir).display());
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferrix"))
            .args(["store", "daemon", "--listen", "127.0.0.1:0", "--backend", &backend])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("daemon printed {line:?}"))
            .to_owned();
        Daemon { child, url }
    }

    /// SIGTERM, and the daemon must exit cleanly.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "daemon exited with {status}");
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "daemon did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every `ferrix store` command and `ferrix instantiate --store` work through
/// `ferrix store daemon` (`--store grpc+http://…`), with the same results as
/// C++ Nix; what they stored is in the daemon's backend afterwards.
#[test]
fn daemon_serves_every_store_command() {
    let mut env = Env::new();
    let daemon = Daemon::start(&env, "backend");
    env.url = daemon.url.clone();
    assert!(env.url.starts_with("grpc+http://127.0.0.1:"), "{}", env.url);

    let roots = make_roots(&env);
    let mut args = vec!["add"];
    args.extend(&roots);
    let ours = env.ok_lines(&args);
    let mut nix_args = vec!["--add"];
    nix_args.extend(&roots);
    assert_eq!(ours, lines(&nix_store(&nix_args, env.tmp.path())));
    for (root, path) in roots.iter().zip(&ours) {
        assert!(
            env.ok(&["dump", path]) == nix_store(&["--dump", root], env.tmp.path()),
            "dump of {root} through the daemon"
        );
    }
    let tree = &ours[0];
    assert_eq!(env.ok(&["cat", &format!("{tree}/sub/y")]), data(1000, 2));
    assert!(env.ok_lines(&["ls", tree]).contains(&"run.sh".to_owned()));
    let info = String::from_utf8(env.ok(&["info", tree])).unwrap();
    assert!(info.contains("NarHash: sha256:"), "{info}");
    let flat = env.ok_lines(&["add", "--flat", "plain.txt"]);
    assert_eq!(
        flat,
        lines(&nix_store(&["--add-fixed", "sha256", "plain.txt"], env.tmp.path()))
    );
    let nar = nix_store(&["--dump", "tree"], env.tmp.path());
    let out = env.run_in(&["import-nar", "--name", "tree"], &nar);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(lines(&out.stdout), ours[..1]);
    env.ok(&["restore", tree, "restored"]);
    assert!(
        nix_store(&["--dump", "restored"], env.tmp.path()) == nar,
        "restore through the daemon"
    );
    // Bad input through the daemon: a clear error, nothing registered.
    let err = env.fails(&["import-nar", "--name", "bad"], &nar[..nar.len() / 2]);
    assert!(err.contains("NAR"), "{err}");

    // The evaluator's store writes go through the daemon too.
    fs::write(
        env.path("x.nix"),
        "derivation { name = \"x\"; builder = \"/bin/sh\"; system = \"x86_64-linux\"; src = ./plain.txt; }",
    )
    .unwrap();
    let inst = Command::new(env!("CARGO_BIN_EXE_ferrix"))
        .args(["instantiate", "--store", &env.url, "x.nix"])
        .current_dir(env.tmp.path())
        .output()
        .unwrap();
    assert!(inst.status.success(), "{}", String::from_utf8_lossy(&inst.stderr));
    let nix_inst = Command::new("nix-instantiate").arg("x.nix").current_dir(env.tmp.path()).output().unwrap();
    assert_eq!(lines(&inst.stdout), lines(&nix_inst.stdout));

    let mut listed = env.ok_lines(&["list"]);
    assert!(listed.contains(&ours[1]), "plain.txt imported by add");
    assert!(env.run(&["verify"]).status.success());
    daemon.stop();

    // Everything is in the backend, readable without the daemon.
    env.url = format!("redb://{}", env.path("backend").display());
    listed.sort();
    let mut direct = env.ok_lines(&["list"]);
    direct.sort();
    assert_eq!(direct, listed);
    let out = env.run(&["verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// 32 client processes add and read through one daemon at once, without
/// errors, each getting C++ Nix's path and NAR.
#[test]
fn daemon_serves_32_concurrent_clients() {
    let mut env = Env::new();
    let daemon = Daemon::start(&env, "backend");
    env.url = daemon.url.clone();
    make_tree(&env.path("shared"), 7);
    let shared = env.ok_lines(&["add", "shared"]).remove(0);
    let shared_nar = nix_store(&["--dump", "shared"], env.tmp.path());
    for i in 0..32 {
        let d = env.path(&format!("c{i}"));
        fs::create_dir(&d).unwrap();
        file(&d.join("own"), &data(300_000 + i * 1000, 100 + i as u64), false);
        file(&d.join("common"), &data(200_000, 9), i % 2 == 0);
    }
    let env = &env;
    let results: Vec<(String, bool)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..32)
            .map(|i| {
                let shared = &shared;
                let shared_nar = &shared_nar;
                s.spawn(move || {
                    let name = format!("c{i}");
                    let added = env.ok_lines(&["add", &name]).remove(0);
                    let dumped = env.ok(&["dump", shared]);
                    (added, dumped == *shared_nar)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let names: Vec<String> = (0..32).map(|i| format!("c{i}")).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut nix_args = vec!["--add"];
    nix_args.extend(&name_refs);
    let expected = lines(&nix_store(&nix_args, env.tmp.path()));
    for (i, (added, dump_ok)) in results.into_iter().enumerate() {
        assert_eq!(added, expected[i], "client {i}");
        assert!(dump_ok, "client {i} read a different NAR");
    }
    assert_eq!(env.ok_lines(&["list"]).len(), 33);
    daemon.stop();
}

/// sha256 and length of a process's stdout, read as a stream (never held
/// whole in memory).
fn stdout_sha256(mut cmd: Command) -> (String, u64) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut h = ferrix_formats::Hasher::new(ferrix_formats::HashAlgo::Sha256);
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = std::io::Read::read(&mut out, &mut buf).unwrap();
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
    (h.finish().to_typed(ferrix_formats::hash::Encoding::Nix32), n)
}

/// Acceptance at scale: a tree of 10 000 files (every node kind) and a 1 GiB
/// file give C++ Nix's store paths (`--add`, `--add-fixed [--recursive]
/// sha256`) and NARs (`--dump`, compared by streaming hash).
#[test]
fn acceptance_10k_file_tree_and_1gib_file() {
    let env = Env::new();
    ferrix_store::testutil::make_wide_tree(&env.path("wide"), 10_000, 11);
    make_tree(&env.path("wide/kinds"), 12);
    ferrix_store::testutil::make_sparse_file(&env.path("huge.bin"), 1 << 30, 13);

    let nix = |args: &[&str]| lines(&nix_store(args, env.tmp.path()));
    let nix_paths: Vec<String> = [
        nix(&["--add", "wide", "huge.bin"]),
        nix(&["--add-fixed", "--recursive", "sha256", "wide"]),
        nix(&["--add-fixed", "sha256", "huge.bin"]),
    ]
    .concat();
    let ours: Vec<String> = [
        env.ok_lines(&["add", "wide", "huge.bin"]),
        env.ok_lines(&["add", "--flat", "huge.bin"]),
    ]
    .concat();
    assert_eq!(ours[0], nix_paths[0], "10 000-file tree: add");
    assert_eq!(ours[1], nix_paths[1], "1 GiB file: add");
    assert_eq!(ours[0], nix_paths[2], "10 000-file tree: add-fixed --recursive sha256");
    assert_eq!(ours[2], nix_paths[3], "1 GiB file: add-fixed sha256");

    for (path, src) in [(&ours[0], "wide"), (&ours[1], "huge.bin"), (&ours[2], "huge.bin")] {
        let mut c = env.cmd(&["dump", path]);
        c.stdin(Stdio::null());
        let ferrix = stdout_sha256(c);
        let mut n = Command::new("nix-store");
        n.args(["--dump", src]).current_dir(env.tmp.path());
        assert_eq!(ferrix, stdout_sha256(n), "dump of {src}");
    }
    // Nix's copies of the 1 GiB file are not needed any more.
    for p in [&nix_paths[1], &nix_paths[3]] {
        let _ = Command::new("nix-store").args(["--delete", p]).output();
    }
}

/// `--progress` reports on stderr (bytes and bytes/s) and leaves stdout
/// exactly the store paths, for add and import-nar.
#[test]
fn progress_goes_to_stderr_only() {
    let env = Env::new();
    make_tree(&env.path("tree"), 4);
    let expected = lines(&nix_store(&["--add", "tree"], env.tmp.path()));
    let out = env.run(&["--progress", "add", "tree"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(lines(&out.stdout), expected);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("adding ") && err.contains("MiB") && err.contains("/s, "), "{err}");
    let nar = nix_store(&["--dump", "tree"], env.tmp.path());
    let out = env.run_in(&["import-nar", "--progress", "--name", "tree"], &nar);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(lines(&out.stdout), expected);
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("importing "));
    // Without --progress and without a terminal: nothing on stderr.
    let out = env.run(&["add", "tree"]);
    assert_eq!((lines(&out.stdout), out.stderr.len()), (expected, 0));
}

/// Two processes adding to the same redb store at once: each either
/// succeeds with C++ Nix's path or fails with a clear "store is locked";
/// nothing is lost or damaged, and a later run adds what was refused.
#[test]
fn two_processes_on_one_redb_store() {
    let env = Env::new();
    for t in ["t0", "t1"] {
        make_tree(&env.path(t), if t == "t0" { 20 } else { 21 });
    }
    let expected = lines(&nix_store(&["--add", "t0", "t1"], env.tmp.path()));
    let children: Vec<_> = ["t0", "t1"]
        .iter()
        .map(|t| env.cmd(&["add", t]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
        .collect();
    let outs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for (i, out) in outs.iter().enumerate() {
        if out.status.success() {
            assert_eq!(lines(&out.stdout), expected[i..=i]);
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("store is locked"), "process {i}: {err}");
            assert!(out.stdout.is_empty());
        }
    }
    assert!(outs.iter().any(|o| o.status.success()), "one of them must get the store");
    assert!(env.run(&["verify"]).status.success());
    // Whatever was refused goes in now; both are then registered.
    assert_eq!(env.ok_lines(&["add", "t0", "t1"]), expected);
    let mut listed = env.ok_lines(&["list"]);
    listed.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(listed, want);
}

fn dir_size(d: &Path) -> u64 {
    fs::read_dir(d).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

/// Deduplication: a second tree sharing all but two of its 40 files with the
/// first grows the store by little more than the two unshared files.
#[test]
fn dedup_two_trees_sharing_most_files() {
    let env = Env::new();
    let (a, b) = (env.path("a"), env.path("b"));
    fs::create_dir_all(a.join("sub")).unwrap();
    fs::create_dir_all(b.join("sub")).unwrap();
    for i in 0..40u64 {
        let bytes = data(256 * 1024 + i as usize, 500 + i);
        file(&a.join(format!("sub/f{i}")), &bytes, false);
        if i >= 2 {
            file(&b.join(format!("sub/f{i}")), &bytes, false);
        }
    }
    // b's own f0 and f1 (a's f0 and f1 have the same sizes).
    let unshared: u64 = 2 * 256 * 1024 + 1;
    file(&b.join("sub/f0"), &data(256 * 1024, 900), false);
    file(&b.join("sub/f1"), &data(256 * 1024 + 1, 901), false);
    let store = env.path("store");
    env.ok(&["add", "a"]);
    let after_a = dir_size(&store);
    let shared = dir_size(&a.join("sub"));
    let chunks_a = fs::metadata(store.join("castore.chunks")).unwrap().len();
    let path_b = env.ok_lines(&["add", "b"]);
    assert_eq!(path_b, lines(&nix_store(&["--add", "b"], env.tmp.path())));
    let growth = dir_size(&store) - after_a;
    let chunk_growth = fs::metadata(store.join("castore.chunks")).unwrap().len() - chunks_a;
    eprintln!(
        "dedup: tree a {} bytes of files → store {after_a} bytes; tree b shares {} bytes, \
         {unshared} unshared → store grew {growth} bytes (chunk file {chunk_growth})",
        shared,
        shared - unshared,
    );
    // Only the unshared files' bytes are new; full-page chunks are written
    // with O_DIRECT at page-aligned offsets, so each of b's two new chunks may
    // be preceded by up to a page of unreferenced padding.
    assert!(
        (unshared..unshared + 2 * 4096).contains(&chunk_growth),
        "chunk file grew {chunk_growth} bytes for {unshared} unshared bytes"
    );
    assert!(growth < unshared + (1 << 20), "store grew {growth} bytes for {unshared} unshared bytes");
}
