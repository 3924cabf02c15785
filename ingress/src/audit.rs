//! The audit trail: every audited request becomes one `api_call_logs` row. Rows go through a
//! bounded channel to a background writer that inserts them in batches, so the request path
//! never waits for MySQL; a full channel makes requests wait (backpressure) rather than drop
//! rows. The writer drains the channel before shutdown completes.

use serde_json::Value;
use shared::db::audit::{AuditRow, insert_batch};
use sqlx::MySqlPool;
use std::time::Duration;
use tokio::sync::mpsc;

const CHANNEL_CAPACITY: usize = 20_000;
const BATCH_MAX: usize = 500;
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Keys whose values never reach the audit table in clear.
const MASKED_KEYS: &[&str] = &["nik", "foto_ktp", "foto_selfie"];

#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<AuditRow>,
}

impl AuditLog {
    /// Starts the writer; the returned handle ends once every sender is dropped and the
    /// channel is drained.
    pub fn start(pool: MySqlPool) -> (AuditLog, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let handle = tokio::spawn(writer(pool, rx));
        (AuditLog { tx }, handle)
    }

    pub async fn record(&self, row: AuditRow) {
        if self.tx.send(row).await.is_err() {
            tracing::error!("audit writer is gone; row lost");
        }
    }
}

async fn writer(pool: MySqlPool, mut rx: mpsc::Receiver<AuditRow>) {
    let mut batch = Vec::with_capacity(BATCH_MAX);
    loop {
        let n = rx.recv_many(&mut batch, BATCH_MAX).await;
        if n == 0 {
            return;
        }
        // Gather what arrives within one flush interval to make the insert worthwhile.
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        while batch.len() < BATCH_MAX {
            let room = BATCH_MAX - batch.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let mut delay = Duration::from_millis(100);
        loop {
            match insert_batch(&pool, &batch).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, rows = batch.len(), "audit insert failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        batch.clear();
    }
}

/// The request body as stored: top-level NIK and photo URLs masked, other values as sent.
/// A body that is not one JSON object is stored as a description, never raw, so nothing
/// sensitive slips through a malformed request.
pub fn mask_request_body(body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    let Ok(obj) = shared::json::JsonObject::parse(body) else {
        return Some(format!("<{} bytes, not a JSON object>", body.len()));
    };
    let mut out = String::from("{");
    for (i, (k, v)) in obj.pairs().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(k).unwrap_or_default());
        out.push(':');
        if MASKED_KEYS.contains(&k.as_str()) {
            out.push_str(&serde_json::to_string(&mask_value(k, v.get())).unwrap_or_default());
        } else {
            out.push_str(&unescaped(v.get()));
        }
    }
    out.push('}');
    Some(mask_digit_runs(&out))
}

/// A value with its strings written plainly: `"\u0033201…"` is a NIK too, and the digit mask
/// must see it. Numbers at the top level keep their exact text (money); a nested value, which
/// no field of the API has, goes through `serde_json::Value`.
fn unescaped(raw: &str) -> std::borrow::Cow<'_, str> {
    if !raw.contains('\\') {
        return raw.into();
    }
    serde_json::from_str::<Value>(raw)
        .map(|v| v.to_string().into())
        .unwrap_or_else(|_| raw.into())
}

