//! The audit trail: every audited request becomes one `api_call_logs` row. Rows go through a
//! bounded channel to a background writer that inserts them in batches bounded in rows and in
//! bytes, so answering never waits for MySQL. No row is dropped silently, and nothing waits
//! forever:
//! - a request waits at most [`RECORD_WAIT`] for room in the channel (MySQL slower or down
//!   for longer than the channel absorbs); past it, its row goes to the spill file;
//! - a batch MySQL refuses while it answers is split in halves, each written the same way; a
//!   row still refused alone (larger than `max_allowed_packet`, say) goes to the spill file;
//! - while MySQL does not answer, the writer retries the batch it holds; once the ingress is
//!   stopping, that batch and the rest of the channel go to the spill file.
//!
//! The spill file (`AUDIT_SPILL_PATH`) holds one row a line as JSON, with the cause; loading
//! it back with `INSERT IGNORE` is safe (a row can be there and in the table when an insert
//! timed out after its commit). Every row in it counts in `xyz_audit_rows_spilled_total`; a
//! row the file cannot take either is logged at error, in full, and counted in
//! `xyz_audit_rows_lost_total`.

use serde::Serialize;
use serde_json::Value;
use shared::db::audit::{AuditRow, insert_batch};
use sqlx::MySqlPool;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::SendTimeoutError;

const CHANNEL_CAPACITY: usize = 20_000;
const BATCH_MAX: usize = 500;
/// Bytes of one batch at most (as [`AuditRow::size`] counts them): a quarter of the smallest
/// default `max_allowed_packet` (MariaDB's 16 MiB), whatever the rows hold (a request body
/// alone is up to 64 KiB).
const BATCH_MAX_BYTES: usize = 4 << 20;
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// How long a request waits for room in the channel before its row goes to the spill file.
const RECORD_WAIT: Duration = Duration::from_millis(50);
/// How long one insert may take before it counts as failed, and how long `SELECT 1` may take
/// before MySQL counts as not answering. Together under the 10 s the ingress gives the writer
/// at shutdown, so a frozen MySQL still has the rows spilled rather than lost.
const INSERT_TIMEOUT: Duration = Duration::from_secs(5);
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// Tries of a lone row, while MySQL answers, before it is spilled.
const ROW_TRIES: u32 = 3;
/// How often the spill file's use is logged while it goes on.
const SPILL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Keys whose values never reach the audit table in clear.
const MASKED_KEYS: &[&str] = &["nik", "foto_ktp", "foto_selfie", "secret"];

#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<AuditRow>,
    spill: Arc<Spill>,
}

impl AuditLog {
    /// Starts the writer; the returned handle ends once every sender is dropped and the
    /// channel is drained (into MySQL, or into the spill file when MySQL does not answer).
    pub fn start(pool: MySqlPool, spill_path: PathBuf) -> (AuditLog, tokio::task::JoinHandle<()>) {
        AuditLog::with_capacity(pool, spill_path, CHANNEL_CAPACITY)
    }

    fn with_capacity(
        pool: MySqlPool,
        spill_path: PathBuf,
        capacity: usize,
    ) -> (AuditLog, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(capacity);
        let spill = Arc::new(Spill::new(spill_path));
        let writer = Writer {
            pool,
            rx,
            spill: spill.clone(),
            stopping: false,
        };
        (AuditLog { tx, spill }, tokio::spawn(writer.run()))
    }

    /// Queues the row for the writer, waiting at most [`RECORD_WAIT`] for room.
    pub async fn record(&self, row: AuditRow) {
        match self.tx.send_timeout(row, RECORD_WAIT).await {
            Ok(()) => {}
            Err(SendTimeoutError::Timeout(row)) => self.spill.rows(&[row], Cause::ChannelFull),
            Err(SendTimeoutError::Closed(row)) => self.spill.rows(&[row], Cause::WriterGone),
        }
    }
}

/// Why a row went to the spill file rather than to MySQL.
#[derive(Debug, Clone, Copy)]
enum Cause {
    /// The channel stayed full for [`RECORD_WAIT`]: MySQL is down or too slow.
    ChannelFull,
    /// MySQL answers, and refuses this row on its own.
    Refused,
    /// The ingress stopped while MySQL did not answer.
    Shutdown,
    /// The writer is gone: it panicked (it ends otherwise only once no request can record).
    WriterGone,
}

impl Cause {
    fn as_str(self) -> &'static str {
        match self {
            Cause::ChannelFull => "channel_full",
            Cause::Refused => "refused",
            Cause::Shutdown => "shutdown",
            Cause::WriterGone => "writer_gone",
        }
    }
}

/// One line of the spill file.
#[derive(Serialize)]
struct Spilled<'a> {
    cause: &'static str,
    #[serde(flatten)]
    row: &'a AuditRow,
}

