//! The table of loaded source texts, so that a [`Span`](crate::ir::Span) (file id and
//! byte offset) can be shown as `file:line:col` when an error is printed.

use std::cell::RefCell;
use std::rc::Rc;

thread_local! {
    static SOURCES: RefCell<Vec<(Rc<str>, Rc<str>)>> = const { RefCell::new(Vec::new()) };
    static SPACE: RefCell<Space> = const { RefCell::new(Space { bases: Vec::new(), starts: Vec::new(), next: 1 }) };
}

/// The files laid end to end in one `u32` offset space, so a position fits
/// in four bytes ([`Pos`](crate::ir::Pos)): file `f` covers
/// `bases[f] ..= bases[f] + len` (0 is "no position"). A file that no
/// longer fits (past 4 GiB of source text) gets no base, and positions in
/// it are lost.
struct Space {
    /// Per file id: its base, or 0 when it did not fit.
    bases: Vec<u32>,
    /// (base, file id) of the files that fit, in increasing base order.
    starts: Vec<(u32, u32)>,
    next: u32,
}

/// Register a source text under a display name (a path or `«stdin»`);
/// returns its file id.
pub fn add(name: &str, text: &str) -> u32 {
    let id = SOURCES.with(|s| {
        let mut s = s.borrow_mut();
        s.push((name.into(), text.into()));
        (s.len() - 1) as u32
    });
    SPACE.with(|sp| {
        let mut sp = sp.borrow_mut();
        let base = sp.next;
        match u32::try_from(text.len()).ok().and_then(|l| base.checked_add(l)).and_then(|end| end.checked_add(1)) {
            Some(next) => {
                sp.next = next;
                sp.bases.push(base);
                sp.starts.push((base, id));
            }
            None => sp.bases.push(0),
        }
    });
    id
}

/// The global offset of `offset` in `file` (0 if the file has no base).
pub(crate) fn global(file: u32, offset: u32) -> u32 {
    SPACE.with(|sp| match sp.borrow().bases.get(file as usize) {
        Some(&b) if b != 0 => b.saturating_add(offset),
        _ => 0,
    })
}

/// The (file id, offset) of a nonzero global offset.
pub(crate) fn locate(global: u32) -> Option<(u32, u32)> {
    SPACE.with(|sp| {
        let sp = sp.borrow();
        let i = sp.starts.partition_point(|&(b, _)| b <= global).checked_sub(1)?;
        let (base, file) = sp.starts[i];
        Some((file, global - base))
    })
}

/// Display name and text of a file id.
pub fn get(file: u32) -> Option<(Rc<str>, Rc<str>)> {
    SOURCES.with(|s| s.borrow().get(file as usize).cloned())
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let col = String::from_utf8_lossy(&text.as_bytes()[line_start..offset]).chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use crate::ir::{Pos, Span};

    #[test]
    fn positions_round_trip_through_the_global_space() {
        let a = super::add("a.nix", "{ x = 1; }");
        let b = super::add("b.nix", "");
        let c = super::add("c.nix", "let y = 2; in y");
        for span in [
            Span { file: a, offset: 0 },
            Span { file: a, offset: 10 },
            Span { file: b, offset: 0 },
            Span { file: c, offset: 0 },
            Span { file: c, offset: 15 },
        ] {
            let p = Pos::from(span);
            assert!(!p.is_none());
            assert_eq!(p.span(), span);
        }
        assert!(Pos::from(Span::NONE).is_none());
        assert_eq!(Pos::NONE.span(), Span::NONE);
    }
}
