//! The binary cache HTTP server (axum) over a ferrix [`Store`].
//!
//! | request | answer |
//! |---|---|
//! | `GET /nix-cache-info` | `StoreDir`, `WantMassQuery: 1`, `Priority` |
//! | `GET\|HEAD /<hash>.narinfo` | the path's narinfo ([`narinfo_for`]: an uncompressed NAR at `nar/<nar hash>.nar`), signed with the server's key if it has one |
//! | `GET\|HEAD /nar/<nar hash>.nar[.xz\|.zst\|.bz2]` | the NAR rendered from castore as a stream (compressed on the fly when asked), never held whole |
//! | `PUT /nar/<file hash>.nar[.xz\|.zst\|.bz2]` | upload: decompressed and ingested into castore as it arrives; the file hash in the name is checked; nothing is registered yet |
//! | `PUT /<hash>.narinfo` | registers the path once its NAR was uploaded and matches the narinfo's NarHash and NarSize, and its references are in the store |
//! | `PUT /nix-cache-info` | accepted if it names this store directory |
//!
//! Uploads need the `--upload-auth` credentials (HTTP basic auth, 401
//! otherwise; 403 when the server has none: it is then read-only); reads
//! need the `--read-auth` (or upload) credentials when `--read-auth` is set.
//! Bad input (a malformed narinfo or NAR, a mismatched hash, a truncated
//! upload, a name that is not `<hash>.narinfo` / `nar/<hash>.nar…`) gets a
//! 4xx with a one-line reason and registers nothing.

// Handlers return early with a ready `Response` as the error: the idiom of
// axum handlers, not a hot path.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use ferrix_formats::hash::Encoding;
use ferrix_formats::{HashAlgo, NarInfo, NixHash, SecretKey, nixbase32};
use ferrix_store::import::NarExpect;
use ferrix_store::nar::write_nar;
use ferrix_store::{PathInfo, Store};
use futures::TryStreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::auth::Credentials;
use crate::chunked::ChunkedWriter;
use crate::compression::Compression;
use crate::copy::{IngestedFile, ingest_file, narinfo_for, path_info};
use crate::error::{Error, Result};

/// How the server behaves.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Sign every narinfo served with this key.
    pub sign_key: Option<SecretKey>,
    /// `Priority` in `nix-cache-info` (lower is preferred by Nix).
    pub priority: Option<u32>,
    /// Credentials an upload must carry; without them uploads are refused.
    pub upload_auth: Option<Credentials>,
    /// Credentials a read must carry (the upload ones work too); without
    /// them reads are public.
    pub read_auth: Option<Credentials>,
    /// At most this many NARs are rendered at once (each takes a few MiB:
    /// a chunk being read, a copy buffer, the response channel); further
    /// downloads wait for a turn. 0 means [`DEFAULT_CONCURRENT_NARS`].
    pub max_concurrent_nars: usize,
}

/// The default of [`Options::max_concurrent_nars`].
pub const DEFAULT_CONCURRENT_NARS: usize = 16;

/// At most this many uploaded NARs wait for their narinfo.
const MAX_PENDING: usize = 4096;
/// A narinfo is small; refuse bigger bodies.
const MAX_NARINFO: usize = 1 << 20;
/// An unknown NAR hash rescans the path infos at most this often (another
/// process may have added paths to a shared store).
const RESCAN_EVERY: Duration = Duration::from_secs(5);

struct Shared {
    store: Store,
    opts: Options,
    /// NAR sha256 → store path digest, for `GET /nar/…`.
    by_nar: RwLock<HashMap<[u8; 32], [u8; 20]>>,
    last_scan: Mutex<Instant>,
    /// Uploaded NARs (by cache-relative URL) waiting for their narinfo.
    pending: Mutex<HashMap<String, (IngestedFile, Instant)>>,
    renders: Arc<tokio::sync::Semaphore>,
}

type AppState = Arc<Shared>;

