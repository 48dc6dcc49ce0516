//! Fuzz store path parsing.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ferrix_formats::StorePathRef::from_base_name_bytes(data) {
        assert_eq!(p.to_string().as_bytes(), data);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = ferrix_formats::StoreDir::default().parse_prefix(s);
    }
});
