//! Merkle directories: [`Node`], [`Directory`], their canonical encoding and the
//! [`DirectoryService`] trait.
//!
//! # Canonical encoding
//!
//! A directory's digest is the BLAKE3 hash of its canonical encoding, which is
//! (all integers little-endian, fixed width, so every directory has exactly one
//! encoding):
//!
//! ```text
//! directory := u32 entry_count  entry*          (entries sorted by name bytes, unique)
//! entry     := u32 name_len  name  kind:u8  payload
//! kind 0 (directory): digest[32]  u64 size        (size: see Directory::size)
//! kind 1 (file):      digest[32]  u64 size  u8 executable (0 or 1)
//! kind 2 (symlink):   u32 target_len  target
//! ```
//!
//! [`Directory::decode`] accepts exactly the byte strings that
//! [`Directory::encode`] produces: truncation, trailing bytes, unknown kinds,
//! non-boolean flags, invalid names and unsorted or duplicate entries are all
//! errors.

use std::collections::{HashSet, VecDeque};
use std::fmt;

use crate::error::{Error, Result, lossy};
use crate::{B3Digest, BlobService};

/// Why a directory, name or encoding is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("invalid entry name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("entries out of order: {prev:?} must sort after {next:?} (names are sorted by bytes)")]
    Unsorted { prev: String, next: String },
    #[error("duplicate entry name {0:?}")]
    Duplicate(String),
    #[error("symlink {name:?} has an invalid target: {reason}")]
    InvalidSymlinkTarget { name: String, reason: &'static str },
    #[error("directory size overflows u64")]
    SizeOverflow,
    #[error("malformed directory encoding at byte {offset}: {reason}")]
    Decode { offset: usize, reason: String },
}

/// A valid entry name: non-empty bytes, no `/`, no NUL, not `.` or `..`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Vec<u8>);

impl Name {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, DirectoryError> {
        let bytes = bytes.into();
        let reason = if bytes.is_empty() {
            "empty"
        } else if bytes == b"." || bytes == b".." {
            "`.` and `..` are not allowed"
        } else if bytes.contains(&b'/') {
            "contains `/`"
        } else if bytes.contains(&0) {
            "contains NUL"
        } else {
            return Ok(Self(bytes));
        };
        Err(DirectoryError::InvalidName { name: lossy(&bytes), reason })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl TryFrom<&str> for Name {
    type Error = DirectoryError;
    fn try_from(s: &str) -> Result<Self, DirectoryError> {
        Self::new(s.as_bytes())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", lossy(&self.0))
    }
}

/// What a name points to, and also what an ingest returns for a root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Node {
    /// A directory stored in the [`DirectoryService`]; `size` is its
    /// [`Directory::size`].
    Directory { digest: B3Digest, size: u64 },
    /// A file whose contents are a blob in the [`BlobService`].
    File { digest: B3Digest, size: u64, executable: bool },
    /// A symbolic link; the target is non-empty and has no NUL.
    Symlink { target: Vec<u8> },
}

/// Checks a symlink target (non-empty, no NUL).
pub fn validate_symlink_target(target: &[u8]) -> Result<(), &'static str> {
    if target.is_empty() {
        Err("empty")
    } else if target.contains(&0) {
        Err("contains NUL")
    } else {
        Ok(())
    }
}

/// One named entry of a [`Directory`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    pub name: Name,
    pub node: Node,
}

impl Entry {
    pub fn new(name: Name, node: Node) -> Self {
        Self { name, node }
    }
}

/// A directory: entries with unique names, sorted by name bytes (the order NAR
/// uses). A `Directory` value is always valid; construct it with
/// [`Directory::new`] (checks order) or [`Directory::from_unsorted`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Directory {
    entries: Vec<Entry>,
}

