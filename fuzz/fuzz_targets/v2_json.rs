//! Open Inference Protocol v2 JSON bodies (first byte picks the strict or lenient schema).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let s = &common::schemas()[usize::from(pick & 1)];
    if let Ok(d) = vane_protocol::decode_infer(s, body, None) {
        common::check(s, &d);
    }
});
