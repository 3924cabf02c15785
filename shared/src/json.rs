//! Strict request bodies: exactly one JSON object, no duplicate keys, values kept as their raw
//! JSON text so numbers are never routed through `f64` (SPEC §3, §4).

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::collections::HashSet;
use std::fmt;

/// A body failure, in SPEC §3's order of checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("{0}")]
    Format(String),
    #[error("unknown field `{0}`")]
    UnknownKey(String),
    #[error("`{0}` is mandatory")]
    Missing(String),
}

/// A top-level JSON object, keys in body order, values as raw text.
#[derive(Debug)]
pub struct JsonObject<'a> {
    fields: Vec<(String, &'a RawValue)>,
}

impl<'a> JsonObject<'a> {
    /// Parses `bytes` as one JSON object with unique keys.
    pub fn parse(bytes: &'a [u8]) -> Result<JsonObject<'a>, BodyError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(BodyError::Format("the body is empty".into()));
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let object = de
            .deserialize_map(ObjectVisitor)
            .map_err(|e| BodyError::Format(describe(&e)))?;
        de.end()
            .map_err(|_| BodyError::Format("the body holds more than one JSON value".into()))?;
        Ok(object)
    }

    /// SPEC §3: unknown keys first (the first one in body order), then missing ones (the first
    /// in `allowed` order; `null` counts as missing).
    pub fn check_keys(&self, allowed: &[&str]) -> Result<(), BodyError> {
        self.check_keys_with(allowed, allowed)
    }

    /// [`Self::check_keys`] for a body whose `mandatory` fields are only some of `allowed`.
    pub fn check_keys_with(&self, allowed: &[&str], mandatory: &[&str]) -> Result<(), BodyError> {
        if let Some((k, _)) = self
            .fields
            .iter()
            .find(|(k, _)| !allowed.contains(&k.as_str()))
        {
            return Err(BodyError::UnknownKey(k.clone()));
        }
        for name in mandatory {
            if self.get(name).is_none() {
                return Err(BodyError::Missing((*name).to_owned()));
            }
        }
        Ok(())
    }

    /// Every (key, raw value) pair in body order.
    pub fn pairs(&self) -> &[(String, &'a RawValue)] {
        &self.fields
    }

    /// The raw text of a field, `None` when absent or `null`.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.get())
            .filter(|v| *v != "null")
    }

    /// A field as a JSON string; `None` when it is another JSON type.
    pub fn get_str(&self, name: &str) -> Option<String> {
        let raw = self.get(name)?;
        if raw.starts_with('"') {
            serde_json::from_str::<String>(raw).ok()
        } else {
            None
        }
    }
}

fn describe(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    if msg.contains("duplicate field") {
        msg.split(" at line")
            .next()
            .unwrap_or("duplicate field")
            .to_owned()
    } else if msg.starts_with("invalid type") {
        "the body must be one JSON object".to_owned()
    } else {
        format!("the body is not valid JSON ({})", msg)
    }
}

/// Up to this many keys a scan beats hashing (our bodies have 2 to 12).
const LINEAR_SCAN_KEYS: usize = 16;

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = JsonObject<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("one JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields: Vec<(String, &'de RawValue)> = Vec::new();
        // A body of ~8,800 short keys fits in 64 KiB: comparing each key with every earlier
        // one would be tens of millions of comparisons. Past a handful, a set is linear.
        let mut keys: Option<HashSet<String>> = None;
        while let Some(key) = map.next_key::<String>()? {
            let duplicate = match &mut keys {
                Some(keys) => !keys.insert(key.clone()),
                None => {
                    let duplicate = fields.iter().any(|(k, _)| *k == key);
                    if fields.len() >= LINEAR_SCAN_KEYS {
                        let mut set: HashSet<String> =
                            fields.iter().map(|(k, _)| k.clone()).collect();
                        set.insert(key.clone());
                        keys = Some(set);
                    }
                    duplicate
                }
            };
            if duplicate {
                return Err(de::Error::custom(format!("duplicate field `{key}`")));
            }
            let value: &'de RawValue = map.next_value()?;
            fields.push((key, value));
        }
        Ok(JsonObject { fields })
    }
}

