use crate::helpers::*;

#[sqlx::test(migrations = "../migrations")]
async fn smoke_user_is_created(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app.create_user(["100000", "300000", "500000", "10000000"]).await;
    let limits = app.limits(&user).await;
    assert_eq!(limits["3"]["available"], "500000.00");
    app.shutdown().await;
}
