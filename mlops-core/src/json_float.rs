//! Serde helpers for floats that may be NaN or infinite: JSON has no such numbers and
//! `serde_json` writes them as `null`, which a plain `f64` field then refuses to read. These
//! helpers read `null` back as NaN, so whatever the crate writes it can read again.

use serde::{Deserialize, Deserializer, Serializer};

/// Writes a float (NaN and infinities as `null`, as `serde_json` does).
pub(crate) fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_finite() {
        serializer.serialize_f64(*value)
    } else {
        serializer.serialize_none()
    }
}

/// Reads a float; `null` reads as NaN.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

/// The same for a list of floats.
#[cfg_attr(not(feature = "train"), allow(dead_code))]
pub(crate) mod vec {
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes floats (NaN and infinities as `null`).
    pub(crate) fn serialize<S: Serializer>(
        values: &[f64],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(values.len()))?;
        for v in values {
            seq.serialize_element(&v.is_finite().then_some(*v))?;
        }
        seq.end()
    }

    /// Reads floats; `null` reads as NaN.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<f64>, D::Error> {
        Ok(Vec::<Option<f64>>::deserialize(deserializer)?
            .into_iter()
            .map(|v| v.unwrap_or(f64::NAN))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    struct Metrics {
        #[serde(with = "super")]
        one: f64,
        #[serde(with = "super::vec")]
        many: Vec<f64>,
    }

    #[test]
    fn non_finite_floats_round_trip_through_json() -> Result<(), serde_json::Error> {
        let m = Metrics {
            one: f64::NAN,
            many: vec![0.5, f64::NAN, f64::INFINITY, 1.0],
        };
        let json = serde_json::to_string(&m)?;
        assert_eq!(json, r#"{"one":null,"many":[0.5,null,null,1.0]}"#);
        let back: Metrics = serde_json::from_str(&json)?;
        assert!(back.one.is_nan());
        assert_eq!(back.many[0], 0.5);
        assert!(back.many[1].is_nan() && back.many[2].is_nan());
        assert_eq!(back.many[3], 1.0);
        let finite: Metrics = serde_json::from_str(r#"{"one":0.25,"many":[]}"#)?;
        assert_eq!(finite.one, 0.25);
        Ok(())
    }
}
