//! Group commit: pushes to known projects that arrive while others are being written are
//! checked against one read and written by one statement, so they share its round trips,
//! planning and WAL flush. With the same statements in `pgbench` on a 2-core machine, Postgres
//! took ~1,900 pushes/s written one per statement and ~4,900/s written eight per statement.
//! A project this gateway wrote last needs no read at all (`Known`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, PoisonError};

use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::{Postgres, Row};
use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

use super::{
    fresh_hashes, mirror, project_from_row, session_hashes, Head, WriteBatch, PROJECT_COLUMNS,
};
use crate::rules::{self, Hashed};
use crate::{PostgresStore, PushInput, PushOutcome, StoreError};

/// Pushes written by one statement at most.
const MAX_BATCH: usize = 64;

/// Batches in flight at once: while one waits for its WAL flush, the next is read and checked.
/// Each worker keeps a connection of the pool for itself.
pub(super) const WORKERS: usize = 2;

/// Tries of a push that keeps losing its compare-and-swap to concurrent pushes (of another
/// gateway, or the row-locked path) before it takes the project's row lock instead.
const OPTIMISTIC_TRIES: usize = 4;

/// How a queued push ended.
#[derive(Debug)]
pub(super) enum Answer {
    Done(PushOutcome),
    /// Not written here: a legacy row to adopt, or a push that kept losing races; the caller
    /// pushes it under the project's row lock.
    Locked(Box<PushInput>),
}

#[derive(Debug)]
struct Queued {
    input: PushInput,
    /// The hash of each of `input.artifacts`, in its order; computed by the caller, so hashing
    /// runs on every core and not in the one task that writes a batch.
    hashes: Vec<String>,
    now: DateTime<Utc>,
    tries: usize,
    reply: oneshot::Sender<Result<Answer, StoreError>>,
}

impl Queued {
    fn id(&self) -> Uuid {
        self.input.project_id.unwrap_or_default()
    }

    fn hashed(&self) -> Vec<Hashed<'_>> {
        self.input
            .artifacts
            .iter()
            .zip(&self.hashes)
            .map(|((key, text), hash)| Hashed {
                key,
                text,
                hash: hash.clone(),
            })
            .collect()
    }

    fn answer(self, answer: Result<Answer, StoreError>) {
        // The caller may have gone (its request was cancelled): nothing to tell.
        let _ = self.reply.send(answer);
    }
}

/// What became of one push of a batch.
#[derive(Debug)]
enum Verdict {
    Done(PushOutcome),
    Failed(StoreError),
    Locked,
    /// Lost its compare-and-swap: read and check again.
    Retry,
}

/// The queue and the tasks that write it; stops them with the last clone of the store.
#[derive(Debug)]
pub(super) struct GroupCommit {
    queue: mpsc::UnboundedSender<Queued>,
    workers: Vec<tokio::task::AbortHandle>,
    known: Arc<Known>,
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        for worker in &self.workers {
            worker.abort();
        }
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable(Box::new(sqlx::Error::PoolClosed))
}

impl GroupCommit {
    pub(super) fn start(pool: PgPool) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        let receiver = Arc::new(Mutex::new(receiver));
        let known = Arc::new(Known::default());
        let workers = (0..WORKERS)
            .map(|_| {
                tokio::spawn(work(pool.clone(), receiver.clone(), known.clone())).abort_handle()
            })
            .collect();
        Self {
            queue,
            workers,
            known,
        }
    }

    /// Drops what is remembered of a project written outside the batches (under its row lock).
    pub(super) fn forget(&self, id: Uuid) {
        self.known.forget(id);
    }

    /// Queues a push to a known project (`input.project_id` is set) and waits for its answer.
    /// `hashes` are those of `input.artifacts`, in its order.
    pub(super) async fn push(
        &self,
        input: PushInput,
        hashes: Vec<String>,
        now: DateTime<Utc>,
    ) -> Result<Answer, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Queued {
                input,
                hashes,
                now,
                tries: 0,
                reply,
            })
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

