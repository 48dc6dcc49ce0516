//! Streaming NAR writer: a typed node/directory API and dumping of host paths.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::hash::{HashAlgo, HashingWriter, NixHash};

fn write_u64<W: Write>(w: &mut W, n: u64) -> io::Result<()> {
    w.write_all(&n.to_le_bytes())
}

const ZEROS: [u8; 8] = [0; 8];

fn pad<W: Write>(w: &mut W, len: u64) -> io::Result<()> {
    let p = (8 - (len % 8) as usize) % 8;
    w.write_all(&ZEROS[..p])
}

fn write_str<W: Write>(w: &mut W, s: &[u8]) -> io::Result<()> {
    write_u64(w, s.len() as u64)?;
    w.write_all(s)?;
    pad(w, s.len() as u64)
}

/// Writes one NAR to `W`. Start with [`NarWriter::new`], which gives the root [`Node`].
pub struct NarWriter<W> {
    w: W,
}

impl<W: Write> NarWriter<W> {
    /// Write the magic; the returned node must be filled exactly once.
    pub fn new(w: W) -> io::Result<NarWriter<W>> {
        let mut w = w;
        write_str(&mut w, super::MAGIC)?;
        Ok(NarWriter { w })
    }

    /// The root node.
    pub fn root(&mut self) -> Node<'_, W> {
        Node {
            w: &mut self.w,
            in_entry: false,
        }
    }

    /// The inner writer (after the root node has been written).
    pub fn into_inner(self) -> W {
        self.w
    }
}

/// A node to be written: exactly one of `file`, `symlink`, `directory`.
pub struct Node<'a, W> {
    w: &'a mut W,
    in_entry: bool,
}

impl<'a, W: Write> Node<'a, W> {
    fn close(self) -> io::Result<()> {
        write_str(self.w, b")")?;
        if self.in_entry {
            write_str(self.w, b")")?;
        }
        Ok(())
    }

    /// A regular file of exactly `size` bytes read from `contents`.
    pub fn file(self, executable: bool, size: u64, contents: &mut dyn Read) -> io::Result<()> {
        let mut buf = vec![0u8; (size.min(1 << 20) as usize).max(1)];
        self.file_with_buffer(executable, size, contents, &mut buf)
    }

    /// Like [`Node::file`], reusing a caller-provided buffer.
    pub fn file_with_buffer(
        self,
        executable: bool,
        size: u64,
        contents: &mut dyn Read,
        buf: &mut [u8],
    ) -> io::Result<()> {
        write_str(self.w, b"(")?;
        write_str(self.w, b"type")?;
        write_str(self.w, b"regular")?;
        if executable {
            write_str(self.w, b"executable")?;
            write_str(self.w, b"")?;
        }
        write_str(self.w, b"contents")?;
        write_u64(self.w, size)?;
        let mut left = size;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = contents.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("file ended {left} bytes before its declared size {size}"),
                ));
            }
            self.w.write_all(&buf[..n])?;
            left -= n as u64;
        }
        pad(self.w, size)?;
        self.close()
    }

    /// A regular file whose contents `write_contents` writes into the NAR
    /// (for callers that already hold the data in chunks); it must write
    /// exactly `size` bytes.
    pub fn file_from_writer(
        self,
        executable: bool,
        size: u64,
        write_contents: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<()> {
        write_str(self.w, b"(")?;
        write_str(self.w, b"type")?;
        write_str(self.w, b"regular")?;
        if executable {
            write_str(self.w, b"executable")?;
            write_str(self.w, b"")?;
        }
        write_str(self.w, b"contents")?;
        write_u64(self.w, size)?;
        let mut counted = Counting {
            w: &mut *self.w,
            n: 0,
            limit: size,
        };
        write_contents(&mut counted)?;
        if counted.n != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "file contents were {} bytes, not the declared {size}",
                    counted.n
                ),
            ));
        }
        pad(self.w, size)?;
        self.close()
    }

    /// A regular file from bytes in memory.
    pub fn bytes(self, executable: bool, data: &[u8]) -> io::Result<()> {
        let mut r = data;
        self.file(executable, data.len() as u64, &mut r)
    }

    /// A symlink.
    pub fn symlink(self, target: &[u8]) -> io::Result<()> {
        if target.is_empty() || target.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "symlink target must be non-empty and contain no NUL",
            ));
        }
        write_str(self.w, b"(")?;
        write_str(self.w, b"type")?;
        write_str(self.w, b"symlink")?;
        write_str(self.w, b"target")?;
        write_str(self.w, target)?;
        self.close()
    }

    /// A directory; add entries in strictly increasing bytewise name order, then `close` it.
    pub fn directory(self) -> io::Result<Directory<'a, W>> {
        write_str(self.w, b"(")?;
        write_str(self.w, b"type")?;
        write_str(self.w, b"directory")?;
        Ok(Directory {
            w: self.w,
            in_entry: self.in_entry,
            prev: None,
        })
    }
}

/// An open directory node.
pub struct Directory<'a, W> {
    w: &'a mut W,
    in_entry: bool,
    prev: Option<Vec<u8>>,
}

impl<W: Write> Directory<'_, W> {
    /// Start the entry `name`; names must be valid and strictly increasing.
    pub fn entry(&mut self, name: &[u8]) -> io::Result<Node<'_, W>> {
        if name.is_empty()
            || name == b"."
            || name == b".."
            || name.contains(&b'/')
            || name.contains(&0)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid NAR entry name {:?}", String::from_utf8_lossy(name)),
            ));
        }
        if let Some(p) = &self.prev
            && p.as_slice() >= name
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "NAR entry {:?} is not after {:?}",
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(p)
                ),
            ));
        }
        self.prev = Some(name.to_vec());
        write_str(self.w, b"entry")?;
        write_str(self.w, b"(")?;
        write_str(self.w, b"name")?;
        write_str(self.w, name)?;
        write_str(self.w, b"node")?;
        Ok(Node {
            w: self.w,
            in_entry: true,
        })
    }

    /// Finish the directory.
    pub fn close(self) -> io::Result<()> {
        write_str(self.w, b")")?;
        if self.in_entry {
            write_str(self.w, b")")?;
        }
        Ok(())
    }
}

