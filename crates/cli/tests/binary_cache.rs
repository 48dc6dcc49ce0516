//! The binary cache end to end: `ferrix store serve` as a real server on
//! loopback with real C++ Nix 2.8 as the client (`nix copy --from/--to
//! http://…`, netrc credentials, signature checking), and `ferrix store copy`
//! against caches written by `nix copy --to file://…`. Each test builds a
//! small closure of real store paths with references (tiny derivations built
//! by `nix-build` into a chroot store under the test's temp directory, so the
//! system store is not touched). Without C++ Nix these tests fail, never skip.

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use ferrix_formats::hash::Encoding;
use ferrix_formats::{HashAlgo, Hasher, NixHash, nixbase32};

const FERRIX: &str = env!("CARGO_BIN_EXE_ferrix");

struct Env {
    tmp: tempfile::TempDir,
}

/// `nix copy --from FROM --store DST TOP` with signatures required and
/// `trusted` as the only trusted key.
fn signed_copy_args<'a>(from: &'a str, dst: &'a str, trusted: &'a str, top: &'a str) -> [&'a str; 12] {
    ["copy", "--from", from, "--store", dst, "--option", "require-sigs", "true", "--option", "trusted-public-keys", trusted, top]
}

/// `nix-store --verify-path` of every path of `closure` in the store `dst`.
fn verify_paths(env: &Env, dst: &str, closure: &[String]) {
    let mut args = vec!["--store", dst, "--verify-path"];
    args.extend(closure.iter().map(String::as_str));
    env.nix_ok("nix-store", &args);
}

