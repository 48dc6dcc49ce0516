//! [`Store`]: the blob, directory and path info services that make one Nix
//! store, and [`open_store`], which builds them from a URL.
//!
//! | URL                  | what                                                     |
//! |----------------------|----------------------------------------------------------|
//! | `memory://`          | everything in memory, lost on exit                       |
//! | `redb:///abs/dir`    | directory `dir` (created if needed) holding `castore.redb` (blobs, chunks, directories) and `pathinfo.redb` (path infos) |
//! | `objectstore+file:///abs/dir` | castore objects under `dir/castore`, path infos in `dir/pathinfo.redb` |
//! | `objectstore+memory://` | castore in an in-process object store, path infos in memory (tests) |
//! | `grpc+http://host:port` | everything on a store gRPC server (`ferrix store daemon`, [`crate::server`]) |
//!
//! Two files rather than one because castore's redb backend owns its
//! database handle and redb allows one handle per file. Atomicity does not
//! need one file: a path info is committed after (and only after) the
//! castore transactions it depends on are durable.
//!
//! The default store ([`default_store_url`]) is `$FERRIX_STORE` if set, else
//! `redb://$XDG_DATA_HOME/ferrix` (falling back to `~/.local/share/ferrix`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferrix_castore::{BlobService, DirectoryService, Services};
use ferrix_formats::{StoreDir, StorePath};

use crate::error::{Error, Result};
use crate::path_info::PathInfo;
use crate::pathinfo::PathInfoService;
use crate::pathinfo::grpc::GrpcPathInfoService;
use crate::pathinfo::memory::MemoryPathInfoService;
use crate::pathinfo::redb::RedbPathInfoService;

/// One Nix store: castore services plus path infos, and the store directory
/// (`/nix/store`) that store paths are computed against.
#[derive(Clone)]
pub struct Store {
    pub blobs: Arc<dyn BlobService>,
    pub directories: Arc<dyn DirectoryService>,
    pub path_info: Arc<dyn PathInfoService>,
    pub store_dir: StoreDir,
}

impl Store {
    /// The castore half, as castore functions want it.
    pub fn castore(&self) -> Services {
        Services {
            blobs: self.blobs.clone(),
            directories: self.directories.clone(),
        }
    }

    /// Parses `/nix/store/<hash>-<name>[/sub/path]` (or `<hash>-<name>[/…]`)
    /// and looks the store path up. Returns the path info and the sub-path
    /// (empty or starting with `/`). An unregistered path is `Ok(None)`.
    pub fn lookup<'a>(&self, arg: &'a str) -> Result<Option<(PathInfo, &'a str)>> {
        let (path, rest) = self.parse_path(arg)?;
        Ok(self.path_info.get_path(&path)?.map(|i| (i, rest)))
    }

    /// Parses a store path argument with optional sub-path (see [`Store::lookup`]).
    pub fn parse_path<'a>(&self, arg: &'a str) -> Result<(StorePath, &'a str)> {
        if arg.starts_with('/') {
            let (p, rest) = self.store_dir.parse_prefix(arg)?;
            Ok((p.to_owned(), rest))
        } else {
            let end = arg.find('/').unwrap_or(arg.len());
            Ok((StorePath::from_base_name(&arg[..end])?, &arg[end..]))
        }
    }
}

/// Builds the store a URL names (see the module documentation).
pub fn open_store(url: &str) -> Result<Store> {
    let bad = |reason: &str| Error::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected SCHEME://…"))?;
    let store_dir = StoreDir::default();
    // Each scheme names a castore URL and where path infos live (a redb
    // file in the store directory, or memory).
    let (castore_url, pathinfo_db) = match scheme {
        "memory" | "objectstore+memory" => {
            if !rest.is_empty() {
                return Err(bad(&format!("{scheme}:// takes no path")));
            }
            (format!("{scheme}://"), None)
        }
        "redb" => {
            let dir = store_directory(rest, &bad)?;
            (format!("redb://{}", dir.join("castore.redb").display()), Some(dir.join("pathinfo.redb")))
        }
        "objectstore+file" => {
            let dir = store_directory(rest, &bad)?;
            (format!("objectstore+file://{}", dir.join("castore").display()), Some(dir.join("pathinfo.redb")))
        }
        "grpc+http" => {
            if rest.is_empty() || rest.contains(['/', '?', '#']) {
                return Err(bad("expected grpc+http://host:port"));
            }
            let castore = ferrix_castore::from_url(url)?;
            let path_info = Arc::new(GrpcPathInfoService::connect(&format!("http://{rest}"))?);
            return Ok(Store { blobs: castore.blobs, directories: castore.directories, path_info, store_dir });
        }
        "grpc+https" | "grpc+unix" | "objectstore+s3" => {
            return Err(bad("this backend is not implemented yet"))
        }
        _ => {
            return Err(bad(
                "unknown scheme; known: memory://, redb:///dir, objectstore+file:///dir, objectstore+memory://, grpc+http://host:port",
            ))
        }
    };
    let castore = ferrix_castore::from_url(&castore_url)?;
    let path_info: Arc<dyn PathInfoService> = match pathinfo_db {
        Some(db) => Arc::new(RedbPathInfoService::open(&db, castore.clone(), store_dir.clone())?),
        None => Arc::new(MemoryPathInfoService::new(castore.clone(), store_dir.clone())),
    };
    Ok(Store { blobs: castore.blobs, directories: castore.directories, path_info, store_dir })
}

/// Checks and creates the directory a `redb://` or `objectstore+file://` URL names.
fn store_directory<'a>(rest: &'a str, bad: &dyn Fn(&str) -> Error) -> Result<&'a Path> {
    if rest.contains(['?', '#']) {
        return Err(bad("query strings and fragments are not supported"));
    }
    let dir = Path::new(rest);
    if !dir.is_absolute() {
        return Err(bad(
            "expected an absolute directory: SCHEME:///absolute/path",
        ));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(bad(
            "the path must be a directory (it holds the castore and pathinfo.redb)",
        ));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    Ok(dir)
}

/// `$FERRIX_STORE`, else `redb://<data dir>/ferrix` where the data dir is
/// `$XDG_DATA_HOME` or `~/.local/share`.
pub fn default_store_url() -> Result<String> {
    if let Some(url) = std::env::var_os("FERRIX_STORE").filter(|v| !v.is_empty()) {
        return url.into_string().map_err(|v| Error::InvalidUrl {
            url: v.to_string_lossy().into_owned(),
            reason: "FERRIX_STORE is not UTF-8".into(),
        });
    }
    let data = match std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
    {
        Some(d) if d.is_absolute() => d,
        _ => {
            let home = std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Error::InvalidUrl {
                    url: String::new(),
                    reason:
                        "neither XDG_DATA_HOME nor HOME is set; pass --store or set FERRIX_STORE"
                            .into(),
                })?;
            PathBuf::from(home).join(".local/share")
        }
    };
    Ok(format!("redb://{}", data.join("ferrix").display()))
}
