//! The gRPC server and client as real processes would use them: a tonic
//! server on loopback, bad requests sent with the raw generated client, and
//! many clients at once.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrix_castore::backend::grpc::proto::blob_service_client::BlobServiceClient;
use ferrix_castore::backend::grpc::proto::directory_service_client::DirectoryServiceClient;
use ferrix_castore::backend::grpc::proto::{
    EncodedDirectory, GetDirectoryRequest, PutBlobRequest, ReadBlobRequest, StatBlobRequest,
};
use ferrix_castore::backend::grpc::{self, MAX_MESSAGE_SIZE, ServerHandle};
use ferrix_castore::{B3Digest, CHUNK_SIZE, Directory, Entry, Error, Name, Node, Services};
use tonic::Code;

use crate::data;

fn server_over(services: Services) -> ServerHandle {
    grpc::spawn(services, "127.0.0.1:0".parse().unwrap(), 2).expect("server starts")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

async fn raw_blobs(server: &ServerHandle) -> BlobServiceClient<tonic::transport::Channel> {
    BlobServiceClient::connect(format!("http://{}", server.addr()))
        .await
        .unwrap()
        .max_encoding_message_size(4 * MAX_MESSAGE_SIZE)
        .max_decoding_message_size(4 * MAX_MESSAGE_SIZE)
}

async fn raw_dirs(server: &ServerHandle) -> DirectoryServiceClient<tonic::transport::Channel> {
    DirectoryServiceClient::connect(format!("http://{}", server.addr()))
        .await
        .unwrap()
        .max_encoding_message_size(4 * MAX_MESSAGE_SIZE)
}

fn piece(data: &[u8], finish: bool, expected: Option<&B3Digest>) -> PutBlobRequest {
    PutBlobRequest {
        data: Bytes::copy_from_slice(data),
        finish,
        expected_digest: expected.map(|d| Bytes::copy_from_slice(d.as_bytes())).unwrap_or_default(),
    }
}

/// Malformed digests get InvalidArgument with a message saying what is
/// wrong, and the server goes on serving.
#[test]
fn malformed_digests_are_invalid_argument_and_server_keeps_serving() {
    let backing = ferrix_castore::from_url("memory://").unwrap();
    let kept = backing.blobs.put(b"still here").unwrap();
    let server = server_over(backing);
    rt().block_on(async {
        let mut blobs = raw_blobs(&server).await;
        let mut dirs = raw_dirs(&server).await;
        let short = Bytes::from_static(b"\x01\x02\x03");
        let err = blobs.stat(StatBlobRequest { digest: short.clone() }).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(err.message(), "digest: invalid BLAKE3 digest: expected 32 bytes, got 3");
        let err = blobs
            .read(ReadBlobRequest { digest: Bytes::from(vec![0; 33]), offset: 0, length: None })
            .await
            .unwrap_err();
        assert_eq!((err.code(), err.message()), (Code::InvalidArgument, "digest: invalid BLAKE3 digest: expected 32 bytes, got 33"));
        let err = dirs.get(GetDirectoryRequest { digest: Bytes::new() }).await.unwrap_err();
        assert_eq!((err.code(), err.message()), (Code::InvalidArgument, "digest: invalid BLAKE3 digest: expected 32 bytes, got 0"));
        let err = dirs.closure(GetDirectoryRequest { digest: short }).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        let up = tokio_stream::iter(vec![PutBlobRequest {
            data: Bytes::from_static(b"x"),
            finish: true,
            expected_digest: Bytes::from_static(b"bad"),
        }]);
        let err = blobs.put(up).await.unwrap_err();
        assert_eq!((err.code(), err.message()), (Code::InvalidArgument, "expected_digest: invalid BLAKE3 digest: expected 32 bytes, got 3"));
        // A directory that is not a canonical encoding.
        let err = dirs.put_tree(tokio_stream::iter(vec![EncodedDirectory { encoded: Bytes::from_static(b"junk") }])).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().starts_with("put_tree: directory #0 is malformed: "), "{}", err.message());
        // Still serving, on the same connection and on a new one.
        let r = blobs.stat(StatBlobRequest { digest: Bytes::copy_from_slice(kept.as_bytes()) }).await.unwrap();
        assert_eq!(r.into_inner().size, 10);
    });
    let client = ferrix_castore::from_url(&server.url()).unwrap();
    assert_eq!(client.blobs.get(&kept).unwrap().as_deref(), Some(&b"still here"[..]));
}