/// Serialise the host path `path` (not following a top-level symlink) as a NAR into `w`.
pub fn dump_path<W: Write>(path: &Path, w: W) -> io::Result<W> {
    // fail before writing anything if the root does not exist or cannot be archived
    let md = fs::symlink_metadata(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let ft = md.file_type();
    if !(ft.is_file() || ft.is_dir() || ft.is_symlink()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("file '{}' has an unsupported type", path.display()),
        ));
    }
    let mut nar = NarWriter::new(w)?;
    let mut buf = vec![0u8; 1 << 20];
    dump_node(path, nar.root(), &mut buf)?;
    Ok(nar.into_inner())
}

/// NAR hash and size of a host path, computed in one pass.
pub fn dump_path_hashed(path: &Path, algo: HashAlgo) -> io::Result<(NixHash, u64)> {
    let w = HashingWriter::new(io::sink(), algo);
    let w = dump_path(path, io::BufWriter::with_capacity(1 << 16, w))?;
    let w = w.into_inner().map_err(|e| e.into_error())?;
    let (_, h, n) = w.finish();
    Ok((h, n))
}

fn dump_node<W: Write>(path: &Path, node: Node<'_, W>, buf: &mut [u8]) -> io::Result<()> {
    let ctx = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let md = fs::symlink_metadata(path).map_err(ctx)?;
    let ft = md.file_type();
    if ft.is_file() {
        let mut f = fs::File::open(path).map_err(ctx)?;
        let exec = md.permissions().mode() & 0o100 != 0;
        if md.len() >= PIPELINE_MIN {
            let mut r = PipelinedReader::new(f);
            let res = node.file_from_writer(exec, md.len(), |w| r.copy_to(w));
            r.finish();
            res.map_err(ctx)
        } else {
            node.file_with_buffer(exec, md.len(), &mut f, buf)
                .map_err(ctx)
        }
    } else if ft.is_symlink() {
        let t = fs::read_link(path).map_err(ctx)?;
        node.symlink(t.as_os_str().as_bytes())
    } else if ft.is_dir() {
        let mut names: Vec<std::ffi::OsString> = fs::read_dir(path)
            .map_err(ctx)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(ctx)?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut dir = node.directory()?;
        for n in names {
            let child = path.join(&n);
            dump_node(&child, dir.entry(n.as_bytes())?, buf)?;
        }
        dir.close()
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("file '{}' has an unsupported type", path.display()),
        ))
    }
}

/// Files at least this big are read on a helper thread, so reading and
/// hashing/writing overlap.
const PIPELINE_MIN: u64 = 8 << 20;
const PIPELINE_CHUNK: usize = 1 << 20;

type Chunk = io::Result<Vec<u8>>;

/// Reads a file ahead on a helper thread and hands over filled buffers
/// through a small channel (buffers are recycled), so that reading the
/// next chunk overlaps with hashing or writing the current one.
struct PipelinedReader {
    rx: Option<std::sync::mpsc::Receiver<Chunk>>,
    back: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl PipelinedReader {
    fn new(mut f: fs::File) -> PipelinedReader {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(2);
        let (back, free) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        for _ in 0..3 {
            let _ = back.try_send(vec![0u8; PIPELINE_CHUNK]);
        }
        let handle = std::thread::spawn(move || {
            while let Ok(mut b) = free.recv() {
                b.resize(PIPELINE_CHUNK, 0);
                let mut n = 0;
                let res = loop {
                    match f.read(&mut b[n..]) {
                        Ok(0) => break Ok(()),
                        Ok(k) => {
                            n += k;
                            if n == b.len() {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                b.truncate(n);
                let stop = n == 0 || res.is_err();
                let msg = res.map(|()| b);
                if tx.send(msg).is_err() || stop {
                    return;
                }
            }
        });
        PipelinedReader {
            rx: Some(rx),
            back: Some(back),
            cur: Vec::new(),
            pos: 0,
            done: false,
            handle: Some(handle),
        }
    }

    /// Stop the helper thread and wait for it.
    fn finish(mut self) {
        self.rx = None;
        self.back = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl PipelinedReader {
    /// Write everything that is left straight from the read-ahead buffers.
    fn copy_to(&mut self, w: &mut dyn Write) -> io::Result<()> {
        if self.pos < self.cur.len() {
            w.write_all(&self.cur[self.pos..])?;
            self.pos = self.cur.len();
        }
        while !self.done {
            let old = std::mem::take(&mut self.cur);
            if let Some(back) = &self.back {
                let _ = back.try_send(old);
            }
            match self.rx.as_ref().map(|rx| rx.recv()) {
                Some(Ok(Ok(b))) if !b.is_empty() => {
                    w.write_all(&b)?;
                    self.pos = b.len();
                    self.cur = b;
                }
                Some(Ok(Err(e))) => {
                    self.done = true;
                    return Err(e);
                }
                _ => self.done = true,
            }
        }
        Ok(())
    }
}

/// Counts what passes through and refuses to go over `limit`.
struct Counting<'a, W> {
    w: &'a mut W,
    n: u64,
    limit: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.n + buf.len() as u64 > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("file contents exceed the declared size {}", self.limit),
            ));
        }
        let k = self.w.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}
