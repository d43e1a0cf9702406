//! The wall clock as the state, the journal and the transcripts write it. A leaf.

/// The current UTC time as `2026-11-23T10:15:02Z`.
pub fn now_rfc3339() -> String {
    let secs = since_epoch().as_secs();
    format!("{}Z", civil(secs))
}

/// The current UTC time to the millisecond, as `2026-11-23T10:15:02.123Z` (transcript
/// entries, which `logs` puts in order across nodes).
pub fn now_rfc3339_millis() -> String {
    let now = since_epoch();
    format!("{}.{:03}Z", civil(now.as_secs()), now.subsec_millis())
}

fn since_epoch() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// `2026-11-23T10:15:02` for seconds since the epoch.
fn civil(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        let now = now_rfc3339();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z'));
        let precise = now_rfc3339_millis();
        assert_eq!(precise.len(), 24, "{precise}");
        assert_eq!(&precise[19..20], ".");
    }
}
