//! The monitor's ingest stream: length-prefixed frames, each decoded and, for rows, read
//! column by column as the monitor does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vane_sample_stream::{Frame, body_len, decode};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Some((prefix, tail)) = rest.split_first_chunk::<4>() {
        let Ok(n) = body_len(*prefix) else {
            return;
        };
        let Some((body, next)) = tail.split_at_checked(n) else {
            return;
        };
        rest = next;
        match decode(body) {
            Ok(Frame::Rows(rows)) => {
                let mut sum = 0f32;
                for c in 0..rows.columns {
                    sum += rows.column(c).sum::<f32>();
                }
                if let Some(scores) = rows.scores() {
                    sum += scores.sum::<f32>();
                }
                std::hint::black_box(sum);
            }
            Ok(Frame::Schema { schema, .. }) => {
                std::hint::black_box(schema.id());
            }
            Err(_) => {}
        }
    }
});
