//! What the gateway binary holds of a Postgres server: by default the connections requests
//! need; with `--hold-connections`, all of `--max-connections` from the start. A server on the
//! same machine is reached over its Unix socket when the URL names the socket's folder.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

/// The client address of each of the gateway's sessions on `database`, as the server lists
/// them: `None` for one over a Unix socket.
async fn sessions(admin: &sqlx::PgPool, database: &str) -> Vec<Option<String>> {
    sqlx::query_scalar(
        "SELECT host(client_addr) FROM pg_stat_activity \
         WHERE datname = $1 AND application_name = 'idse-gateway'",
    )
    .bind(database)
    .fetch_all(admin)
    .await
    .unwrap()
}

/// A pool on the test database `url`, and that database's name.
async fn admin_of(url: &str) -> (sqlx::PgPool, String) {
    let admin = sqlx::PgPool::connect(url).await.unwrap();
    let database = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&admin)
        .await
        .unwrap();
    (admin, database)
}

/// Kills the gateway and waits until the server has ended its sessions, a moment after their
/// sockets close.
async fn stop(mut gateway: tokio::process::Child, admin: &sqlx::PgPool, database: &str) {
    gateway.kill().await.unwrap();
    gateway.wait().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sessions(admin, database).await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "sessions outlived the gateway"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn hold_connections_opens_them_all_at_start() {
    let Some(url) = idse_store::testing::postgres_database().await else {
        return;
    };
    let (admin, database) = admin_of(&url).await;
    let six = ["--max-connections".as_ref(), "6".as_ref()];

    let (lazy, _) = common::spawn_gateway_with(Path::new(&url), &six).await;
    let opened = sessions(&admin, &database).await.len();
    assert!(
        (1..6).contains(&opened),
        "{opened} sessions of a gateway that opens them as needed"
    );
    stop(lazy, &admin, &database).await;

    let held = [six[0], six[1], "--hold-connections".as_ref()];
    let (mut holding, url) = common::spawn_gateway_with(Path::new(&url), &held).await;
    assert_eq!(sessions(&admin, &database).await.len(), 6);
    let (status, health) =
        common::answer(reqwest::Client::new().get(format!("{url}/sync/health"))).await;
    assert_eq!(status, 200, "{health}");
    holding.kill().await.unwrap();
}

#[tokio::test]
async fn a_server_on_this_machine_is_reached_over_its_unix_socket_in_either_spelling() {
    let Some(url) = idse_store::testing::postgres_database().await else {
        return;
    };
    let Some(socket) = idse_store::testing::over_socket(&url) else {
        return;
    };
    let (admin, database) = admin_of(&url).await;
    // `postgres://user@%2Fvar%2Frun%2Fpostgresql:5432/db`, and the same as libpq's
    // `postgres://user@localhost:5432/db?host=/var/run/postgresql`.
    let with_host = idse_store::testing::with_host_parameter(&socket);
    for (n, spelling) in [socket, with_host].into_iter().enumerate() {
        let (gateway, http) = common::spawn_gateway_with(Path::new(&spelling), &[]).await;
        let (status, health) =
            common::answer(reqwest::Client::new().get(format!("{http}/sync/health"))).await;
        assert_eq!(status, 200, "{spelling}: {health}");
        assert_eq!(health["database"], "postgres", "{spelling}: {health}");
        let name = format!("over-the-socket-{n}");
        let (status, pushed) = common::answer(
            reqwest::Client::new()
                .post(format!("{http}/sync/push"))
                .json(&serde_json::json!({"project_name": name, "artifacts": {"intent_md": "# By socket"}})),
        )
        .await;
        assert_eq!(status, 200, "{spelling}: {pushed}");
        let (status, pulled) = common::answer(
            reqwest::Client::new()
                .post(format!("{http}/sync/pull"))
                .json(&serde_json::json!({"project_id": pushed["project_id"]})),
        )
        .await;
        assert_eq!(status, 200, "{spelling}: {pulled}");
        assert_eq!(pulled["artifacts"]["intent_md"], "# By socket");
        let addresses = sessions(&admin, &database).await;
        assert!(
            !addresses.is_empty() && addresses.iter().all(Option::is_none),
            "{spelling}: the gateway's sessions came from {addresses:?}, not the socket"
        );
        stop(gateway, &admin, &database).await;
    }
}
