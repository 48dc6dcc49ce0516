//! In-memory path info backend (`memory://`).

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use ferrix_castore::Services;
use ferrix_formats::StoreDir;

use super::{PathInfoService, check_root};
use crate::error::Result;
use crate::path_info::PathInfo;

/// Path infos in a map, checked against castore services on `put`.
pub struct MemoryPathInfoService {
    castore: Services,
    store_dir: StoreDir,
    map: RwLock<BTreeMap<[u8; 20], PathInfo>>,
}

impl MemoryPathInfoService {
    pub fn new(castore: Services, store_dir: StoreDir) -> Self {
        Self { castore, store_dir, map: RwLock::default() }
    }
}

impl PathInfoService for MemoryPathInfoService {
    fn get(&self, digest: &[u8; 20]) -> Result<Option<PathInfo>> {
        Ok(self.map.read().unwrap_or_else(PoisonError::into_inner).get(digest).cloned())
    }

    fn put(&self, info: PathInfo) -> Result<PathInfo> {
        check_root(&self.castore, &self.store_dir, &info)?;
        let mut m = self.map.write().unwrap_or_else(PoisonError::into_inner);
        m.insert(info.store_path.digest(), info.clone());
        Ok(info)
    }

    fn list(&self) -> Result<Vec<PathInfo>> {
        Ok(self.map.read().unwrap_or_else(PoisonError::into_inner).values().cloned().collect())
    }
}
