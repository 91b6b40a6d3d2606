//! Finds out, before the gateway relies on it, whether its connections are its own: a pooler in
//! transaction mode (PgBouncer, or Supavisor on Supabase's port 6543) hands each transaction to
//! any of its server connections, so the prepared statements and session settings the store
//! keeps per connection would turn up on other clients' connections or vanish from its own.
//! Left undetected, that fails later and at random ("prepared statement sqlx_s_1 already
//! exists" or "… does not exist"), and the migrations' session lock could be released on
//! another server connection than the one that took it, and so stay held.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, Executor};
use uuid::Uuid;

use super::connections;
use crate::StoreError;

/// Rounds of the probe (see `refuse_transaction_pooler`). One shows a pooler that gives out the
/// most recently freed server connection first (PgBouncer), or takes them in turn (Supavisor),
/// however many it has; the second is for other clients' transactions landing in between.
const ROUNDS: usize = 2;

/// Postgres's code for "prepared statement … does not exist".
const NO_SUCH_STATEMENT: &str = "26000";

/// Refuses a server reached through a pooler in transaction (or statement) mode, with
/// [`StoreError::TransactionPooler`]. `first` is an open connection to `target`; a second is
/// opened beside it, within `patience`. Both are closed before this returns.
///
/// `first` prepares a statement by name; then, each round, the other connection runs it once and
/// `first` twice. On a connection of its own (direct, or a pooler in session mode) only `first`
/// knows the statement, every time; behind a transaction pooler the other connection can run it,
/// or `first` loses it. Counting the prepare as transaction 0, a pooler that hands out the most
/// recently freed server connection gives the other connection that of transaction 0 in
/// transaction 1; one that takes n server connections in turn gives `first` another than that
/// of transaction 0 in transaction 2 (n > 2) or 3 (n = 2). (Running them alternately missed
/// two server connections taken in turn: `first` always came back to its own.)
pub(super) async fn refuse_transaction_pooler(
    mut first: PgConnection,
    target: &PgConnectOptions,
    patience: Duration,
) -> Result<(), StoreError> {
    let second = tokio::time::timeout(patience, PgConnection::connect_with(target)).await;
    let mut second = match second.unwrap_or(Err(sqlx::Error::PoolTimedOut)) {
        Ok(second) => second,
        // A pooler that admits this one client only cannot be told apart; the store then
        // meets the limit itself (see `connections`).
        Err(e) if connections::no_room(&e) => {
            let _ = first.close().await;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let name = format!("idse_probe_{}", Uuid::new_v4().simple());
    // Plain SQL over the simple protocol: the probe itself prepares nothing of the driver's.
    first
        .execute(format!("PREPARE {name} AS SELECT 1").as_str())
        .await?;
    let run = format!("EXECUTE {name}");
    let mut shared = false;
    for _ in 0..ROUNDS {
        if ran(&mut second, &run).await?
            || !ran(&mut first, &run).await?
            || !ran(&mut first, &run).await?
        {
            shared = true;
            break;
        }
    }
    // Behind a pooler this may land on a server connection without the statement: the name is
    // unique, so one left behind there is harmless.
    let _ = first.execute(format!("DEALLOCATE {name}").as_str()).await;
    let _ = first.close().await;
    let _ = second.close().await;
    if shared {
        return Err(StoreError::TransactionPooler(format!(
            "{}:{}",
            target.get_host(),
            target.get_port()
        )));
    }
    Ok(())
}

/// Whether `sql` (an `EXECUTE`) found its statement on `conn`'s server connection; any other
/// failure is the caller's.
async fn ran(conn: &mut PgConnection, sql: &str) -> Result<bool, StoreError> {
    match conn.execute(sql).await {
        Ok(_) => Ok(true),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(NO_SUCH_STATEMENT) => {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}
