//! GET /reports/settlement and `xyzctl report settlement` (SPEC §14): a Jakarta day's approved
//! calls under their contract's merchant, exact totals, pages, the streamed CSV, scoping,
//! the day's boundary, and every bad parameter.

use crate::helpers::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use shared::client::SignedClient;

const LIMITS: [&str; 4] = ["100000", "300000", "500000", "10000000"];
const DAY: &str = "2026-06-15";
const HEADER: &str = "type,api_call_id,external_id,nomor_kontrak,amount,accepted_at";

/// The day's calls, moved to chosen instants of 2026-06-15 WIB ([06-14 17:00Z, 06-15 17:00Z)).
struct Fixture {
    a_contract: String,
    b_contract: String,
}

async fn set_time(app: &TestApp, table: &str, column: &str, api_call_id: &str, at: &str) {
    // Table and column names are this file's constants.
    let sql = format!("UPDATE {table} SET {column} = ? WHERE api_call_id = ?");
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(at)
        .bind(api_call_id)
        .execute(&app.pool)
        .await
        .expect("update");
    assert_eq!(done.rows_affected(), 1, "{table} {api_call_id}");
}

async fn api_call_of(app: &TestApp, table: &str, nomor: &str) -> String {
    let sql = format!("SELECT api_call_id FROM {table} WHERE nomor_kontrak = ?");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(nomor)
        .fetch_one(&app.pool)
        .await
        .expect("row")
}

/// Merchant A (tokopedia): a contract, a payment on it by the admin, a refund. Merchant B
/// (shopee): a contract, and a transaction rejected for its limit. All on `DAY`.
async fn fixture(app: &TestApp) -> Fixture {
    let user = app.create_user(LIMITS).await;
    let a = contract(app, &user, "1000.00", "100.00", "2.5", 3).await;
    let a_contract = a["nomor_kontrak"].as_str().expect("nomor").to_owned();
    let body = transaction_body(&user, "2000.00", "0", "2000.00", "1.25", 6);
    let r = app
        .send(
            &app.other_merchant,
            "POST",
            "/transaction",
            Some(&fresh_id()),
            Some(body.as_bytes()),
            &[("Prefer", "wait=20")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let b_contract = r.data()["result"]["nomor_kontrak"]
        .as_str()
        .expect("nomor")
        .to_owned();
    let rejected = transaction_body(&user, "99999999.00", "0", "99999999.00", "1", 1);
    let r = app
        .send(
            &app.other_merchant,
            "POST",
            "/transaction",
            Some(&fresh_id()),
            Some(rejected.as_bytes()),
            &[("Prefer", "wait=20")],
        )
        .await;
    assert_eq!(r.action(), "INSUFFICIENT_LIMIT", "{}", r.body);
    let r = pay(app, &a_contract, "394.17").await;
    assert_eq!(r.status, 201, "{}", r.body);
    let refund = json!({"nomor_kontrak": a_contract, "jumlah": 100.5, "alasan": "retur"});
    let r = app
        .post_wait(&app.merchant, "/refund", &fresh_id(), &refund)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);

    let at = |t: &str| format!("2026-06-14 {t}");
    let tx_a = api_call_of(app, "transactions", &a_contract).await;
    let tx_b = api_call_of(app, "transactions", &b_contract).await;
    let bill = api_call_of(app, "bills", &a_contract).await;
    let refund = api_call_of(app, "refunds", &a_contract).await;
    set_time(
        app,
        "transactions",
        "tanggal_kontrak",
        &tx_a,
        &at("17:00:00"),
    )
    .await;
    set_time(
        app,
        "transactions",
        "tanggal_kontrak",
        &tx_b,
        &at("18:30:00.25"),
    )
    .await;
    set_time(app, "bills", "tanggal_bayar", &bill, &at("19:00:00")).await;
    set_time(app, "refunds", "tanggal_refund", &refund, &at("19:00:00")).await;
    Fixture {
        a_contract,
        b_contract,
    }
}

async fn report(app: &TestApp, key: &Key, query: &str) -> Resp {
    app.get(key, &format!("/reports/settlement?{query}")).await
}

/// Every page of a report, following `next_cursor`.
async fn all_pages(app: &TestApp, key: &Key, query: &str, limit: u32) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = format!("{query}&limit={limit}");
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let r = report(app, key, &q).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let page = r.data()["items"].as_array().expect("items").clone();
        assert!(page.len() <= limit as usize);
        items.extend(page);
        match r.data()["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}

async fn csv(app: &TestApp, key: &Key, query: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let client = SignedClient::new(app.http.clone(), &app.base);
    let path = format!("/reports/settlement?{query}");
    let r = client
        .request(key.credentials(), "GET".parse().expect("method"), &path)
        .header("Accept", "text/csv")
        .send()
        .await
        .expect("sent");
    let text = String::from_utf8(r.body).expect("UTF-8");
    (r.status, r.headers, text)
}

/// RFC 4180 records (CRLF, quoted fields with doubled quotes).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let (mut record, mut field) = (Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "CR without LF");
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        record.is_empty() && field.is_empty(),
        "the last record ends with CRLF"
    );
    records
}