/// True for `application/json`, with or without parameters such as `charset=utf-8`.
pub fn is_json_content_type(value: Option<&str>) -> bool {
    let Some(v) = value else { return false };
    let mut parts = v.split(';');
    let mime = parts.next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return false;
    }
    parts.all(|p| {
        let p = p.trim();
        match p.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
                v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            }
            _ => p.is_empty(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_numbers_as_text() {
        let body = br#"{"a": 1e400, "b": 0.1000000000000000000000001, "c": "x", "d": null}"#;
        let obj = JsonObject::parse(body).expect("valid");
        assert_eq!(obj.get("a"), Some("1e400"));
        assert_eq!(obj.get("b"), Some("0.1000000000000000000000001"));
        assert_eq!(obj.get_str("c").as_deref(), Some("x"));
        assert_eq!(obj.get("d"), None);
        assert_eq!(obj.get_str("a"), None);
    }

    #[test]
    fn rejects_everything_but_one_object() {
        for bad in [
            &b""[..],
            b"   ",
            b"[]",
            b"[{}]",
            b"1",
            b"\"x\"",
            b"null",
            b"{",
            b"{} {}",
            b"{\"a\":1,}",
            b"{'a':1}",
            b"\xff\xfe",
            b"{\"a\":\"\xff\"}",
        ] {
            assert!(
                matches!(JsonObject::parse(bad), Err(BodyError::Format(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn rejects_duplicate_keys() {
        let err = JsonObject::parse(br#"{"a":1,"b":2,"a":3}"#).expect_err("duplicate");
        assert_eq!(err, BodyError::Format("duplicate field `a`".into()));
    }

    #[test]
    fn duplicates_are_found_among_thousands_of_keys_wherever_they_stand() {
        let keys: Vec<String> = (0..9_000).map(|i| format!("k{i}")).collect();
        let object = |keys: &[String]| {
            let fields: Vec<String> = keys.iter().map(|k| format!("\"{k}\":1")).collect();
            format!("{{{}}}", fields.join(","))
        };
        let body = object(&keys);
        let unique = JsonObject::parse(body.as_bytes()).expect("unique keys");
        assert_eq!(unique.pairs().len(), 9_000);
        for (first, again) in [(0, 3), (2, 40), (8_000, 8_999), (15, 16)] {
            let mut with_duplicate = keys.clone();
            with_duplicate[again] = keys[first].clone();
            let err = JsonObject::parse(object(&with_duplicate).as_bytes()).expect_err("duplicate");
            assert_eq!(
                err,
                BodyError::Format(format!("duplicate field `{}`", keys[first]))
            );
        }
    }

    #[test]
    fn deep_nesting_is_kept_raw_without_overflowing_the_stack() {
        // Nested values are skipped, not recursed into: the field is then simply the wrong
        // type for whatever it claims to be.
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let obj = JsonObject::parse(deep.as_bytes()).expect("valid JSON");
        assert!(obj.get("a").is_some_and(|v| v.starts_with('[')));
        assert_eq!(obj.get_str("a"), None);
    }

    #[test]
    fn checks_unknown_before_missing() {
        let obj = JsonObject::parse(br#"{"x":1,"a":null}"#).expect("valid");
        assert_eq!(
            obj.check_keys(&["a", "b"]),
            Err(BodyError::UnknownKey("x".into()))
        );
        let obj = JsonObject::parse(br#"{"b":1,"a":null}"#).expect("valid");
        assert_eq!(
            obj.check_keys(&["a", "b"]),
            Err(BodyError::Missing("a".into()))
        );
        let obj = JsonObject::parse(br#"{"b":1,"a":2}"#).expect("valid");
        assert_eq!(obj.check_keys(&["a", "b"]), Ok(()));
    }

    #[test]
    fn content_type() {
        assert!(is_json_content_type(Some("application/json")));
        assert!(is_json_content_type(Some(
            "Application/JSON; charset=UTF-8"
        )));
        assert!(!is_json_content_type(Some(
            "application/json; charset=latin1"
        )));
        assert!(!is_json_content_type(Some("text/plain")));
        assert!(!is_json_content_type(Some("application/jsonx")));
        assert!(!is_json_content_type(None));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(obj) = JsonObject::parse(&bytes) {
                let _ = obj.check_keys(&["a"]);
            }
        }

        #[test]
        fn never_panics_on_json_like_text(s in r#"[\{\}\[\]":,a-c0-9eE.\-+ ]{0,64}"#) {
            let _ = JsonObject::parse(s.as_bytes());
        }
    }
}