/// The router serving `store`. Lists the store's path infos once (to map
/// NAR hashes to paths), so call it off the async runtime or in
/// `spawn_blocking`.
pub fn router(store: Store, opts: Options) -> Result<Router> {
    let by_nar = scan(&store)?;
    let renders = match opts.max_concurrent_nars {
        0 => DEFAULT_CONCURRENT_NARS,
        n => n,
    };
    let state = Arc::new(Shared {
        renders: Arc::new(tokio::sync::Semaphore::new(renders)),
        store,
        opts,
        by_nar: RwLock::new(by_nar),
        last_scan: Mutex::new(Instant::now()),
        pending: Mutex::new(HashMap::new()),
    });
    Ok(Router::new()
        .route("/nix-cache-info", get(cache_info).put(put_cache_info))
        .route("/nar/{file}", get(get_nar).put(put_nar))
        .route("/{file}", get(get_narinfo).put(put_narinfo))
        .fallback(not_found)
        .layer(DefaultBodyLimit::disable())
        .with_state(state))
}

/// Serves `store` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    opts: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = tokio::task::spawn_blocking(move || router(store, opts))
        .await
        .map_err(|e| Error::Cache(format!("starting the server: {e}")))??;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::io("serving HTTP", e))
}

fn scan(store: &Store) -> Result<HashMap<[u8; 32], [u8; 20]>> {
    Ok(store
        .path_info
        .list()?
        .into_iter()
        .map(|i| (i.nar_sha256, i.store_path.digest()))
        .collect())
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut body = msg.into();
    body.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        body,
    )
        .into_response()
}

fn bad(msg: impl Into<String>) -> Response {
    text(StatusCode::BAD_REQUEST, msg)
}

fn internal(e: impl std::fmt::Display) -> Response {
    text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "no such file in this binary cache")
}

fn unauthorized() -> Response {
    let mut r = text(StatusCode::UNAUTHORIZED, "authentication required");
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"ferrix binary cache\""),
    );
    r
}

fn auth_header(h: &HeaderMap) -> Option<&[u8]> {
    h.get(header::AUTHORIZATION).map(|v| v.as_bytes())
}

/// `Err(response)` unless the request may read.
fn check_read(s: &Shared, h: &HeaderMap) -> Result<(), Response> {
    match &s.opts.read_auth {
        None => Ok(()),
        Some(c) => {
            let a = auth_header(h);
            if c.accepts(a) || s.opts.upload_auth.as_ref().is_some_and(|u| u.accepts(a)) {
                Ok(())
            } else {
                Err(unauthorized())
            }
        }
    }
}

/// `Err(response)` unless the request may write.
fn check_upload(s: &Shared, h: &HeaderMap) -> Result<(), Response> {
    match &s.opts.upload_auth {
        None => Err(text(
            StatusCode::FORBIDDEN,
            "this binary cache is read-only (start the server with --upload-auth to accept uploads)",
        )),
        Some(c) if c.accepts(auth_header(h)) => Ok(()),
        Some(_) => Err(unauthorized()),
    }
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f).await.map_err(internal)
}

async fn cache_info(State(s): State<AppState>, h: HeaderMap) -> Response {
    if let Err(r) = check_read(&s, &h) {
        return r;
    }
    let mut body = format!(
        "StoreDir: {}\nWantMassQuery: 1\n",
        s.store.store_dir.as_str()
    );
    if let Some(p) = s.opts.priority {
        body.push_str(&format!("Priority: {p}\n"));
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/x-nix-cache-info"),
        )],
        body,
    )
        .into_response()
}

async fn put_cache_info(State(s): State<AppState>, h: HeaderMap, body: Body) -> Response {
    if let Err(r) = check_upload(&s, &h) {
        return r;
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_NARINFO).await else {
        return bad("nix-cache-info: body unreadable or too large");
    };
    let want = format!("StoreDir: {}", s.store.store_dir.as_str());
    match std::str::from_utf8(&bytes) {
        Ok(t) if t.lines().any(|l| l == want) => text(StatusCode::OK, "ok"),
        _ => bad(format!(
            "nix-cache-info: this cache only holds store paths of {}",
            s.store.store_dir.as_str()
        )),
    }
}

