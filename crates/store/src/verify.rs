//! Checking the store: every registered path's NAR is re-rendered from
//! castore and its sha256 and size compared with the path info.

use ferrix_formats::StorePath;

use crate::error::Result;
use crate::nar::nar_hash;
use crate::path_info::PathInfo;
use crate::store::Store;

/// One damaged store path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub path: StorePath,
    pub problem: String,
}

/// What [`verify_store`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub checked: usize,
    pub damaged: Vec<Damage>,
}

/// Checks one path: its content must all be present, uncorrupted, and hash
/// to the NAR hash and size on record. Returns the problem, if any.
pub fn verify_path(store: &Store, info: &PathInfo) -> Option<String> {
    if let Err(e) = info.validate(&store.store_dir) {
        return Some(e.to_string());
    }
    match nar_hash(&*store.blobs, &*store.directories, &info.node) {
        Err(e) => Some(e.to_string()),
        Ok((hash, size)) if hash != info.nar_sha256 || size != info.nar_size => {
            let actual = ferrix_formats::NixHash::from_digest(ferrix_formats::HashAlgo::Sha256, &hash)
                .expect("32 bytes")
                .to_typed(ferrix_formats::Encoding::Nix32);
            Some(format!(
                "NAR hash or size changed: recorded {} ({} bytes), now {actual} ({size} bytes)",
                info.nar_hash_string(),
                info.nar_size
            ))
        }
        Ok(_) => None,
    }
}

/// Checks every registered path; `each` is called after each one.
pub fn verify_store(store: &Store, each: &mut dyn FnMut(&PathInfo, Option<&str>)) -> Result<Report> {
    let mut report = Report::default();
    for info in store.path_info.list()? {
        let problem = verify_path(store, &info);
        each(&info, problem.as_deref());
        report.checked += 1;
        if let Some(problem) = problem {
            report.damaged.push(Damage { path: info.store_path.clone(), problem });
        }
    }
    Ok(report)
}
