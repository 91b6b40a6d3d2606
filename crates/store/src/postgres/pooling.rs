//! Finds out, before the gateway relies on it, whether its connections are its own: a pooler in
//! transaction mode (PgBouncer, or Supavisor on Supabase's port 6543) hands each transaction to
//! any of its server connections, so the prepared statements and session settings the store
//! keeps per connection would turn up on other clients' connections or vanish from its own.
//! Left undetected, that fails later and at random ("prepared statement sqlx_s_1 already
//! exists"), or hangs the next start on the migrations' session lock left on a shared server
//! connection.

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, Executor};
use uuid::Uuid;

use crate::StoreError;

/// How many times each connection uses the probe's statement. A pooler that gives the most
/// recently freed server connection out first (PgBouncer) shows itself on the first try, one
/// that takes turns (Supavisor) on the first or second; more only costs a direct connection
/// round trips at start.
const TRIES: usize = 3;

/// Postgres's code for "prepared statement … does not exist".
const NO_SUCH_STATEMENT: &str = "26000";

/// Refuses a server reached through a pooler in transaction (or statement) mode, with
/// [`StoreError::TransactionPooler`]. `first` is an open connection to `target`; a second is
/// opened beside it. Both are closed before this returns.
///
/// `first` prepares a statement by name, then each connection runs it in turn. On a connection
/// of its own (direct, or a pooler in session mode) only `first` knows the statement, every
/// time; behind a transaction pooler the other connection can run it, or `first` loses it.
pub(super) async fn refuse_transaction_pooler(
    mut first: PgConnection,
    target: &PgConnectOptions,
) -> Result<(), StoreError> {
    let mut second = PgConnection::connect_with(target).await?;
    let name = format!("idse_probe_{}", Uuid::new_v4().simple());
    // Plain SQL over the simple protocol: the probe itself prepares nothing of the driver's.
    first
        .execute(format!("PREPARE {name} AS SELECT 1").as_str())
        .await?;
    let run = format!("EXECUTE {name}");
    let mut shared = false;
    for _ in 0..TRIES {
        if ran(&mut second, &run).await? || !ran(&mut first, &run).await? {
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
