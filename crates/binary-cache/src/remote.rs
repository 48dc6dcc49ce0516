//! Reading and writing binary cache files over `http://` and `file://`.
//!
//! Paths inside a cache are relative (`nix-cache-info`, `<hash>.narinfo`,
//! `nar/<filehash>.nar.xz`); [`check_relative`] refuses anything that could
//! leave the cache (`..`, absolute paths, queries).

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::auth::Credentials;
use crate::error::{Error, Result};

/// A binary cache the client side reads from or writes to.
pub enum Remote {
    /// `http://host[:port][/prefix]`.
    Http {
        base: String,
        agent: ureq::Agent,
        auth: Option<Credentials>,
    },
    /// `file:///abs/dir`, as `nix copy --to file:///dir` writes it.
    File { dir: PathBuf },
}

/// A readable cache file.
pub type Reader = Box<dyn Read + Send>;

impl Remote {
    /// Opens the cache a URL names. `auth` is sent (as HTTP basic auth) with
    /// every request to an `http://` cache.
    pub fn open(url: &str, auth: Option<Credentials>) -> Result<Remote> {
        let bad = |reason: &str| Error::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(rest) = url.strip_prefix("file://") {
            if rest.contains(['?', '#']) {
                return Err(bad("query strings and fragments are not supported"));
            }
            let dir = PathBuf::from(rest);
            if !dir.is_absolute() {
                return Err(bad("expected file:///absolute/dir"));
            }
            Ok(Remote::File { dir })
        } else if url.starts_with("http://") {
            if url.contains(['?', '#']) {
                return Err(bad("query strings and fragments are not supported"));
            }
            let config = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build();
            Ok(Remote::Http {
                base: url.trim_end_matches('/').to_owned(),
                agent: config.into(),
                auth,
            })
        } else if url.starts_with("https://") {
            Err(bad(
                "https:// caches are not supported yet (http:// and file:// are)",
            ))
        } else {
            Err(bad("expected http://host[:port][/prefix] or file:///dir"))
        }
    }

    /// The URL, for messages.
    pub fn describe(&self, rel: &str) -> String {
        match self {
            Remote::Http { base, .. } => format!("{base}/{rel}"),
            Remote::File { dir } => format!("file://{}/{rel}", dir.display()),
        }
    }

    fn file_path(dir: &Path, rel: &str) -> Result<PathBuf> {
        check_relative(rel)?;
        Ok(dir.join(rel))
    }

    /// Opens a cache file; `None` if the cache does not have it.
    pub fn get(&self, rel: &str) -> Result<Option<Reader>> {
        check_relative(rel)?;
        match self {
            Remote::File { dir } => match fs::File::open(Self::file_path(dir, rel)?) {
                Ok(f) => Ok(Some(Box::new(io::BufReader::with_capacity(1 << 16, f)))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io(format!("reading {}", self.describe(rel)), e)),
            },
            Remote::Http { base, agent, auth } => {
                let mut req = agent.get(format!("{base}/{rel}"));
                if let Some(a) = auth {
                    req = req.header("Authorization", a.header());
                }
                let resp = req.call().map_err(|e| self.http_err(rel, e))?;
                match resp.status().as_u16() {
                    200 => Ok(Some(Box::new(resp.into_body().into_reader()))),
                    // Like Nix: S3-style caches say 403 for missing files.
                    403 | 404 => Ok(None),
                    s => Err(Error::Cache(format!(
                        "GET {}: HTTP status {s}",
                        self.describe(rel)
                    ))),
                }
            }
        }
    }

