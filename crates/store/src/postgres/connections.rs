//! Connections when there is no room for more. Taking one from the pool when a pooler in front
//! of the server is full: Supabase's session pooler admits as many clients as its pool size (15
//! on the smallest compute), PgBouncer refuses past `max_client_conn`. The pool then opens fewer
//! connections than it may, and a request waits for one of them to come free instead of failing
//! at once with "store unavailable". And, at start, how many the server itself leaves the
//! gateway (see [`room`]).

use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Postgres, Row};
use tokio::time::Instant;

use crate::StoreError;

/// The first pause before asking again; it doubles up to `LONGEST_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(2);
const LONGEST_PAUSE: Duration = Duration::from_millis(50);

/// A connection of `pool`, waiting up to the pool's acquire timeout in all.
pub(super) async fn acquire(pool: &PgPool) -> Result<PoolConnection<Postgres>, StoreError> {
    let deadline = Instant::now() + pool.options().get_acquire_timeout();
    let mut pause = FIRST_PAUSE;
    loop {
        match pool.acquire().await {
            Ok(conn) => return Ok(conn),
            // Each try takes a connection that came free, or opens one if there is room now.
            Err(e) if no_room(&e) && Instant::now() + pause < deadline => {
                tracing::debug!(error = %e, "no room for another database connection; waiting");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// What is left, for this login, under the server's `max_connections` (less the slots reserved
/// for superusers, unless the login is one), under the login's `CONNECTION LIMIT` and under the
/// database's (neither binds a superuser). Each counts the sessions open now, `first` among them.
const ROOM: &str = "WITH open AS ( \
       SELECT count(*) AS clients, \
         count(*) FILTER (WHERE usename = current_user) AS of_login, \
         count(*) FILTER (WHERE datname = current_database()) AS of_database \
       FROM pg_stat_activity WHERE backend_type = 'client backend' \
     ) \
     SELECT current_setting('max_connections')::int8 - o.clients \
         - CASE WHEN r.rolsuper THEN 0 \
             ELSE current_setting('superuser_reserved_connections')::int8 \
               + COALESCE(NULLIF(current_setting('reserved_connections', true), '')::int8, 0) END \
         AS server, \
       CASE WHEN r.rolconnlimit >= 0 AND NOT r.rolsuper THEN r.rolconnlimit - o.of_login END AS login, \
       CASE WHEN d.datconnlimit >= 0 AND NOT r.rolsuper THEN d.datconnlimit - o.of_database END \
         AS database \
     FROM open o, pg_roles r, pg_database d \
     WHERE r.rolname = current_user AND d.datname = current_database()";

/// How many connections the server lets the gateway open once `first` is closed: the least of
/// what is left under each of its limits, plus `first`'s own slot. `None` when it does not say
/// (statistics withheld, or a pooler that answers otherwise).
///
/// A pool allowed more than this meets the server's refusal ("too many connections") at busy
/// times; sqlx then keeps trying to open one until the acquire timeout, and the request fails
/// with 503 after 3 s, while the gateway's own connections come free within milliseconds.
pub(super) async fn room(first: &mut PgConnection) -> Option<u32> {
    // Not kept prepared: this runs before the pooler check, and behind a transaction pooler a
    // named statement could land on another client's server connection.
    let row = sqlx::query(ROOM)
        .persistent(false)
        .fetch_one(first)
        .await
        .ok()?;
    let least = ["server", "login", "database"]
        .into_iter()
        .filter_map(|limit| row.try_get::<Option<i64>, _>(limit).ok().flatten())
        .min()?;
    u32::try_from(least.saturating_add(1).max(0)).ok()
}

/// Whether opening a connection failed only because the pooler in front of the server is full.
pub(super) fn no_room(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    // PgBouncer's "no more connections allowed (max_client_conn)", Supavisor's "Max client
    // connections reached" / "max clients reached": the poolers answer with codes that also
    // mean other things, so they are told by their words. Postgres's own too_many_connections
    // never gets here: sqlx retries opening the connection until the pool's timeout.
    let message = db.message().to_ascii_lowercase();
    message.contains("max_client_conn") || message.contains("max client")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Refusal {
        code: &'static str,
        message: &'static str,
    }

    impl std::fmt::Display for Refusal {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.message)
        }
    }

    impl std::error::Error for Refusal {}

    impl sqlx::error::DatabaseError for Refusal {
        fn message(&self) -> &str {
            self.message
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.code.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn refusal(code: &'static str, message: &'static str) -> sqlx::Error {
        sqlx::Error::Database(Box::new(Refusal { code, message }))
    }

    #[test]
    fn a_full_server_or_pooler_is_told_from_other_refusals() {
        for (code, message) in [
            ("08P01", "no more connections allowed (max_client_conn)"),
            ("XX000", "Max client connections reached"),
            (
                "XX000",
                "MaxClientsInSessionMode: max clients reached - in Session mode max clients are limited to pool_size",
            ),
        ] {
            assert!(no_room(&refusal(code, message)), "{code} {message}");
        }
        for (code, message) in [
            (
                "28P01",
                "password authentication failed for user \"postgres\"",
            ),
            ("3D000", "database \"agency\" does not exist"),
            ("08P01", "server login has been failing, try again later"),
        ] {
            assert!(!no_room(&refusal(code, message)), "{code} {message}");
        }
        assert!(!no_room(&sqlx::Error::PoolTimedOut));
    }
}
