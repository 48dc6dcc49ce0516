//! Fuzz the ATerm parser; whatever parses must print back identically.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sd = ferrix_formats::StoreDir::default();
    if let Ok(d) = ferrix_formats::Derivation::from_aterm(data, &sd) {
        let again = ferrix_formats::Derivation::from_aterm(&d.to_aterm(&sd), &sd).unwrap();
        assert_eq!(again, d);
        let _ = d.to_json(&sd);
    }
});
