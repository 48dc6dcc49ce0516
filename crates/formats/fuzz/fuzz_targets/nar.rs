//! Fuzz the streaming NAR reader.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = ferrix_formats::nar::NarReader::new(data);
    let mut buf = [0u8; 64];
    while let Ok(Some(_)) = r.next() {
        while let Ok(n) = r.read_contents(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }
});