impl Directory {
    /// Builds a directory from entries that must already be in canonical
    /// (strictly increasing byte) order.
    pub fn new(entries: Vec<Entry>) -> Result<Self, DirectoryError> {
        for pair in entries.windows(2) {
            let (prev, next) = (&pair[0].name, &pair[1].name);
            if prev == next {
                return Err(DirectoryError::Duplicate(lossy(prev.as_bytes())));
            }
            if prev > next {
                return Err(DirectoryError::Unsorted {
                    prev: lossy(prev.as_bytes()),
                    next: lossy(next.as_bytes()),
                });
            }
        }
        let mut size: u64 = 0;
        for e in &entries {
            match &e.node {
                Node::Symlink { target } => validate_symlink_target(target).map_err(|reason| {
                    DirectoryError::InvalidSymlinkTarget { name: lossy(e.name.as_bytes()), reason }
                })?,
                Node::Directory { size: s, .. } => {
                    size = size.checked_add(*s).ok_or(DirectoryError::SizeOverflow)?;
                }
                Node::File { .. } => {}
            }
        }
        size.checked_add(entries.len() as u64).ok_or(DirectoryError::SizeOverflow)?;
        Ok(Self { entries })
    }

    /// Sorts the entries, then checks them as [`Directory::new`] does
    /// (duplicates are still an error).
    pub fn from_unsorted(mut entries: Vec<Entry>) -> Result<Self, DirectoryError> {
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Self::new(entries)
    }

    /// The entries, in canonical order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }

    /// Looks an entry up by name (binary search).
    pub fn get(&self, name: &[u8]) -> Option<&Node> {
        self.entries
            .binary_search_by(|e| e.name.as_bytes().cmp(name))
            .ok()
            .map(|i| &self.entries[i].node)
    }

    /// The number of entries in this directory and all directories below it
    /// (each child directory counts its own entries). Checked not to overflow
    /// at construction.
    pub fn size(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match e.node {
                Node::Directory { size, .. } => size + 1,
                _ => 1,
            })
            .sum()
    }

    /// The [`Node`] pointing at this directory.
    pub fn node(&self) -> Node {
        Node::Directory { digest: self.digest(), size: self.size() }
    }

    /// The BLAKE3 digest of the canonical encoding.
    pub fn digest(&self) -> B3Digest {
        B3Digest::of(&self.encode())
    }

    /// The canonical encoding (see the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.entries.len() * 64);
        out.extend_from_slice(&len32(self.entries.len()).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&len32(e.name.0.len()).to_le_bytes());
            out.extend_from_slice(&e.name.0);
            match &e.node {
                Node::Directory { digest, size } => {
                    out.push(0);
                    out.extend_from_slice(digest.as_bytes());
                    out.extend_from_slice(&size.to_le_bytes());
                }
                Node::File { digest, size, executable } => {
                    out.push(1);
                    out.extend_from_slice(digest.as_bytes());
                    out.extend_from_slice(&size.to_le_bytes());
                    out.push(u8::from(*executable));
                }
                Node::Symlink { target } => {
                    out.push(2);
                    out.extend_from_slice(&len32(target.len()).to_le_bytes());
                    out.extend_from_slice(target);
                }
            }
        }
        out
    }

    /// Decodes a canonical encoding; anything else is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, DirectoryError> {
        let mut r = Reader { bytes, pos: 0 };
        let count = r.u32()? as usize;
        // Each entry takes at least 4 + 1 + 1 + 4 bytes; never trust `count` for allocation.
        let mut entries = Vec::with_capacity(count.min(bytes.len() / 10));
        for _ in 0..count {
            let name_at = r.pos;
            let name_len = r.u32()? as usize;
            let name = Name::new(r.take(name_len)?).map_err(|e| r.err_at(name_at, e.to_string()))?;
            let kind_at = r.pos;
            let node = match r.u8()? {
                0 => Node::Directory { digest: r.digest()?, size: r.u64()? },
                1 => {
                    let digest = r.digest()?;
                    let size = r.u64()?;
                    let flag_at = r.pos;
                    let executable = match r.u8()? {
                        0 => false,
                        1 => true,
                        b => return Err(r.err_at(flag_at, format!("executable flag {b} is not 0 or 1"))),
                    };
                    Node::File { digest, size, executable }
                }
                2 => {
                    let len = r.u32()? as usize;
                    Node::Symlink { target: r.take(len)?.to_vec() }
                }
                k => return Err(r.err_at(kind_at, format!("unknown entry kind {k}"))),
            };
            entries.push(Entry { name, node });
        }
        if r.pos != bytes.len() {
            return Err(r.err_at(r.pos, format!("{} trailing bytes", bytes.len() - r.pos)));
        }
        Self::new(entries)
    }
}