/// One worker: takes what is queued (waiting only when nothing is), one push per project, and
/// writes it as a batch.
async fn work(pool: PgPool, queue: Arc<Mutex<mpsc::UnboundedReceiver<Queued>>>, known: Arc<Known>) {
    // Held between batches, so a push waits for no pool checkout and no liveness ping; a
    // connection that failed is dropped, and `attempt` re-reads once on a fresh one.
    let mut conn: Option<PoolConnection<Postgres>> = None;
    let mut waiting: Vec<Queued> = Vec::new();
    loop {
        if waiting.is_empty() {
            let mut queue = queue.lock().await;
            match queue.recv().await {
                Some(job) => waiting.push(job),
                None => return,
            }
            drain(&mut queue, &mut waiting);
        } else if let Ok(mut queue) = queue.try_lock() {
            // Never wait for the queue with pushes in hand: the other worker may be holding it
            // while it waits for a push that comes only after one of ours is answered.
            drain(&mut queue, &mut waiting);
        }
        // A second push to a project waits for the next batch, where it is checked against
        // the first; one statement cannot write a row twice.
        let mut projects = HashSet::new();
        let (mut batch, later): (Vec<Queued>, Vec<Queued>) =
            waiting.drain(..).partition(|job| projects.insert(job.id()));
        // Both workers lock rows in id order, so their statements cannot deadlock.
        batch.sort_by_key(Queued::id);
        waiting = later;
        waiting.extend(run(&pool, &mut conn, batch, &known).await);
    }
}

/// Adds what is queued to `waiting`, up to a batch.
fn drain(queue: &mut mpsc::UnboundedReceiver<Queued>, waiting: &mut Vec<Queued>) {
    while waiting.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(job) => waiting.push(job),
            Err(_) => break,
        }
    }
}

/// Writes a batch and answers its pushes; returns those to try again.
async fn run(
    pool: &PgPool,
    conn: &mut Option<PoolConnection<Postgres>>,
    batch: Vec<Queued>,
    known: &Known,
) -> Vec<Queued> {
    let verdicts = match attempt(pool, conn, &batch, known).await {
        Ok(verdicts) => verdicts,
        Err(e) if batch.len() > 1 && !matches!(e, StoreError::Unavailable(_)) => {
            // One push's data may have failed the statement: each alone, so only it fails.
            let mut again = Vec::new();
            for job in batch {
                let verdict = match attempt(pool, conn, std::slice::from_ref(&job), known).await {
                    Ok(mut v) => v.pop().unwrap_or(Verdict::Retry),
                    Err(e) => Verdict::Failed(e),
                };
                again.extend(settle(job, verdict));
            }
            return again;
        }
        Err(e) => {
            let shared = e.to_string();
            let mut first = Some(e);
            for job in batch {
                let e = first
                    .take()
                    .unwrap_or_else(|| StoreError::Unavailable(shared.clone().into()));
                job.answer(Err(e));
            }
            return Vec::new();
        }
    };
    batch
        .into_iter()
        .zip(verdicts)
        .filter_map(|(job, verdict)| settle(job, verdict))
        .collect()
}

/// Answers a push, or hands it back to be tried again.
fn settle(mut job: Queued, verdict: Verdict) -> Option<Queued> {
    match verdict {
        Verdict::Done(outcome) => job.answer(Ok(Answer::Done(outcome))),
        Verdict::Failed(e) => job.answer(Err(e)),
        Verdict::Retry if job.tries + 1 < OPTIMISTIC_TRIES => {
            job.tries += 1;
            return Some(job);
        }
        Verdict::Locked | Verdict::Retry => {
            let input = std::mem::take(&mut job.input);
            job.answer(Ok(Answer::Locked(Box::new(input))));
        }
    }
    None
}

/// Reads, checks and writes a batch of pushes to distinct projects; drops the held connection
/// when the database could not be reached.
async fn attempt(
    pool: &PgPool,
    held: &mut Option<PoolConnection<Postgres>>,
    batch: &[Queued],
    known: &Known,
) -> Result<Vec<Verdict>, StoreError> {
    let result = read_check_write(pool, held, batch, known).await;
    if result.is_err() {
        // Whether a failed statement was applied is not known here: read these projects again.
        for job in batch {
            known.forget(job.id());
        }
    }
    if matches!(result, Err(StoreError::Unavailable(_))) {
        *held = None;
    }
    result
}

