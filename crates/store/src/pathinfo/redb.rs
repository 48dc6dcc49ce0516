//! Embedded path info backend: one redb table, store path digest → encoded
//! [`PathInfo`]. Each `put` is one durable (fsync'd) transaction.

use std::path::{Path, PathBuf};

use ferrix_castore::Services;
use ferrix_formats::{StoreDir, StorePath};
use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{PathInfoService, check_root};
use crate::error::{Error, Result};
use crate::path_info::PathInfo;

/// store path digest → [`PathInfo::encode`]
const PATH_INFOS: TableDefinition<&[u8; 20], &[u8]> = TableDefinition::new("path_infos");
/// store path digest → the path's name: which paths are registered, in a
/// table small enough that answering [`PathInfoService::has_paths`] for
/// thousands of paths reads a few pages rather than every path info. Written
/// with each path info; rebuilt on open when its length differs from
/// `path_infos`' (a store written before it existed; entries are never
/// removed, so equal lengths mean equal key sets).
const PATH_NAMES: TableDefinition<&[u8; 20], &[u8]> = TableDefinition::new("path_names");

fn db_err(e: impl Into<redb::Error>) -> Error {
    Error::storage(e.into())
}

/// Path infos in a redb database file, checked against castore on `put`.
pub struct RedbPathInfoService {
    db: Database,
    path: PathBuf,
    castore: Services,
    store_dir: StoreDir,
}

impl RedbPathInfoService {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path, castore: Services, store_dir: StoreDir) -> Result<Self> {
        let db = match Database::builder().create(path) {
            Ok(db) => db,
            Err(DatabaseError::DatabaseAlreadyOpen) => {
                return Err(Error::StoreLocked {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(Error::Storage(format!("opening {}: {e}", path.display()))),
        };
        // Create the tables (or rebuild the names) only when needed: a
        // write commit here would cost every process that opens the store
        // an fsync.
        let in_sync = db.begin_read().is_ok_and(|r| match (r.open_table(PATH_INFOS), r.open_table(PATH_NAMES)) {
            (Ok(infos), Ok(names)) => matches!((infos.len(), names.len()), (Ok(a), Ok(b)) if a == b),
            _ => false,
        });
        if !in_sync {
            let txn = db.begin_write().map_err(db_err)?;
            {
                let infos = txn.open_table(PATH_INFOS).map_err(db_err)?;
                let mut names = txn.open_table(PATH_NAMES).map_err(db_err)?;
                if infos.len().map_err(db_err)? != names.len().map_err(db_err)? {
                    for item in infos.iter().map_err(db_err)? {
                        let (k, v) = item.map_err(db_err)?;
                        let p = PathInfo::decode_store_path(v.value())?;
                        names.insert(k.value(), p.name().as_bytes()).map_err(db_err)?;
                    }
                }
            }
            txn.commit().map_err(db_err)?;
        }
        Ok(Self {
            db,
            path: path.to_owned(),
            castore,
            store_dir,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn decode(key: &[u8; 20], bytes: &[u8]) -> Result<PathInfo> {
    let info = PathInfo::decode(bytes)?;
    if info.store_path.digest() != *key {
        return Err(Error::Corrupt(format!(
            "entry for {} is stored under another digest",
            info.store_path
        )));
    }
    Ok(info)
}

impl PathInfoService for RedbPathInfoService {
    fn get(&self, digest: &[u8; 20]) -> Result<Option<PathInfo>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(PATH_INFOS).map_err(db_err)?;
        match table.get(digest).map_err(db_err)? {
            Some(v) => Ok(Some(decode(digest, v.value())?)),
            None => Ok(None),
        }
    }

    fn has_paths(&self, paths: &[&StorePath]) -> Result<Vec<bool>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(PATH_NAMES).map_err(db_err)?;
        // In key order: neighbouring lookups then share their B-tree pages.
        let mut order: Vec<(usize, [u8; 20])> = paths.iter().map(|p| p.digest()).enumerate().collect();
        order.sort_unstable_by_key(|x| x.1);
        let mut have = vec![false; paths.len()];
        for (i, digest) in order {
            if let Some(v) = table.get(&digest).map_err(db_err)? {
                have[i] = v.value() == paths[i].name().as_bytes();
            }
        }
        Ok(have)
    }

    fn put(&self, info: PathInfo) -> Result<PathInfo> {
        check_root(&self.castore, &self.store_dir, &info)?;
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(PATH_INFOS).map_err(db_err)?;
            let mut names = txn.open_table(PATH_NAMES).map_err(db_err)?;
            let digest = info.store_path.digest();
            table.insert(&digest, info.encode().as_slice()).map_err(db_err)?;
            names.insert(&digest, info.store_path.name().as_bytes()).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(info)
    }

    fn put_many(&self, infos: Vec<PathInfo>) -> Result<()> {
        for info in &infos {
            check_root(&self.castore, &self.store_dir, info)?;
        }
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(PATH_INFOS).map_err(db_err)?;
            let mut names = txn.open_table(PATH_NAMES).map_err(db_err)?;
            for info in &infos {
                let digest = info.store_path.digest();
                table.insert(&digest, info.encode().as_slice()).map_err(db_err)?;
                names.insert(&digest, info.store_path.name().as_bytes()).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)?;
        Ok(())
    }

    fn list(&self) -> Result<Vec<PathInfo>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(PATH_INFOS).map_err(db_err)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            out.push(decode(k.value(), v.value())?);
        }
        Ok(out)
    }
}
