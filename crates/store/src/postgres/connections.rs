//! Taking a connection from the pool when a pooler in front of the server has no room for
//! another: Supabase's session pooler admits as many clients as its pool size (15 on the
//! smallest compute), PgBouncer refuses past `max_client_conn`. The pool then opens fewer
//! connections than it may, and a request waits for one of them to come free instead of failing
//! at once with "store unavailable".

use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPool;
use sqlx::Postgres;
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