/// The 20-byte digest a `<32 nix32 chars>.narinfo` name stands for.
fn narinfo_digest(file: &str) -> Option<[u8; 20]> {
    let hash = file.strip_suffix(".narinfo")?;
    if hash.len() != 32 {
        return None;
    }
    let mut d = [0u8; 20];
    nixbase32::decode_into(hash.as_bytes(), &mut d).ok()?;
    Some(d)
}

/// The hash and compression a `<52 nix32 chars>.nar[.ext]` name stands for.
fn nar_name(file: &str) -> Option<([u8; 32], Compression)> {
    let (hash, ext) = file.split_at_checked(52)?;
    let c = Compression::from_extension(ext.strip_prefix(".nar")?)?;
    let mut d = [0u8; 32];
    nixbase32::decode_into(hash.as_bytes(), &mut d).ok()?;
    Some((d, c))
}

async fn get_narinfo(
    State(s): State<AppState>,
    Path(file): Path<String>,
    h: HeaderMap,
) -> Response {
    if let Err(r) = check_read(&s, &h) {
        return r;
    }
    let Some(digest) = narinfo_digest(&file) else {
        return not_found().await;
    };
    let s2 = s.clone();
    let info = match blocking(move || s2.store.path_info.get(&digest)).await {
        Err(r) => return r,
        Ok(Err(e)) => return internal(e),
        Ok(Ok(None)) => return not_found().await,
        Ok(Ok(Some(i))) => i,
    };
    let sd = &s.store.store_dir;
    let ni = narinfo_for(&info, sd, s.opts.sign_key.as_ref());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/x-nix-narinfo"),
        )],
        ni.to_text(sd),
    )
        .into_response()
}

/// The path info whose NAR has this sha256, rescanning the store (at most
/// every [`RESCAN_EVERY`]) when the index does not know it.
fn by_nar_hash(s: &Shared, nar: &[u8; 32]) -> Result<Option<PathInfo>> {
    for attempt in 0..2 {
        let digest = s.by_nar.read().expect("index lock").get(nar).copied();
        if let Some(d) = digest
            && let Some(info) = s.store.path_info.get(&d)?
            && info.nar_sha256 == *nar
        {
            return Ok(Some(info));
        }
        if attempt == 0 {
            let mut last = s.last_scan.lock().expect("scan lock");
            if last.elapsed() < RESCAN_EVERY {
                return Ok(None);
            }
            *last = Instant::now();
            let fresh = scan(&s.store)?;
            *s.by_nar.write().expect("index lock") = fresh;
        }
    }
    Ok(None)
}

async fn get_nar(
    State(s): State<AppState>,
    Path(file): Path<String>,
    method: Method,
    h: HeaderMap,
) -> Response {
    if let Err(r) = check_read(&s, &h) {
        return r;
    }
    let Some((nar, compression)) = nar_name(&file) else {
        return not_found().await;
    };
    let s2 = s.clone();
    let info = match blocking(move || by_nar_hash(&s2, &nar)).await {
        Err(r) => return r,
        Ok(Err(e)) => return internal(e),
        Ok(Ok(None)) => return not_found().await,
        Ok(Ok(Some(i))) => i,
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-nix-nar"),
    );
    if compression == Compression::None {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(info.nar_size));
    }
    if method == Method::HEAD {
        return (headers, Body::empty()).into_response();
    }
    // The NAR is rendered on a blocking thread into a small bounded
    // channel: memory per download is a few chunks, whatever the NAR size.
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let store = s.store.clone();
    let Ok(permit) = s.renders.clone().acquire_owned().await else {
        return internal("the server is shutting down");
    };
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let body = tx.clone();
        let w = ChunkedWriter::new(move |chunk| {
            let send = tokio::time::timeout(SEND_TIMEOUT, body.send(Ok(Bytes::from(chunk))));
            match handle.block_on(send) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(io::Error::new(io::ErrorKind::BrokenPipe, "client went away")),
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "client stopped reading")),
            }
        });
        let res = compression
            .encoder(w)
            .map_err(|e| ferrix_store::Error::Io {
                context: "starting compression".into(),
                source: e,
            })
            .and_then(|enc| write_nar(&*store.blobs, &*store.directories, &info.node, enc))
            .and_then(|enc| {
                enc.finish()
                    .and_then(|mut w| w.flush())
                    .map_err(|e| ferrix_store::Error::Io {
                        context: "sending NAR".into(),
                        source: e,
                    })
            });
        if let Err(e) = res {
            // Ends the response abnormally: the client sees a broken
            // transfer, never a short NAR that looks complete.
            let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
        }
    });
    (headers, Body::from_stream(ReceiverStream::new(rx))).into_response()
}

