//! The store gRPC server as other processes see it: bad path info requests
//! sent with the raw generated client get clear errors, register nothing,
//! and the server keeps serving.

use bytes::Bytes;
use ferrix_castore::Node;
use ferrix_formats::{CAHash, CaMethod, HashAlgo, NixHash, StoreDir};
use ferrix_store::PathInfo;
use ferrix_store::pathinfo::grpc::MAX_MESSAGE_SIZE;
use ferrix_store::pathinfo::grpc::proto::path_info_service_client::PathInfoServiceClient;
use ferrix_store::pathinfo::grpc::proto::{EncodedPathInfo, GetPathInfoRequest, ListPathInfoRequest};
use tonic::Code;

#[test]
fn bad_requests_get_clear_errors_and_the_server_keeps_serving() {
    let b = crate::grpc_memory();
    let server_addr = b.url.strip_prefix("grpc+http://").unwrap().to_owned();
    // A good path to find afterwards.
    let sd = StoreDir::default();
    let digest = b.store.blobs.put(b"kept").unwrap();
    let hash = NixHash::from_digest(HashAlgo::Sha256, &[7; 32]).unwrap();
    let ca = CAHash::new(CaMethod::Flat, hash);
    let kept = PathInfo {
        store_path: sd.make_ca_path("kept", &ca).unwrap(),
        node: Node::File { digest, size: 4, executable: false },
        nar_size: 120,
        nar_sha256: [1; 32],
        references: Default::default(),
        deriver: None,
        signatures: vec![],
        ca: Some(ca),
    };
    b.store.path_info.put(kept.clone()).unwrap();
    // A path info whose root blob was never uploaded.
    let mut missing = kept.clone();
    missing.node = Node::File { digest: ferrix_castore::B3Digest::of(b"never uploaded"), size: 14, executable: false };
    let hash2 = NixHash::from_digest(HashAlgo::Sha256, &[8; 32]).unwrap();
    missing.ca = Some(CAHash::new(CaMethod::Flat, hash2));
    missing.store_path = sd.make_ca_path("missing", missing.ca.as_ref().unwrap()).unwrap();

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = PathInfoServiceClient::connect(format!("http://{server_addr}"))
            .await
            .unwrap()
            .max_encoding_message_size(4 * MAX_MESSAGE_SIZE);
        let err = c.get(GetPathInfoRequest { digest: Bytes::from_static(b"short") }).await.unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::InvalidArgument, "digest: expected the 20 bytes of a store path digest, got 5")
        );
        let err = c.put(EncodedPathInfo { encoded: Bytes::from_static(b"junk") }).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().starts_with("malformed path info: "), "{}", err.message());
        let err = c.put(EncodedPathInfo { encoded: missing.encode().into() }).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(err.message().contains("is not in the castore"), "{}", err.message());
        let err = c.put(EncodedPathInfo { encoded: vec![0; MAX_MESSAGE_SIZE + 1].into() }).await.unwrap_err();
        assert!(matches!(err.code(), Code::OutOfRange | Code::ResourceExhausted), "{err:?}");
        // Still serving, and only the good path is registered.
        let mut list = c.list(ListPathInfoRequest {}).await.unwrap().into_inner();
        let mut n = 0;
        while let Some(m) = list.message().await.unwrap() {
            assert_eq!(PathInfo::decode(&m.encoded).unwrap(), kept);
            n += 1;
        }
        assert_eq!(n, 1);
    });
    // The client backend rebuilds the store's own error.
    let err = b.store.path_info.put(missing.clone()).unwrap_err();
    assert!(matches!(err, ferrix_store::Error::MissingRoot { .. }), "{err}");
    assert_eq!(b.store.path_info.get_path(&kept.store_path).unwrap(), Some(kept));
    assert_eq!(b.store.path_info.get_path(&missing.store_path).unwrap(), None);
}