/// The spill file, opened (created, appended to) on first use.
struct Spill {
    path: PathBuf,
    state: Mutex<SpillState>,
}

#[derive(Default)]
struct SpillState {
    file: Option<File>,
    /// Rows spilled since the last log line, and when that line was.
    unlogged: u64,
    logged_at: Option<Instant>,
}

impl Spill {
    fn new(path: PathBuf) -> Spill {
        Spill {
            path,
            state: Mutex::new(SpillState::default()),
        }
    }

    fn rows(&self, rows: &[AuditRow], cause: Cause) {
        if rows.is_empty() {
            return;
        }
        let mut lines = Vec::new();
        for row in rows {
            // A row always serializes: strings, numbers and a date.
            let line = Spilled {
                cause: cause.as_str(),
                row,
            };
            let _ = serde_json::to_writer(&mut lines, &line);
            lines.push(b'\n');
        }
        let n = rows.len() as u64;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.append(&self.path, &lines) {
            Ok(()) => {
                metrics::counter!("xyz_audit_rows_spilled_total", "cause" => cause.as_str())
                    .increment(n);
                state.unlogged += n;
                if state
                    .logged_at
                    .is_none_or(|at| at.elapsed() >= SPILL_LOG_EVERY)
                {
                    tracing::warn!(
                        rows = state.unlogged,
                        cause = cause.as_str(),
                        path = %self.path.display(),
                        "audit rows written to the spill file, not to MySQL"
                    );
                    state.unlogged = 0;
                    state.logged_at = Some(Instant::now());
                }
            }
            Err(e) => {
                drop(state);
                metrics::counter!("xyz_audit_rows_lost_total").increment(n);
                for row in rows {
                    let line = Spilled {
                        cause: cause.as_str(),
                        row,
                    };
                    let row = serde_json::to_string(&line).unwrap_or_default();
                    tracing::error!(error = %e, path = %self.path.display(), %row,
                        "audit row lost: neither MySQL nor the spill file took it");
                }
            }
        }
    }
}

impl SpillState {
    fn append(&mut self, path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
        let file = match self.file.as_mut() {
            Some(file) => file,
            None => self
                .file
                .insert(OpenOptions::new().create(true).append(true).open(path)?),
        };
        let written = file.write_all(bytes);
        if written.is_err() {
            // Opened again next time: the file may have been moved or its disk replaced.
            self.file = None;
        }
        written
    }
}

/// What became of one insert.
enum Inserted {
    Written,
    /// MySQL answers and refused it.
    Refused(String),
    /// MySQL does not answer and the ingress is stopping: the batch is left to the caller.
    Abandoned,
}

struct Writer {
    pool: MySqlPool,
    rx: mpsc::Receiver<AuditRow>,
    spill: Arc<Spill>,
    /// The ingress is stopping while MySQL does not answer: what is left is spilled.
    stopping: bool,
}

impl Writer {
    async fn run(mut self) {
        let mut rows = Vec::with_capacity(BATCH_MAX);
        loop {
            if rows.is_empty() && self.rx.recv_many(&mut rows, BATCH_MAX).await == 0 {
                return;
            }
            self.gather(&mut rows).await;
            let rest = rows.split_off(fitting(&rows));
            self.write(std::mem::replace(&mut rows, rest)).await;
        }
    }