/// Messages over the limit are refused on both sides, and the server goes on serving.
#[test]
fn oversized_messages_are_refused() {
    let server = server_over(ferrix_castore::from_url("memory://").unwrap());
    let big = data(MAX_MESSAGE_SIZE + 1, 1);
    rt().block_on(async {
        let mut blobs = raw_blobs(&server).await;
        let err = blobs.put(tokio_stream::iter(vec![piece(&big, true, None)])).await.unwrap_err();
        assert!(matches!(err.code(), Code::OutOfRange | Code::ResourceExhausted), "{err:?}");
        assert!(err.message().contains("too large"), "{}", err.message());
        assert!(!blobs
            .stat(StatBlobRequest { digest: Bytes::copy_from_slice(B3Digest::of(&big).as_bytes()) })
            .await
            .unwrap()
            .into_inner()
            .found);
        let mut dirs = raw_dirs(&server).await;
        let err = dirs.put_tree(tokio_stream::iter(vec![EncodedDirectory { encoded: big.clone().into() }])).await.unwrap_err();
        assert!(matches!(err.code(), Code::OutOfRange | Code::ResourceExhausted), "{err:?}");
    });
    // The client backend splits blobs into small pieces, so a large blob goes through.
    let client = ferrix_castore::from_url(&server.url()).unwrap();
    assert_eq!(client.blobs.put(&big).unwrap(), B3Digest::of(&big));
    assert!(client.blobs.get(&B3Digest::of(&big)).unwrap().unwrap() == big);
}

/// The server verifies uploads: a wrong expected digest or a stream that
/// ends without `finish` stores nothing.
#[test]
fn uploads_are_verified_server_side() {
    let backing = ferrix_castore::from_url("memory://").unwrap();
    let server = server_over(backing.clone());
    let bytes = data(CHUNK_SIZE + 5, 2);
    let digest = B3Digest::of(&bytes);
    rt().block_on(async {
        let mut blobs = raw_blobs(&server).await;
        let wrong = B3Digest::of(b"wrong");
        let msgs = vec![piece(&bytes[..1000], false, None), piece(&bytes[1000..], true, Some(&wrong))];
        let err = blobs.put(tokio_stream::iter(msgs)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(err.message(), format!("digest mismatch: expected {wrong}, got {digest}"));
        let msgs = vec![piece(&bytes, false, None)];
        let err = blobs.put(tokio_stream::iter(msgs)).await.unwrap_err();
        assert_eq!(err.message(), "blob upload ended without a finishing message; nothing was stored");
        let msgs = vec![piece(b"a", true, None), piece(b"b", false, None)];
        let err = blobs.put(tokio_stream::iter(msgs)).await.unwrap_err();
        assert_eq!(err.message(), "blob upload: a message after the finishing one");
        assert!(!backing.blobs.has(&digest).unwrap());
        assert!(!backing.blobs.has(&B3Digest::of(b"a")).unwrap());
        let msgs = vec![piece(&bytes, true, Some(&digest))];
        let r = blobs.put(tokio_stream::iter(msgs)).await.unwrap().into_inner();
        assert_eq!(&r.digest[..], digest.as_bytes());
    });
    assert!(backing.blobs.get(&digest).unwrap().unwrap() == bytes);
}

/// Ranged reads fetch only the range; the client's reader seeks with them.
#[test]
fn ranged_reads_send_only_the_range() {
    let backing = ferrix_castore::from_url("memory://").unwrap();
    let bytes = data(4 * CHUNK_SIZE + 3, 3);
    let digest = backing.blobs.put(&bytes).unwrap();
    let server = server_over(backing);
    rt().block_on(async {
        let mut blobs = raw_blobs(&server).await;
        let read = |offset, length| ReadBlobRequest { digest: Bytes::copy_from_slice(digest.as_bytes()), offset, length };
        for (offset, length, want) in [
            (0u64, Some(5u64), &bytes[..5]),
            (3 * CHUNK_SIZE as u64 - 2, Some(4), &bytes[3 * CHUNK_SIZE - 2..3 * CHUNK_SIZE + 2]),
            (4 * CHUNK_SIZE as u64, None, &bytes[4 * CHUNK_SIZE..]),
            (bytes.len() as u64 + 7, None, &[][..]),
            (1, Some(u64::MAX), &bytes[1..]),
        ] {
            let mut s = blobs.read(read(offset, length)).await.unwrap().into_inner();
            let mut got = Vec::new();
            while let Some(m) = s.message().await.unwrap() {
                got.extend_from_slice(&m.data);
            }
            assert!(got == want, "{offset}+{length:?}");
        }
        let err = blobs.read(read(0, None)).await;
        assert!(err.is_ok());
        let missing = ReadBlobRequest { digest: Bytes::copy_from_slice(B3Digest::of(b"no").as_bytes()), offset: 0, length: None };
        assert_eq!(blobs.read(missing).await.unwrap_err().code(), Code::NotFound);
    });
    let client = ferrix_castore::from_url(&server.url()).unwrap();
    let mut r = client.blobs.open_read(&digest).unwrap().unwrap();
    r.seek(SeekFrom::End(-3)).unwrap();
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, &bytes[bytes.len() - 3..]);
}

