//! v2 bodies with the binary tensor extension: the first two bytes give the JSON header's
//! length (`Inference-Header-Content-Length`), raw tensors follow it.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let json_len = usize::from(u16::from_le_bytes(*len) & 0x7fff);
    let s = &common::schemas()[usize::from(len[1] % 3)];
    if let Ok(d) = vane_protocol::decode_infer(s, body, Some(json_len)) {
        common::check(s, &d);
    }
});