    /// Adds what arrives within one flush interval, up to a full batch, to make the insert
    /// worthwhile.
    async fn gather(&mut self, rows: &mut Vec<AuditRow>) {
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        let mut bytes: usize = rows.iter().map(AuditRow::size).sum();
        while rows.len() < BATCH_MAX && bytes < BATCH_MAX_BYTES {
            let before = rows.len();
            let room = BATCH_MAX - before;
            match tokio::time::timeout_at(deadline, self.rx.recv_many(rows, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => bytes += rows[before..].iter().map(AuditRow::size).sum::<usize>(),
            }
        }
    }

    /// Writes a batch. One that MySQL refuses while it answers is split in halves, each
    /// written the same way; a row refused alone is spilled.
    async fn write(&mut self, batch: Vec<AuditRow>) {
        let mut todo = vec![batch];
        while let Some(mut batch) = todo.pop() {
            if self.stopping {
                self.spill.rows(&batch, Cause::Shutdown);
                continue;
            }
            match self.insert(&batch).await {
                Inserted::Written => {}
                Inserted::Abandoned => self.spill.rows(&batch, Cause::Shutdown),
                Inserted::Refused(_) if batch.len() > 1 => {
                    let second = batch.split_off(batch.len() / 2);
                    todo.push(second);
                    todo.push(batch);
                }
                Inserted::Refused(error) => {
                    tracing::error!(%error, api_call_id = %batch[0].api_call_id,
                        "MySQL refuses this audit row; it goes to the spill file");
                    self.spill.rows(&batch, Cause::Refused);
                }
            }
        }
        if self.stopping {
            let mut rest = Vec::new();
            while let Ok(row) = self.rx.try_recv() {
                rest.push(row);
            }
            self.spill.rows(&rest, Cause::Shutdown);
        }
    }

    /// Inserts the batch, retrying while MySQL does not answer, until the ingress stops.
    async fn insert(&mut self, batch: &[AuditRow]) -> Inserted {
        let mut delay = Duration::from_millis(100);
        let mut tries = 0;
        loop {
            let error =
                match tokio::time::timeout(INSERT_TIMEOUT, insert_batch(&self.pool, batch)).await {
                    Ok(Ok(())) => return Inserted::Written,
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => format!("no answer within {INSERT_TIMEOUT:?}"),
                };
            tries += 1;
            tracing::warn!(%error, rows = batch.len(), "audit insert failed");
            if answers(&self.pool).await {
                // A batch is split at once (its halves are retried); a lone row gets a few
                // tries, in case the failure was the connection's, not the row's.
                if batch.len() > 1 || tries >= ROW_TRIES {
                    return Inserted::Refused(error);
                }
                tokio::time::sleep(delay).await;
            } else {
                // MySQL does not answer. Once the ingress is stopping nothing waits for the
                // rows any more; asked before and after the pause, so that shutdown never
                // waits for more than an insert and a ping (7 s) here.
                if self.rx.is_closed() {
                    self.stopping = true;
                    return Inserted::Abandoned;
                }
                tokio::time::sleep(delay).await;
                if self.rx.is_closed() {
                    self.stopping = true;
                    return Inserted::Abandoned;
                }
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

/// How many leading rows make the next batch: up to [`BATCH_MAX_BYTES`], at least one.
fn fitting(rows: &[AuditRow]) -> usize {
    let mut bytes = 0;
    let within = rows
        .iter()
        .take(BATCH_MAX)
        .take_while(|r| {
            bytes += r.size();
            bytes <= BATCH_MAX_BYTES
        })
        .count();
    within.max(1).min(rows.len())
}

/// Whether MySQL answers at all: a failed insert is then the batch's fault, not the server's.
async fn answers(pool: &MySqlPool) -> bool {
    matches!(
        tokio::time::timeout(PING_TIMEOUT, sqlx::query("SELECT 1").execute(pool)).await,
        Ok(Ok(_))
    )
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

/// The shortest hexadecimal run taken for one of the engine's ids (a UUID's 32 digits, as in
/// `API_CALL_0190f5b3…`): sixteen decimal digits inside one are part of the id, not a NIK.
const HEX_ID_LEN: usize = 32;

/// Whether the digits at `start..end` of `bytes` lie inside a lowercase hexadecimal run at
/// least an id's length long. It looks at most that length either way, so masking stays
/// linear in the text.
fn inside_hex_id(bytes: &[u8], start: usize, end: usize) -> bool {
    let is_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    let before = start.saturating_sub(HEX_ID_LEN);
    let hex_start = bytes[before..start]
        .iter()
        .rposition(|b| !is_hex(b))
        .map_or(before, |p| before + p + 1);
    let after = bytes.len().min(end + HEX_ID_LEN);
    let hex_end = bytes[end..after]
        .iter()
        .position(|b| !is_hex(b))
        .map_or(after, |p| end + p);
    hex_end - hex_start >= HEX_ID_LEN
}

/// Masks every run of exactly 16 digits: a NIK sent where no NIK belongs (an unknown or
/// nested field) still never reaches the audit table in clear. A run inside a hexadecimal id
/// is kept, so the ids the audit row is looked up by read as they were issued.
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
            if run.len() == 16 && !inside_hex_id(bytes, start, i) {
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
                    // A key's secret is in the one answer that issues it, never in the log.
                    if k.starts_with("foto_") || k == "secret" {
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
    use chrono::SubsecRound;

    fn row(api_call_id: &str) -> AuditRow {
        AuditRow {
            api_call_id: api_call_id.to_owned(),
            method: "GET".to_owned(),
            path: "/healthz".to_owned(),
            merchant_id: None,
            client_id: None,
            external_id: None,
            http_status: 200,
            message_action: "SUCCESS".to_owned(),
            request_body: None,
            response_body: None,
            client_ip: None,
            started_at: chrono::Utc::now().trunc_subsecs(6),
            duration_us: 1,
        }
    }

    fn spill_path(test: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "xyz-audit-{test}-{}.jsonl",
            uuid::Uuid::new_v4().simple()
        ))
    }

    /// The spill file's lines, parsed.
    fn spilled(path: &std::path::Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    /// Stops the log and waits for its writer: it must end, not retry forever.
    async fn stop(log: AuditLog, writer: tokio::task::JoinHandle<()>) {
        drop(log);
        tokio::time::timeout(Duration::from_secs(120), writer)
            .await
            .expect("the writer ends rather than retrying forever")
            .expect("the writer task");
    }

    async fn written(pool: &MySqlPool) -> Vec<String> {
        sqlx::query_scalar("SELECT api_call_id FROM api_call_logs ORDER BY api_call_id")
            .fetch_all(pool)
            .await
            .expect("audit rows")
    }

    #[sqlx::test(migrations = "../migrations")]
    async fn a_row_larger_than_max_allowed_packet_goes_to_the_spill_file_and_the_others_to_mysql(
        pool: MySqlPool,
    ) {
        let spill = spill_path("packet");
        let (log, writer) = AuditLog::start(pool.clone(), spill.clone());
        let max: u64 = sqlx::query_scalar("SELECT @@max_allowed_packet")
            .fetch_one(&pool)
            .await
            .expect("max_allowed_packet");
        let mut huge = row("huge");
        huge.response_body = Some("x".repeat(usize::try_from(max).expect("a size") + 1));
        for r in [row("before"), huge, row("after")] {
            log.record(r).await;
        }
        stop(log, writer).await;
        assert_eq!(written(&pool).await, ["after", "before"]);
        let lines = spilled(&spill);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["api_call_id"], "huge");
        assert_eq!(lines[0]["cause"], "refused");
        let _ = std::fs::remove_file(&spill);
    }

    #[sqlx::test(migrations = "../migrations")]
    async fn a_batch_mysql_refuses_is_split_until_the_refused_row_is_alone_and_spilled(
        pool: MySqlPool,
    ) {
        // This test's database refuses one api call id, whatever `INSERT IGNORE` says.
        sqlx::raw_sql(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON api_call_logs FOR EACH ROW \
             IF NEW.api_call_id = 'poison' THEN \
             SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'; END IF",
        )
        .execute(&pool)
        .await
        .expect("trigger");
        let spill = spill_path("split");
        let (log, writer) = AuditLog::start(pool.clone(), spill.clone());
        for id in ["a", "b", "poison", "c", "d"] {
            log.record(row(id)).await;
        }
        stop(log, writer).await;
        assert_eq!(written(&pool).await, ["a", "b", "c", "d"]);
        let lines = spilled(&spill);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["api_call_id"], "poison");
        assert_eq!(lines[0]["cause"], "refused");
        let _ = std::fs::remove_file(&spill);
    }

    #[tokio::test]
    async fn a_full_channel_spills_rows_rather_than_holding_requests_and_none_is_lost() {
        // Nothing listens on port 1: MySQL never answers.
        let pool = shared::db::connect(
            &"mysql://root@127.0.0.1:1/nowhere".parse().expect("a URL"),
            1,
        )
        .await
        .expect("a lazy pool");
        let spill = spill_path("full");
        let (log, writer) = AuditLog::with_capacity(pool, spill.clone(), 8);
        // More than the channel and the writer's batch hold.
        let rows = BATCH_MAX + 8 + 20;
        tokio::time::timeout(Duration::from_secs(60), async {
            for n in 0..rows {
                log.record(row(&format!("r{n}"))).await;
            }
        })
        .await
        .expect("recording never waits for a MySQL that does not answer");
        assert!(
            spilled(&spill).iter().any(|l| l["cause"] == "channel_full"),
            "rows beyond the channel are spilled at once"
        );
        stop(log, writer).await;
        // The rest was spilled at shutdown: every row is in the file, once.
        let mut ids: Vec<String> = spilled(&spill)
            .iter()
            .map(|l| l["api_call_id"].as_str().expect("an id").to_owned())
            .collect();
        assert_eq!(ids.len(), rows);
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), rows);
        let _ = std::fs::remove_file(&spill);
    }

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
    fn sixteen_digits_inside_an_id_are_not_taken_for_a_nik() {
        let id = "API_CALL_01a24718d3187247960458404c418dd5";
        let answer = serde_json::json!({ "api_call_id": id, "nik": "3201234567890001" });
        let masked = mask_response(answer);
        assert!(masked.contains(id), "{masked}");
        assert!(masked.contains("3201********0001"), "{masked}");
        let glued = mask_request_body(br#"{"note":"id3201234567890001"}"#).expect("masked");
        assert!(glued.contains("id3201********0001"), "{glued}");
    }

    #[test]
    fn malformed_bodies_are_described_not_stored() {
        let masked = mask_request_body(br#"{"nik":"3201234567890001","#).expect("described");
        assert!(!masked.contains("3201234567890001"));
        let dup = mask_request_body(br#"{"nik":"1","nik":"3201234567890001"}"#).expect("described");
        assert!(!dup.contains("3201234567890001"));
    }
}