fn len32(n: usize) -> u32 {
    // Names and targets come from file systems (far below 4 GiB); a directory
    // with 2^32 entries cannot be built in memory on the machines we target.
    u32::try_from(n).expect("length fits in u32")
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[cold]
    fn err_at(&self, offset: usize, reason: String) -> DirectoryError {
        DirectoryError::Decode { offset, reason }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DirectoryError> {
        let rest = &self.bytes[self.pos..];
        if rest.len() < n {
            return Err(self.err_at(self.pos, format!("truncated: need {n} bytes, {} left", rest.len())));
        }
        self.pos += n;
        Ok(&rest[..n])
    }
    fn u8(&mut self) -> Result<u8, DirectoryError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, DirectoryError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("took 4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, DirectoryError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("took 8 bytes")))
    }
    fn digest(&mut self) -> Result<B3Digest, DirectoryError> {
        Ok(B3Digest::from_bytes(self.take(32)?.try_into().expect("took 32 bytes")))
    }
}

/// Stores merkle directories by the digest of their canonical encoding.
///
/// `put` accepts a directory only if every directory and blob it names is
/// already stored (with the size the entry claims), so a stored directory's
/// whole closure is always present.
pub trait DirectoryService: Send + Sync {
    /// Fetches a directory, `None` if absent.
    fn get(&self, digest: &B3Digest) -> Result<Option<Directory>>;

    /// Whether a directory is stored.
    fn has(&self, digest: &B3Digest) -> Result<bool> {
        Ok(self.get(digest)?.is_some())
    }

    /// Stores one directory (durably) after checking what it points to.
    fn put(&self, directory: &Directory) -> Result<B3Digest> {
        self.put_tree(std::slice::from_ref(directory))
    }

    /// Stores several directories in one all-or-nothing step, children before
    /// parents: each may point to directories stored earlier or earlier in
    /// `dirs`. Returns the digest of the last one (the root).
    fn put_tree(&self, dirs: &[Directory]) -> Result<B3Digest>;

    /// Like [`put_tree`](Self::put_tree) (checked, all or nothing, readable
    /// at once), but a backend may leave the fsync to its next durable
    /// commit: the tree is durable once the same castore's
    /// [`BlobService::flush`](crate::BlobService::flush) returns. Many
    /// small imports registered together then cost one fsync, not one each.
    /// The default is `put_tree`.
    fn put_tree_deferred(&self, dirs: &[Directory]) -> Result<B3Digest> {
        self.put_tree(dirs)
    }

    /// Every directory reachable from `root` (itself included), each once,
    /// breadth-first from the root. A missing one is [`Error::DanglingDirectory`].
    fn closure(&self, root: &B3Digest) -> Result<Vec<(B3Digest, Directory)>> {
        let mut seen = HashSet::from([*root]);
        let mut queue = VecDeque::from([*root]);
        let mut out = Vec::new();
        while let Some(d) = queue.pop_front() {
            let dir = self.get(&d)?.ok_or(Error::DanglingDirectory(d))?;
            for e in dir.entries() {
                if let Node::Directory { digest, .. } = &e.node
                    && seen.insert(*digest)
                {
                    queue.push_back(*digest);
                }
            }
            out.push((d, dir));
        }
        Ok(out)
    }
}

/// Checks that every directory and blob `dir` points to exists with the size
/// its entry claims. `child_size` returns a stored directory's size.
pub(crate) fn check_references(
    dir: &Directory,
    mut child_size: impl FnMut(&B3Digest) -> Result<Option<u64>>,
    mut blob_size: impl FnMut(&B3Digest) -> Result<Option<u64>>,
) -> Result<()> {
    for e in dir.entries() {
        let name = || lossy(e.name.as_bytes());
        let (digest, claimed, actual) = match &e.node {
            Node::Directory { digest, size } => match child_size(digest)? {
                Some(actual) => (digest, *size, actual),
                None => return Err(Error::MissingDirectory { name: name(), digest: *digest }),
            },
            Node::File { digest, size, .. } => match blob_size(digest)? {
                Some(actual) => (digest, *size, actual),
                None => return Err(Error::MissingBlob { name: name(), digest: *digest }),
            },
            Node::Symlink { .. } => continue,
        };
        if claimed != actual {
            return Err(Error::SizeMismatch { name: name(), digest: *digest, claimed, actual });
        }
    }
    Ok(())
}

/// One step of a depth-first [`walk`]. Paths are relative to the root, `/`
/// separated bytes; the root itself has the empty path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkEvent<'a> {
    EnterDirectory { path: &'a [u8] },
    LeaveDirectory { path: &'a [u8] },
    File { path: &'a [u8], digest: &'a B3Digest, size: u64, executable: bool },
    Symlink { path: &'a [u8], target: &'a [u8] },
}

/// Walks the tree under `root` depth-first, entries in sorted byte order (the
/// order NAR serialisation needs), calling `visit` for every node. Iterative,
/// so however deep a stored tree is, the walk cannot overflow the stack.
pub fn walk(
    dirs: &dyn DirectoryService,
    root: &Node,
    visit: &mut dyn FnMut(WalkEvent<'_>) -> Result<()>,
) -> Result<()> {
    /// A directory being walked: its remaining entries, and the path length
    /// to restore when leaving it.
    struct Frame {
        rest: std::vec::IntoIter<Entry>,
        path_len: usize,
    }
    let open = |digest: &B3Digest| -> Result<std::vec::IntoIter<Entry>> {
        Ok(dirs.get(digest)?.ok_or(Error::DanglingDirectory(*digest))?.into_entries().into_iter())
    };
    let mut path = Vec::new();
    let Node::Directory { digest, .. } = root else {
        return visit_leaf(root, &path, visit);
    };
    let rest = open(digest)?;
    visit(WalkEvent::EnterDirectory { path: &path })?;
    let mut stack = vec![Frame { rest, path_len: 0 }];
    while let Some(top) = stack.last_mut() {
        let Some(entry) = top.rest.next() else {
            visit(WalkEvent::LeaveDirectory { path: &path })?;
            path.truncate(top.path_len);
            stack.pop();
            continue;
        };
        let path_len = path.len();
        if path_len > 0 {
            path.push(b'/');
        }
        path.extend_from_slice(entry.name.as_bytes());
        if let Node::Directory { digest, .. } = &entry.node {
            let rest = open(digest)?;
            visit(WalkEvent::EnterDirectory { path: &path })?;
            stack.push(Frame { rest, path_len });
        } else {
            visit_leaf(&entry.node, &path, visit)?;
            path.truncate(path_len);
        }
    }
    Ok(())
}

fn visit_leaf(node: &Node, path: &[u8], visit: &mut dyn FnMut(WalkEvent<'_>) -> Result<()>) -> Result<()> {
    match node {
        Node::File { digest, size, executable } => {
            visit(WalkEvent::File { path, digest, size: *size, executable: *executable })
        }
        Node::Symlink { target } => visit(WalkEvent::Symlink { path, target }),
        Node::Directory { .. } => unreachable!("visit_leaf is only called on files and symlinks"),
    }
}

/// Checks that a root node's whole closure is present: every directory and
/// every blob. Useful before registering the root somewhere durable.
pub fn check_closure(dirs: &dyn DirectoryService, blobs: &dyn BlobService, root: &Node) -> Result<()> {
    let check_blob = |digest: &B3Digest| -> Result<()> {
        if blobs.has(digest)? { Ok(()) } else { Err(Error::DanglingBlob(*digest)) }
    };
    match root {
        Node::Symlink { .. } => Ok(()),
        Node::File { digest, .. } => check_blob(digest),
        Node::Directory { digest, .. } => {
            for (_, dir) in dirs.closure(digest)? {
                for e in dir.entries() {
                    if let Node::File { digest, .. } = &e.node {
                        check_blob(digest)?;
                    }
                }
            }
            Ok(())
        }
    }
}
