//! Several tenants' calls in one round trip, each in its own transaction.
//!
//! A queue batch holds messages of several businesses, and each of the pipeline's steps is one
//! SQL function call per business, which must run in a transaction of its own: the function
//! acts for one tenant (`alphadome.act_for_tenant` refuses a second in the same transaction).
//! Sent one by one, a batch of ten businesses costs thirty round trips. PostgreSQL runs a
//! simple `Query` message holding several statements one after the other, and an explicit
//! `begin; …; commit;` inside it bounds a transaction — so the calls made at the same time
//! go together as `begin; <call 1>; commit; begin; <call 2>; commit; …`: one round trip,
//! still one transaction per tenant, and no prepared statement (a transaction-mode pooler
//! keeps the same server connection until the message is done).
//!
//! Which calls go together: those queued while the previous combined message is in flight
//! (at most [`Coalescer::in_flight`] at once), plus those made in the same poll of a task
//! (the first caller yields once, so the other tenants of a wave, polled by the same
//! `join_all`, queue behind it). Nothing waits on a timer.
//!
//! One flush of the write-ahead log for the lot. A durable commit waits for the log to reach
//! the disk; ten of them one after the other on one connection wait ten times, and nothing can
//! share those waits. So when a message holds two calls or more that want their own commit
//! durable ([`Durability::Durable`]), every call in it commits with `synchronous_commit = off`
//! and the message ends with a barrier, `begin; select pg_current_xact_id(); commit;`: a
//! transaction with an id whose durable commit flushes the log up to its own commit record,
//! past every commit of the message before it. No call is answered before that barrier
//! commits, so nobody acts on a write the disk does not hold (a record of `pending` replies
//! is what allows a send). When the barrier cannot run — the connection failed — the calls it
//! should have covered are answered as lost, exactly as if their own commits had failed.
//!
//! Errors stay each call's own. PostgreSQL abandons the rest of a message after an error:
//! the failed call gets its error (with the database's code, so a refusal is still told from
//! a fault), the aborted transaction is rolled back on the same connection, and the calls
//! after it run again in a new message. A connection lost midway fails every call not yet
//! answered, as a single lost call did before: the caller retries, and claims make a retry
//! safe.

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::StreamExt as _;
use sqlx::postgres::{PgQueryResult, PgRow};
use sqlx::{Either, PgConnection, PgPool, Row as _};
use tokio::sync::{oneshot, Semaphore};

use super::literal::ROUND_TRIPS;

type Reply = anyhow::Result<Option<serde_json::Value>>;

/// One call waiting for its turn: a statement made by [`super::literal::json_select`].
struct Call {
    sql: String,
    durability: Durability,
    reply: oneshot::Sender<Reply>,
}

/// Whether a call's commit must reach the disk before its answer is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// The caller acts on the answer in a way a crash must not undo (the default).
    Durable,
    /// The call's function commits asynchronously on its own (a claim, a clean mark): losing
    /// it in a crash is safe, so it needs no flush.
    Lazy,
}

/// The transaction that makes a combined message durable: it takes a transaction id, so its
/// commit writes a commit record and, with `synchronous_commit` on, waits until the log is
/// flushed past it — and so past every commit made before it on this connection.
const BARRIER: &str = "begin; select pg_catalog.pg_current_xact_id(); commit;";

/// Combines concurrent calls of one pool into shared round trips.
pub(super) struct Coalescer {
    pool: PgPool,
    queue: Mutex<Vec<Call>>,
    /// Combined messages in flight at once.
    in_flight: Arc<Semaphore>,
}

impl std::fmt::Debug for Coalescer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer")
            .field("in_flight", &self.in_flight.available_permits())
            .finish_non_exhaustive()
    }
}

impl Coalescer {
    /// `in_flight`: how many combined messages may run at once (at least 1); the pool's
    /// other connections stay free for everything else.
    pub(super) fn new(pool: PgPool, in_flight: usize) -> Self {
        Self {
            pool,
            queue: Mutex::new(Vec::new()),
            in_flight: Arc::new(Semaphore::new(in_flight.max(1))),
        }
    }

