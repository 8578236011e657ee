//! The timestamp of each line.

use std::cell::RefCell;
use std::fmt::Write as _;

/// Appends `now` in UTC as RFC 3339 with microseconds
/// (`2026-11-23T18:55:00.123456Z`, what `tracing-subscriber` writes). The
/// date and time of day are formatted once per second per thread and
/// reused, only the microseconds per line: the full format on every line was
/// ~4% of a 10,000-record invocation. Hand-written: the date crates in the
/// dependency tree (chrono, time) format the whole value on every call.
pub(super) fn push_timestamp(out: &mut String, now: std::time::SystemTime) {
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }
    let since_epoch = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since_epoch.as_secs();
    SECOND.with(|cache| {
        if let Ok(mut cache) = cache.try_borrow_mut() {
            if cache.0 != secs || cache.1.is_empty() {
                cache.1.clear();
                push_second(&mut cache.1, secs);
                cache.0 = secs;
            }
            out.push_str(&cache.1);
        } else {
            push_second(out, secs);
        }
    });
    // Six digits by hand: `write!` with `{:06}` went through the
    // formatting machinery on every line.
    let micros = since_epoch.subsec_micros();
    let mut digits = [b'0'; 7];
    digits[6] = b'Z';
    let mut rest = micros;
    for digit in digits[..6].iter_mut().rev() {
        *digit = b'0' + u8::try_from(rest % 10).unwrap_or(0);
        rest /= 10;
    }
    out.push_str(std::str::from_utf8(&digits).unwrap_or("000000Z"));
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SS.` in UTC.
fn push_second(out: &mut String, secs: u64) {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}