/// Masks every run of exactly 16 digits: a NIK sent where no NIK belongs (an unknown or
/// nested field) still never reaches the audit table in clear.
fn mask_digit_runs(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let run = &text[start..i];
            if run.len() == 16 {
                out.push_str(&shared::db::users::mask_nik(run));
            } else {
                out.push_str(run);
            }
        } else {
            let ch = text[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn mask_value(key: &str, raw: &str) -> String {
    match key {
        "nik" => {
            let s: String = serde_json::from_str(raw).unwrap_or_default();
            shared::db::users::mask_nik(&s)
        }
        _ => "***".to_owned(),
    }
}

/// How many bytes of a refused body the audit keeps.
const REFUSED_PREFIX_BYTES: usize = 64;

/// What the audit keeps of a body the engine refused to read (a `401`, `413` or `429`): its
/// size, its SHA-256 and its first bytes with every digit hidden, never the body itself. Such
/// a body is never parsed, so an unsigned flood costs a hash and a copy, not a JSON parse.
pub fn refused_body(body: &[u8]) -> Option<String> {
    use sha2::Digest;
    if body.is_empty() {
        return None;
    }
    let prefix: String = String::from_utf8_lossy(&body[..body.len().min(REFUSED_PREFIX_BYTES)])
        .chars()
        .map(|c| match c {
            '0'..='9' => '#',
            c if c.is_control() => '.',
            c => c,
        })
        .collect();
    Some(format!(
        "<{} bytes, sha256 {}, not stored> {prefix}",
        body.len(),
        hex::encode(sha2::Sha256::digest(body))
    ))
}

/// Our own response, masked the same way wherever the keys appear.
pub fn mask_response(mut value: Value) -> String {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    if k.starts_with("foto_") {
                        *child = Value::String("***".into());
                    } else {
                        walk(child);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    // A NIK echoed anywhere (an error naming an unknown field, say) is masked too.
    mask_digit_runs(&value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_nik_and_photos_keeps_numbers_exact() {
        let body = br#"{"nik":"3201234567890001","gaji":12000000.10,"foto_ktp":"https://x/y"}"#;
        let masked = mask_request_body(body).expect("masked");
        assert_eq!(
            masked,
            r#"{"nik":"3201********0001","gaji":12000000.10,"foto_ktp":"***"}"#
        );
    }

    #[test]
    fn a_nik_in_any_field_is_masked() {
        let masked =
            mask_request_body(br#"{"extra":{"id":"3201234567890001"},"otr":12345678901234567}"#)
                .expect("masked");
        assert!(!masked.contains("3201234567890001"));
        assert!(masked.contains("3201********0001"));
        assert!(
            masked.contains("12345678901234567"),
            "other numbers are kept"
        );
    }

    #[test]
    fn a_refused_body_keeps_its_size_hash_and_a_prefix_without_digits() {
        let body = format!(
            r#"{{"nik":"3201234567890001","pad":"{}"}}"#,
            "x".repeat(70_000)
        );
        let kept = refused_body(body.as_bytes()).expect("kept");
        assert!(kept.len() < 200, "{kept}");
        assert!(
            kept.starts_with(&format!("<{} bytes, sha256 ", body.len())),
            "{kept}"
        );
        assert!(!kept.contains("3201"), "{kept}");
        let hidden = format!(r#"{{"nik":"{}","pad":"xxx"#, "#".repeat(16));
        assert!(kept.contains(&hidden), "{kept}");
        assert_eq!(refused_body(b""), None);
    }

    #[test]
    fn a_nik_written_with_json_escapes_is_masked() {
        let masked = mask_request_body(
            br#"{"full_name":"\u0033201234567890001","extra":{"id":"\u00332\u00301234567890001"}}"#,
        )
        .expect("masked");
        assert!(!masked.contains("3201234567890001"), "{masked}");
        assert_eq!(masked.matches("3201********0001").count(), 2, "{masked}");
    }

    #[test]
    fn a_nik_echoed_in_an_answer_is_masked() {
        let answer = serde_json::json!({
            "message_action": "INVALID_PAYLOAD_KEY",
            "message_data": "unknown field `3201234567890001`",
        });
        let masked = mask_response(answer);
        assert!(!masked.contains("3201234567890001"), "{masked}");
        assert!(masked.contains("3201********0001"), "{masked}");
    }

    #[test]
    fn malformed_bodies_are_described_not_stored() {
        let masked = mask_request_body(br#"{"nik":"3201234567890001","#).expect("described");
        assert!(!masked.contains("3201234567890001"));
        let dup = mask_request_body(br#"{"nik":"1","nik":"3201234567890001"}"#).expect("described");
        assert!(!dup.contains("3201234567890001"));
    }
}