async fn read_check_write(
    pool: &PgPool,
    held: &mut Option<PoolConnection<Postgres>>,
    batch: &[Queued],
    known: &Known,
) -> Result<Vec<Verdict>, StoreError> {
    if let Some(conn) = held.as_mut() {
        match read_check_write_on(conn, batch, known).await {
            // The held connection died while idle (say the server restarted), or during the
            // batch: once more on a fresh one, from a read. Safe even if the write had landed:
            // its compare-and-swap then fails, and the re-read finds the texts already there.
            Err(StoreError::Unavailable(_)) => {
                *held = None;
                for job in batch {
                    known.forget(job.id());
                }
            }
            other => return other,
        }
    }
    let conn = held.insert(super::connections::acquire(pool).await?);
    read_check_write_on(conn, batch, known).await
}

async fn read_check_write_on(
    conn: &mut PgConnection,
    batch: &[Queued],
    known: &Known,
) -> Result<Vec<Verdict>, StoreError> {
    let mut bases: Vec<Basis> = batch.iter().map(|job| known.basis(job)).collect();
    let unknown: Vec<&Queued> = batch
        .iter()
        .zip(&bases)
        .filter(|(_, basis)| matches!(basis, Basis::Unknown))
        .map(|(job, _)| job)
        .collect();
    let rows = read(conn, &unknown).await?;
    fill(&mut bases, rows);
    check_and_write(conn, batch, bases, known).await
}

/// What a push of the batch is checked against.
#[derive(Debug)]
enum Basis {
    /// What this gateway wrote last (see `Known`).
    Known(Head, Hashes),
    /// To read.
    Unknown,
    /// As read; `None`: no such project.
    Read(Option<PgRow>),
}

/// Puts the rows read for the unknown pushes in their places.
fn fill(bases: &mut [Basis], rows: Vec<Option<PgRow>>) {
    let unknown = bases.iter_mut().filter(|b| matches!(b, Basis::Unknown));
    for (basis, row) in unknown.zip(rows) {
        *basis = Basis::Read(row);
    }
}

/// Each pushed-to project with its session's hashes, by position in `jobs`; one statement, none
/// when `jobs` is empty.
async fn read(conn: &mut PgConnection, jobs: &[&Queued]) -> Result<Vec<Option<PgRow>>, StoreError> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.id()).collect();
    let sessions: Vec<&str> = jobs.iter().map(|j| j.input.session_id.as_str()).collect();
    // `p.id = ANY($1)` restates the join so the plan looks the rows up by key: a plan cached
    // while the table was small otherwise scans all of it, and under steady pushes the table
    // holds many dead row versions until vacuumed (measured: a quarter of Postgres's time).
    let sql = format!(
        "SELECT q.idx, {PROJECT_COLUMNS}, {} FROM UNNEST($1::uuid[], $2::text[]) \
         WITH ORDINALITY AS q(id, sid, idx) JOIN projects p ON p.id = q.id WHERE p.id = ANY($1)",
        session_hashes("q.sid")
    );
    let found = sqlx::query(&sql)
        .bind(ids)
        .bind(sessions)
        .fetch_all(&mut *conn)
        .await?;
    let mut rows: Vec<Option<PgRow>> = jobs.iter().map(|_| None).collect();
    for row in found {
        let idx: i64 = row.try_get("idx")?;
        if let Some(slot) = usize::try_from(idx - 1).ok().and_then(|i| rows.get_mut(i)) {
            *slot = Some(row);
        }
    }
    Ok(rows)
}

