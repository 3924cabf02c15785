//! `PATCH /users/{user_id}/limits` and `GET /users/{user_id}/limit-changes` (SPEC §13): the
//! granted limit moves, the available one by the same difference, never below what is in
//! use, atomically with the workers' debits; every change is kept and listed.

use crate::helpers::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};

async fn set_limits(app: &TestApp, key: &Key, user_id: &str, body: &str) -> Resp {
    let path = format!("/users/{user_id}/limits");
    app.send(key, "PATCH", &path, None, Some(body.as_bytes()), &[])
        .await
}

async fn changes(app: &TestApp, user_id: &str, query: &str) -> Resp {
    app.get(
        &app.admin,
        &format!("/users/{user_id}/limit-changes{query}"),
    )
    .await
}

async fn change_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM limit_changes")
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

fn pair(granted: &str, available: &str) -> Value {
    json!({"granted": granted, "available": available})
}

/// A transaction of tenor 1 whose `jumlah_cicilan` is `amount`, approved.
async fn use_limit(app: &TestApp, user: &str, tenor: u32, amount: &str) {
    let body = transaction_body(user, amount, "0", amount, "0", tenor);
    let r = app
        .post_wait(
            &app.merchant,
            "/transaction",
            &fresh_id(),
            &serde_json::from_str(&body).expect("json"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[sqlx::test(migrations = "../migrations")]
async fn raising_and_cutting_limits_moves_available_by_the_difference(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app.create_user(["1000", "2000", "3000", "6000"]).await;
    use_limit(&app, &user, 1, "400").await;

    let r = set_limits(
        &app,
        &app.admin,
        &user,
        r#"{"limit_one_month": 1500, "limit_two_month": "500.50"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.action(), "SUCCESS");
    let read = app.get(&app.admin, &format!("/users/{user}")).await;
    assert_eq!(r.data(), read.data(), "answers with the user as GET does");
    assert_eq!(
        r.data()["limits"],
        json!({
            "1": pair("1500.00", "1100.00"),
            "2": pair("500.50", "500.50"),
            "3": pair("3000.00", "3000.00"),
            "6": pair("6000.00", "6000.00"),
        })
    );

    // Down to exactly what is in use: nothing left available.
    let r = set_limits(&app, &app.admin, &user, r#"{"limit_one_month": 400}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.data()["limits"]["1"], pair("400.00", "0.00"));
    // Zero is a limit too, where nothing is in use.
    let r = set_limits(&app, &app.admin, &user, r#"{"limit_sixth": 0}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.data()["limits"]["6"], pair("0.00", "0.00"));
    assert_eq!(change_rows(&app).await, 4);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_limit_below_what_is_used_changes_nothing_and_names_the_first_field(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app(pool).await;
    let user = app.create_user(["1000", "2000", "3000", "6000"]).await;
    use_limit(&app, &user, 2, "800").await;
    use_limit(&app, &user, 6, "100").await;
    let before = app.limits(&user).await;

    // Tenor 1 would rise, tenor 2 falls below its 800 in use: the whole body is refused.
    let r = set_limits(
        &app,
        &app.admin,
        &user,
        r#"{"limit_sixth": 1, "limit_one_month": 5000, "limit_two_month": 799.99}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.action()),
        (400, "LIMIT_BELOW_USED"),
        "{}",
        r.body
    );
    assert!(r.message().contains("`limit_two_month`"), "{}", r.body);
    assert_eq!(app.limits(&user).await, before, "nothing changed");
    assert_eq!(change_rows(&app).await, 0, "nothing recorded");

    let r = set_limits(&app, &app.admin, &user, r#"{"limit_sixth": 99.99}"#).await;
    assert_eq!(
        (r.status, r.action()),
        (400, "LIMIT_BELOW_USED"),
        "{}",
        r.body
    );
    assert!(r.message().contains("`limit_sixth`"), "{}", r.body);
    assert_eq!(app.limits(&user).await, before);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn an_empty_or_all_null_body_is_mandatory_and_bad_values_are_named(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app.create_user(["1000", "2000", "3000", "6000"]).await;
    let before = app.limits(&user).await;
    let cases = [
        ("{}", "INVALID_MANDATORY", "limit_one_month"),
        (
            r#"{"limit_one_month": null, "limit_two_month": null, "limit_three_month": null, "limit_sixth": null}"#,
            "INVALID_MANDATORY",
            "limit_one_month",
        ),
        (
            r#"{"limit_one_month": 1, "limit_ten": 5}"#,
            "INVALID_PAYLOAD_KEY",
            "limit_ten",
        ),
        (r#"{"limit_ten": 5}"#, "INVALID_PAYLOAD_KEY", "limit_ten"),
        (
            r#"{"limit_one_month": -1}"#,
            "INVALID_VALUE",
            "limit_one_month",
        ),
        (
            r#"{"limit_two_month": 1.001}"#,
            "INVALID_VALUE",
            "limit_two_month",
        ),
        (
            r#"{"limit_one_month": 1, "limit_sixth": "abc"}"#,
            "INVALID_VALUE",
            "limit_sixth",
        ),
        (
            r#"{"limit_three_month": 1e30}"#,
            "INVALID_VALUE",
            "limit_three_month",
        ),
        // Values are checked in the listed order, not the body's.
        (
            r#"{"limit_sixth": true, "limit_one_month": false}"#,
            "INVALID_VALUE",
            "limit_one_month",
        ),
        ("[]", "INVALID_PAYLOAD_FORMAT", ""),
        (
            r#"{"limit_one_month": 1, "limit_one_month": 2}"#,
            "INVALID_PAYLOAD_FORMAT",
            "",
        ),
    ];
    for (body, action, field) in cases {
        let r = set_limits(&app, &app.admin, &user, body).await;
        assert_eq!((r.status, r.action()), (400, action), "{body}: {}", r.body);
        assert!(r.message().contains(field), "{body}: {}", r.body);
    }
    assert_eq!(app.limits(&user).await, before);
    assert_eq!(change_rows(&app).await, 0);

    // null is absent: the other field is the change.
    let r = set_limits(
        &app,
        &app.admin,
        &user,
        r#"{"limit_one_month": null, "limit_three_month": 10}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.data()["limits"]["1"], before["1"]);
    assert_eq!(r.data()["limits"]["3"], pair("10.00", "10.00"));
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_value_equal_to_the_current_one_is_not_recorded(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app.create_user(["1000", "2000", "3000", "6000"]).await;
    let r = set_limits(
        &app,
        &app.admin,
        &user,
        r#"{"limit_one_month": "1000.00", "limit_two_month": 2000}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(change_rows(&app).await, 0);
    let listed = changes(&app, &user, "").await;
    assert_eq!(listed.data(), &json!({"items": [], "next_cursor": null}));

    let r = set_limits(
        &app,
        &app.admin,
        &user,
        r#"{"limit_one_month": 1000, "limit_two_month": 2500}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let listed = changes(&app, &user, "").await;
    let items = listed.data()["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 1, "{}", listed.body);
    assert_eq!(items[0]["tenor"], 2);
    assert_eq!(items[0]["old_granted"], "2000.00");
    assert_eq!(items[0]["new_granted"], "2500.00");
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn changes_are_listed_oldest_first_page_by_page(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app.create_user(["1000", "2000", "3000", "6000"]).await;
    let other_user = app.create_user(["1000", "2000", "3000", "6000"]).await;
    let r = set_limits(&app, &app.admin, &other_user, r#"{"limit_sixth": 1}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Five changes in three calls: (tenor, old, new, the call that made it).
    let mut expected = Vec::new();
    for (body, made) in [
        (
            r#"{"limit_one_month": 1100, "limit_sixth": 6600}"#,
            vec![(1, "1000.00", "1100.00"), (6, "6000.00", "6600.00")],
        ),
        (r#"{"limit_three_month": 0}"#, vec![(3, "3000.00", "0.00")]),
        (
            r#"{"limit_one_month": 900, "limit_two_month": 2000.01}"#,
            vec![(1, "1100.00", "900.00"), (2, "2000.00", "2000.01")],
        ),
    ] {
        let r = set_limits(&app, &app.admin, &user, body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let call = r.body["api_call_id"].as_str().expect("id").to_owned();
        for (tenor, old, new) in made {
            expected.push((tenor, old, new, call.clone()));
        }
    }

    let mut listed = Vec::new();
    let mut query = "?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let r = changes(&app, &user, &query).await;
        assert_eq!(r.status, 200, "{}", r.body);
        pages += 1;
        let items = r.data()["items"].as_array().expect("items").clone();
        assert!(items.len() <= 2);
        listed.extend(items);
        match r.data()["next_cursor"].as_str() {
            Some(cursor) => {
                assert!(
                    cursor
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                );
                query = format!("?limit=2&cursor={cursor}");
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(listed.len(), expected.len());
    for (item, (tenor, old, new, call)) in listed.iter().zip(&expected) {
        assert_eq!(item["tenor"], *tenor, "{item}");
        assert_eq!(item["old_granted"], *old, "{item}");
        assert_eq!(item["new_granted"], *new, "{item}");
        assert_eq!(item["api_call_id"], call.as_str(), "{item}");
        assert_eq!(item["client_id"], app.admin.client_id.as_str(), "{item}");
        let at = item["changed_at"].as_str().expect("changed_at");
        assert!(
            at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(at).is_ok(),
            "{at}"
        );
    }

    // A cursor is this endpoint's, for this user.
    let first = changes(&app, &user, "?limit=1").await;
    let cursor = first.data()["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    for query in [
        format!("?cursor={cursor}x"),
        "?cursor=abc".to_owned(),
        "?limit=0".to_owned(),
        "?limit=101".to_owned(),
    ] {
        let r = changes(&app, &user, &query).await;
        assert_eq!(
            (r.status, r.action()),
            (400, "INVALID_VALUE"),
            "{query}: {}",
            r.body
        );
    }
    let r = changes(&app, &other_user, &format!("?cursor={cursor}")).await;
    assert_eq!((r.status, r.action()), (400, "INVALID_VALUE"), "{}", r.body);
    assert!(r.message().contains("`cursor`"));
    let bills_cursor = app
        .get(&app.admin, &format!("/users/{user}/bills?cursor={cursor}"))
        .await;
    assert_eq!(
        bills_cursor.status, 400,
        "another listing's cursor is not a bills cursor"
    );
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn merchants_may_not_change_or_list_limits_and_unknown_users_are_not_found(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app(pool).await;
    let user = app.create_user(["1000", "2000", "3000", "6000"]).await;
    let r = set_limits(&app, &app.merchant, &user, r#"{"limit_one_month": 1}"#).await;
    assert_eq!((r.status, r.action()), (403, "FORBIDDEN"), "{}", r.body);
    let r = app
        .get(&app.merchant, &format!("/users/{user}/limit-changes"))
        .await;
    assert_eq!((r.status, r.action()), (403, "FORBIDDEN"), "{}", r.body);
    // Merchants still read limits.
    let r = app
        .get(&app.merchant, &format!("/users/{user}/limits"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    for missing in ["USR_NOPE", "not%20an%20id"] {
        let r = set_limits(&app, &app.admin, missing, r#"{"limit_one_month": 1}"#).await;
        assert_eq!((r.status, r.action()), (404, "NOT_FOUND"), "{}", r.body);
        let r = changes(&app, missing, "").await;
        assert_eq!((r.status, r.action()), (404, "NOT_FOUND"), "{}", r.body);
    }
    assert_eq!(change_rows(&app).await, 0);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_replayed_limit_change_is_refused(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app.create_user(["1000", "2000", "3000", "6000"]).await;
    let path = format!("/users/{user}/limits");
    let body = br#"{"limit_one_month": 1200}"#;
    let ts = now_ts();
    let first = app
        .send_at(&app.admin, "PATCH", &path, None, Some(body), &[], &ts)
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let replay = app
        .send_at(&app.admin, "PATCH", &path, None, Some(body), &[], &ts)
        .await;
    assert_eq!(
        (replay.status, replay.action()),
        (409, "CONFLICT_EXTERNAL_ID"),
        "{}",
        replay.body
    );
    assert_eq!(
        replay.data()["original_api_call_id"],
        first.body["api_call_id"]
    );
    assert_eq!(change_rows(&app).await, 1);
    app.shutdown().await;
}

/// Rounds of changes to every user: raises, and cuts that either fit above what is in use at
/// that instant or are refused whole. The HTTP statuses, in order.
async fn change_rounds(app: &TestApp, users: &[String], rounds: std::ops::Range<u32>) -> Vec<u16> {
    let mut outcomes = Vec::new();
    for round in rounds {
        for (i, user) in users.iter().enumerate() {
            let amount = if (round + i as u32).is_multiple_of(2) {
                4000 + round * 10
            } else {
                900 + round
            };
            let body = format!(
                r#"{{"limit_one_month": {amount}, "limit_two_month": {}, "limit_three_month": {amount}, "limit_sixth": {}}}"#,
                amount + 1,
                6000 - round,
            );
            let r = set_limits(app, &app.admin, user, &body).await;
            assert!(
                r.status == 200 || r.action() == "LIMIT_BELOW_USED",
                "{}",
                r.body
            );
            outcomes.push(r.status);
        }
    }
    outcomes
}

#[sqlx::test(migrations = "../migrations")]
async fn limit_changes_racing_transactions_and_payments_keep_the_limit_equation(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app_with(pool, 3).await;
    let users: Vec<String> = futures_util::future::join_all(
        (0..3).map(|_| app.create_user(["3000", "3000", "3000", "3000"])),
    )
    .await;

    // A burst of transactions while the limits change.
    let (calls, outcomes) = tokio::join!(
        submit_burst(&app, &users, 160),
        change_rounds(&app, &users, 0..12)
    );
    assert_all_final(&app, &calls).await;
    // Raises always apply (each is above every earlier granted limit); whether a cut finds
    // more in use than it leaves depends on how far the burst has got.
    assert!(outcomes.contains(&200), "some changes were applied");

    // Then payments on the approved contracts while the limits change again.
    let mut contracts = Vec::new();
    for call in &calls {
        let s = app.wait_final(&app.merchant, call).await;
        if let Some(nomor) = s["result"]["nomor_kontrak"].as_str() {
            contracts.push(nomor.to_owned());
        }
    }
    assert!(!contracts.is_empty(), "some transactions were approved");
    let payments = async {
        let mut calls = Vec::new();
        for nomor in &contracts {
            let r = app
                .post(
                    &app.admin,
                    "/payment",
                    &fresh_id(),
                    &json!({"nomor_kontrak": nomor, "jumlah": "50.00"}),
                )
                .await;
            assert_eq!(r.status, 202, "{}", r.body);
            calls.push(r.body["api_call_id"].as_str().expect("id").to_owned());
        }
        calls
    };
    let (paid, _) = tokio::join!(payments, change_rounds(&app, &users, 12..20));
    for call in &paid {
        assert_eq!(app.wait_final(&app.admin, call).await["status"], "APPROVED");
    }

    // available = final granted − Σ approved jumlah_cicilan + Σ paid, 0 ≤ available ≤ granted.
    assert_limit_equation(&app.pool).await;
    // The final granted limit is the last change recorded for each tenor.
    for user in &users {
        let limits = app.limits(user).await;
        for tenor in ["1", "2", "3", "6"] {
            let last: Option<Decimal> = sqlx::query_scalar(
                "SELECT new_granted FROM limit_changes WHERE user_id = ? AND tenor = ? ORDER BY id DESC LIMIT 1",
            )
            .bind(user)
            .bind(tenor.parse::<u8>().expect("tenor"))
            .fetch_one(&app.pool)
            .await
            .expect("a change");
            let granted: Decimal = limits[tenor]["granted"]
                .as_str()
                .expect("granted")
                .parse()
                .expect("decimal");
            assert_eq!(last, Some(granted), "user {user} tenor {tenor}");
        }
    }
    app.shutdown().await;
}