/// A download whose client takes longer than this to accept the next chunk
/// is dropped, so stalled clients cannot hold the render slots forever.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

async fn put_nar(
    State(s): State<AppState>,
    Path(file): Path<String>,
    h: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = check_upload(&s, &h) {
        return r;
    }
    let Some((file_hash, compression)) = nar_name(&file) else {
        return bad(format!(
            "nar/{file}: expected nar/<nix32 sha256 of the file>.nar[.xz|.zst|.bz2]"
        ));
    };
    let rel = format!("nar/{file}");
    let stream = body.into_data_stream().map_err(io::Error::other);
    let reader = StreamReader::new(stream);
    let store = s.store.clone();
    let what = rel.clone();
    let res = blocking(move || {
        let mut sync = SyncIoBridge::new(reader);
        ingest_file(&store, &mut sync, compression, &NarExpect::default(), &what)
    })
    .await;
    let got = match res {
        Err(r) => return r,
        Ok(Err(e)) => return upload_error(e),
        Ok(Ok(g)) => g,
    };
    if got.file_hash.digest() != file_hash {
        return bad(format!(
            "{rel}: the file's sha256 is {}, not the one in its name",
            got.file_hash.encode(Encoding::Nix32)
        ));
    }
    let mut pending = s.pending.lock().expect("pending lock");
    if pending.len() >= MAX_PENDING
        && let Some(oldest) = pending
            .iter()
            .min_by_key(|(_, (_, t))| *t)
            .map(|(k, _)| k.clone())
    {
        pending.remove(&oldest);
    }
    pending.insert(rel, (got, Instant::now()));
    text(StatusCode::OK, "ok")
}

/// Content the client sent is its fault (4xx); the store failing is ours.
fn upload_error(e: Error) -> Response {
    match e {
        Error::Store(
            ferrix_store::Error::Castore(_)
            | ferrix_store::Error::Storage(_)
            | ferrix_store::Error::Corrupt(_)
            | ferrix_store::Error::StoreLocked { .. },
        ) => internal(e),
        e => bad(e.to_string()),
    }
}

async fn put_narinfo(
    State(s): State<AppState>,
    Path(file): Path<String>,
    h: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = check_upload(&s, &h) {
        return r;
    }
    let Some(digest) = narinfo_digest(&file) else {
        return bad(format!("{file}: expected <nix32 store path hash>.narinfo"));
    };
    let bytes = match axum::body::to_bytes(body, MAX_NARINFO).await {
        Ok(b) => b,
        Err(e) => return bad(format!("{file}: reading the body: {e}")),
    };
    let sd = s.store.store_dir.clone();
    let ni = match std::str::from_utf8(&bytes)
        .map_err(|_| "not UTF-8".to_owned())
        .and_then(|t| NarInfo::parse(t, &sd).map_err(|e| e.to_string()))
    {
        Ok(ni) => ni,
        Err(e) => return bad(format!("{file}: malformed narinfo: {e}")),
    };
    if ni.store_path.digest() != digest {
        return bad(format!(
            "{file} holds the narinfo of {}",
            sd.display(&ni.store_path)
        ));
    }
    if ni.nar_hash.algo() != HashAlgo::Sha256 {
        return bad(format!("{file}: NarHash must be sha256"));
    }
    let url = ni.url.trim_start_matches("./").to_owned();
    // The upload stays pending until a narinfo matching it registers it.
    let uploaded = s
        .pending
        .lock()
        .expect("pending lock")
        .get(&url)
        .map(|(g, _)| g.clone());
    let s2 = s.clone();
    let url2 = url.clone();
    let res = blocking(move || register(&s2, ni, uploaded, &url2)).await;
    match res {
        Err(r) => r,
        Ok(Ok(info)) => {
            s.pending.lock().expect("pending lock").remove(&url);
            s.by_nar
                .write()
                .expect("index lock")
                .insert(info.nar_sha256, info.store_path.digest());
            text(StatusCode::OK, "ok")
        }
        Ok(Err(e)) => e,
    }
}