    /// Runs `sql` (one [`super::literal::json_select`] statement) in a transaction of its
    /// own, together with whatever other calls are waiting, and returns its JSON.
    pub(super) async fn fetch_json(self: &Arc<Self>, sql: String, durability: Durability) -> Reply {
        let (reply, answer) = oneshot::channel();
        let first = {
            let mut queue = self.queue.lock().expect("coalescer queue");
            queue.push(Call {
                sql,
                durability,
                reply,
            });
            queue.len() == 1
        };
        if first {
            // The message runs on its own task, started when this guard drops: after the
            // yield, or earlier if this caller gives up (a dropped request, a timeout) — the
            // queue is never left without a flush to come, and no caller strands the others.
            let _flush = FlushOnDrop(Some(self.clone()));
            // Let the calls polled after this one in the same pass (the rest of a wave) join.
            tokio::task::yield_now().await;
        }
        answer
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the database call was abandoned")))
    }

    /// Waits for a free slot, then sends everything queued by then.
    async fn flush(&self) {
        let _slot = self.in_flight.acquire().await;
        let mut pending = std::mem::take(&mut *self.queue.lock().expect("coalescer queue"));
        pending.retain(|c| !c.reply.is_closed());
        while !pending.is_empty() {
            pending = self.run(pending).await;
        }
    }

    /// Sends `calls` as one message; answers those that ran and returns those that did not
    /// start because an earlier one failed.
    async fn run(&self, calls: Vec<Call>) -> Vec<Call> {
        ROUND_TRIPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut conn = match self.pool.acquire().await {
            Ok(c) => c,
            Err(e) => {
                let why = format!(
                    "{:#}",
                    anyhow::Error::new(e).context("calling the database")
                );
                for c in calls {
                    let _ = c.reply.send(Err(anyhow::anyhow!(why.clone())));
                }
                return Vec::new();
            }
        };
        let (message, barrier) = compose(calls.iter().map(|c| (c.sql.as_str(), c.durability)));
        // Each call completes four commands (begin, set role, select, commit), five with the
        // setting; the barrier's three come after them all.
        let per_call: usize = if barrier { 5 } else { 4 };
        let mut completed = 0usize;
        let mut docs: Vec<Option<Option<String>>> = (0..calls.len()).map(|_| None).collect();
        let mut failure: Option<sqlx::Error> = None;
        {
            let mut stream = statements(&mut conn, &message);
            while let Some(item) = stream.next().await {
                match item {
                    Ok(Either::Left(_)) => completed += 1,
                    Ok(Either::Right(row)) => {
                        let at = completed / per_call;
                        if let Some(slot) = docs.get_mut(at) {
                            *slot = Some(row.try_get::<Option<String>, _>("doc").ok().flatten());
                        }
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
        let done = (completed / per_call).min(calls.len());
        let mut calls = calls.into_iter();
        let answered: Vec<(Call, Option<Option<String>>)> =
            calls.by_ref().take(done).zip(docs).collect();
        let Some(error) = failure else {
            // Every call and the barrier (if any) committed.
            answer(answered, true);
            return Vec::new();
        };
        let refused_here = matches!(error, sqlx::Error::Database(_));
        let failed = calls.next();
        let rest: Vec<Call> = calls.collect();
        // The transaction that failed is aborted: end it on this connection before the
        // connection goes back to the pool (or drop the connection if that fails too).
        let rolled_back = rollback(&mut conn).await.is_ok();
        // The calls that committed before the failure did so without a flush of their own
        // when the message had a barrier: they are answered once a barrier has run.
        let durable = !barrier
            || answered.is_empty()
            || (rolled_back && run_barrier(&mut conn).await.is_ok());
        if !rolled_back || !durable {
            let _ = conn.detach();
        }
        answer(answered, durable);
        if let Some(call) = failed {
            let _ = call.reply.send(Err(
                anyhow::Error::new(error).context("calling the database")
            ));
        }
        if refused_here && rolled_back {
            // The database refused one call and never started the rest: they run again.
            rest
        } else {
            // The connection failed: whether the rest ran is unknown, as for a lost call.
            for c in rest {
                let _ = c.reply.send(Err(anyhow::anyhow!(
                    "calling the database: the connection failed during a combined call"
                )));
            }
            Vec::new()
        }
    }
}

/// The one message for these calls, `begin; <call>; commit;` each, and whether it ends with
/// the [`BARRIER`]: with two durable calls or more, every call commits without its own flush
/// and the barrier flushes them all at once.
fn compose<'a>(calls: impl Iterator<Item = (&'a str, Durability)> + Clone) -> (String, bool) {
    let barrier = calls
        .clone()
        .filter(|(_, d)| *d == Durability::Durable)
        .count()
        >= 2;
    let mut message = String::new();
    for (sql, _) in calls {
        message.push_str(if barrier {
            "begin; set local synchronous_commit = off; "
        } else {
            "begin; "
        });
        message.push_str(sql);
        message.push_str("; commit;\n");
    }
    if barrier {
        message.push_str(BARRIER);
    }
    (message, barrier)
}

/// Answers the calls that committed: with their results when their commits are durable,
/// else as lost (whether a crash would keep them is unknown, as for a lost answer).
fn answer(answered: Vec<(Call, Option<Option<String>>)>, durable: bool) {
    for (call, doc) in answered {
        let answer = if !durable {
            Err(anyhow::anyhow!(
                "calling the database: the connection failed before the combined call was flushed"
            ))
        } else {
            match doc {
                Some(Some(text)) => serde_json::from_str(&text)
                    .map(Some)
                    .context("decoding the result"),
                _ => Ok(None),
            }
        };
        let _ = call.reply.send(answer);
    }
}

/// Starts a flush of the queue when dropped.
struct FlushOnDrop(Option<Arc<Coalescer>>);

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        if let (Some(this), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move { this.flush().await });
        }
    }
}

