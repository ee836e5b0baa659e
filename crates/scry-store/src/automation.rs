//! The automation tables: the durable job queue, the automation history, workflow state and
//! blocklists. Same SQL text on both databases, like the rest of the store.
//!
//! The queue is a table, not a broker, so a job and the results it produces live in one database
//! and nothing is acknowledged before it is stored (DESIGN.md invariant 3). Claims lease jobs to a
//! worker for a time; a worker that dies simply lets its leases run out.

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::StoreError;
use crate::model::{
    AttemptCount, BlockEntry, CallCount, Event, EventFilter, Job, JobOutcome, LatencyHistogram,
    NewJob, QueueDepth, Workflow,
};
use crate::sql::SqlStore;

/// Rows per insert statement (12 columns × 200 stays under both databases' parameter limits).
const ROWS_PER_STATEMENT: usize = 200;

fn json_column(row: &AnyRow, column: &str) -> Result<Value, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn count(value: i64, column: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} {value}")))
}

impl SqlStore {
    pub(crate) async fn insert_jobs(&self, jobs: &[NewJob]) -> Result<u64, StoreError> {
        let mut added = 0;
        let now = crate::sql::now_ms();
        for chunk in jobs.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO jobs (kind, dedupe_key, payload, state, max_attempts, run_after, created_at) VALUES {} ON CONFLICT DO NOTHING",
                self.value_rows(chunk.len(), 7)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql.as_str()));
            for job in chunk {
                query = query
                    .bind(job.kind.as_str())
                    .bind(job.dedupe_key.as_deref())
                    .bind(job.payload.to_string())
                    .bind("pending")
                    .bind(i64::from(job.max_attempts.max(1)))
                    .bind(job.run_after)
                    .bind(now);
            }
            added += query.execute(&self.pool).await?.rows_affected();
        }
        Ok(added)
    }

    pub(crate) async fn lease_jobs(
        &self,
        owner: &str,
        kinds: &[&str],
        now: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let p = |n| self.placeholder(n);
        let mut tx = self.begin_write().await?;
        // Jobs whose worker died on their last attempt: failed, with the reason.
        let abandoned = format!(
            "UPDATE jobs SET state = 'failed', finished_at = {now}, lease_owner = NULL, lease_until = NULL, \
             last_error = 'the worker holding it stopped during its last attempt' \
             WHERE state = 'pending' AND lease_until IS NOT NULL AND lease_until <= {now} AND attempts >= max_attempts",
            now = p(1)
        );
        sqlx::query(AssertSqlSafe(abandoned.as_str()))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let of_kinds = if kinds.is_empty() {
            String::new()
        } else {
            format!(
                "AND kind IN ({}) ",
                (5..5 + kinds.len()).map(p).collect::<Vec<_>>().join(", ")
            )
        };
        let claim = format!(
            "UPDATE jobs SET lease_owner = {owner}, lease_until = {until}, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM jobs WHERE state = 'pending' AND run_after <= {now} \
             AND (lease_until IS NULL OR lease_until <= {now}) {of_kinds}ORDER BY run_after, id LIMIT {limit}) \
             RETURNING id, kind, payload, attempts, max_attempts, created_at",
            owner = p(1),
            until = p(2),
            now = p(3),
            limit = p(4)
        );
        let mut query = sqlx::query(AssertSqlSafe(claim.as_str()))
            .bind(owner)
            .bind(now.saturating_add(lease_ms))
            .bind(now)
            .bind(i64::from(limit));
        for kind in kinds {
            query = query.bind(*kind);
        }
        let rows = query.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let mut jobs = rows
            .iter()
            .map(|row| {
                Ok(Job {
                    id: row.try_get("id")?,
                    kind: row.try_get("kind")?,
                    payload: json_column(row, "payload")?,
                    attempts: count(row.try_get("attempts")?, "attempts")?,
                    max_attempts: count(row.try_get("max_attempts")?, "max_attempts")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect::<Result<Vec<Job>, StoreError>>()?;
        jobs.sort_by_key(|job| job.id);
        Ok(jobs)
    }

    pub(crate) async fn renew_leases(
        &self,
        owner: &str,
        ids: &[i64],
        until: i64,
    ) -> Result<u64, StoreError> {
        let mut renewed = 0;
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE jobs SET lease_until = {} WHERE lease_owner = {} AND state = 'pending' AND id IN ({})",
                self.placeholder(1),
                self.placeholder(2),
                (3..3 + chunk.len())
                    .map(|n| self.placeholder(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(until)
                .bind(owner);
            for id in chunk {
                query = query.bind(*id);
            }
            renewed += query.execute(&self.pool).await?.rows_affected();
        }
        Ok(renewed)
    }

    pub(crate) async fn end_attempt(
        &self,
        id: i64,
        owner: &str,
        outcome: &JobOutcome,
        now: i64,
    ) -> Result<bool, StoreError> {
        let p = |n| self.placeholder(n);
        let held = format!(
            "WHERE id = {} AND lease_owner = {} AND state = 'pending'",
            p(1),
            p(2)
        );
        let (sql, run_after, error) = match outcome {
            JobOutcome::Done => (
                format!(
                    "UPDATE jobs SET state = 'done', finished_at = {}, lease_owner = NULL, lease_until = NULL, last_error = NULL {held}",
                    p(3)
                ),
                None,
                None,
            ),
            JobOutcome::Retry { at, error } => (
                format!(
                    "UPDATE jobs SET state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'pending' END, \
                     finished_at = CASE WHEN attempts >= max_attempts THEN {now} ELSE NULL END, \
                     run_after = {at}, last_error = {error}, lease_owner = NULL, lease_until = NULL {held}",
                    now = p(3),
                    at = p(4),
                    error = p(5)
                ),
                Some(*at),
                Some(error.as_str()),
            ),
            JobOutcome::Failed { error } => (
                format!(
                    "UPDATE jobs SET state = 'failed', finished_at = {}, last_error = {}, lease_owner = NULL, lease_until = NULL {held}",
                    p(3),
                    p(4)
                ),
                None,
                Some(error.as_str()),
            ),
        };
        let mut query = sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(id)
            .bind(owner)
            .bind(now);
        if let Some(at) = run_after {
            query = query.bind(at);
        }
        if let Some(error) = error {
            query = query.bind(error);
        }
        Ok(query.execute(&self.pool).await?.rows_affected() == 1)
    }

    pub(crate) async fn count_jobs(&self, now: i64) -> Result<QueueDepth, StoreError> {
        let sql = format!(
            "SELECT state, CASE WHEN state = 'pending' AND run_after <= {now} AND (lease_until IS NULL OR lease_until <= {now}) THEN 1 ELSE 0 END AS due, COUNT(*) AS n \
             FROM jobs GROUP BY state, due",
            now = self.placeholder(1)
        );
        let mut depth = QueueDepth::default();
        for row in sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(now)
            .fetch_all(&self.pool)
            .await?
        {
            let state: String = row.try_get("state")?;
            let due: i64 = row.try_get("due")?;
            let n = row.try_get::<i64, _>("n")? as u64;
            match (state.as_str(), due) {
                ("pending", 1) => depth.ready += n,
                ("pending", _) => depth.waiting += n,
                ("done", _) => depth.done += n,
                _ => depth.failed += n,
            }
        }
        Ok(depth)
    }

    pub(crate) async fn count_calls(&self, since: i64) -> Result<Vec<CallCount>, StoreError> {
        let sql = format!(
            "SELECT origin, account, outcome, COUNT(*) AS n, CAST(COALESCE(SUM(credits), 0) AS BIGINT) AS credits FROM events \
             WHERE at >= {} AND kind = 'call' GROUP BY origin, account, outcome ORDER BY origin, account, outcome",
            self.placeholder(1)
        );
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(since)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                let origin: String = row.try_get("origin")?;
                Ok(CallCount {
                    source: origin.strip_prefix("source:").unwrap_or(&origin).to_owned(),
                    account: row.try_get("account")?,
                    outcome: row.try_get("outcome")?,
                    calls: row.try_get::<i64, _>("n")? as u64,
                    credits: row.try_get::<i64, _>("credits")? as u64,
                })
            })
            .collect()
    }

    /// Durations of `kind` events of `source` (with `outcome`, when given), newest first.
    pub(crate) async fn durations(
        &self,
        kind: &str,
        source: &str,
        outcome: Option<&str>,
        since: i64,
        limit: u32,
    ) -> Result<Vec<i64>, StoreError> {
        let p = |n| self.placeholder(n);
        let sql = format!(
            "SELECT duration_ms FROM events WHERE at >= {} AND kind = {} AND origin = {} \
             AND ({} IS NULL OR outcome = {}) AND duration_ms IS NOT NULL ORDER BY at DESC, id DESC LIMIT {}",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6)
        );
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(since)
            .bind(kind)
            .bind(format!("source:{source}"))
            .bind(outcome)
            .bind(outcome)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| Ok(row.try_get("duration_ms")?))
            .collect()
    }

    pub(crate) async fn latency_histograms(
        &self,
        bounds_ms: &[u64],
    ) -> Result<Vec<LatencyHistogram>, StoreError> {
        // The bounds are numbers, written into the statement as such.
        let buckets: String = bounds_ms
            .iter()
            .enumerate()
            .map(|(i, bound)| {
                format!(", CAST(SUM(CASE WHEN duration_ms <= {bound} THEN 1 ELSE 0 END) AS BIGINT) AS b{i}")
            })
            .collect();
        let sql = format!(
            "SELECT origin, COUNT(*) AS n, CAST(COALESCE(SUM(duration_ms), 0) AS BIGINT) AS total{buckets} FROM events \
             WHERE kind = 'attempt' AND duration_ms IS NOT NULL GROUP BY origin ORDER BY origin"
        );
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                let origin: String = row.try_get("origin")?;
                let at_or_under = (0..bounds_ms.len())
                    .map(|i| Ok(row.try_get::<i64, _>(format!("b{i}").as_str())? as u64))
                    .collect::<Result<Vec<u64>, StoreError>>()?;
                Ok(LatencyHistogram {
                    source: origin.strip_prefix("source:").unwrap_or(&origin).to_owned(),
                    count: row.try_get::<i64, _>("n")? as u64,
                    sum_ms: row.try_get::<i64, _>("total")?.max(0) as u64,
                    at_or_under,
                })
            })
            .collect()
    }

    pub(crate) async fn count_attempts(&self, since: i64) -> Result<Vec<AttemptCount>, StoreError> {
        let sql = format!(
            "SELECT origin, outcome, COUNT(*) AS n, \
             CAST(COALESCE(SUM(CASE WHEN action = 'retry' THEN 1 ELSE 0 END), 0) AS BIGINT) AS retries FROM events \
             WHERE at >= {} AND kind = 'attempt' GROUP BY origin, outcome ORDER BY origin, outcome",
            self.placeholder(1)
        );
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(since)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                let origin: String = row.try_get("origin")?;
                Ok(AttemptCount {
                    source: origin.strip_prefix("source:").unwrap_or(&origin).to_owned(),
                    outcome: row.try_get("outcome")?,
                    attempts: row.try_get::<i64, _>("n")? as u64,
                    retries: row.try_get::<i64, _>("retries")? as u64,
                })
            })
            .collect()
    }

    pub(crate) async fn insert_events(&self, events: &[Event]) -> Result<(), StoreError> {
        for chunk in events.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO events (at, kind, stix_id, indicator, rule, action, outcome, origin, account, duration_ms, credits, detail) VALUES {}",
                self.value_rows(chunk.len(), 12)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql.as_str()));
            for e in chunk {
                query = query
                    .bind(e.at)
                    .bind(e.kind.as_str())
                    .bind(e.stix_id.as_deref())
                    .bind(e.indicator.as_deref())
                    .bind(e.rule.as_deref())
                    .bind(e.action.as_deref())
                    .bind(e.outcome.as_str())
                    .bind(e.origin.as_str())
                    .bind(e.account.as_deref())
                    .bind(e.duration_ms)
                    .bind(e.credits)
                    .bind(e.detail.to_string());
            }
            query.execute(&self.pool).await?;
        }
        Ok(())
    }

    pub(crate) async fn select_events(
        &self,
        filter: &EventFilter,
    ) -> Result<Vec<Event>, StoreError> {
        let mut conditions = Vec::new();
        let mut n = 0;
        let mut next = |column: &str, op: &str| {
            n += 1;
            conditions.push(format!("{column} {op} {}", self.placeholder(n)));
        };
        if filter.stix_id.is_some() {
            next("stix_id", "=");
        }
        if filter.rule.is_some() {
            next("rule", "=");
        }
        if filter.kind.is_some() {
            next("kind", "=");
        }
        if filter.since.is_some() {
            next("at", ">=");
        }
        if filter.before_id.is_some() {
            next("id", "<");
        }
        let sql = format!(
            "SELECT id, at, kind, stix_id, indicator, rule, action, outcome, origin, account, duration_ms, credits, detail FROM events {} ORDER BY id DESC LIMIT {}",
            if conditions.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", conditions.join(" AND "))
            },
            self.placeholder(n + 1)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql.as_str()));
        for text in [&filter.stix_id, &filter.rule, &filter.kind]
            .into_iter()
            .flatten()
        {
            query = query.bind(text.as_str());
        }
        for number in [filter.since, filter.before_id].into_iter().flatten() {
            query = query.bind(number);
        }
        let rows = query
            .bind(i64::from(filter.limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Event {
                    id: row.try_get("id")?,
                    at: row.try_get("at")?,
                    kind: row.try_get("kind")?,
                    stix_id: row.try_get("stix_id")?,
                    indicator: row.try_get("indicator")?,
                    rule: row.try_get("rule")?,
                    action: row.try_get("action")?,
                    outcome: row.try_get("outcome")?,
                    origin: row.try_get("origin")?,
                    account: row.try_get("account")?,
                    duration_ms: row.try_get("duration_ms")?,
                    credits: row.try_get("credits")?,
                    detail: json_column(row, "detail")?,
                })
            })
            .collect()
    }

    pub(crate) async fn select_workflow(
        &self,
        stix_id: &str,
    ) -> Result<Option<Workflow>, StoreError> {
        Ok(self
            .select_workflows(&[stix_id.to_owned()])
            .await?
            .into_iter()
            .next())
    }

    /// The workflow states of those of `stix_ids` someone or something touched.
    pub(crate) async fn select_workflows(
        &self,
        stix_ids: &[String],
    ) -> Result<Vec<Workflow>, StoreError> {
        let mut out = Vec::new();
        for chunk in stix_ids.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT stix_id, status, labels, priority_override, ticket, updated_at, origin FROM workflow WHERE stix_id IN ({})",
                self.in_order_list(1, chunk.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(sql.as_str()));
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for row in query.fetch_all(&self.pool).await? {
                out.push(workflow_of(&row)?);
            }
        }
        Ok(out)
    }

    pub(crate) async fn upsert_workflow(&self, w: &Workflow) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO workflow (stix_id, status, labels, priority_override, ticket, updated_at, origin) VALUES {} \
             ON CONFLICT (stix_id) DO UPDATE SET status = excluded.status, labels = excluded.labels, \
             priority_override = excluded.priority_override, ticket = excluded.ticket, \
             updated_at = excluded.updated_at, origin = excluded.origin",
            self.value_rows(1, 7)
        );
        // The indicator's analyst state is part of what it publishes (labels, score): a change
        // of it is a new version of the indicator, stamped in the same transaction.
        let mut tx = self.begin_write().await?;
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(w.stix_id.as_str())
            .bind(w.status.as_str())
            .bind(serde_json::to_string(&w.labels).expect("labels serialize"))
            .bind(w.priority_override.map(i64::from))
            .bind(w.ticket.as_deref())
            .bind(w.updated_at)
            .bind(w.origin.as_str())
            .execute(&mut *tx)
            .await?;
        let version = self.stamp(&mut tx, 1).await?;
        let sql = format!(
            "UPDATE indicators SET version_us = {} WHERE stix_id = {}",
            self.placeholder(1),
            self.placeholder(2)
        );
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(version)
            .bind(w.stix_id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn upsert_block(&self, e: &BlockEntry) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO blocklist_entries (list, value, stix_id, added_at, expires_at, reason, origin, version_us) VALUES {} \
             ON CONFLICT (list, value) DO UPDATE SET \
             added_at = CASE WHEN blocklist_entries.removed_at IS NOT NULL THEN excluded.added_at ELSE blocklist_entries.added_at END, \
             expires_at = CASE WHEN blocklist_entries.removed_at IS NOT NULL OR excluded.expires_at > blocklist_entries.expires_at \
             THEN excluded.expires_at ELSE blocklist_entries.expires_at END, \
             reason = excluded.reason, origin = excluded.origin, version_us = excluded.version_us, removed_at = NULL",
            self.value_rows(1, 8)
        );
        // A new or renewed entry is a new version of the list's entry, for TAXII readers.
        let mut tx = self.begin_write().await?;
        let version = self.stamp(&mut tx, 1).await?;
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(e.list.as_str())
            .bind(e.value.as_str())
            .bind(e.stix_id.as_str())
            .bind(e.added_at)
            .bind(e.expires_at)
            .bind(e.reason.as_str())
            .bind(e.origin.as_str())
            .bind(version)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes an entry, leaving a tombstone stamped as a new version of it.
    pub(crate) async fn delete_block(&self, list: &str, value: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let version = self.stamp(&mut tx, 1).await?;
        let sql = format!(
            "UPDATE blocklist_entries SET removed_at = {}, version_us = {} \
             WHERE list = {} AND value = {} AND removed_at IS NULL",
            self.placeholder(1),
            self.placeholder(2),
            self.placeholder(3),
            self.placeholder(4)
        );
        let done = sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(version / 1000)
            .bind(version)
            .bind(list)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every entry of `list` (tombstones too) whose version was committed after `after_us`, in
    /// commit order, `limit` at most: what a feed of the list's changes reads.
    pub(crate) async fn select_blocklist_changes(
        &self,
        list: &str,
        after_us: i64,
        limit: u32,
    ) -> Result<Vec<BlockEntry>, StoreError> {
        let sql = format!(
            "SELECT {BLOCK_COLUMNS} FROM blocklist_entries \
             WHERE list = {} AND version_us > {} ORDER BY version_us, value LIMIT {}",
            self.placeholder(1),
            self.placeholder(2),
            self.placeholder(3)
        );
        let rows = sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(list)
            .bind(after_us)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(block_entry).collect()
    }

    pub(crate) async fn select_blocklist(
        &self,
        list: &str,
        now: i64,
    ) -> Result<Vec<BlockEntry>, StoreError> {
        let sql = format!(
            "SELECT {BLOCK_COLUMNS} FROM blocklist_entries \
             WHERE list = {} AND expires_at > {} AND removed_at IS NULL ORDER BY value",
            self.placeholder(1),
            self.placeholder(2)
        );
        let rows = sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(list)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(block_entry).collect()
    }

    pub(crate) async fn select_lists_of(
        &self,
        value: &str,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let sql = format!(
            "SELECT list FROM blocklist_entries WHERE value = {} AND expires_at > {} AND removed_at IS NULL ORDER BY list",
            self.placeholder(1),
            self.placeholder(2)
        );
        let rows = sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(value)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| Ok(row.try_get("list")?)).collect()
    }

    /// Turns the entries that expired at `now` into tombstones (each a new version, stamped in
    /// commit order) and returns them; tombstones older than [`TOMBSTONE_DAYS`] go.
    pub(crate) async fn delete_expired_blocks(
        &self,
        now: i64,
    ) -> Result<Vec<BlockEntry>, StoreError> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "SELECT {BLOCK_COLUMNS} FROM blocklist_entries WHERE expires_at <= {} AND removed_at IS NULL \
             ORDER BY list, value",
            self.placeholder(1)
        );
        let mut entries = sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(now)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(block_entry)
            .collect::<Result<Vec<_>, _>>()?;
        if !entries.is_empty() {
            let first = self.stamp(&mut tx, entries.len()).await?;
            let update = format!(
                "UPDATE blocklist_entries SET removed_at = expires_at, version_us = {} WHERE list = {} AND value = {}",
                self.placeholder(1),
                self.placeholder(2),
                self.placeholder(3)
            );
            for (entry, version) in entries.iter_mut().zip(first..) {
                sqlx::query(AssertSqlSafe(update.as_str()))
                    .bind(version)
                    .bind(entry.list.as_str())
                    .bind(entry.value.as_str())
                    .execute(&mut *tx)
                    .await?;
                entry.version_us = version;
                entry.removed_at = Some(entry.expires_at);
            }
        }
        let purge = format!(
            "DELETE FROM blocklist_entries WHERE removed_at IS NOT NULL AND removed_at < {}",
            self.placeholder(1)
        );
        sqlx::query(AssertSqlSafe(purge.as_str()))
            .bind(now - TOMBSTONE_DAYS * 86_400_000)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(entries)
    }
}