fn as_record(item: &Value) -> Vec<String> {
    [
        "type",
        "api_call_id",
        "external_id",
        "nomor_kontrak",
        "amount",
        "accepted_at",
    ]
    .iter()
    .map(|k| item[*k].as_str().expect(k).to_owned())
    .collect()
}

fn dec(v: &Value) -> Decimal {
    v.as_str().expect("money string").parse().expect("decimal")
}

async fn sql_sum(app: &TestApp, sql: &'static str, merchant: &str) -> Decimal {
    sqlx::query_scalar::<_, Option<Decimal>>(sql)
        .bind(merchant)
        .fetch_one(&app.pool)
        .await
        .expect("sum")
        .unwrap_or_default()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_day_lists_approved_calls_under_the_contracts_merchant_with_exact_totals(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app(pool).await;
    let f = fixture(&app).await;
    let r = report(&app, &app.merchant, &format!("date={DAY}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = r.data();
    assert_eq!(d["date"], DAY);
    assert_eq!(d["merchant"], "tokopedia");
    assert_eq!(d["next_cursor"], Value::Null);
    let items = d["items"].as_array().expect("items");
    let kinds: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|i| {
            (
                i["type"].as_str().expect("type"),
                i["amount"].as_str().expect("amount"),
                i["accepted_at"].as_str().expect("at"),
            )
        })
        .collect();
    // The payment (by the admin) and the refund share an instant: api_call_id breaks the tie.
    let (pay_id, refund_id) = (
        items[1]["api_call_id"].clone(),
        items[2]["api_call_id"].clone(),
    );
    assert!(pay_id.as_str() < refund_id.as_str());
    let mut expected = vec![
        ("TRANSACTION", "1182.50", "2026-06-14T17:00:00.000000Z"),
        ("PAYMENT", "394.17", "2026-06-14T19:00:00.000000Z"),
        ("REFUND", "100.50", "2026-06-14T19:00:00.000000Z"),
    ];
    if items[1]["type"] == "REFUND" {
        expected.swap(1, 2);
    }
    assert_eq!(kinds, expected);
    assert!(
        items
            .iter()
            .all(|i| i["nomor_kontrak"] == f.a_contract.as_str())
    );
    let totals = &d["totals"];
    assert_eq!(totals["TRANSACTION"], json!({"count": 1, "sum": "1182.50"}));
    assert_eq!(totals["PAYMENT"], json!({"count": 1, "sum": "394.17"}));
    assert_eq!(totals["REFUND"], json!({"count": 1, "sum": "100.50"}));
    for (kind, sql) in [
        (
            "TRANSACTION",
            "SELECT SUM(jumlah_cicilan) FROM transactions WHERE merchant_id = ? AND tanggal_kontrak >= '2026-06-14 17:00' AND tanggal_kontrak < '2026-06-15 17:00'",
        ),
        (
            "PAYMENT",
            "SELECT SUM(b.terbayarkan) FROM bills b JOIN transactions t USING (nomor_kontrak) WHERE t.merchant_id = ? AND tanggal_bayar >= '2026-06-14 17:00' AND tanggal_bayar < '2026-06-15 17:00'",
        ),
        (
            "REFUND",
            "SELECT SUM(r.jumlah) FROM refunds r JOIN transactions t USING (nomor_kontrak) WHERE t.merchant_id = ? AND tanggal_refund >= '2026-06-14 17:00' AND tanggal_refund < '2026-06-15 17:00'",
        ),
    ] {
        let items_sum: Decimal = items
            .iter()
            .filter(|i| i["type"] == kind)
            .map(|i| dec(&i["amount"]))
            .sum();
        assert_eq!(dec(&totals[kind]["sum"]), items_sum, "{kind}");
        assert_eq!(
            dec(&totals[kind]["sum"]),
            sql_sum(&app, sql, "tokopedia").await,
            "{kind}"
        );
    }

    let b = report(&app, &app.other_merchant, &format!("date={DAY}")).await;
    assert_eq!(b.status, 200, "{}", b.body);
    let b_items = b.data()["items"].as_array().expect("items");
    assert_eq!(
        b_items.len(),
        1,
        "the rejected call is not listed: {}",
        b.body
    );
    assert_eq!(b_items[0]["nomor_kontrak"], f.b_contract.as_str());
    assert_eq!(b_items[0]["accepted_at"], "2026-06-14T18:30:00.250000Z");
    assert_eq!(
        b.data()["totals"]["PAYMENT"],
        json!({"count": 0, "sum": "0.00"})
    );
    assert_eq!(
        b.data()["totals"]["REFUND"],
        json!({"count": 0, "sum": "0.00"})
    );

    let all = report(&app, &app.admin, &format!("date={DAY}")).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(all.data()["merchant"], Value::Null);
    assert_eq!(all.data()["items"].as_array().expect("items").len(), 4);
    let both = dec(&json!("1182.50")) + dec(&b_items[0]["amount"]);
    assert_eq!(all.data()["totals"]["TRANSACTION"]["count"], 2);
    assert_eq!(dec(&all.data()["totals"]["TRANSACTION"]["sum"]), both);
    let only_a = report(&app, &app.admin, &format!("date={DAY}&merchant=tokopedia")).await;
    assert_eq!(only_a.data()["items"], d["items"]);
    assert_eq!(only_a.data()["totals"], d["totals"]);
    let own = report(
        &app,
        &app.merchant,
        &format!("date={DAY}&merchant=tokopedia"),
    )
    .await;
    assert_eq!(own.data()["items"], d["items"]);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_merchant_sees_only_its_own_report_and_an_unknown_merchant_is_not_found(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app_with(pool, 0).await;
    let other = report(&app, &app.merchant, &format!("date={DAY}&merchant=shopee")).await;
    assert_eq!((other.status, other.action()), (404, "NOT_FOUND"));
    let unknown = report(&app, &app.admin, &format!("date={DAY}&merchant=nobody")).await;
    assert_eq!((unknown.status, unknown.action()), (404, "NOT_FOUND"));
    let empty = report(&app, &app.admin, &format!("date={DAY}&merchant=shopee")).await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert_eq!(empty.data()["items"], json!([]));
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_pending_call_is_not_listed_until_it_is_approved(pool: sqlx::MySqlPool) {
    // No workers: the transaction stays pending.
    let mut app = spawn_app_with(pool, 0).await;
    let user = app.create_user(LIMITS).await;
    let body = transaction_body(&user, "1000.00", "100.00", "1000.00", "2.5", 3);
    let r = app.post_transaction(&fresh_id(), &body).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["api_call_id"]
        .as_str()
        .expect("api_call_id")
        .to_owned();
    let accepted = chrono::Utc::now() + chrono::Duration::hours(7);
    let today = accepted.format("%Y-%m-%d").to_string();
    let r = report(&app, &app.merchant, &format!("date={today}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.data()["items"], json!([]));
    assert_eq!(
        r.data()["totals"]["TRANSACTION"],
        json!({"count": 0, "sum": "0.00"})
    );
    app.add_worker();
    let status = app.wait_final(&app.merchant, &id).await;
    assert_eq!(status["status"], "APPROVED");
    let r = report(&app, &app.merchant, &format!("date={today}")).await;
    let items = r.data()["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{}", r.body);
    assert_eq!(items[0]["api_call_id"], id.as_str());
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn pages_give_every_row_once_in_order(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    fixture(&app).await;
    let whole = report(&app, &app.admin, &format!("date={DAY}&limit=100")).await;
    let whole = whole.data()["items"].as_array().expect("items").clone();
    assert_eq!(whole.len(), 4);
    for limit in [1, 3] {
        assert_eq!(
            all_pages(&app, &app.admin, &format!("date={DAY}"), limit).await,
            whole
        );
    }
    let keys: Vec<(String, String)> = whole
        .iter()
        .map(|i| (i["accepted_at"].to_string(), i["api_call_id"].to_string()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    // A cursor is bound to its date and merchant.
    let first = report(&app, &app.admin, &format!("date={DAY}&limit=1")).await;
    let cursor = first.data()["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let elsewhere = report(
        &app,
        &app.admin,
        &format!("date=2026-06-16&limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(
        (elsewhere.status, elsewhere.action()),
        (400, "INVALID_VALUE")
    );
    assert!(elsewhere.message().contains("cursor"));
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn the_csv_is_the_json_items_with_rfc_4180_quoting_and_xyzctl_writes_the_same(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app(pool).await;
    let f = fixture(&app).await;
    sqlx::query("UPDATE transactions SET external_id = 'a,\"b\"' WHERE nomor_kontrak = ?")
        .bind(&f.b_contract)
        .execute(&app.pool)
        .await
        .expect("update");
    let json_items = all_pages(&app, &app.admin, &format!("date={DAY}"), 100).await;
    let (status, headers, text) = csv(&app, &app.admin, &format!("date={DAY}")).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/csv")
    );
    assert!(headers.contains_key("x-api-call-id"));
    assert!(text.starts_with(&format!("{HEADER}\r\n")));
    assert!(text.contains(",\"a,\"\"b\"\"\","), "{text}");
    let records = parse_csv(&text);
    assert_eq!(records[0].join(","), HEADER);
    let expected: Vec<Vec<String>> = json_items.iter().map(as_record).collect();
    assert_eq!(records[1..].to_vec(), expected);

    let (_, _, mine) = csv(&app, &app.merchant, &format!("date={DAY}")).await;
    assert_eq!(
        parse_csv(&mine).len(),
        4,
        "header and merchant A's three rows"
    );

    let out = crate::cli::xyzctl(&app, &["report", "settlement", "--date", DAY], &[]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).expect("UTF-8"), text);
    let out = crate::cli::xyzctl(
        &app,
        &[
            "report",
            "settlement",
            "--date",
            DAY,
            "--merchant",
            "tokopedia",
        ],
        &[],
    )
    .await;
    assert_eq!(String::from_utf8(out.stdout).expect("UTF-8"), mine);

    // The audit row says what was answered, not the body.
    let (_, logged) =
        crate::helpers::audited(&app, headers["x-api-call-id"].to_str().expect("ascii")).await;
    assert!(
        logged.contains("text/csv") && !logged.contains("TRANSACTION"),
        "{logged}"
    );
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn the_jakarta_day_ends_at_17_utc(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let f = fixture(&app).await;
    let tx_a = api_call_of(&app, "transactions", &f.a_contract).await;
    let tx_b = api_call_of(&app, "transactions", &f.b_contract).await;
    set_time(
        &app,
        "transactions",
        "tanggal_kontrak",
        &tx_a,
        "2026-06-15 16:59:59",
    )
    .await;
    set_time(
        &app,
        "transactions",
        "tanggal_kontrak",
        &tx_b,
        "2026-06-15 17:00:00",
    )
    .await;
    let ids = |r: &Resp| -> Vec<String> {
        r.data()["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|i| i["type"] == "TRANSACTION")
            .map(|i| i["api_call_id"].as_str().expect("id").to_owned())
            .collect()
    };
    let d15 = report(&app, &app.admin, "date=2026-06-15").await;
    let d16 = report(&app, &app.admin, "date=2026-06-16").await;
    assert_eq!(ids(&d15), vec![tx_a]);
    assert_eq!(ids(&d16), vec![tx_b]);
    assert_eq!(d16.data()["totals"]["TRANSACTION"]["count"], 1);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn every_bad_parameter_has_its_exact_answer(pool: sqlx::MySqlPool) {
    let app = spawn_app_with(pool, 0).await;
    for (query, action, names) in [
        ("", "INVALID_MANDATORY", "date"),
        ("merchant=tokopedia", "INVALID_MANDATORY", "date"),
        ("date=", "INVALID_VALUE", "date"),
        ("date=2026-02-30", "INVALID_VALUE", "date"),
        ("date=2026-6-15", "INVALID_VALUE", "date"),
        ("date=15-06-2026", "INVALID_VALUE", "date"),
        ("date=2026-06-15T00:00:00Z", "INVALID_VALUE", "date"),
        ("date=2026-02-30&limit=0", "INVALID_VALUE", "date"),
        ("date=2026-06-15&merchant=", "INVALID_VALUE", "merchant"),
        (
            "date=2026-06-15&merchant=a%20b",
            "INVALID_VALUE",
            "merchant",
        ),
        ("date=2026-06-15&limit=0", "INVALID_VALUE", "limit"),
        ("date=2026-06-15&limit=101", "INVALID_VALUE", "limit"),
        ("date=2026-06-15&limit=x", "INVALID_VALUE", "limit"),
        ("date=2026-06-15&cursor=abc", "INVALID_VALUE", "cursor"),
        ("date=2026-06-15&cursor=", "INVALID_VALUE", "cursor"),
    ] {
        let r = report(&app, &app.admin, query).await;
        assert_eq!((r.status, r.action()), (400, action), "{query}: {}", r.body);
        assert!(r.message().contains(names), "{query}: {}", r.body);
        let (status, _, text) = csv(&app, &app.admin, query).await;
        assert_eq!(status, 400, "{query}");
        let body: Value = serde_json::from_str(&text).expect("errors keep the envelope");
        assert_eq!(body["message_action"], action);
    }
    // Types the engine does not serve get JSON.
    let r = app
        .send(
            &app.admin,
            "GET",
            &format!("/reports/settlement?date={DAY}"),
            None,
            None,
            &[("Accept", "application/xml")],
        )
        .await;
    assert_eq!((r.status, r.action()), (200, "SUCCESS"));
    app.shutdown().await;
}

/// VmHWM (peak resident set) of this process, in bytes; the ingress runs in it.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

#[sqlx::test(migrations = "../migrations")]
async fn a_day_of_200k_rows_streams_as_csv_in_bounded_memory(pool: sqlx::MySqlPool) {
    let app = spawn_app_with(pool, 0).await;
    let user = app.create_user(LIMITS).await;
    sqlx::query(
        "INSERT INTO transactions (nomor_kontrak, user_id, merchant_id, external_id, api_call_id,
             tanggal_kontrak, tanggal_update, otr, admin_fee, harga_aset, pokok, bunga_persen,
             jumlah_bunga, jumlah_cicilan, cicilan_bulanan, tenor, nama_aset)
         SELECT CONCAT('K-', n), ?, 'tokopedia', CONCAT('EXT-', n), CONCAT('API_CALL_', LPAD(n, 8, '0')),
             TIMESTAMPADD(MICROSECOND, n * 100000, '2026-06-14 17:00:00'), '2026-06-14 17:00:00',
             1000, 0, 1000, 1000, 1, 10, 1010.01, 1010.01, 1, 'Kulkas'
         FROM (SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * g.d + 100000 * h.d AS n
               FROM (SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) a,
                    (SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) b,
                    (SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) c,
                    (SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) e,
                    (SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) g,
                    (SELECT 0 d UNION ALL SELECT 1) h) s
         WHERE n < 200000",
    )
    .bind(&user)
    .execute(&app.pool)
    .await
    .expect("seeded");

    // Reset the peak to now (Linux: clear_refs 5), then read the body chunk by chunk.
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS");
    let before = peak_rss();
    let path = format!("/reports/settlement?date={DAY}");
    let ts = now_ts();
    let sts = shared::signature::string_to_sign("GET", &path, &ts, None, b"");
    let mut response = app
        .http
        .get(format!("{}{path}", app.base))
        .header("X-Client-Id", &app.admin.client_id)
        .header("X-Timestamp", &ts)
        .header(
            "X-Signature",
            shared::signature::sign(app.admin.secret.as_bytes(), &sts),
        )
        .header("Accept", "text/csv")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().get("content-length").is_none(),
        "streamed, not sized"
    );
    let (mut bytes, mut chunks, mut lines) = (0usize, 0usize, 0usize);
    while let Some(chunk) = response.chunk().await.expect("a chunk") {
        bytes += chunk.len();
        chunks += 1;
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let grown = peak_rss().saturating_sub(before);
    assert_eq!(lines, 200_001, "the header and every row");
    assert!(chunks > 100, "arrived in {chunks} chunks");
    assert!(
        (grown as usize) < bytes / 4,
        "peak RSS grew {grown} bytes for a {bytes}-byte body"
    );
    app.shutdown().await;
}
