//! The ingress's batched external-id lookup against the real MariaDB: however requests are
//! grouped into statements, each gets exactly its own answer.

use chrono::Utc;
use ingress::lookups::{Found, Lookups};
use shared::db::outcomes::insert_idempotency_many;
use shared::db::users::IdempotencyRecord;

#[sqlx::test(migrations = "../migrations")]
async fn concurrent_lookups_each_get_their_own_answer(pool: sqlx::MySqlPool) {
    // Three used ids: two on one merchant's two endpoints with the same external id, one on
    // another merchant.
    let used = [
        ("m1", "transaction", "ORDER-1", "API_CALL_a", [1u8; 32]),
        ("m1", "payment", "ORDER-1", "API_CALL_b", [2u8; 32]),
        ("m2", "transaction", "ORDER-2", "API_CALL_c", [3u8; 32]),
    ];
    let records: Vec<IdempotencyRecord> = used
        .iter()
        .map(|(m, e, x, c, sha)| IdempotencyRecord {
            merchant_id: m,
            endpoint: e,
            external_id: x,
            api_call_id: c,
            body_sha256: *sha,
        })
        .collect();
    let with_time: Vec<_> = records.iter().map(|r| (r, Utc::now())).collect();
    let mut conn = pool.acquire().await.expect("connection");
    insert_idempotency_many(&mut conn, &with_time)
        .await
        .expect("insert");
    drop(conn);

    let lookups = Lookups::start(pool.clone());
    // 200 lookups at once (so many share statements), used and unused ids interleaved, the
    // same id asked many times, and near misses (another merchant or endpoint).
    let asks: Vec<(String, String, String, Found)> = (0..200)
        .map(|i| match i % 5 {
            0 => (
                "m1",
                "transaction",
                "ORDER-1".to_owned(),
                Some(("API_CALL_a", [1u8; 32])),
            ),
            1 => (
                "m1",
                "payment",
                "ORDER-1".to_owned(),
                Some(("API_CALL_b", [2u8; 32])),
            ),
            2 => (
                "m2",
                "transaction",
                "ORDER-2".to_owned(),
                Some(("API_CALL_c", [3u8; 32])),
            ),
            3 => ("m2", "transaction", "ORDER-1".to_owned(), None),
            _ => ("m1", "transaction", format!("FREE-{i}"), None),
        })
        .map(|(m, e, x, found)| {
            (
                m.to_owned(),
                e.to_owned(),
                x,
                found.map(|(c, sha)| (c.to_owned(), sha)),
            )
        })
        .collect();
    let answers =
        futures_util::future::join_all(asks.iter().map(|(m, e, x, _)| lookups.find(m, e, x))).await;
    for ((m, e, x, expected), answer) in asks.iter().zip(answers) {
        let answer = answer.expect("lookup");
        assert_eq!(&answer, expected, "lookup of ({m}, {e}, {x})");
    }
}
