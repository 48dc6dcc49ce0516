//! Fuzz nixbase32 decoding; whatever decodes must re-encode to the input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = ferrix_formats::nixbase32::decode(data) {
        assert_eq!(ferrix_formats::nixbase32::encode(&b).as_bytes(), data);
    }
});