// The two calls on the connection, as named functions with one lifetime: written inline in the
// spawned task, the compiler cannot prove the executor works for every lifetime.

/// The results of `message`'s statements, in order.
fn statements<'c>(
    conn: &'c mut PgConnection,
    message: &'c str,
) -> BoxStream<'c, Result<Either<PgQueryResult, PgRow>, sqlx::Error>> {
    // A `&str` without arguments goes as one simple-protocol `Query` message.
    sqlx::Executor::fetch_many(conn, message)
}

/// Runs [`BARRIER`] on its own.
fn run_barrier(conn: &mut PgConnection) -> BoxFuture<'_, Result<PgQueryResult, sqlx::Error>> {
    sqlx::Executor::execute(conn, BARRIER)
}

/// Ends the aborted transaction.
fn rollback(conn: &mut PgConnection) -> BoxFuture<'_, Result<PgQueryResult, sqlx::Error>> {
    sqlx::Executor::execute(conn, "rollback")
}

#[cfg(test)]
mod tests {
    use super::{compose, Durability, BARRIER};
    use Durability::{Durable, Lazy};

    #[test]
    fn two_durable_calls_or_more_commit_lazily_and_share_one_flush_at_the_end() {
        let (one, barrier) = compose([("select 1", Durable), ("select 2", Lazy)].into_iter());
        assert!(!barrier, "one durable call flushes on its own");
        assert_eq!(one, "begin; select 1; commit;\nbegin; select 2; commit;\n");

        let calls = [
            ("select 1", Durable),
            ("select 2", Lazy),
            ("select 3", Durable),
        ];
        let (all, barrier) = compose(calls.into_iter());
        assert!(barrier);
        assert_eq!(
            all.matches("begin; set local synchronous_commit = off; ")
                .count(),
            3,
            "every call commits without a flush of its own: {all}"
        );
        assert!(all.ends_with(BARRIER), "the barrier comes last: {all}");
        assert_eq!(all.matches(BARRIER).count(), 1);
    }
}
