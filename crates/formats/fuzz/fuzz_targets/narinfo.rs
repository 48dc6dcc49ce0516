//! Fuzz narinfo and key parsing; whatever parses must print back and re-parse.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let sd = ferrix_formats::StoreDir::default();
        if let Ok(ni) = ferrix_formats::NarInfo::parse(s, &sd) {
            assert_eq!(ferrix_formats::NarInfo::parse(&ni.to_text(&sd), &sd).unwrap(), ni);
        }
        let _ = ferrix_formats::SecretKey::parse(s);
        let _ = ferrix_formats::PublicKey::parse(s);
    }
});
