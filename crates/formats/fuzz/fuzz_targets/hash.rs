//! Fuzz hash and content-address parsing.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(h) = ferrix_formats::NixHash::parse(s, None) {
            assert_eq!(ferrix_formats::NixHash::parse(&h.to_sri(), None).unwrap(), h);
        }
        for a in ferrix_formats::HashAlgo::ALL {
            let _ = ferrix_formats::NixHash::parse(s, Some(a));
        }
        if let Ok(ca) = s.parse::<ferrix_formats::CAHash>() {
            assert_eq!(ca.to_string().parse::<ferrix_formats::CAHash>().unwrap(), ca);
        }
    }
});
