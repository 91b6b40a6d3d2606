//! What the gateway binary holds of a Postgres server: by default the connections requests
//! need; with `--hold-connections`, all of `--max-connections` from the start.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

/// The gateway's sessions on `database`, as the server lists them.
async fn sessions(admin: &sqlx::PgPool, database: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = $1 AND application_name = 'idse-gateway'",
    )
    .bind(database)
    .fetch_one(admin)
    .await
    .unwrap()
}

#[tokio::test]
async fn hold_connections_opens_them_all_at_start() {
    let Some(url) = idse_store::testing::postgres_database().await else {
        return;
    };
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&admin)
        .await
        .unwrap();
    let six = ["--max-connections".as_ref(), "6".as_ref()];

    let (mut lazy, _) = common::spawn_gateway_with(Path::new(&url), &six).await;
    let opened = sessions(&admin, &database).await;
    assert!(
        (1..6).contains(&opened),
        "{opened} sessions of a gateway that opens them as needed"
    );
    lazy.kill().await.unwrap();
    lazy.wait().await.unwrap();
    // Its server sessions end a moment after its sockets close.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sessions(&admin, &database).await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "sessions outlived the gateway"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let held = [six[0], six[1], "--hold-connections".as_ref()];
    let (mut holding, url) = common::spawn_gateway_with(Path::new(&url), &held).await;
    assert_eq!(sessions(&admin, &database).await, 6);
    let (status, health) =
        common::answer(reqwest::Client::new().get(format!("{url}/sync/health"))).await;
    assert_eq!(status, 200, "{health}");
    holding.kill().await.unwrap();
}
