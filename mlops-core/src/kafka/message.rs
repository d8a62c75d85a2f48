//! The original's Kafka Connect message format: a JSON converter envelope with the schema of
//! `cargo` and the row as payload; the timestamp is Connect's `Timestamp` logical type
//! (milliseconds since the epoch, the column's wall-clock time read as UTC).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::db::tail::SourceRow;

/// The payload of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// `cargo.id`.
    pub id: i32,
    /// `cargo.timestamp` in milliseconds since the epoch.
    pub timestamp: Option<i64>,
    /// `cargo.image_path`.
    pub image_path: Option<String>,
    /// `cargo.target`.
    pub target: Option<i32>,
}

#[derive(Deserialize)]
struct Envelope {
    payload: Payload,
}

/// The schema Kafka Connect's JDBC source gives the `cargo` table.
fn schema() -> Value {
    json!({
        "type": "struct",
        "fields": [
            {"type": "int32", "optional": false, "field": "id"},
            {"type": "int64", "optional": true, "name": "org.apache.kafka.connect.data.Timestamp", "version": 1, "field": "timestamp"},
            {"type": "string", "optional": true, "field": "image_path"},
            {"type": "int32", "optional": true, "field": "target"}
        ],
        "optional": false,
        "name": "cargo"
    })
}

/// The message for a row.
pub fn encode(row: &SourceRow) -> Vec<u8> {
    let payload = Payload {
        id: row.id,
        timestamp: row.timestamp.as_deref().and_then(timestamp_to_millis),
        image_path: row.image_path.clone(),
        target: row.target,
    };
    json!({"schema": schema(), "payload": payload})
        .to_string()
        .into_bytes()
}

/// The row in a message, or why it is not one.
pub fn decode(bytes: &[u8]) -> Result<SourceRow, String> {
    let envelope: Envelope = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a Kafka Connect JSON message with a cargo payload: {e}"))?;
    let p = envelope.payload;
    if let Some(millis) = p.timestamp
        && !(MIN_MILLIS..=MAX_MILLIS).contains(&millis)
    {
        // PostgreSQL would refuse the text of such a timestamp, stopping the consumer.
        return Err(format!(
            "timestamp {millis} ms since the epoch is outside the years 1 to 9999"
        ));
    }
    Ok(SourceRow {
        id: p.id,
        timestamp: p.timestamp.map(millis_to_timestamp),
        image_path: p.image_path,
        target: p.target,
    })
}

/// 0001-01-01 00:00:00.000 in milliseconds since the epoch.
const MIN_MILLIS: i64 = -62_135_596_800_000;
/// 9999-12-31 23:59:59.999 in milliseconds since the epoch.
const MAX_MILLIS: i64 = 253_402_300_799_999;

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Milliseconds since the epoch of PostgreSQL's text form of a `timestamp`
/// (`YYYY-MM-DD HH:MM:SS[.ffffff]`), sub-millisecond digits truncated.
pub fn timestamp_to_millis(text: &str) -> Option<i64> {
    let (date, time) = text.split_once(' ')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (t.next()??, t.next()??, t.next()??);
    let millis = format!("{frac:0<3}")[..3].parse::<i64>().ok()?;
    Some(((days_from_civil(y, m, day) * 24 + h) * 60 + min) * 60_000 + s * 1000 + millis)
}

/// PostgreSQL's text form of the `timestamp` `millis` after the epoch.
pub fn millis_to_timestamp(millis: i64) -> String {
    let (days, rest) = (millis.div_euclid(86_400_000), millis.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, ms) = (
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000,
    );
    format!("{y:04}-{m:02}-{d:02} {h:02}:{min:02}:{s:02}.{ms:03}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_millis() {
        assert_eq!(timestamp_to_millis("1970-01-01 00:00:00"), Some(0));
        assert_eq!(
            timestamp_to_millis("2000-03-01 00:00:01.5"),
            Some(951_868_801_500)
        );
        assert_eq!(
            millis_to_timestamp(951_868_801_500),
            "2000-03-01 00:00:01.500"
        );
        for text in [
            "2026-11-26 11:34:48.123",
            "1969-12-31 23:59:59.999",
            "2024-02-29 12:00:00.000",
        ] {
            assert_eq!(
                millis_to_timestamp(timestamp_to_millis(text).unwrap()),
                text
            );
        }
        assert_eq!(timestamp_to_millis("yesterday"), None);
        assert_eq!(timestamp_to_millis("0001-01-01 00:00:00"), Some(MIN_MILLIS));
        assert_eq!(
            timestamp_to_millis("9999-12-31 23:59:59.999"),
            Some(MAX_MILLIS)
        );
    }

    #[test]
    fn messages_carry_the_connect_envelope() {
        let row = SourceRow {
            id: 7,
            timestamp: Some("2026-11-26 10:00:00.250".into()),
            image_path: Some("brick/it's.jpg".into()),
            target: Some(1),
        };
        let bytes = encode(&row);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["schema"]["fields"][0]["field"], "id");
        assert_eq!(v["payload"]["id"], 7);
        assert_eq!(v["payload"]["image_path"], "brick/it's.jpg");
        assert_eq!(decode(&bytes).unwrap(), row);
        assert!(
            decode(b"{\"payload\": {}}")
                .unwrap_err()
                .contains("cargo payload")
        );
        // A timestamp PostgreSQL cannot hold is a bad message, not a poisoned write (found by
        // the fuzzer: year -4836 decoded to text that neither we nor PostgreSQL read back).
        for millis in [MIN_MILLIS - 1, MAX_MILLIS + 1, i64::MIN, i64::MAX] {
            let message = format!("{{\"payload\": {{\"id\": 7, \"timestamp\": {millis}}}}}");
            let e = decode(message.as_bytes()).unwrap_err();
            assert!(e.contains("outside the years 1 to 9999"), "{e}");
        }
        for millis in [MIN_MILLIS, MAX_MILLIS] {
            let message = format!("{{\"payload\": {{\"id\": 7, \"timestamp\": {millis}}}}}");
            let row = decode(message.as_bytes()).unwrap();
            assert_eq!(decode(&encode(&row)).unwrap(), row);
        }
    }
}