async fn check_and_write(
    conn: &mut PgConnection,
    batch: &[Queued],
    bases: Vec<Basis>,
    known: &Known,
) -> Result<Vec<Verdict>, StoreError> {
    let hashed: Vec<Vec<Hashed<'_>>> = batch.iter().map(Queued::hashed).collect();
    let mut verdicts = Vec::with_capacity(batch.len());
    // The outcome each written push answers, by batch position and statement `idx`.
    let mut pending: Vec<(usize, i64, PushOutcome)> = Vec::new();
    let mut write = WriteBatch::default();
    for (i, (job, basis)) in batch.iter().zip(bases).enumerate() {
        let id = job.id();
        let (head, current, remembered) = match basis {
            Basis::Known(head, hashes) => (head, hashes, true),
            Basis::Unknown | Basis::Read(None) => {
                verdicts.push(Verdict::Failed(StoreError::ProjectNotFound(id)));
                continue;
            }
            Basis::Read(Some(row)) => {
                let project = project_from_row(&row)?;
                let current = fresh_hashes(conn, &row, &project, &job.input.session_id).await?;
                if project.revision == 0 && current.is_empty() {
                    // Possibly a legacy row to adopt: the locked path does that.
                    verdicts.push(Verdict::Locked);
                    continue;
                }
                (Head::of(&project), current, false)
            }
        };
        let changes = match rules::plan_push(&current, &hashed[i], &job.input) {
            Ok(changes) => changes,
            Err(_) if remembered => {
                // Maybe only against an older state than the database's: read and decide again.
                known.forget(id);
                verdicts.push(Verdict::Retry);
                continue;
            }
            Err(conflicts) => {
                let e =
                    PostgresStore::conflicts(conn, id, &job.input.session_id, conflicts).await?;
                verdicts.push(Verdict::Failed(e));
                continue;
            }
        };
        let columns = mirror(conn, &head, &job.input, &changes).await?;
        let idx = i64::try_from(i).unwrap_or(i64::MAX);
        let revision = write.add(idx, &head, &job.input, &changes, columns, job.now);
        pending.push((
            i,
            idx,
            rules::outcome(id, head.name, false, revision, current, &changes),
        ));
        // Stays `Retry` unless the write below lands it.
        verdicts.push(Verdict::Retry);
    }
    if write.is_empty() {
        return Ok(verdicts);
    }
    let written: HashSet<i64> = write.execute(conn).await?.into_iter().collect();
    for (i, idx, outcome) in pending {
        if written.contains(&idx) {
            let head = Head {
                id: outcome.project_id,
                name: outcome.name.clone(),
                revision: outcome.revision,
                last_session_id: Some(batch[i].input.session_id.clone()),
            };
            known.remember(head, outcome.hashes.clone());
            verdicts[i] = Verdict::Done(outcome);
        } else {
            known.forget(batch[i].id());
        }
    }
    Ok(verdicts)
}

/// Projects this gateway wrote lately: the head each write left and its session's hashes. A
/// push to the session a project's row mirrors is checked against this instead of a read (one
/// round trip and Postgres's costliest statement saved). It is only ever a guess: a push
/// checked against it is written by the same compare-and-swap as any other, which fails if
/// another gateway or the locked path moved the project on; then it is read and checked again.
/// A head's revision and session fix that session's texts: every push that changes one bumps
/// the revision.
#[derive(Debug, Default)]
pub(super) struct Known {
    heads: std::sync::Mutex<HashMap<Uuid, (Head, Hashes)>>,
}

/// Artifact key → hash of one session's texts.
type Hashes = BTreeMap<String, String>;

/// Projects remembered at most (about 1 KiB each); past it, the memory starts over.
const KNOWN_PROJECTS: usize = 4096;

impl Known {
    fn basis(&self, job: &Queued) -> Basis {
        let heads = self.heads.lock().unwrap_or_else(PoisonError::into_inner);
        match heads.get(&job.id()) {
            Some((head, hashes))
                if head.last_session_id.as_deref() == Some(job.input.session_id.as_str()) =>
            {
                Basis::Known(head.clone(), hashes.clone())
            }
            _ => Basis::Unknown,
        }
    }

    fn remember(&self, head: Head, hashes: Hashes) {
        let mut heads = self.heads.lock().unwrap_or_else(PoisonError::into_inner);
        if heads.len() >= KNOWN_PROJECTS && !heads.contains_key(&head.id) {
            heads.clear();
        }
        heads.insert(head.id, (head, hashes));
    }

    pub(super) fn forget(&self, id: Uuid) {
        self.heads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }
}