/// How long a removed blocklist entry stays as a tombstone, so a feed's readers polling less
/// often than that still learn of the removal.
pub(crate) const TOMBSTONE_DAYS: i64 = 30;

const BLOCK_COLUMNS: &str =
    "list, value, stix_id, added_at, expires_at, reason, origin, version_us, removed_at";

fn block_entry(row: &AnyRow) -> Result<BlockEntry, StoreError> {
    Ok(BlockEntry {
        list: row.try_get("list")?,
        value: row.try_get("value")?,
        stix_id: row.try_get("stix_id")?,
        added_at: row.try_get("added_at")?,
        expires_at: row.try_get("expires_at")?,
        reason: row.try_get("reason")?,
        origin: row.try_get("origin")?,
        version_us: row.try_get("version_us")?,
        removed_at: row.try_get("removed_at")?,
    })
}

fn workflow_of(row: &AnyRow) -> Result<Workflow, StoreError> {
    let labels = serde_json::from_value(json_column(row, "labels")?)
        .map_err(|e| StoreError::Corrupt(format!("labels: {e}")))?;
    let priority: Option<i64> = row.try_get("priority_override")?;
    Ok(Workflow {
        stix_id: row.try_get("stix_id")?,
        status: row.try_get("status")?,
        labels,
        priority_override: priority
            .map(|p| {
                u8::try_from(p).map_err(|_| StoreError::Corrupt(format!("priority_override {p}")))
            })
            .transpose()?,
        ticket: row.try_get("ticket")?,
        updated_at: row.try_get("updated_at")?,
        origin: row.try_get("origin")?,
    })
}
