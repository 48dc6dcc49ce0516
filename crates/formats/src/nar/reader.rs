//! Streaming NAR pull reader: validates structure and canonical form as it goes.

use std::io::{self, Read};

/// Why a NAR is rejected.
#[derive(Debug, thiserror::Error)]
pub enum NarError {
    #[error("NAR is truncated (unexpected end of input)")]
    Truncated,
    #[error("I/O error reading NAR: {0}")]
    Io(io::Error),
    #[error("not a NAR archive (bad magic)")]
    BadMagic,
    #[error("NAR: expected {expected:?}, found {found:?}")]
    Unexpected {
        expected: &'static str,
        found: String,
    },
    #[error("NAR: unknown node type {0:?}")]
    UnknownType(String),
    #[error("NAR: string of {len} bytes exceeds the limit of {max}")]
    TooLong { len: u64, max: u64 },
    #[error("NAR: non-zero padding")]
    BadPadding,
    #[error("NAR: invalid entry name {0:?}")]
    BadName(String),
    #[error("NAR: directory entries not sorted or duplicated: {prev:?} then {name:?}")]
    NotSorted { prev: String, name: String },
    #[error("NAR: invalid symlink target {0:?}")]
    BadTarget(String),
    #[error("NAR: directories nested deeper than {0}")]
    TooDeep(usize),
    #[error("NAR reader used after an error")]
    Poisoned,
}

impl From<io::Error> for NarError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            NarError::Truncated
        } else {
            NarError::Io(e)
        }
    }
}

/// Sizes the reader refuses to exceed.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest entry name (bytes).
    pub max_name: u64,
    /// Longest symlink target (bytes).
    pub max_target: u64,
    /// Deepest directory nesting.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_name: 255,
            max_target: 4096,
            max_depth: 1024,
        }
    }
}

/// What a node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// A regular file; its contents follow and can be read with
    /// [`NarReader::read_contents`] (anything unread is skipped).
    Regular {
        executable: bool,
        size: u64,
    },
    Symlink {
        target: Vec<u8>,
    },
    /// A directory; its entries follow, then [`Event::EndDirectory`].
    Directory,
}

/// One step of a NAR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A node; `name` is `None` for the root, the entry name otherwise.
    Node {
        name: Option<Vec<u8>>,
        kind: NodeKind,
    },
    /// The end of the innermost open directory.
    EndDirectory,
}

enum State {
    Start,
    /// Inside a regular file's contents.
    Contents {
        remaining: u64,
        size: u64,
    },
    /// Between nodes inside the directory on top of the stack (or done if empty).
    Between,
    Done,
    Failed,
}

/// A pull parser over any `Read`; never holds more than one token in memory
/// and never allocates by a size the archive declares. It reads small tokens
/// with `read_exact`, so wrap unbuffered sources in a `BufReader`.
pub struct NarReader<R> {
    r: R,
    state: State,
    /// Previous entry name of each open directory.
    dirs: Vec<Option<Vec<u8>>>,
    limits: Limits,
    scratch: Vec<u8>,
}

impl<R: Read> NarReader<R> {
    pub fn new(r: R) -> Self {
        Self::with_limits(r, Limits::default())
    }

    pub fn with_limits(r: R, limits: Limits) -> Self {
        NarReader {
            r,
            state: State::Start,
            dirs: Vec::new(),
            limits,
            scratch: Vec::new(),
        }
    }

    /// The underlying reader, positioned after whatever has been parsed.
    pub fn into_inner(self) -> R {
        self.r
    }

    /// Whether the whole archive has been read.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn u64(&mut self) -> Result<u64, NarError> {
        let mut b = [0u8; 8];
        self.r.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn padding(&mut self, len: u64) -> Result<(), NarError> {
        let p = ((8 - len % 8) % 8) as usize;
        let mut b = [0u8; 8];
        self.r.read_exact(&mut b[..p])?;
        if b[..p].iter().any(|&x| x != 0) {
            return Err(NarError::BadPadding);
        }
        Ok(())
    }

    /// Read a string of at most `max` bytes into `scratch`.
    fn token(&mut self, max: u64) -> Result<(), NarError> {
        let len = self.u64()?;
        if len > max {
            return Err(NarError::TooLong { len, max });
        }
        self.scratch.resize(len as usize, 0);
        self.r.read_exact(&mut self.scratch)?;
        self.padding(len)
    }

    fn expect(&mut self, lit: &'static str) -> Result<(), NarError> {
        self.token(16).map_err(|e| match e {
            NarError::TooLong { .. } => NarError::Unexpected {
                expected: lit,
                found: "<long string>".into(),
            },
            e => e,
        })?;
        if self.scratch != lit.as_bytes() {
            return Err(NarError::Unexpected {
                expected: lit,
                found: String::from_utf8_lossy(&self.scratch).into_owned(),
            });
        }
        Ok(())
    }

