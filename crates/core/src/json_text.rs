//! JSON string text, byte level: where the next byte that a JSON string
//! cannot hold as is (a quote, a backslash, a control character) lies.
//! Shared by the Lambda event scanner (which ends strings there) and the log
//! lines (which escape there); eight bytes at a time. And [`same_bytes`],
//! the comparison of short texts the scanner and [`crate::Attributes`] make.

/// The index of the first quote, backslash or control character in
/// `bytes`, eight bytes at a time. Each test is a borrow trick whose lowest
/// flagged byte is exact (bytes above a flagged one may be flagged falsely;
/// only the lowest is read). Faster than `memchr` and a second pass for
/// control characters on the short strings of an event or a log line
/// (callgrind, docs/performance.md).
#[must_use]
pub fn special_byte(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().ok()?);
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let found = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (word.wrapping_sub(ONES * 0x20) & !word))
            & HIGH;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    bytes[at..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|p| at + p)
}

/// Whether `a` and `b` are the same bytes, compared eight at a time.
///
/// Written out because the static binary's `bcmp` (the one `==` and
/// `starts_with` on slices call) is `compiler_rt`'s from the zig toolchain
/// cargo-lambda links with, which compares byte by byte: it was 15 % of a
/// 1,000-record invocation's instructions, ~84 per key of the event
/// (callgrind on the musl build, docs/performance.md).
#[must_use]
#[inline]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let len = a.len();
    if len < 8 {
        // Folded into a word each: a byte loop here would be turned back
        // into a `bcmp` call.
        let fold = |bytes: &[u8]| bytes.iter().fold(0u64, |w, &b| (w << 8) | u64::from(b));
        return fold(a) == fold(b);
    }
    let word = |bytes: &[u8], at: usize| {
        let mut w = [0; 8];
        w.copy_from_slice(&bytes[at..at + 8]);
        u64::from_ne_bytes(w)
    };
    let mut at = 0;
    while at + 8 <= len {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    // The last word, overlapping the one before (len >= 8).
    at == len || word(a, len - 8) == word(b, len - 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_is_slice_equality() {
        let text = b"ApproximateFirstReceiveTimestamp";
        for len in 0..=text.len() {
            let a = &text[..len];
            let copy = a.to_vec();
            assert!(same_bytes(a, &copy));
            // One byte changed, wherever it is, and one byte more or less.
            for i in 0..len {
                let mut b = a.to_vec();
                b[i] ^= 0x20;
                assert!(!same_bytes(a, &b), "{a:?} {b:?}");
            }
            if len > 0 {
                assert!(!same_bytes(a, &a[..len - 1]));
                assert!(!same_bytes(&a[..len - 1], a));
            }
        }
    }

    #[test]
    fn finds_the_first_quote_backslash_or_control_character() {
        let naive = |b: &[u8]| b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        // Every position in and across eight-byte words, after plain ASCII,
        // multi-byte UTF-8 (high bits set) and other specials above it.
        for fill in [b'a', 0xC3, 0x7F, 0x20, 0xFF] {
            for len in 0..24 {
                for at in 0..=len {
                    for special in [b'"', b'\\', 0x00, 0x1F, b'\n'] {
                        let mut bytes = vec![fill; len];
                        if at < len {
                            bytes[at] = special;
                            // A later special must not hide the first.
                            if at + 3 < len {
                                bytes[at + 3] = b'"';
                            }
                        }
                        assert_eq!(special_byte(&bytes), naive(&bytes), "{bytes:?}");
                    }
                }
            }
        }
    }
}
