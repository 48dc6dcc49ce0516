//! The table of loaded source texts, so that a [`Span`](crate::ir::Span) (file id and
//! byte offset) can be shown as `file:line:col` when an error is printed.

use std::cell::RefCell;
use std::rc::Rc;

thread_local! {
    static SOURCES: RefCell<Vec<(Rc<str>, Rc<str>)>> = const { RefCell::new(Vec::new()) };
}

/// Register a source text under a display name (a path or `«stdin»`);
/// returns its file id.
pub fn add(name: &str, text: &str) -> u32 {
    SOURCES.with(|s| {
        let mut s = s.borrow_mut();
        s.push((name.into(), text.into()));
        (s.len() - 1) as u32
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
