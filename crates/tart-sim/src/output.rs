//! tart's output formats: Apple's pretty JSON (random key order, `\/` escapes, `[\n\n]`),
//! the TextTable "plain" style, and the two date styles of `tart list` (reference 2.1).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Serializes like Foundation's `JSONEncoder` with `.prettyPrinted` and no `.sortedKeys`:
/// object keys come in a random order on every call.
pub fn apple_json(value: &Value) -> String {
    let mut out = String::new();
    let mut rng = SmallRng::new();
    write_value(value, 0, &mut out, &mut rng);
    out
}

fn write_value(value: &Value, depth: usize, out: &mut String, rng: &mut SmallRng) {
    let pad = |d: usize| "  ".repeat(d);
    match value {
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{\n\n}");
                return;
            }
            let mut keys: Vec<&String> = map.keys().collect();
            rng.shuffle(&mut keys);
            out.push_str("{\n");
            for (i, key) in keys.iter().enumerate() {
                out.push_str(&pad(depth + 1));
                out.push_str(&escape(key));
                out.push_str(" : ");
                write_value(&map[*key], depth + 1, out, rng);
                out.push_str(if i + 1 < keys.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(depth));
            out.push('}');
        }
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[\n\n]");
                return;
            }
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                out.push_str(&pad(depth + 1));
                write_value(item, depth + 1, out, rng);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(depth));
            out.push(']');
        }
        Value::String(s) => out.push_str(&escape(s)),
        other => out.push_str(&other.to_string()),
    }
}

/// JSON string escaping with Foundation's habit of escaping `/`.
fn escape(s: &str) -> String {
    serde_json::to_string(s)
        .unwrap_or_default()
        .replace('/', "\\/")
}

/// TextTable's plain style: left-aligned cells padded to the column width, joined by one
/// space, rows by `\n`, then the whole text trimmed.
pub fn text_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let render = |cells: Vec<&str>| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut lines = vec![render(header.to_vec())];
    for row in rows {
        lines.push(render(row.iter().map(String::as_str).collect()));
    }
    lines.join("\n").trim().to_string()
}

/// `ISO8601DateFormatter`: `2026-03-20T10:15:02Z`.
pub fn iso8601(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `RelativeDateTimeFormatter` with `.full` units in English: `3 minutes ago`.
pub fn relative(t: SystemTime, now: SystemTime) -> String {
    let secs = now.duration_since(t).map(|d| d.as_secs()).unwrap_or(0);
    let (n, unit) = match secs {
        s if s < 60 => (s, "second"),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86_400 => (s / 3600, "hour"),
        s if s < 7 * 86_400 => (s / 86_400, "day"),
        s if s < 30 * 86_400 => (s / (7 * 86_400), "week"),
        s if s < 365 * 86_400 => (s / (30 * 86_400), "month"),
        s => (s / (365 * 86_400), "year"),
    };
    if n == 0 {
        return "in 0 seconds".to_string();
    }
    let plural = if n == 1 { "" } else { "s" };
    format!("{n} {unit}{plural} ago")
}

/// A tiny xorshift generator seeded from the clock and pid: only for shuffling keys.
struct SmallRng(u64);

impl SmallRng {
    fn new() -> SmallRng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        SmallRng(nanos ^ (u64::from(std::process::id()) << 32) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn json_escapes_slashes_and_prints_empty_arrays_like_foundation() {
        let v = serde_json::json!([{"Name": "ghcr.io/cirruslabs/ubuntu:latest"}]);
        assert_eq!(
            apple_json(&v),
            "[\n  {\n    \"Name\" : \"ghcr.io\\/cirruslabs\\/ubuntu:latest\"\n  }\n]"
        );
        assert_eq!(apple_json(&serde_json::json!([])), "[\n\n]");
    }

    #[test]
    fn table_pads_columns_and_trims_the_whole_text() {
        let rows = vec![vec!["local".into(), "a".into(), "stopped".into()]];
        assert_eq!(
            text_table(&["Source", "Name", "State"], &rows),
            "Source Name State  \nlocal  a    stopped"
        );
    }

    #[test]
    fn dates_render_like_apple_formatters() {
        assert_eq!(
            iso8601(UNIX_EPOCH + Duration::from_secs(1_774_001_702)),
            "2026-03-20T10:15:02Z"
        );
        let now = SystemTime::now();
        assert_eq!(
            relative(now - Duration::from_secs(180), now),
            "3 minutes ago"
        );
        assert_eq!(relative(now - Duration::from_secs(3600), now), "1 hour ago");
    }
}