/// The client works when called from inside another tokio runtime.
#[test]
fn client_inside_an_async_runtime() {
    let server = server_over(ferrix_castore::from_url("memory://").unwrap());
    let client = ferrix_castore::from_url(&server.url()).unwrap();
    let d = rt().block_on(async {
        let mut w = client.blobs.open_write();
        std::io::Write::write_all(&mut w, b"from async").unwrap();
        let d = w.close().unwrap();
        assert_eq!(client.blobs.get(&d).unwrap().as_deref(), Some(&b"from async"[..]));
        d
    });
    assert!(client.blobs.has(&d).unwrap());
}

#[test]
fn unreachable_server_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("grpc+http://127.0.0.1:{port}");
    let err = ferrix_castore::from_url(&url).err().expect("nothing listens there").to_string();
    assert!(err.starts_with(&format!("storage error: cannot connect to castore gRPC server http://127.0.0.1:{port}")), "{err}");
}

/// Errors the backend returns come back as the same castore errors.
#[test]
fn backend_errors_round_trip() {
    let server = server_over(ferrix_castore::from_url("memory://").unwrap());
    let client = ferrix_castore::from_url(&server.url()).unwrap();
    let ghost = B3Digest::of(b"ghost");
    assert!(matches!(client.directories.closure(&ghost), Err(Error::DanglingDirectory(d)) if d == ghost));
    assert!(matches!(client.directories.put_tree(&[]), Err(Error::EmptyTree)));
    assert_eq!(client.directories.get(&ghost).unwrap(), None);
}

/// 32 clients, each with its own connection, write and read blobs and
/// directories at once, sharing some content.
#[test]
fn thirty_two_concurrent_clients() {
    const CLIENTS: usize = 32;
    let tmp = tempfile::tempdir().unwrap();
    let backing = ferrix_castore::from_url(&format!("redb://{}", tmp.path().join("db").display())).unwrap();
    let server = grpc::spawn(backing.clone(), "127.0.0.1:0".parse().unwrap(), 2).unwrap();
    let url = Arc::new(server.url());
    let start = Instant::now();
    let roots: Vec<B3Digest> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let url = url.clone();
                s.spawn(move || {
                    let c = ferrix_castore::from_url(&url).unwrap();
                    let mut entries = Vec::new();
                    for j in 0..4 {
                        // Half the blobs are shared by all clients.
                        let seed = if j % 2 == 0 { 1000 + j as u64 } else { (i * 10 + j) as u64 };
                        let bytes = data(50_000 + 30_000 * j, seed);
                        let digest = c.blobs.put(&bytes).unwrap();
                        assert!(c.blobs.get(&digest).unwrap().unwrap() == bytes);
                        let name = Name::new(format!("f{j}")).unwrap();
                        entries.push(Entry::new(name, Node::File { digest, size: bytes.len() as u64, executable: false }));
                    }
                    let sub = Directory::new(entries).unwrap();
                    let top = Directory::new(vec![Entry::new(Name::new(format!("client{i}")).unwrap(), sub.node())]).unwrap();
                    let root = c.directories.put_tree(&[sub.clone(), top.clone()]).unwrap();
                    assert_eq!(c.directories.get(&root).unwrap(), Some(top));
                    assert_eq!(c.directories.closure(&root).unwrap().len(), 2);
                    root
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    assert!(start.elapsed() < Duration::from_secs(60), "took {:?}", start.elapsed());
    assert_eq!(roots.len(), CLIENTS);
    for root in &roots {
        assert!(backing.directories.has(root).unwrap());
    }
    drop(server);
}