    /// Parse `( type …` up to the start of the node's body.
    fn node(&mut self, name: Option<Vec<u8>>) -> Result<Event, NarError> {
        self.expect("(")?;
        self.expect("type")?;
        self.token(16)?;
        match &self.scratch[..] {
            b"regular" => {
                self.token(16)?;
                let executable = match &self.scratch[..] {
                    b"executable" => {
                        self.expect("")?;
                        self.expect("contents")?;
                        true
                    }
                    b"contents" => false,
                    other => {
                        return Err(NarError::Unexpected {
                            expected: "contents",
                            found: String::from_utf8_lossy(other).into_owned(),
                        });
                    }
                };
                let size = self.u64()?;
                self.state = State::Contents {
                    remaining: size,
                    size,
                };
                Ok(Event::Node {
                    name,
                    kind: NodeKind::Regular { executable, size },
                })
            }
            b"symlink" => {
                self.expect("target")?;
                self.token(self.limits.max_target)?;
                let target = std::mem::take(&mut self.scratch);
                if target.is_empty() || target.contains(&0) {
                    return Err(NarError::BadTarget(
                        String::from_utf8_lossy(&target).into_owned(),
                    ));
                }
                self.expect(")")?;
                self.end_node()?;
                Ok(Event::Node {
                    name,
                    kind: NodeKind::Symlink { target },
                })
            }
            b"directory" => {
                if self.dirs.len() >= self.limits.max_depth {
                    return Err(NarError::TooDeep(self.limits.max_depth));
                }
                self.dirs.push(None);
                self.state = State::Between;
                Ok(Event::Node {
                    name,
                    kind: NodeKind::Directory,
                })
            }
            other => Err(NarError::UnknownType(
                String::from_utf8_lossy(other).into_owned(),
            )),
        }
    }

    /// After a node's closing `)`: close the enclosing entry, or finish.
    fn end_node(&mut self) -> Result<(), NarError> {
        if self.dirs.is_empty() {
            self.state = State::Done;
        } else {
            self.expect(")")?;
            self.state = State::Between;
        }
        Ok(())
    }

    /// Read up to `buf.len()` bytes of the current file's contents; 0 at its end.
    pub fn read_contents(&mut self, buf: &mut [u8]) -> Result<usize, NarError> {
        let State::Contents { remaining, .. } = &mut self.state else {
            return Ok(0);
        };
        if *remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = (*remaining).min(buf.len() as u64) as usize;
        let n = loop {
            match self.r.read(&mut buf[..want]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.state = State::Failed;
                    return Err(e.into());
                }
                Ok(n) => break n,
            }
        };
        if n == 0 {
            self.state = State::Failed;
            return Err(NarError::Truncated);
        }
        *remaining -= n as u64;
        Ok(n)
    }

    /// The next event, or `None` when the archive is complete.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Event>, NarError> {
        let r = self.step();
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    fn step(&mut self) -> Result<Option<Event>, NarError> {
        loop {
            match std::mem::replace(&mut self.state, State::Failed) {
                State::Done => {
                    self.state = State::Done;
                    return Ok(None);
                }
                State::Failed => return Err(NarError::Poisoned),
                State::Start => {
                    self.token(16).map_err(|e| match e {
                        NarError::TooLong { .. } => NarError::BadMagic,
                        e => e,
                    })?;
                    if self.scratch != super::MAGIC {
                        return Err(NarError::BadMagic);
                    }
                    return self.node(None).map(Some);
                }
                State::Contents { remaining, size } => {
                    // skip what the caller did not read
                    let copied = io::copy(&mut (&mut self.r).take(remaining), &mut io::sink())?;
                    if copied != remaining {
                        return Err(NarError::Truncated);
                    }
                    self.padding(size)?;
                    self.expect(")")?;
                    self.end_node()?;
                }
                State::Between => {
                    self.token(16)?;
                    match &self.scratch[..] {
                        b")" => {
                            self.dirs.pop();
                            self.end_node()?;
                            return Ok(Some(Event::EndDirectory));
                        }
                        b"entry" => {
                            self.expect("(")?;
                            self.expect("name")?;
                            self.token(self.limits.max_name)?;
                            let name = std::mem::take(&mut self.scratch);
                            if name.is_empty()
                                || name == b"."
                                || name == b".."
                                || name.contains(&b'/')
                                || name.contains(&0)
                            {
                                return Err(NarError::BadName(
                                    String::from_utf8_lossy(&name).into_owned(),
                                ));
                            }
                            let prev = self.dirs.last_mut().expect("inside a directory");
                            if let Some(p) = prev
                                && p.as_slice() >= name.as_slice()
                            {
                                return Err(NarError::NotSorted {
                                    prev: String::from_utf8_lossy(p).into_owned(),
                                    name: String::from_utf8_lossy(&name).into_owned(),
                                });
                            }
                            *prev = Some(name.clone());
                            self.expect("node")?;
                            return self.node(Some(name)).map(Some);
                        }
                        other => {
                            return Err(NarError::Unexpected {
                                expected: "entry or )",
                                found: String::from_utf8_lossy(other).into_owned(),
                            });
                        }
                    }
                }
            }
        }
    }

    /// Read the whole archive, checking it, and return the reader after it.
    pub fn validate(mut self) -> Result<R, NarError> {
        while self.next()?.is_some() {}
        Ok(self.r)
    }
}
