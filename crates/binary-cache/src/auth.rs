//! HTTP basic-auth credentials: the `user:password` files `ferrix store
//! serve --upload-auth/--read-auth` and `ferrix store copy --auth-file`
//! take, and the check of a request's `Authorization` header (C++ Nix sends
//! basic auth from its `netrc-file`).

use std::path::Path;

use data_encoding::BASE64;

use crate::error::{Error, Result};

/// One `user:password` pair.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}:…)", self.user)
    }
}

impl Credentials {
    /// Parses `user:password` (the password may contain `:`).
    pub fn parse(s: &str) -> Result<Credentials> {
        let s = s.trim_end_matches(['\n', '\r']);
        match s.split_once(':') {
            Some((user, password)) if !user.is_empty() && !password.is_empty() => Ok(Credentials {
                user: user.to_owned(),
                password: password.to_owned(),
            }),
            _ => Err(Error::Config(
                "credentials must be one line 'user:password'".into(),
            )),
        }
    }

    /// Reads a file holding one `user:password` line.
    pub fn from_file(path: &Path) -> Result<Credentials> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let line = text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default();
        Credentials::parse(line).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// The `Authorization` header value that carries these credentials.
    pub fn header(&self) -> String {
        format!(
            "Basic {}",
            BASE64.encode(format!("{}:{}", self.user, self.password).as_bytes())
        )
    }

    /// Whether an `Authorization` header value carries these credentials.
    /// The comparison takes the same time wherever the first difference is.
    pub fn accepts(&self, header: Option<&[u8]>) -> bool {
        let Some(h) = header else { return false };
        let want = self.header();
        let (a, b) = (h, want.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let c = Credentials::parse("alice:s3:cret\n").unwrap();
        assert_eq!(c.user, "alice");
        assert!(c.accepts(Some(c.header().as_bytes())));
        let other = Credentials::parse("alice:wrong").unwrap();
        assert!(!c.accepts(Some(other.header().as_bytes())));
        assert!(!c.accepts(None));
        assert!(Credentials::parse("nopassword").is_err());
        assert!(Credentials::parse(":x").is_err());
    }
}