    /// Reads a small cache file (a narinfo or `nix-cache-info`) as text.
    pub fn get_text(&self, rel: &str) -> Result<Option<String>> {
        let Some(r) = self.get(rel)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        r.take(1 << 20)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(format!("reading {}", self.describe(rel)), e))?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Error::Cache(format!("{} is not UTF-8", self.describe(rel))))
    }

    /// Whether the cache has a file.
    pub fn exists(&self, rel: &str) -> Result<bool> {
        check_relative(rel)?;
        match self {
            Remote::File { dir } => Ok(Self::file_path(dir, rel)?.is_file()),
            Remote::Http { base, agent, auth } => {
                let mut req = agent.head(format!("{base}/{rel}"));
                if let Some(a) = auth {
                    req = req.header("Authorization", a.header());
                }
                let resp = req.call().map_err(|e| self.http_err(rel, e))?;
                match resp.status().as_u16() {
                    200 => Ok(true),
                    403 | 404 => Ok(false),
                    s => Err(Error::Cache(format!(
                        "HEAD {}: HTTP status {s}",
                        self.describe(rel)
                    ))),
                }
            }
        }
    }

    /// Writes a cache file from a stream. A `file://` cache gets it whole or
    /// not at all (written to a temporary name, synced, renamed).
    pub fn put(&self, rel: &str, body: &mut dyn Read, content_type: &str) -> Result<()> {
        check_relative(rel)?;
        match self {
            Remote::File { dir } => {
                let dest = Self::file_path(dir, rel)?;
                let parent = dest.parent().expect("joined path has a parent");
                fs::create_dir_all(parent)
                    .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
                let ctx = || format!("writing {}", dest.display());
                let (tmp, mut f) = tempfile_in(parent).map_err(|e| Error::io(ctx(), e))?;
                let res = io::copy(body, &mut f)
                    .and_then(|_| f.flush())
                    .and_then(|()| f.sync_all())
                    .and_then(|()| fs::rename(&tmp, &dest));
                if let Err(e) = res {
                    let _ = fs::remove_file(&tmp);
                    return Err(Error::io(ctx(), e));
                }
                Ok(())
            }
            Remote::Http { base, agent, auth } => {
                // `Expect: 100-continue` (as curl sends for big uploads):
                // a server refusing the upload (401…) says so before the
                // body is sent, rather than cutting the connection mid-way.
                let mut req = agent
                    .put(format!("{base}/{rel}"))
                    .header("Content-Type", content_type)
                    .header("Expect", "100-continue");
                if let Some(a) = auth {
                    req = req.header("Authorization", a.header());
                }
                let mut resp = req
                    .send(ureq::SendBody::from_reader(body))
                    .map_err(|e| self.http_err(rel, e))?;
                let status = resp.status().as_u16();
                if (200..300).contains(&status) {
                    return Ok(());
                }
                let msg = resp
                    .body_mut()
                    .with_config()
                    .limit(4096)
                    .read_to_string()
                    .unwrap_or_default();
                Err(Error::Cache(format!(
                    "PUT {}: HTTP status {status}: {}",
                    self.describe(rel),
                    msg.trim()
                )))
            }
        }
    }

    fn http_err(&self, rel: &str, e: ureq::Error) -> Error {
        Error::Cache(format!("{}: {e}", self.describe(rel)))
    }
}

/// A cache-relative path must stay inside the cache.
pub fn check_relative(rel: &str) -> Result<()> {
    let ok = !rel.is_empty()
        && !rel.starts_with('/')
        && !rel.contains(['?', '#', '\\', '\0'])
        && rel
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(())
    } else {
        Err(Error::Cache(format!(
            "refusing cache path {rel:?}: it must be relative and stay inside the cache"
        )))
    }
}

/// A new file with a unique name in `dir` (removed by the caller on failure).
fn tempfile_in(dir: &Path) -> io::Result<(PathBuf, fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    loop {
        let p = dir.join(format!(
            ".tmp-ferrix-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        match fs::OpenOptions::new().write(true).create_new(true).open(&p) {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_stay_inside() {
        for ok in ["nix-cache-info", "abc.narinfo", "nar/x.nar.xz"] {
            assert!(check_relative(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "nar/../../x",
            "nar//x",
            "./x",
            "a?b",
            "a\\b",
        ] {
            assert!(check_relative(bad).is_err(), "{bad}");
        }
    }
}
