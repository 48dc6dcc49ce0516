//! The compressions a binary cache file may have, as narinfo's
//! `Compression` field and NAR file name extensions name them.

use std::io::{self, Read, Write};

use crate::error::{Error, Result};

/// A NAR file's compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Xz,
    Zstd,
    Bzip2,
}

impl Compression {
    /// From narinfo's `Compression` value (see
    /// [`ferrix_formats::NarInfo::compression_or_default`]).
    pub fn from_name(name: &str) -> Result<Compression> {
        Ok(match name {
            "none" | "" => Compression::None,
            "xz" => Compression::Xz,
            "zstd" => Compression::Zstd,
            "bzip2" => Compression::Bzip2,
            other => {
                return Err(Error::Cache(format!(
                    "unsupported NAR compression '{other}' (known: none, xz, zstd, bzip2)"
                )));
            }
        })
    }

    /// The narinfo `Compression` value.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
        }
    }

    /// What C++ Nix appends to `.nar` for this compression.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
            Compression::Bzip2 => ".bz2",
        }
    }

    /// From a NAR file name's extension after `.nar` (`""`, `.xz`, `.zst`,
    /// `.bz2`).
    pub fn from_extension(ext: &str) -> Option<Compression> {
        [
            Compression::None,
            Compression::Xz,
            Compression::Zstd,
            Compression::Bzip2,
        ]
        .into_iter()
        .find(|c| c.extension() == ext)
    }

    /// A reader that decompresses `r`. It reads exactly one compressed
    /// stream; check [`finish_decoder`] afterwards for trailing data.
    pub fn decoder<'a, R: Read + Send + 'a>(self, r: R) -> Result<Box<dyn Read + Send + 'a>> {
        Ok(match self {
            Compression::None => Box::new(r),
            Compression::Xz => Box::new(xz2::read::XzDecoder::new(r)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::new(r)
                    .map_err(|e| Error::io("starting zstd decompression", e))?,
            ),
            Compression::Bzip2 => Box::new(bzip2::read::BzDecoder::new(r)),
        })
    }

    /// A writer that compresses into `w`; call [`Encoder::finish`] at the end.
    pub fn encoder<'a, W: Write + Send + 'a>(self, w: W) -> io::Result<Encoder<'a, W>> {
        Ok(match self {
            Compression::None => Encoder::None(w),
            // Preset 3: a few MiB of encoder state rather than ~100 MiB at 6.
            Compression::Xz => Encoder::Xz(xz2::write::XzEncoder::new(w, 3)),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(w, 3)?),
            Compression::Bzip2 => Encoder::Bzip2(bzip2::write::BzEncoder::new(
                w,
                bzip2::Compression::default(),
            )),
        })
    }
}

/// A compressing writer (see [`Compression::encoder`]).
pub enum Encoder<'a, W: Write> {
    None(W),
    Xz(xz2::write::XzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'a, W>),
    Bzip2(bzip2::write::BzEncoder<W>),
}

impl<W: Write> Encoder<'_, W> {
    /// Writes the end of the compressed stream and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Xz(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
            Encoder::Bzip2(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Xz(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Bzip2(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Xz(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
            Encoder::Bzip2(e) => e.flush(),
        }
    }
}

/// After a NAR has been read from a decoder: the decompressed stream must
/// end there (reading on also makes xz and bzip2 check their trailers).
pub fn finish_decoder(mut r: impl Read, what: &str) -> Result<()> {
    let mut b = [0u8; 1];
    match r.read(&mut b) {
        Ok(0) => Ok(()),
        Ok(_) => Err(Error::Cache(format!(
            "{what}: trailing data after the end of the NAR"
        ))),
        Err(e) => Err(Error::io(format!("{what}: decompressing"), e)),
    }
}
