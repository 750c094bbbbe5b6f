//! The request parser on arbitrary bytes, delivered in reads of a size the input chooses,
//! with the buffer compacted between reads as the connection does. The first byte picks the
//! read size and whether the client is authenticated (stricter limits before AUTH).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_server::protocol::{Parser, ProtoLimits, parse_i64};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    let read = usize::from(ctl & 0x3F) + 1;
    let limits = ProtoLimits {
        max_bulk_len: 512 * 1024 * 1024,
        auth_required: ctl & 0x40 != 0,
    };
    let mut parser = Parser::new();
    let mut buf = Vec::new();
    for piece in input.chunks(read) {
        buf.extend_from_slice(piece);
        loop {
            match parser.next(&buf, limits) {
                Ok(Some(args)) => {
                    assert!(!args.is_empty(), "empty commands are skipped");
                    for a in args.iter() {
                        std::hint::black_box(parse_i64(a));
                    }
                }
                Ok(None) => break,
                // The connection replies with the error and closes.
                Err(_) => return,
            }
        }
        let consumed = parser.consumed();
        buf.drain(..consumed);
        parser.compact(consumed);
    }
});
