//! [`TreeBuilder`]: builds merkle directories bottom-up from a depth-first
//! stream of entries, as a NAR reader or an archive unpacker produces them.

use crate::directory::{Directory, DirectoryError, Entry, Name, Node, validate_symlink_target};
use crate::error::lossy;

/// Why a stream of entries does not describe one tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error("the root has no name, but {0:?} was given")]
    NamedRoot(String),
    #[error("an entry inside a directory needs a name")]
    UnnamedEntry,
    #[error("the tree already has a root; {0:?} is outside it")]
    AfterRoot(String),
    #[error("leave_directory without a matching enter_directory")]
    Unbalanced,
    #[error("the tree is incomplete: {0} directories still open")]
    Unfinished(usize),
    #[error("the tree is empty")]
    Empty,
    #[error("symlink {name:?} has an invalid target: {reason}")]
    InvalidSymlinkTarget { name: String, reason: &'static str },
}

/// Collects entries depth-first (a directory's entries between its
/// `enter_directory` and `leave_directory`, in any order) and produces the
/// directories children-first, ready for
/// [`DirectoryService::put_tree`](crate::DirectoryService::put_tree).
///
/// ```
/// use ferrix_castore::{B3Digest, Name, Node, tree::TreeBuilder};
/// let mut t = TreeBuilder::default();
/// t.enter_directory(None)?;
/// t.add(Some(Name::try_from("link")?), Node::Symlink { target: b"x".to_vec() })?;
/// t.enter_directory(Some(Name::try_from("sub")?))?;
/// t.leave_directory()?;
/// t.leave_directory()?;
/// let (root, dirs) = t.finish()?;
/// assert_eq!(dirs.len(), 2); // "sub" first, then the root
/// assert_eq!(root, dirs[1].node());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct TreeBuilder {
    /// Open directories: the name each will have in its parent, and its entries so far.
    open: Vec<(Option<Name>, Vec<Entry>)>,
    done: Vec<Directory>,
    root: Option<Node>,
}

impl TreeBuilder {
    fn check_name(&self, name: &Option<Name>) -> Result<(), TreeError> {
        if let Some(root) = &self.root {
            let what = name.as_ref().map_or_else(|| format!("{root:?}"), |n| lossy(n.as_bytes()));
            return Err(TreeError::AfterRoot(what));
        }
        match (self.open.is_empty(), name) {
            (true, Some(n)) => Err(TreeError::NamedRoot(lossy(n.as_bytes()))),
            (false, None) => Err(TreeError::UnnamedEntry),
            _ => Ok(()),
        }
    }

    /// Places a finished node: into the open parent, or as the root.
    fn place(&mut self, name: Option<Name>, node: Node) {
        match (self.open.last_mut(), name) {
            (Some((_, entries)), Some(name)) => entries.push(Entry::new(name, node)),
            _ => self.root = Some(node),
        }
    }

    /// Opens a directory: the root (`name` is `None`) or an entry of the
    /// currently open directory.
    pub fn enter_directory(&mut self, name: Option<Name>) -> Result<(), TreeError> {
        self.check_name(&name)?;
        self.open.push((name, Vec::new()));
        Ok(())
    }

    /// Adds a file or symlink: the root (`name` is `None`) or an entry of the
    /// currently open directory. A `Node::Directory` is added as is (it must
    /// already be stored when the tree is put).
    pub fn add(&mut self, name: Option<Name>, node: Node) -> Result<(), TreeError> {
        self.check_name(&name)?;
        if let Node::Symlink { target } = &node {
            validate_symlink_target(target).map_err(|reason| TreeError::InvalidSymlinkTarget {
                name: name.as_ref().map_or_else(String::new, |n| lossy(n.as_bytes())),
                reason,
            })?;
        }
        self.place(name, node);
        Ok(())
    }

    /// Closes the innermost open directory.
    pub fn leave_directory(&mut self) -> Result<(), TreeError> {
        let (name, entries) = self.open.pop().ok_or(TreeError::Unbalanced)?;
        let dir = Directory::from_unsorted(entries)?;
        let node = dir.node();
        self.done.push(dir);
        self.place(name, node);
        Ok(())
    }

    /// The root node and every directory, children before parents.
    pub fn finish(self) -> Result<(Node, Vec<Directory>), TreeError> {
        if !self.open.is_empty() {
            return Err(TreeError::Unfinished(self.open.len()));
        }
        Ok((self.root.ok_or(TreeError::Empty)?, self.done))
    }
}