/// Registers the path a narinfo describes, if its uploaded NAR matches.
fn register(
    s: &Shared,
    ni: NarInfo,
    got: Option<IngestedFile>,
    url: &str,
) -> Result<PathInfo, Response> {
    let sd = &s.store.store_dir;
    let path = sd.display(&ni.store_path);
    if let Some(have) = s
        .store
        .path_info
        .get_path(&ni.store_path)
        .map_err(internal)?
    {
        // A path is never replaced: the same contents again only add
        // signatures; other contents under the same path are refused.
        if have.nar_sha256 != ni.nar_hash.digest() || have.nar_size != ni.nar_size {
            return Err(text(
                StatusCode::CONFLICT,
                format!("{path} is already in the store with another NAR hash"),
            ));
        }
        if ni.sigs.iter().all(|sig| have.signatures.contains(sig)) {
            return Ok(have);
        }
        let mut merged = have;
        for sig in &ni.sigs {
            if !merged.signatures.contains(sig) {
                merged.signatures.push(sig.clone());
            }
        }
        return s.store.path_info.put(merged).map_err(internal);
    }
    let Some(got) = got else {
        return Err(bad(format!(
            "{path}: its NAR {url} has not been uploaded (PUT the NAR first)"
        )));
    };
    if got.nar.nar_sha256 != ni.nar_hash.digest() || got.nar.nar_size != ni.nar_size {
        let actual = NixHash::from_digest(HashAlgo::Sha256, &got.nar.nar_sha256)
            .expect("32 bytes")
            .to_typed(Encoding::Nix32);
        return Err(bad(format!(
            "{path}: NAR mismatch: narinfo says {} ({} bytes), {url} is {actual} ({} bytes)",
            ni.nar_hash.to_typed(Encoding::Nix32),
            ni.nar_size,
            got.nar.nar_size
        )));
    }
    if let Some(fh) = &ni.file_hash
        && *fh != got.file_hash
    {
        return Err(bad(format!("{path}: FileHash does not match {url}")));
    }
    if let Some(fs) = ni.file_size
        && fs != got.file_size
    {
        return Err(bad(format!("{path}: FileSize does not match {url}")));
    }
    for r in &ni.references {
        if *r != ni.store_path && s.store.path_info.get_path(r).map_err(internal)?.is_none() {
            return Err(text(
                StatusCode::CONFLICT,
                format!(
                    "{path}: its reference {} is not in the store",
                    sd.display(r)
                ),
            ));
        }
    }
    let info = path_info(&ni, &got.nar);
    s.store.path_info.put(info).map_err(|e| match e {
        ferrix_store::Error::InvalidPathInfo { .. } | ferrix_store::Error::StorePath(_) => {
            bad(e.to_string())
        }
        e => internal(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let h32 = nixbase32::encode(&[1u8; 32]);
        assert_eq!(
            nar_name(&format!("{h32}.nar")),
            Some(([1; 32], Compression::None))
        );
        assert_eq!(
            nar_name(&format!("{h32}.nar.xz")),
            Some(([1; 32], Compression::Xz))
        );
        assert_eq!(nar_name(&format!("{h32}.nar.gz")), None);
        assert_eq!(nar_name(&format!("{h32}.narx")), None);
        assert_eq!(nar_name("../../etc/passwd"), None);
        assert_eq!(nar_name("é"), None);
        let h20 = nixbase32::encode(&[2u8; 20]);
        assert_eq!(narinfo_digest(&format!("{h20}.narinfo")), Some([2; 20]));
        assert_eq!(narinfo_digest(&format!("{h20}.ls")), None);
        assert_eq!(narinfo_digest("..narinfo"), None);
    }
}
