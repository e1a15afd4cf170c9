//! JSON from untrusted files (`config.json`, `metadata.json`, a legacy
//! `model_config`, a shard index), parsed within limits.
//!
//! A parsed `serde_json::Value` costs far more than its text: an empty
//! object is three bytes of text (`{},`) and about 80 bytes parsed, so a
//! 48 MiB `config.json` of `{},{},...` (95 KB compressed) would cost over a
//! gigabyte. The values are counted in one pass over the text first, and a
//! file with more than [`Limits::max_json_values`] is refused before any is
//! allocated.

use serde_json::Value;

use super::Limits;
use crate::error::{Error, Result};

/// Parse `bytes` as JSON after checking its value count.
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Value> {
    let values = count_values(bytes);
    if values > limits.max_json_values {
        return Err(Error::limit(
            "max_json_values",
            format!(
                "more than {} JSON values ({values}; a model's configuration has a few dozen \
                 per layer)",
                limits.max_json_values
            ),
        ));
    }
    serde_json::from_slice(bytes).map_err(Error::json)
}

/// An upper bound on the number of values in a JSON text: one per opening
/// bracket and per comma, plus one, counted outside strings.
pub fn count_values(bytes: &[u8]) -> u64 {
    let mut count: u64 = 1;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' | b',' => count += 1,
            _ => {}
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_counted_outside_strings() {
        assert_eq!(count_values(b"{}"), 2);
        assert_eq!(count_values(br#"{"a": [1, 2, 3], "b": "x,{[\",y"}"#), 6);
        let bomb = "[".to_string() + &"{},".repeat(1000) + "{}]";
        assert!(count_values(bomb.as_bytes()) > 2000);
    }

    #[test]
    fn too_many_values_are_refused_before_parsing() {
        let limits = Limits {
            max_json_values: 100,
            ..Limits::default()
        };
        let bomb = "[".to_string() + &"{},".repeat(200) + "{}]";
        let err = parse(bomb.as_bytes(), &limits).unwrap_err().to_string();
        assert!(err.contains("max_json_values"), "{err}");
        parse(br#"{"class_name": "Sequential"}"#, &limits).unwrap();
    }
}
