//! KServe v1 `instances` bodies (the first byte picks the strict, lenient or composite-key schema).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let s = &common::schemas()[usize::from(pick % 3)];
    if let Ok(d) = vane_protocol::decode_records(s, body) {
        common::check(s, &d);
    }
});