impl Env {
    fn new() -> Env {
        Env {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn p(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }

    /// A ferrix store URL in the temp directory.
    fn store(&self, rel: &str) -> String {
        format!("redb://{}", self.p(rel))
    }

    /// Runs C++ Nix (`prog` is nix, nix-store, nix-build…) with its caches
    /// in the temp directory (so no narinfo is remembered across tests).
    fn nix(&self, prog: &str, args: &[&str]) -> Output {
        Command::new(prog)
            .args(args)
            .args(["--option", "narinfo-cache-negative-ttl", "0"])
            .args(["--option", "narinfo-cache-positive-ttl", "0"])
            .env("XDG_CACHE_HOME", self.path("xdg-cache"))
            .current_dir(self.tmp.path())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "{prog} (C++ Nix 2.8, the client and oracle of these tests) could not be run: {e}. \
                     Install it (Debian: apt-get install nix-bin) and make sure it is on PATH."
                )
            })
    }

    fn nix_ok(&self, prog: &str, args: &[&str]) -> Vec<u8> {
        let out = self.nix(prog, args);
        assert!(
            out.status.success(),
            "{prog} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn ferrix(&self, store: &str, args: &[&str]) -> Output {
        Command::new(FERRIX)
            .args(["store", "--store", store])
            .args(args)
            .current_dir(self.tmp.path())
            .output()
            .expect("running ferrix")
    }

    fn ferrix_ok(&self, store: &str, args: &[&str]) -> Vec<u8> {
        let out = self.ferrix(store, args);
        assert!(
            out.status.success(),
            "ferrix store {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Builds three derivations (c refers to a and b, b to a; a is a
    /// directory with a file, an executable and a symlink) into the chroot
    /// store `root`. Returns the closure of c, sorted, c last.
    fn build_closure(&self, root: &str, tag: &str) -> Vec<String> {
        let expr = format!(
            r#"let
  mk = name: script: derivation {{
    inherit name; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" script ];
  }};
  a = mk "bc-{tag}-a" "/bin/mkdir $out; echo hello > $out/f; /bin/ln -s f $out/l; echo '#!/bin/sh' > $out/x; /bin/chmod +x $out/x";
  b = mk "bc-{tag}-b" "echo ${{a}}/f > $out";
in mk "bc-{tag}-c" "echo ${{a}} ${{b}} > $out"
"#
        );
        let file = self.path(&format!("{tag}.nix"));
        fs::write(&file, expr).unwrap();
        let out = self.nix_ok(
            "nix-build",
            &[
                "--store",
                root,
                "--option",
                "sandbox",
                "false",
                "--option",
                "extra-sandbox-paths",
                "/bin /lib /lib64 /usr",
                "--no-out-link",
                file.to_str().unwrap(),
            ],
        );
        let top = String::from_utf8(out).unwrap().trim().to_owned();
        let closure = lines(&self.nix_ok("nix-store", &["--store", root, "-qR", &top]));
        assert_eq!(closure.len(), 3, "{closure:?}");
        let mut closure: Vec<String> = closure.into_iter().filter(|p| *p != top).collect();
        closure.sort();
        closure.push(top);
        closure
    }

    /// `nix-store --generate-binary-cache-key`; returns (secret file, public key text).
    fn keys(&self, name: &str) -> (String, String) {
        let (sk, pk) = (self.p(&format!("{name}.sk")), self.p(&format!("{name}.pk")));
        self.nix_ok(
            "nix-store",
            &["--generate-binary-cache-key", name, &sk, &pk],
        );
        let public = fs::read_to_string(&pk).unwrap().trim().to_owned();
        (sk, public)
    }

    /// The NAR of `path` in a Nix store (or binary cache) `store`.
    fn nix_dump(&self, store: &str, path: &str) -> Vec<u8> {
        self.nix_ok("nix", &["store", "dump-path", "--store", store, path])
    }
}

fn lines(b: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(b)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A running `ferrix store serve`.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(env: &Env, store: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(FERRIX)
            .args([
                "store",
                "--store",
                store,
                "serve",
                "--listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .current_dir(env.tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting ferrix store serve");
        let mut out = child.stdout.take().unwrap();
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while out.read(&mut b).unwrap_or(0) == 1 && b[0] != b'\n' {
            line.push(b[0]);
        }
        let line = String::from_utf8(line).unwrap();
        let port = line
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("server did not say where it listens: {line:?}"));
        Server { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Peak resident memory of the server process so far, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    /// Stops the server (so the store can be opened by another process).
    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection. `declared` overrides the
/// Content-Length (to send a truncated body). Returns the status and body,
/// or `None` if the server closed the connection without answering.
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    declared: Option<usize>,
) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        declared.unwrap_or(body.len())
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let _ = s.write_all(req.as_bytes());
    let _ = s.write_all(body);
    if declared.is_some_and(|d| d > body.len()) {
        // End a truncated body (hyper may then drop the connection unanswered).
        let _ = s.shutdown(Shutdown::Write);
    }
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let end = resp.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&resp[..end]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, resp[end + 4..].to_vec()))
}

fn status(r: Option<(u16, Vec<u8>)>) -> u16 {
    r.map(|(s, _)| s).unwrap_or(0)
}

fn sha256_nix32(data: &[u8]) -> String {
    let mut h = Hasher::new(HashAlgo::Sha256);
    h.update(data);
    h.finish().encode(Encoding::Nix32)
}

fn hash_part(path: &str) -> &str {
    &path["/nix/store/".len()..][..32]
}

/// `nix path-info --json` fields that must survive a trip through a cache.
fn path_infos(env: &Env, store: &str, path: &str) -> Vec<String> {
    let json = String::from_utf8(env.nix_ok(
        "nix",
        &["path-info", "--json", "-r", "--store", store, path],
    ))
    .unwrap();
    // One entry per path; keep the fields, not their order in the JSON.
    let mut out: Vec<String> = json
        .split("{\"path\":")
        .skip(1)
        .map(|entry| {
            let field = |k: &str| {
                entry
                    .split(&format!("\"{k}\":"))
                    .nth(1)
                    .map(|v| v.split([',', '}']).next().unwrap().to_owned())
                    .unwrap_or_default()
            };
            let refs = entry
                .split("\"references\":[")
                .nth(1)
                .map(|v| v.split(']').next().unwrap().to_owned())
                .unwrap_or_default();
            format!(
                "{} {} {} [{refs}] {}",
                entry.split(',').next().unwrap(),
                field("narHash"),
                field("narSize"),
                field("deriver")
            )
        })
        .collect();
    out.sort();
    out
}

/// Fills a ferrix store with a Nix-built closure through a `nix copy --to
/// file://` cache. Returns the closure.
fn ferrix_store_with_closure(env: &Env, store: &str, tag: &str) -> Vec<String> {
    let root = env.p("root");
    let closure = env.build_closure(&root, tag);
    let cache = format!("file://{}", env.p("nix-cache"));
    env.nix_ok(
        "nix",
        &[
            "copy",
            "--store",
            &root,
            "--to",
            &cache,
            closure.last().unwrap(),
        ],
    );
    env.ferrix_ok(
        store,
        &[
            "copy",
            "--from",
            &cache,
            "--closure",
            closure.last().unwrap(),
        ],
    );
    closure
}

#[test]
fn nix_copies_a_signed_closure_from_ferrix_serve() {
    let env = Env::new();
    let store = env.store("ferrix");
    let closure = ferrix_store_with_closure(&env, &store, "from");
    let top = closure.last().unwrap();
    let (sk, pk) = env.keys("ferrix-test-1");
    let (_, other_pk) = env.keys("someone-else");
    let server = Server::start(&env, &store, &["--sign-key", &sk, "--priority", "30"]);
    let url = server.url();

    let info = http(server.port, "GET", "/nix-cache-info", &[], b"", None).unwrap();
    assert_eq!(info.0, 200);
    assert_eq!(
        String::from_utf8(info.1).unwrap(),
        "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n"
    );

    // Signature checking is on: a store trusting another key refuses.
    let dst = env.p("dst-untrusted");
    let out = env.nix("nix", &signed_copy_args(&url, &dst, &other_pk, top));
    assert!(!out.status.success(), "unsigned copy must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lacks a valid signature"), "{err}");

    // Trusting ferrix's key, the closure copies and verifies.
    let dst = env.p("dst");
    env.nix_ok("nix", &signed_copy_args(&url, &dst, &pk, top));
    verify_paths(&env, &dst, &closure);
    let mut copied = lines(&env.nix_ok("nix-store", &["--store", &dst, "-qR", top]));
    copied.sort();
    let mut want = closure.clone();
    want.sort();
    assert_eq!(copied, want);
    assert_eq!(
        path_infos(&env, &dst, top),
        path_infos(&env, &env.p("root"), top)
    );
}

