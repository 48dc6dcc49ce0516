//! The server in-process over a `memory://` store, with ureq as the client:
//! NARs served plain and compressed on the fly decode to the same bytes,
//! and a ferrix-to-ferrix copy through the server and through a `file://`
//! cache gives the same path infos. (The tests with C++ Nix as the client
//! are in `crates/cli/tests/binary_cache.rs`.)

use std::fs;
use std::io::Read;

use ferrix_binary_cache::compression::Compression;
use ferrix_binary_cache::copy::{FromOptions, ToOptions, copy_from, copy_to};
use ferrix_binary_cache::remote::Remote;
use ferrix_binary_cache::server::{self, Options};
use ferrix_formats::SecretKey;
use ferrix_store::import::{AddOptions, add_path};
use ferrix_store::nar::write_nar;
use ferrix_store::{Store, open_store};

fn store_with_tree() -> (Store, ferrix_store::PathInfo, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    fs::create_dir_all(tree.join("sub")).unwrap();
    fs::write(tree.join("a"), "alpha\n").unwrap();
    fs::write(tree.join("sub/big"), vec![42u8; 3 << 20]).unwrap();
    std::os::unix::fs::symlink("a", tree.join("link")).unwrap();
    let store = open_store("memory://").unwrap();
    let info = add_path(&store, &tree, &AddOptions::default(), &mut |_| {}).unwrap();
    (store, info, tmp)
}

/// Serves `store` on a free loopback port from a background runtime.
fn spawn(store: Store, opts: Options) -> (String, tokio::sync::oneshot::Sender<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(l.local_addr().unwrap()).unwrap();
            server::serve(l, store, opts, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
    });
    (format!("http://{}", addr_rx.recv().unwrap()), tx)
}

#[test]
fn nars_decode_to_the_same_bytes_in_every_compression() {
    let (store, info, _tmp) = store_with_tree();
    let want = write_nar(&*store.blobs, &*store.directories, &info.node, Vec::new()).unwrap();
    let (url, _stop) = spawn(store, Options::default());
    let narinfo = ureq::get(format!("{url}/{}.narinfo", info.store_path.hash_part()))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    let nar_url = narinfo
        .lines()
        .find_map(|l| l.strip_prefix("URL: "))
        .unwrap()
        .to_owned();
    assert!(narinfo.contains("Compression: none\n"), "{narinfo}");
    for c in [
        Compression::None,
        Compression::Xz,
        Compression::Zstd,
        Compression::Bzip2,
    ] {
        let resp = ureq::get(format!("{url}/{nar_url}{}", c.extension()))
            .call()
            .unwrap();
        let mut got = Vec::new();
        c.decoder(resp.into_body().into_reader())
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert!(got == want, "{c:?}");
    }
}

#[test]
fn ferrix_to_ferrix_through_http_and_file_caches() {
    let (store, info, tmp) = store_with_tree();
    let key = SecretKey::from_seed("k", &[5; 32]);
    let (url, _stop) = spawn(
        store.clone(),
        Options {
            sign_key: Some(key.clone()),
            ..Options::default()
        },
    );
    let paths = [info.store_path.clone()];
    let dst = open_store("memory://").unwrap();
    let opts = FromOptions {
        closure: true,
        trusted_keys: Some(vec![key.public_key()]),
    };
    let copied = copy_from(&dst, &Remote::open(&url, None).unwrap(), &paths, &opts).unwrap();
    assert_eq!(copied.len(), 1);
    let got = dst.path_info.get_path(&info.store_path).unwrap().unwrap();
    assert_eq!(
        (got.node.clone(), got.nar_sha256, got.ca.clone()),
        (info.node.clone(), info.nar_sha256, info.ca.clone())
    );

    let cache = format!("file://{}", tmp.path().join("cache").display());
    copy_to(
        &dst,
        &Remote::open(&cache, None).unwrap(),
        &paths,
        &ToOptions::default(),
    )
    .unwrap();
    let third = open_store("memory://").unwrap();
    copy_from(
        &third,
        &Remote::open(&cache, None).unwrap(),
        &paths,
        &FromOptions::default(),
    )
    .unwrap();
    assert_eq!(
        third
            .path_info
            .get_path(&info.store_path)
            .unwrap()
            .unwrap()
            .nar_sha256,
        info.nar_sha256
    );
}
