//! `/metrics` exposes the series operators need after a short run.

use crate::helpers::*;

#[sqlx::test(migrations = "../migrations")]
async fn metrics_expose_requests_publishes_claims_and_outcomes(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let body = transaction_body(&user, "1000", "0", "1000", "0", 1);
    let r = app
        .send(
            &app.merchant,
            "POST",
            "/transaction",
            Some("m-1"),
            Some(body.as_bytes()),
            &[("Prefer", "wait=10")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let dup = app
        .send(
            &app.merchant,
            "POST",
            "/transaction",
            Some("m-1"),
            Some(body.as_bytes()),
            &[],
        )
        .await;
    assert_eq!(dup.status, 409);
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for series in [
        "xyz_http_requests_total{route=\"/transaction\",status=\"201\"}",
        "xyz_http_requests_total{route=\"/transaction\",status=\"409\"}",
        "xyz_http_request_duration_seconds_bucket{route=\"/transaction\"",
        "xyz_publish_total{result=\"ok\"}",
        "xyz_claims_total{result=\"claimed\"}",
        "xyz_claims_total{result=\"conflict\"}",
        "xyz_messages_consumed_total",
        "xyz_messages_acked_total",
        "xyz_db_transaction_seconds_bucket",
        "xyz_outcomes_total{type=\"TRANSACTION\",status=\"APPROVED\",reason=\"\"}",
        "xyz_waiters",
    ] {
        assert!(text.contains(series), "missing {series} in\n{text}");
    }
    app.shutdown().await;
}