#[test]
fn nix_uploads_with_netrc_and_ferrix_serves_it_back() {
    let env = Env::new();
    let root = env.p("root");
    let closure = env.build_closure(&root, "up");
    let top = closure.last().unwrap();
    fs::write(env.path("upload.auth"), "alice:correct-horse\n").unwrap();
    fs::write(
        env.path("netrc"),
        "machine 127.0.0.1\nlogin alice\npassword correct-horse\n",
    )
    .unwrap();
    fs::write(
        env.path("wrong-netrc"),
        "machine 127.0.0.1\nlogin alice\npassword battery-staple\n",
    )
    .unwrap();
    let store = env.store("ferrix");
    let server = Server::start(&env, &store, &["--upload-auth", &env.p("upload.auth")]);
    let url = server.url();

    // Without credentials, or with a wrong password: 401, nothing stored.
    for netrc in [None, Some(env.p("wrong-netrc"))] {
        let mut args = vec!["copy", "--store", root.as_str(), "--to", url.as_str()];
        if let Some(n) = &netrc {
            args.extend(["--option", "netrc-file", n.as_str()]);
        }
        args.push(top);
        let out = env.nix("nix", &args);
        assert!(!out.status.success(), "upload with {netrc:?} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("401"), "{err}");
    }
    let s2 = server;
    s2.stop();
    assert_eq!(env.ferrix_ok(&store, &["list"]), b"");

    // With the right netrc entry the closure uploads.
    let server = Server::start(&env, &store, &["--upload-auth", &env.p("upload.auth")]);
    let url = server.url();
    env.nix_ok(
        "nix",
        &[
            "copy",
            "--store",
            &root,
            "--to",
            &url,
            "--option",
            "netrc-file",
            &env.p("netrc"),
            top,
        ],
    );
    server.stop();
    let out = env.ferrix(&store, &["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("checked 3 store paths: 0 damaged"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut listed = lines(&env.ferrix_ok(&store, &["list"]));
    listed.sort();
    let mut want = closure.clone();
    want.sort();
    assert_eq!(listed, want);

    // Served back (to public readers): the same NARs, the same metadata.
    let server = Server::start(&env, &store, &[]);
    let url = server.url();
    for p in &closure {
        assert_eq!(env.nix_dump(&url, p), env.nix_dump(&root, p), "{p}");
        assert_eq!(env.ferrix_nar(&server, p), env.nix_dump(&root, p), "{p}");
    }
    assert_eq!(path_infos(&env, &url, top), path_infos(&env, &root, top));
}

impl Env {
    /// The NAR ferrix serves for `path`, fetched by hand through its narinfo.
    fn ferrix_nar(&self, server: &Server, path: &str) -> Vec<u8> {
        let (st, ni) = http(
            server.port,
            "GET",
            &format!("/{}.narinfo", hash_part(path)),
            &[],
            b"",
            None,
        )
        .unwrap();
        assert_eq!(st, 200);
        let ni = String::from_utf8(ni).unwrap();
        let url = ni
            .lines()
            .find_map(|l| l.strip_prefix("URL: "))
            .unwrap()
            .to_owned();
        let (st, nar) = http(server.port, "GET", &format!("/{url}"), &[], b"", None).unwrap();
        assert_eq!(st, 200);
        nar
    }
}

#[test]
fn ferrix_copies_from_a_nix_file_cache_and_back() {
    let env = Env::new();
    let root = env.p("root");
    let closure = env.build_closure(&root, "file");
    let top = closure.last().unwrap();
    let (sk, pk) = env.keys("nix-side");
    let mut args = vec!["store", "sign", "--store", root.as_str(), "-k", sk.as_str()];
    args.extend(closure.iter().map(String::as_str));
    env.nix_ok("nix", &args);
    let cache = format!("file://{}", env.p("nix-cache"));
    env.nix_ok("nix", &["copy", "--store", &root, "--to", &cache, top]);
    assert!(
        fs::read_dir(env.path("nix-cache/nar")).unwrap().all(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".nar.xz")),
        "nix copy --to file:// writes xz NARs"
    );

    let store = env.store("ferrix");
    // A key nobody signed with is refused; nothing is stored.
    let (_, other) = env.keys("other");
    let out = env.ferrix(
        &store,
        &[
            "copy",
            "--from",
            &cache,
            "--closure",
            "--trusted-key",
            &other,
            top,
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not signed by any trusted key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.ferrix_ok(&store, &["list"]), b"");

    let out = env.ferrix_ok(
        &store,
        &[
            "copy",
            "--from",
            &cache,
            "--closure",
            "--trusted-key",
            &pk,
            top,
        ],
    );
    assert_eq!(lines(&out).len(), 3);
    for p in &closure {
        assert_eq!(
            env.ferrix_ok(&store, &["dump", p]),
            env.nix_dump(&root, p),
            "{p}"
        );
    }
    env.ferrix_ok(&store, &["verify"]);
    // Copying again finds everything present.
    let again = env.ferrix(&store, &["copy", "--from", &cache, "--closure", top]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("copied 0 paths, 3 already present"));

    // And back out: ferrix writes a file:// cache C++ Nix reads, with
    // ferrix's signature.
    let (fsk, fpk) = env.keys("ferrix-side");
    let out_cache = format!("file://{}", env.p("ferrix-cache"));
    env.ferrix_ok(
        &store,
        &[
            "copy",
            "--to",
            &out_cache,
            "--closure",
            "--sign-key",
            &fsk,
            top,
        ],
    );
    let dst = env.p("dst");
    env.nix_ok("nix", &signed_copy_args(&out_cache, &dst, &fpk, top));
    verify_paths(&env, &dst, &closure);
    assert_eq!(path_infos(&env, &dst, top), path_infos(&env, &root, top));
}

#[test]
fn ferrix_copies_from_and_to_a_ferrix_server() {
    let env = Env::new();
    let src = env.store("src");
    let closure = ferrix_store_with_closure(&env, &src, "http");
    let top = closure.last().unwrap();
    let (sk, pk) = env.keys("srv");
    let server = Server::start(&env, &src, &["--sign-key", &sk]);
    let dst = env.store("dst");
    env.ferrix_ok(
        &dst,
        &[
            "copy",
            "--from",
            &server.url(),
            "--closure",
            "--trusted-key",
            &pk,
            top,
        ],
    );
    for p in &closure {
        assert_eq!(
            env.ferrix_ok(&dst, &["dump", p]),
            env.nix_dump(&env.p("root"), p)
        );
    }
    server.stop();

    // ferrix store copy --to http:// with credentials.
    fs::write(env.path("auth"), "bob:pw\n").unwrap();
    let up = env.store("up");
    let server = Server::start(&env, &up, &["--upload-auth", &env.p("auth")]);
    let out = env.ferrix(&dst, &["copy", "--to", &server.url(), "--closure", top]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HTTP status 401"), "{err}");
    env.ferrix_ok(
        &dst,
        &[
            "copy",
            "--to",
            &server.url(),
            "--closure",
            "--auth-file",
            &env.p("auth"),
            top,
        ],
    );
    server.stop();
    env.ferrix_ok(&up, &["verify"]);
    assert_eq!(lines(&env.ferrix_ok(&up, &["list"])).len(), 3);
}

#[test]
fn bad_uploads_get_4xx_and_leave_the_store_unchanged() {
    let env = Env::new();
    // A real NAR to upload: a small tree dumped by nix-store.
    let tree = env.path("tree");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("hello"), "hello, cache\n").unwrap();
    let nar = env.nix_ok("nix-store", &["--dump", tree.to_str().unwrap()]);
    let nar_hash = sha256_nix32(&nar);
    let path = String::from_utf8(env.nix_ok(
        "nix-store",
        &["--store", &env.p("root"), "--add", tree.to_str().unwrap()],
    ))
    .unwrap()
    .trim()
    .to_owned();
    let narinfo = |nar_hash: &str, nar_size: usize, refs: &str| {
        format!(
            "StorePath: {path}\nURL: nar/{nar_hash}.nar\nCompression: none\nNarHash: sha256:{nar_hash}\nNarSize: {nar_size}\nReferences: {refs}\nCA: fixed:r:sha256:{nar_hash}\n"
        )
    };

    let store = env.store("ferrix");
    fs::write(env.path("auth"), "u:p\n").unwrap();
    let auth = ("Authorization", "Basic dTpw"); // u:p
    let server = Server::start(&env, &store, &["--upload-auth", &env.p("auth")]);
    let port = server.port;
    let ni_url = format!("/{}.narinfo", hash_part(&path));
    let nar_url = format!("/nar/{nar_hash}.nar");

    // Unknown hashes.
    let unknown = nixbase32::encode(&[7u8; 20]);
    assert_eq!(
        status(http(
            port,
            "GET",
            &format!("/{unknown}.narinfo"),
            &[],
            b"",
            None
        )),
        404
    );
    assert_eq!(
        status(http(
            port,
            "HEAD",
            &format!("/{unknown}.narinfo"),
            &[],
            b"",
            None
        )),
        404
    );
    assert_eq!(status(http(port, "GET", &nar_url, &[], b"", None)), 404);
    assert_eq!(
        status(http(
            port,
            "GET",
            &format!("/nar/{}.nar", nixbase32::encode(&[1u8; 32])),
            &[],
            b"",
            None
        )),
        404
    );
    // Paths that try to leave the cache.
    for p in [
        "/../etc/passwd",
        "/nar/../../etc/passwd",
        "/nar/..%2F..%2Fetc%2Fpasswd",
        "/%2e%2e/x.narinfo",
    ] {
        let st = status(http(port, "GET", p, &[], b"", None));
        assert!((400..500).contains(&st), "GET {p}: {st}");
        let st = status(http(port, "PUT", p, &[auth], &nar, None));
        assert!((400..500).contains(&st), "PUT {p}: {st}");
    }
    // No credentials: 401.
    assert_eq!(status(http(port, "PUT", &nar_url, &[], &nar, None)), 401);
    // A narinfo whose NAR was never uploaded.
    let good = narinfo(&nar_hash, nar.len(), "");
    assert_eq!(
        status(http(port, "PUT", &ni_url, &[auth], good.as_bytes(), None)),
        400
    );
    // A truncated upload: the server never sees the whole NAR.
    let st = status(http(
        port,
        "PUT",
        &nar_url,
        &[auth],
        &nar[..nar.len() / 2],
        Some(nar.len()),
    ));
    assert!(
        st == 0 || (400..500).contains(&st),
        "truncated upload: {st}"
    );
    assert_eq!(
        status(http(port, "PUT", &ni_url, &[auth], good.as_bytes(), None)),
        400
    );
    // A NAR cut short but framed as complete.
    let cut = &nar[..nar.len() - 8];
    let cut_url = format!("/nar/{}.nar", sha256_nix32(cut));
    assert_eq!(status(http(port, "PUT", &cut_url, &[auth], cut, None)), 400);
    // A file whose hash is not the one in its name.
    let wrong_name = format!("/nar/{}.nar", nixbase32::encode(&[3u8; 32]));
    assert_eq!(
        status(http(port, "PUT", &wrong_name, &[auth], &nar, None)),
        400
    );
    // The right NAR, then narinfos that do not match it.
    assert_eq!(
        status(http(port, "PUT", &nar_url, &[auth], &nar, None)),
        200
    );
    let other_hash = sha256_nix32(b"something else");
    let mismatched = narinfo(&nar_hash, nar.len(), "").replace(
        &format!("NarHash: sha256:{nar_hash}"),
        &format!("NarHash: sha256:{other_hash}"),
    );
    assert_eq!(
        status(http(
            port,
            "PUT",
            &ni_url,
            &[auth],
            mismatched.as_bytes(),
            None
        )),
        400
    );
    let wrong_size = narinfo(&nar_hash, nar.len() + 8, "");
    assert_eq!(
        status(http(port, "PUT", &nar_url, &[auth], &nar, None)),
        200
    );
    assert_eq!(
        status(http(
            port,
            "PUT",
            &ni_url,
            &[auth],
            wrong_size.as_bytes(),
            None
        )),
        400
    );
    // Malformed narinfos.
    assert_eq!(
        status(http(port, "PUT", &nar_url, &[auth], &nar, None)),
        200
    );
    for text in [
        "garbage".to_owned(),
        good.replace("NarSize: ", "NarSize: x"),
        good.replace("StorePath: /nix/store/", "StorePath: /tmp/"),
        good.replace(
            &format!("CA: fixed:r:sha256:{nar_hash}"),
            &format!("CA: fixed:r:sha256:{other_hash}"),
        ),
    ] {
        assert_eq!(
            status(http(port, "PUT", &ni_url, &[auth], text.as_bytes(), None)),
            400,
            "{text}"
        );
    }
    // A narinfo under another path's name.
    let elsewhere = format!("/{unknown}.narinfo");
    assert_eq!(
        status(http(
            port,
            "PUT",
            &elsewhere,
            &[auth],
            good.as_bytes(),
            None
        )),
        400
    );
    // A reference the store does not have.
    let dangling = format!("{}-missing", nixbase32::encode(&[9u8; 20]));
    let with_ref = narinfo(&nar_hash, nar.len(), &dangling);
    assert_eq!(
        status(http(
            port,
            "PUT",
            &ni_url,
            &[auth],
            with_ref.as_bytes(),
            None
        )),
        409
    );
    server.stop();
    assert_eq!(env.ferrix_ok(&store, &["list"]), b"", "nothing registered");
    env.ferrix_ok(&store, &["verify"]);

    // Control: the same requests, done right, register the path.
    let server = Server::start(&env, &store, &["--upload-auth", &env.p("auth")]);
    let port = server.port;
    assert_eq!(
        status(http(port, "PUT", &nar_url, &[auth], &nar, None)),
        200
    );
    assert_eq!(
        status(http(port, "PUT", &ni_url, &[auth], good.as_bytes(), None)),
        200
    );
    let (st, served) = http(port, "GET", &nar_url, &[], b"", None).unwrap();
    assert_eq!((st, served), (200, nar.clone()));
    // A registered path is never replaced by other contents.
    let mut other = tree.clone();
    other.set_file_name("tree2");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("hello"), "other contents\n").unwrap();
    let nar2 = env.nix_ok("nix-store", &["--dump", other.to_str().unwrap()]);
    let nar2_hash = sha256_nix32(&nar2);
    let nar2_url = format!("/nar/{nar2_hash}.nar");
    assert_eq!(
        status(http(port, "PUT", &nar2_url, &[auth], &nar2, None)),
        200
    );
    let replace = format!(
        "StorePath: {path}\nURL: nar/{nar2_hash}.nar\nCompression: none\nNarHash: sha256:{nar2_hash}\nNarSize: {}\nReferences: \n",
        nar2.len()
    );
    assert_eq!(
        status(http(
            port,
            "PUT",
            &ni_url,
            &[auth],
            replace.as_bytes(),
            None
        )),
        409
    );
    let (st, served) = http(port, "GET", &nar_url, &[], b"", None).unwrap();
    assert_eq!((st, served), (200, nar.clone()));
    server.stop();
    assert_eq!(lines(&env.ferrix_ok(&store, &["list"])), vec![path.clone()]);
    env.ferrix_ok(&store, &["verify"]);
}

#[test]
fn load_32_clients_fetch_100_mib_of_nars() {
    const CLIENTS: usize = 32;
    const SIZE: usize = 100 * 1024 * 1024 / CLIENTS;
    let env = Env::new();
    let store = env.store("ferrix");
    let mut files = Vec::new();
    for i in 0..CLIENTS {
        let f = env.path(&format!("blob-{i}"));
        let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut data = Vec::with_capacity(SIZE);
        while data.len() < SIZE {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(&x.to_le_bytes());
        }
        data.truncate(SIZE);
        fs::write(&f, data).unwrap();
        files.push(f.display().to_string());
    }
    let mut args = vec!["add"];
    args.extend(files.iter().map(String::as_str));
    let paths = lines(&env.ferrix_ok(&store, &args));
    assert_eq!(paths.len(), CLIENTS);
    for f in &files {
        fs::remove_file(f).unwrap();
    }

    let server = Server::start(&env, &store, &[]);
    let before = server.peak_rss_kib();
    let port = server.port;
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = paths
            .iter()
            .map(|p| {
                s.spawn(move || {
                    let (st, ni) = http(
                        port,
                        "GET",
                        &format!("/{}.narinfo", hash_part(p)),
                        &[],
                        b"",
                        None,
                    )
                    .expect("narinfo answer");
                    assert_eq!(st, 200);
                    let ni = String::from_utf8(ni).unwrap();
                    let field = |k: &str| {
                        ni.lines()
                            .find_map(|l| l.strip_prefix(k))
                            .unwrap()
                            .to_owned()
                    };
                    let (st, nar) =
                        http(port, "GET", &format!("/{}", field("URL: ")), &[], b"", None)
                            .expect("NAR answer");
                    assert_eq!(st, 200);
                    let want = NixHash::parse_prefixed(&field("NarHash: ")).unwrap();
                    assert_eq!(sha256_nix32(&nar), want.encode(Encoding::Nix32), "{p}");
                    assert_eq!(nar.len().to_string(), field("NarSize: "));
                    nar.len() as u64
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert!(total >= 100 * 1024 * 1024, "{total}");
    let peak = server.peak_rss_kib();
    eprintln!(
        "load: {CLIENTS} clients fetched {} MiB; server peak RSS {} MiB (idle {} MiB)",
        total >> 20,
        peak / 1024,
        before / 1024
    );
    // Bounded: the growth is the redb page cache filling with the chunks
    // read (at most redb's cache size) plus a few MiB per download in
    // flight (at most 16 NARs are rendered at once); a server that copied
    // NARs around would grow by multiples of what it served.
    let growth = peak.saturating_sub(before) * 1024;
    assert!(
        growth < 2 * total,
        "server memory grew by {growth} bytes while serving {total} bytes"
    );
}

#[test]
fn read_auth_guards_reads_and_zstd_uploads_work() {
    let env = Env::new();
    let root = env.p("root");
    let closure = env.build_closure(&root, "ra");
    let top = closure.last().unwrap();
    fs::write(env.path("writer.auth"), "writer:w-pass\n").unwrap();
    fs::write(env.path("reader.auth"), "reader:r-pass\n").unwrap();
    let netrc = |name: &str, user: &str, pass: &str| {
        fs::write(
            env.path(name),
            format!("machine 127.0.0.1\nlogin {user}\npassword {pass}\n"),
        )
        .unwrap();
        env.p(name)
    };
    let writer = netrc("writer.netrc", "writer", "w-pass");
    let reader = netrc("reader.netrc", "reader", "r-pass");
    let store = env.store("ferrix");
    let server = Server::start(
        &env,
        &store,
        &[
            "--upload-auth",
            &env.p("writer.auth"),
            "--read-auth",
            &env.p("reader.auth"),
        ],
    );
    let url = server.url();
    // Nix uploads zstd-compressed NARs when asked to.
    env.nix_ok(
        "nix",
        &[
            "copy",
            "--store",
            &root,
            "--to",
            &format!("{url}?compression=zstd"),
            "--option",
            "netrc-file",
            &writer,
            top,
        ],
    );
    // Reads need credentials now.
    assert_eq!(
        status(http(server.port, "GET", "/nix-cache-info", &[], b"", None)),
        401
    );
    let narinfo = format!("/{}.narinfo", hash_part(top));
    assert_eq!(
        status(http(server.port, "GET", &narinfo, &[], b"", None)),
        401
    );
    // The reader's credentials do not allow uploads.
    let reader_auth = ("Authorization", "Basic cmVhZGVyOnItcGFzcw=="); // reader:r-pass
    assert_eq!(
        status(http(
            server.port,
            "GET",
            &narinfo,
            &[reader_auth],
            b"",
            None
        )),
        200
    );
    assert_eq!(
        status(http(
            server.port,
            "PUT",
            &narinfo,
            &[reader_auth],
            b"x",
            None
        )),
        401
    );
    let out = env.nix(
        "nix",
        &[
            "copy",
            "--from",
            &url,
            "--store",
            &env.p("dst0"),
            "--option",
            "require-sigs",
            "false",
            top,
        ],
    );
    assert!(!out.status.success());
    let dst = env.p("dst");
    env.nix_ok(
        "nix",
        &[
            "copy",
            "--from",
            &url,
            "--store",
            &dst,
            "--option",
            "require-sigs",
            "false",
            "--option",
            "netrc-file",
            &reader,
            top,
        ],
    );
    verify_paths(&env, &dst, &closure);
    server.stop();
    env.ferrix_ok(&store, &["verify"]);
}
