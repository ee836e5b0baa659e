//! The store on SQL databases, through sqlx's `Any` driver: SQLite or PostgreSQL by URL.

use std::collections::HashMap;
use std::sync::Once;
use std::time::{SystemTime, UNIX_EPOCH};

use scry_core::Facet;
use serde_json::Value;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Row};

use crate::migrations::{MIGRATIONS, Migration, latest_version};
use crate::model::{
    Account, AnswerKey, AttemptCount, BlockEntry, CallCount, Change, Event, EventFilter,
    IndicatorPage, IndicatorQuery, IndicatorRecord, Job, JobOutcome, LatencyHistogram, NewJob,
    Overview, PivotCursor, QueueDepth, SaveReport, ScorePoint, Session, StaleIndicator,
    StoredIndicator, VendorAnswer, Workflow,
};
use crate::{Store, StoreError, StoreFuture};

/// Rows per statement when saving: well under SQLite's 32,766 and PostgreSQL's 65,535 parameters.
const ROWS_PER_STATEMENT: usize = 200;

/// The PostgreSQL advisory lock that serializes saves.
const SAVE_LOCK: i64 = 7_365_637_279;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// A store on SQLite or PostgreSQL.
///
/// Query texts are built here from constants and placeholders only; every value is bound, which is
/// why they are marked `AssertSqlSafe`.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How long a PostgreSQL server has to accept the first connection.
pub(crate) const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub(crate) const INDICATOR_COLUMNS: &str = "stix_id, kind, value, priority, severity, enrichment_status, skip_reason, tlp, tags, reasons, sources, observed_at, first_seen, last_changed, version_us";

impl SqlStore {
    /// Connects to `url`: `sqlite://PATH` creates the file, in a folder that must exist (a
    /// mistyped folder is an error, not a new empty store elsewhere); `postgres://…` must answer
    /// within [`CONNECT_TIMEOUT`], and when it does not, the error says why (refused, no such
    /// host, timed out).
    pub async fn connect(url: &str) -> Result<SqlStore, StoreError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let (backend, url) = if let Some(path) = url.strip_prefix("sqlite://") {
            let file = path.split('?').next().unwrap_or(path);
            if let Some(dir) = std::path::Path::new(file)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .filter(|d| !d.is_dir())
            {
                return Err(StoreError::MissingFolder(dir.display().to_string()));
            }
            let url = if path.contains('?') {
                url.to_owned()
            } else {
                format!("{url}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // One connection first, with a deadline: the pool would retry until its own
            // timeout and then say only that it timed out.
            match tokio::time::timeout(
                CONNECT_TIMEOUT,
                <sqlx::AnyConnection as sqlx::Connection>::connect(url),
            )
            .await
            {
                Ok(Ok(connection)) => {
                    let _ = sqlx::Connection::close(connection).await;
                }
                Ok(Err(source)) => {
                    return Err(StoreError::Unreachable {
                        url: redact(url),
                        reason: source.to_string(),
                    });
                }
                Err(_) => {
                    return Err(StoreError::Unreachable {
                        url: redact(url),
                        reason: format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
                    });
                }
            }
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let mut options =
            AnyPoolOptions::new().max_connections(if backend == Backend::Sqlite { 4 } else { 8 });
        if backend == Backend::Sqlite {
            options = options.after_connect(|connection, _| {
                Box::pin(async move {
                    // Saves write hundreds of rows per statement into tables with several
                    // indexes. Together, a 64 MiB page cache (no spilling mid-transaction),
                    // statement journals in memory (they spill to a temporary file past 64 KiB
                    // otherwise) and a checkpoint every 10,000 WAL pages instead of 1,000 (a
                    // page rewritten by many saves is copied back once): `scry-bench W1` at a
                    // million indicators, same day, saves of built records 2,598 → 6,488/s,
                    // CSV ingest 3,193 → 4,034/s; at 20,000, text ingest about 7,800 →
                    // 10,000-12,000/s. None of the three alone made a clear difference.
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA synchronous = NORMAL",
                        "PRAGMA busy_timeout = 10000",
                        "PRAGMA cache_size = -65536",
                        "PRAGMA temp_store = MEMORY",
                        "PRAGMA wal_autocheckpoint = 10000",
                    ] {
                        sqlx::query(pragma).execute(&mut *connection).await?;
                    }
                    Ok(())
                })
            });
        }
        let pool = options
            .connect(&url)
            .await
            .map_err(|source| StoreError::Open {
                url: redact(&url),
                source,
            })?;
        Ok(SqlStore { pool, backend })
    }

    /// Runs one statement as it is (administration and tests; never with outside data).
    pub async fn execute_raw(&self, statement: &str) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe(statement.to_owned()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The pivot query for one value: indicators sharing it, through the
    /// `facets_by_value_priority` index after a (priority, id) cursor, walking the index in order
    /// and stopping at the limit.
    fn sharing_sql(&self) -> String {
        let columns = INDICATOR_COLUMNS
            .split(", ")
            .map(|c| format!("i.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "SELECT {columns}, f.value AS shared FROM facets f JOIN indicators i ON i.stix_id = f.stix_id \
             WHERE {} ORDER BY f.priority DESC, f.stix_id LIMIT {}",
            self.sharing_filter("f."),
            self.placeholder(8)
        )
    }

    /// What a facet row must be to count for a pivot: placeholders 1–7 are facet, value, the
    /// excluded id, the least priority, and the cursor's priority (twice) and id.
    fn sharing_filter(&self, alias: &str) -> String {
        let [
            facet,
            value,
            exclude,
            min,
            cursor_priority,
            same_priority,
            cursor_id,
        ] = [1, 2, 3, 4, 5, 6, 7].map(|n| self.placeholder(n));
        format!(
            "{alias}facet = {facet} AND {alias}value = {value} AND {alias}stix_id <> {exclude} AND {alias}priority >= {min} \
             AND ({alias}priority < {cursor_priority} OR ({alias}priority = {same_priority} AND {alias}stix_id > {cursor_id}))"
        )
    }

    /// Indicators sharing one of several values: each value's index range is read in order up
    /// to the limit (the index alone: ids and priorities), the ranges are merged here — an
    /// indicator sharing several values is listed once, with the least of them — and the page's
    /// indicators are then read in one statement. Every indicator of the merged page is within
    /// the first `limit` of each range it is in, so the page is exact and no range is read past
    /// `limit` entries, however large the values' groups.
    async fn sharing_several(
        &self,
        facet: Facet,
        values: &[String],
        exclude_stix_id: &str,
        min_priority: u8,
        after: Option<&PivotCursor>,
        limit: u32,
    ) -> Result<Vec<(StoredIndicator, String)>, StoreError> {
        let range = format!(
            "SELECT stix_id, priority FROM facets WHERE {} ORDER BY priority DESC, stix_id LIMIT {}",
            self.sharing_filter(""),
            self.placeholder(8)
        );
        // stix_id → (priority, the least value it shares)
        let mut merged: HashMap<String, (i64, String)> = HashMap::new();
        for value in values {
            let query = sqlx::query(AssertSqlSafe(range.as_str()));
            let rows = bind_sharing(query, facet, value, exclude_stix_id, min_priority, after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
            for row in rows {
                let id: String = row.try_get("stix_id")?;
                let priority: i64 = row.try_get("priority")?;
                merged
                    .entry(id)
                    .and_modify(|(_, shared)| {
                        if value < shared {
                            shared.clone_from(value);
                        }
                    })
                    .or_insert_with(|| (priority, value.clone()));
            }
        }
        let mut page: Vec<(String, i64, String)> = merged
            .into_iter()
            .map(|(id, (priority, shared))| (id, priority, shared))
            .collect();
        page.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        page.truncate(limit as usize);
        if page.is_empty() {
            return Ok(Vec::new());
        }
        let read = format!(
            "SELECT {INDICATOR_COLUMNS} FROM indicators WHERE stix_id IN ({})",
            self.in_order_list(1, page.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(read.as_str()));
        for (id, _, _) in &page {
            query = query.bind(id.as_str());
        }
        let mut found: HashMap<String, StoredIndicator> = HashMap::new();
        for row in query.fetch_all(&self.pool).await? {
            let stored = SqlStore::stored_indicator(&row)?;
            found.insert(stored.record.stix_id.clone(), stored);
        }
        // An indicator deleted between the two reads is left out.
        Ok(page
            .into_iter()
            .filter_map(|(id, _, shared)| found.remove(&id).map(|stored| (stored, shared)))
            .collect())
    }

    /// The database's plan for the pivot query (for checking that it uses the index).
    pub async fn sharing_plan(&self) -> Result<String, StoreError> {
        let (explain, seqscan_off) = match self.backend {
            Backend::Sqlite => ("EXPLAIN QUERY PLAN ", false),
            Backend::Postgres => ("EXPLAIN ", true),
        };
        let mut connection = self.pool.acquire().await?;
        if seqscan_off {
            // On tiny test tables a scan is cheapest; the question is whether an index path exists.
            sqlx::query("SET enable_seqscan = off")
                .execute(&mut *connection)
                .await?;
        }
        let sql = format!("{explain}{}", self.sharing_sql());
        let rows = sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind("asn")
            .bind("9009")
            .bind("x")
            .bind(0_i64)
            .bind(101_i64)
            .bind(101_i64)
            .bind("")
            .bind(10_i64)
            .fetch_all(&mut *connection)
            .await?;
        let mut plan = Vec::new();
        for row in rows {
            let line: String = match self.backend {
                Backend::Sqlite => row.try_get("detail")?,
                Backend::Postgres => row.try_get(0)?,
            };
            plan.push(line);
        }
        if seqscan_off {
            sqlx::query("RESET enable_seqscan")
                .execute(&mut *connection)
                .await?;
        }
        Ok(plan.join("\n"))
    }

    /// Starts a transaction that reads and then writes, serialized with every other such
    /// transaction on the store (other tasks, other processes, other workers), so that a save's
    /// "is it stored already?" answer still holds when it writes.
    ///
    /// SQLite's default deferred transaction fails with "database is locked"
    /// (SQLITE_BUSY_SNAPSHOT, which no busy timeout waits out) if another connection wrote between
    /// its read and its write; `BEGIN IMMEDIATE` takes the write lock up front, waiting under the
    /// busy timeout. PostgreSQL would let two saves both find an indicator missing and both insert
    /// it (a unique violation); a transaction-scoped advisory lock makes the second wait instead.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        self.begin_write_under(SAVE_LOCK).await
    }

    /// [`SqlStore::begin_write`] under another PostgreSQL advisory lock, for writes that need not
    /// wait behind saves (SQLite has one write lock for all).
    pub(crate) async fn begin_write_under(
        &self,
        lock: i64,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(lock)
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

    /// Takes `n` stamps of the commit clock inside `tx` and returns the first; the others follow
    /// it one µs apart. Stamps are Unix µs, never behind the wall clock unless the clock row is
    /// ahead of it, and strictly increasing in commit order: the clock row stays locked until
    /// `tx` ends, so a transaction stamping after this one waits and takes later stamps. What a
    /// transaction stamps is a new version (of an indicator, of a blocklist entry) for readers
    /// that follow the clock, as TAXII's `added_after` does.
    pub(crate) async fn stamp(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        n: usize,
    ) -> Result<i64, StoreError> {
        let n = n.max(1) as i64;
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        let floor = now_us + n - 1;
        let sql = format!(
            "UPDATE commit_clock SET last_us = CASE WHEN last_us + {n} > {floor} THEN last_us + {n} ELSE {floor} END \
             WHERE id = 1 RETURNING last_us",
            n = self.placeholder(1),
            floor = self.placeholder(2)
        );
        let last: i64 = sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(n)
            .bind(floor)
            .fetch_one(&mut **tx)
            .await?
            .try_get("last_us")?;
        Ok(last - n + 1)
    }

    /// The `n`th (1-based) placeholder.
    pub(crate) fn placeholder(&self, n: usize) -> String {
        match self.backend {
            Backend::Sqlite => format!("?{n}"),
            Backend::Postgres => format!("${n}"),
        }
    }

    /// The `n`th placeholder of a statement whose placeholders each stand once and in binding
    /// order: `?` on SQLite, where numbered ones make binding quadratic in their count (SQLite
    /// looks each parameter's name up in a list), `$n` on PostgreSQL.
    pub(crate) fn in_order(&self, n: usize) -> String {
        match self.backend {
            Backend::Sqlite => "?".to_owned(),
            Backend::Postgres => format!("${n}"),
        }
    }

    /// `p1, p2, …` for `count` values from the `first`th, each once and in binding order.
    pub(crate) fn in_order_list(&self, first: usize, count: usize) -> String {
        (first..first + count)
            .map(|n| self.in_order(n))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `(p1, p2, …), (…)` for `rows` rows of `columns` values, a whole statement's placeholders.
    pub(crate) fn value_rows(&self, rows: usize, columns: usize) -> String {
        (0..rows)
            .map(|r| format!("({})", self.in_order_list(r * columns + 1, columns)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    async fn apply_migrations(&self) -> Result<Vec<u32>, StoreError> {
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)")
            .execute(&self.pool)
            .await?;
        let mut applied = Vec::new();
        for migration in MIGRATIONS {
            let mut tx = self.begin_write().await?;
            if self.backend == Backend::Postgres {
                // Two workers starting at once: the second waits, then sees the migration done.
                sqlx::query("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
            }
            let current: Option<i64> =
                sqlx::query("SELECT MAX(version) AS v FROM schema_migrations")
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("v")?;
            let current = current.unwrap_or(0);
            if current > i64::from(latest_version()) {
                return Err(StoreError::SchemaTooNew {
                    found: current,
                    known: latest_version(),
                });
            }
            if current >= i64::from(migration.version) {
                continue;
            }
            for statement in migration.statements {
                let statement = Migration::statement(statement, self.backend == Backend::Postgres);
                sqlx::query(AssertSqlSafe(statement))
                    .execute(&mut *tx)
                    .await
                    .map_err(|source| StoreError::Migration {
                        version: migration.version,
                        name: migration.name,
                        source,
                    })?;
            }
            let insert = format!(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ({}, {}, {})",
                self.placeholder(1),
                self.placeholder(2),
                self.placeholder(3)
            );
            sqlx::query(AssertSqlSafe(insert.as_str()))
                .bind(i64::from(migration.version))
                .bind(migration.name)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(
                version = migration.version,
                name = migration.name,
                backend = self.backend_name(),
                "store migrated"
            );
            applied.push(migration.version);
        }
        Ok(applied)
    }

    fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    async fn save(&self, batch: &[IndicatorRecord]) -> Result<SaveReport, StoreError> {
        let mut report = SaveReport::default();
        for chunk in batch.chunks(ROWS_PER_STATEMENT) {
            let mut tx = self.begin_write().await?;
            let select = format!(
                "SELECT stix_id, priority, severity, enrichment_status, skip_reason, tlp, tags, reasons, sources FROM indicators WHERE stix_id IN ({})",
                self.in_order_list(1, chunk.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(select.as_str()));
            for record in chunk {
                query = query.bind(record.stix_id.as_str());
            }
            let mut stored: HashMap<String, Comparable> = HashMap::new();
            for row in query.fetch_all(&mut *tx).await? {
                stored.insert(row.try_get("stix_id")?, Comparable::from_row(&row)?);
            }
            if !stored.is_empty() {
                let select = format!(
                    "SELECT stix_id, facet, value FROM facets WHERE stix_id IN ({}) ORDER BY stix_id, facet, value",
                    self.in_order_list(1, stored.len())
                );
                let mut query = sqlx::query(AssertSqlSafe(select.as_str()));
                for id in stored.keys() {
                    query = query.bind(id.as_str());
                }
                for row in query.fetch_all(&mut *tx).await? {
                    let id: String = row.try_get("stix_id")?;
                    if let Some(c) = stored.get_mut(&id) {
                        c.facets.extend(facet_of(&row)?);
                    }
                }
            }
            let mut new = Vec::new();
            let mut changed = Vec::new();
            let mut history: Vec<(&IndicatorRecord, Change)> = Vec::new();
            for record in chunk {
                let candidate = Comparable::from_record(record);
                match stored.get(&record.stix_id) {
                    None => {
                        new.push((record, candidate.clone()));
                        history.push((record, change_between(None, record)));
                    }
                    Some(existing) if *existing == candidate => report.unchanged += 1,
                    Some(existing) => {
                        let change = change_between(Some(existing), record);
                        if existing.reasons != candidate.reasons || !change.is_empty() {
                            history.push((record, change));
                        }
                        changed.push((record, candidate.clone()));
                    }
                }
                // A record repeated within one batch compares with its earlier state: the last wins.
                stored.insert(record.stix_id.clone(), candidate);
            }
            // Every new or changed indicator is a new version, stamped in commit order.
            let versions = new.len() + changed.len();
            let mut next_stamp = if versions > 0 {
                self.stamp(&mut tx, versions).await?
            } else {
                0
            };
            let mut stamp = || {
                next_stamp += 1;
                next_stamp - 1
            };
            if !new.is_empty() {
                let insert = format!(
                    "INSERT INTO indicators ({INDICATOR_COLUMNS}) VALUES {}",
                    self.value_rows(new.len(), 15)
                );
                let mut query = sqlx::query(AssertSqlSafe(insert.as_str()));
                for (record, c) in &new {
                    query = query
                        .bind(record.stix_id.as_str())
                        .bind(record.kind.as_str())
                        .bind(record.value.as_str());
                    query = bind_state(query, record, c)
                        .bind(record.observed_at)
                        .bind(record.observed_at)
                        .bind(record.observed_at)
                        .bind(stamp());
                }
                query.execute(&mut *tx).await?;
                report.inserted += new.len() as u64;
            }
            let assignments: Vec<String> = STATE_COLUMNS
                .iter()
                .chain(["observed_at", "last_changed", "version_us"].iter())
                .enumerate()
                .map(|(i, column)| format!("{column} = {}", self.placeholder(i + 1)))
                .collect();
            let update = format!(
                "UPDATE indicators SET {} WHERE stix_id = {}",
                assignments.join(", "),
                self.placeholder(assignments.len() + 1)
            );
            for (record, c) in &changed {
                bind_state(sqlx::query(AssertSqlSafe(update.as_str())), record, c)
                    .bind(record.observed_at)
                    .bind(record.observed_at)
                    .bind(stamp())
                    .bind(record.stix_id.as_str())
                    .execute(&mut *tx)
                    .await?;
                report.updated += 1;
            }
            let rewritten: Vec<&Comparable> =
                new.iter().chain(changed.iter()).map(|(_, c)| c).collect();
            let ids: Vec<&str> = new
                .iter()
                .chain(changed.iter())
                .map(|(r, _)| r.stix_id.as_str())
                .collect();
            if !changed.is_empty() {
                let delete = format!(
                    "DELETE FROM facets WHERE stix_id IN ({})",
                    self.in_order_list(1, changed.len())
                );
                let mut query = sqlx::query(AssertSqlSafe(delete.as_str()));
                for (record, _) in &changed {
                    query = query.bind(record.stix_id.as_str());
                }
                query.execute(&mut *tx).await?;
            }
            // Each facet row carries its indicator's priority, so pivots page by the index alone;
            // a changed indicator's facets are rewritten, which keeps the copy current.
            let rows: Vec<(&str, &str, &str, i64)> = ids
                .iter()
                .zip(&rewritten)
                .flat_map(|(id, c)| {
                    c.facets
                        .iter()
                        .map(move |(f, v)| (*id, f.as_str(), v.as_str(), c.priority))
                })
                .collect();
            for part in rows.chunks(ROWS_PER_STATEMENT * 2) {
                let insert = format!(
                    "INSERT INTO facets (stix_id, facet, value, priority) VALUES {} ON CONFLICT DO NOTHING",
                    self.value_rows(part.len(), 4)
                );
                let mut query = sqlx::query(AssertSqlSafe(insert.as_str()));
                for (id, facet, value, priority) in part {
                    query = query.bind(*id).bind(*facet).bind(*value).bind(*priority);
                }
                query.execute(&mut *tx).await?;
            }
            // Every record of the batch was just enriched, changed or not: the scheduled
            // refresh counts from here.
            let checked = format!(
                "UPDATE indicators SET checked_at = {} WHERE stix_id IN ({})",
                self.in_order(1),
                self.in_order_list(2, chunk.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(checked.as_str()))
                .bind(chunk.iter().map(|r| r.observed_at).max().unwrap_or(0));
            for record in chunk {
                query = query.bind(record.stix_id.as_str());
            }
            query.execute(&mut *tx).await?;
            if !history.is_empty() {
                let insert = format!(
                    "INSERT INTO score_history (stix_id, at, priority, severity, reasons, changes) VALUES {}",
                    self.value_rows(history.len(), 6)
                );
                let mut query = sqlx::query(AssertSqlSafe(insert.as_str()));
                for (record, change) in &history {
                    query = query
                        .bind(record.stix_id.as_str())
                        .bind(record.observed_at)
                        .bind(i64::from(record.priority))
                        .bind(record.severity.as_str())
                        .bind(record.reasons.to_string())
                        .bind(serde_json::to_string(change).expect("changes serialize"));
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            // Every change is in the history; a reworded reason alone is history, not a change.
            report.changes.extend(
                history
                    .into_iter()
                    .map(|(_, change)| change)
                    .filter(|change| !change.is_empty()),
            );
        }
        Ok(report)
    }

    pub(crate) fn stored_indicator(row: &AnyRow) -> Result<StoredIndicator, StoreError> {
        let json = |column: &str| -> Result<Value, StoreError> {
            let text: String = row.try_get(column)?;
            serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
        };
        let tags: Vec<String> = serde_json::from_value(json("tags")?)
            .map_err(|e| StoreError::Corrupt(format!("tags: {e}")))?;
        let priority: i64 = row.try_get("priority")?;
        Ok(StoredIndicator {
            record: IndicatorRecord {
                stix_id: row.try_get("stix_id")?,
                kind: row.try_get("kind")?,
                value: row.try_get("value")?,
                priority: u8::try_from(priority)
                    .map_err(|_| StoreError::Corrupt(format!("priority {priority}")))?,
                severity: row.try_get("severity")?,
                enrichment_status: row.try_get("enrichment_status")?,
                skip_reason: row.try_get("skip_reason")?,
                tlp: row.try_get("tlp")?,
                tags,
                reasons: json("reasons")?,
                sources: json("sources")?,
                observed_at: row.try_get("observed_at")?,
                facets: Vec::new(),
            },
            first_seen: row.try_get("first_seen")?,
            last_changed: row.try_get("last_changed")?,
            version_us: row.try_get("version_us")?,
        })
    }
}

/// Binds placeholders 1–7 of [`SqlStore::sharing_filter`].
fn bind_sharing<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    facet: Facet,
    value: &'q str,
    exclude_stix_id: &'q str,
    min_priority: u8,
    after: Option<&'q PivotCursor>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let cursor_priority = after.map_or(101, |c| i64::from(c.priority));
    query
        .bind(facet.as_str())
        .bind(value)
        .bind(exclude_stix_id)
        .bind(i64::from(min_priority))
        .bind(cursor_priority)
        .bind(cursor_priority)
        .bind(after.map_or("", |c| c.stix_id.as_str()))
}

/// The columns of an indicator's state, in the order [`bind_state`] binds them.
const STATE_COLUMNS: [&str; 8] = [
    "priority",
    "severity",
    "enrichment_status",
    "skip_reason",
    "tlp",
    "tags",
    "reasons",
    "sources",
];

/// Binds an indicator's state, in [`STATE_COLUMNS`] order (inserts and updates alike).
fn bind_state<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    record: &'q IndicatorRecord,
    state: &'q Comparable,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(i64::from(record.priority))
        .bind(record.severity.as_str())
        .bind(record.enrichment_status.as_str())
        .bind(record.skip_reason.as_deref())
        .bind(record.tlp.as_deref())
        .bind(state.tags.as_str())
        .bind(state.reasons.as_str())
        .bind(state.sources.as_str())
}

/// The parts of a stored indicator that decide whether a save changes it (not its timestamps).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Comparable {
    priority: i64,
    severity: String,
    enrichment_status: String,
    skip_reason: Option<String>,
    tlp: Option<String>,
    tags: String,
    reasons: String,
    sources: String,
    facets: Vec<(Facet, String)>,
}

impl Comparable {
    fn from_record(record: &IndicatorRecord) -> Comparable {
        Comparable {
            priority: i64::from(record.priority),
            severity: record.severity.clone(),
            enrichment_status: record.enrichment_status.clone(),
            skip_reason: record.skip_reason.clone(),
            tlp: record.tlp.clone(),
            tags: serde_json::to_string(&record.tags).expect("strings serialize"),
            reasons: record.reasons.to_string(),
            sources: record.sources.to_string(),
            facets: sorted_facets(&record.facets),
        }
    }

    fn from_row(row: &AnyRow) -> Result<Comparable, StoreError> {
        Ok(Comparable {
            priority: row.try_get("priority")?,
            severity: row.try_get("severity")?,
            enrichment_status: row.try_get("enrichment_status")?,
            skip_reason: row.try_get("skip_reason")?,
            tlp: row.try_get("tlp")?,
            tags: row.try_get("tags")?,
            reasons: row.try_get("reasons")?,
            sources: row.try_get("sources")?,
            facets: Vec::new(),
        })
    }
}

/// What moved from `before` (the stored state, `None` for a new indicator) to `record`.
fn change_between(before: Option<&Comparable>, record: &IndicatorRecord) -> Change {
    match before {
        None => Change::diff(None, std::iter::empty(), &[], record),
        Some(b) => {
            let tags: Vec<String> = serde_json::from_str(&b.tags).unwrap_or_default();
            Change::diff(
                Some(u8::try_from(b.priority).unwrap_or(u8::MAX)),
                tags.iter().map(String::as_str),
                &b.facets,
                record,
            )
        }
    }
}

/// A stored facet row. A word this version does not know (written by a newer one) is left out:
/// facets are derived from the stored answers and rewritten on the next save.
fn facet_of(row: &AnyRow) -> Result<Option<(Facet, String)>, sqlx::Error> {
    let word: String = row.try_get("facet")?;
    let Ok(facet) = word.parse::<Facet>() else {
        return Ok(None);
    };
    Ok(Some((facet, row.try_get("value")?)))
}

fn sorted_facets(facets: &[(Facet, String)]) -> Vec<(Facet, String)> {
    let mut sorted = facets.to_vec();
    sorted.sort();
    sorted.dedup();
    sorted
}

/// Query parameters of a connection URL whose values are secrets (PostgreSQL takes
/// `?password=` and `?sslpassword=` as well as a password in the user information).
const SECRET_PARAMETERS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "pass",
    "sslpassword",
    "secret",
    "token",
];

/// A connection URL without its password, for messages: the password in the user information
/// and the values of secret query parameters are shown as `***`.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let masked: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _))
                        if SECRET_PARAMETERS.contains(&name.to_ascii_lowercase().as_str()) =>
                    {
                        format!("{name}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", masked.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{}{authority}{tail}", &url[..scheme_end])
}

impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        self.backend_name()
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        })
    }

    fn migrate(&self) -> StoreFuture<'_, Vec<u32>> {
        Box::pin(self.apply_migrations())
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if self.pool.is_closed() {
                return Ok(());
            }
            if self.backend == Backend::Sqlite {
                // TRUNCATE waits for readers and leaves an empty log; closing the last connection
                // then removes it.
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&self.pool)
                    .await?;
            }
            self.pool.close().await;
            Ok(())
        })
    }

    fn backup<'a>(&'a self, path: &'a std::path::Path) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if self.backend != Backend::Sqlite {
                return Err(StoreError::Invalid(
                    "a PostgreSQL store is backed up with pg_dump (for example `pg_dump -Fc -f scry.dump URL`), \
                     which copies it consistently while scry runs"
                        .into(),
                ));
            }
            if path.exists() {
                return Err(StoreError::Conflict(format!(
                    "{} exists already; a backup never overwrites a file",
                    path.display()
                )));
            }
            let target = path.to_str().ok_or_else(|| {
                StoreError::Invalid(format!("{} is not a UTF-8 path", path.display()))
            })?;
            sqlx::query("VACUUM INTO ?")
                .bind(target)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn previous_states<'a>(
        &'a self,
        stix_ids: &'a [&'a str],
        with_facets: bool,
    ) -> StoreFuture<'a, Vec<(StoredIndicator, i64)>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(stix_ids.len());
            for chunk in stix_ids.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "SELECT {INDICATOR_COLUMNS}, checked_at FROM indicators WHERE stix_id IN ({})",
                    self.in_order_list(1, chunk.len())
                );
                let mut query = sqlx::query(AssertSqlSafe(sql.as_str()));
                for id in chunk {
                    query = query.bind(*id);
                }
                let first = out.len();
                for row in query.fetch_all(&self.pool).await? {
                    out.push((
                        SqlStore::stored_indicator(&row)?,
                        row.try_get::<i64, _>("checked_at")?,
                    ));
                }
                if out.len() == first || !with_facets {
                    continue;
                }
                let facets = format!(
                    "SELECT stix_id, facet, value FROM facets WHERE stix_id IN ({}) ORDER BY stix_id, facet, value",
                    self.in_order_list(1, out.len() - first)
                );
                let mut query = sqlx::query(AssertSqlSafe(facets.as_str()));
                for (stored, _) in &out[first..] {
                    query = query.bind(stored.record.stix_id.as_str());
                }
                let rows = query.fetch_all(&self.pool).await?;
                let at: HashMap<String, usize> = out[first..]
                    .iter()
                    .enumerate()
                    .map(|(i, (stored, _))| (stored.record.stix_id.clone(), first + i))
                    .collect();
                for row in rows {
                    let id: String = row.try_get("stix_id")?;
                    if let Some(&i) = at.get(&id) {
                        out[i].0.record.facets.extend(facet_of(&row)?);
                    }
                }
            }
            Ok(out)
        })
    }

    fn save_indicators<'a>(&'a self, batch: &'a [IndicatorRecord]) -> StoreFuture<'a, SaveReport> {
        Box::pin(self.save(batch))
    }

    fn indicator<'a>(
        &'a self,
        kind: &'a str,
        value: &'a str,
    ) -> StoreFuture<'a, Option<StoredIndicator>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT {INDICATOR_COLUMNS} FROM indicators WHERE kind = {} AND value = {}",
                self.placeholder(1),
                self.placeholder(2)
            );
            let row = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(kind)
                .bind(value)
                .fetch_optional(&self.pool)
                .await?;
            let Some(mut stored) = row.as_ref().map(SqlStore::stored_indicator).transpose()? else {
                return Ok(None);
            };
            let facets = format!(
                "SELECT facet, value FROM facets WHERE stix_id = {} ORDER BY facet, value",
                self.placeholder(1)
            );
            for row in sqlx::query(AssertSqlSafe(facets.as_str()))
                .bind(stored.record.stix_id.as_str())
                .fetch_all(&self.pool)
                .await?
            {
                stored.record.facets.extend(facet_of(&row)?);
            }
            Ok(Some(stored))
        })
    }

    fn score_history<'a>(&'a self, stix_id: &'a str) -> StoreFuture<'a, Vec<ScorePoint>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT at, priority, severity, reasons, changes FROM score_history WHERE stix_id = {} ORDER BY at, id",
                self.placeholder(1)
            );
            let rows = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(stix_id)
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(|row| {
                    let reasons: String = row.try_get("reasons")?;
                    let priority: i64 = row.try_get("priority")?;
                    Ok(ScorePoint {
                        at: row.try_get("at")?,
                        priority: u8::try_from(priority)
                            .map_err(|_| StoreError::Corrupt(format!("priority {priority}")))?,
                        severity: row.try_get("severity")?,
                        reasons: serde_json::from_str(&reasons)
                            .map_err(|e| StoreError::Corrupt(format!("reasons: {e}")))?,
                        change: row
                            .try_get::<Option<String>, _>("changes")?
                            .map(|text| serde_json::from_str(&text))
                            .transpose()
                            .map_err(|e| StoreError::Corrupt(format!("changes: {e}")))?,
                    })
                })
                .collect()
        })
    }

    fn top_indicators(
        &self,
        min_priority: u8,
        limit: u32,
    ) -> StoreFuture<'_, Vec<StoredIndicator>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT {INDICATOR_COLUMNS} FROM indicators WHERE priority >= {} ORDER BY priority DESC, id LIMIT {}",
                self.placeholder(1),
                self.placeholder(2)
            );
            let rows = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(i64::from(min_priority))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(SqlStore::stored_indicator).collect()
        })
    }

    fn export_page(
        &self,
        min_priority: u8,
        changed_since: i64,
        after: i64,
        limit: u32,
    ) -> StoreFuture<'_, Vec<(i64, StoredIndicator)>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT id, {INDICATOR_COLUMNS} FROM indicators WHERE id > {} AND priority >= {} AND last_changed >= {} ORDER BY id LIMIT {}",
                self.placeholder(1),
                self.placeholder(2),
                self.placeholder(3),
                self.placeholder(4)
            );
            let rows = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(after)
                .bind(i64::from(min_priority))
                .bind(changed_since)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.try_get::<i64, _>("id")?,
                        SqlStore::stored_indicator(row)?,
                    ))
                })
                .collect()
        })
    }

    fn stale_indicators(&self, before: i64, limit: u32) -> StoreFuture<'_, Vec<StaleIndicator>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT stix_id, kind, value, tlp, checked_at FROM indicators WHERE checked_at < {} ORDER BY checked_at, id LIMIT {}",
                self.placeholder(1),
                self.placeholder(2)
            );
            sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|row| {
                    Ok(StaleIndicator {
                        stix_id: row.try_get("stix_id")?,
                        kind: row.try_get("kind")?,
                        value: row.try_get("value")?,
                        tlp: row.try_get("tlp")?,
                        checked_at: row.try_get("checked_at")?,
                    })
                })
                .collect()
        })
    }

    fn count_indicators(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM indicators")
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?;
            Ok(n as u64)
        })
    }

    fn count_at_priority(
        &self,
        min_priority: u8,
        first_seen_since: Option<i64>,
    ) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let sql = format!(
                "SELECT COUNT(*) AS n FROM indicators WHERE priority >= {} AND first_seen >= {}",
                self.placeholder(1),
                self.placeholder(2)
            );
            let n: i64 = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(i64::from(min_priority))
                .bind(first_seen_since.unwrap_or(i64::MIN))
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?;
            Ok(n as u64)
        })
    }

    fn count_sharing<'a>(
        &'a self,
        facet: Facet,
        value: &'a str,
        exclude_stix_id: &'a str,
        cap: u64,
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let [f, v, x, limit] = [1, 2, 3, 4].map(|n| self.placeholder(n));
            let sql = format!(
                "SELECT COUNT(*) AS n FROM (SELECT 1 FROM facets WHERE facet = {f} AND value = {v} AND stix_id <> {x} LIMIT {limit}) capped"
            );
            let n: i64 = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(facet.as_str())
                .bind(value)
                .bind(exclude_stix_id)
                .bind(i64::try_from(cap).unwrap_or(i64::MAX))
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?;
            Ok(n as u64)
        })
    }

    fn sharing<'a>(
        &'a self,
        facet: Facet,
        values: &'a [String],
        exclude_stix_id: &'a str,
        min_priority: u8,
        after: Option<&'a PivotCursor>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<(StoredIndicator, String)>> {
        Box::pin(async move {
            let [value] = values else {
                return self
                    .sharing_several(facet, values, exclude_stix_id, min_priority, after, limit)
                    .await;
            };
            let sql = self.sharing_sql();
            let query = sqlx::query(AssertSqlSafe(sql.as_str()));
            let rows = bind_sharing(query, facet, value, exclude_stix_id, min_priority, after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(|row| Ok((SqlStore::stored_indicator(row)?, row.try_get("shared")?)))
                .collect()
        })
    }

    fn save_answers<'a>(&'a self, answers: &'a [VendorAnswer]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            for chunk in answers.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "INSERT INTO vendor_answers (source, key_fingerprint, call, indicator, parameters, fetched_at, expires_at, body) VALUES {}",
                    self.value_rows(chunk.len(), 8)
                );
                let mut query = sqlx::query(AssertSqlSafe(sql.as_str()));
                for answer in chunk {
                    let k = &answer.key;
                    query = query
                        .bind(k.source.as_str())
                        .bind(k.key_fingerprint.as_str())
                        .bind(k.call.as_str())
                        .bind(k.indicator.as_str())
                        .bind(k.parameters.as_str())
                        .bind(answer.fetched_at)
                        .bind(answer.expires_at)
                        .bind(answer.body.to_string());
                }
                query.execute(&self.pool).await?;
            }
            Ok(())
        })
    }

    fn enqueue_jobs<'a>(&'a self, jobs: &'a [NewJob]) -> StoreFuture<'a, u64> {
        Box::pin(self.insert_jobs(jobs))
    }

    fn claim_jobs<'a>(
        &'a self,
        owner: &'a str,
        kinds: &'a [&'a str],
        now: i64,
        lease_ms: i64,
        limit: u32,
    ) -> StoreFuture<'a, Vec<Job>> {
        Box::pin(self.lease_jobs(owner, kinds, now, lease_ms, limit))
    }

    fn renew_leases<'a>(
        &'a self,
        owner: &'a str,
        ids: &'a [i64],
        until: i64,
    ) -> StoreFuture<'a, u64> {
        Box::pin(self.renew_leases(owner, ids, until))
    }

    fn call_counts(&self, since: i64) -> StoreFuture<'_, Vec<CallCount>> {
        Box::pin(self.count_calls(since))
    }

    fn call_durations<'a>(
        &'a self,
        source: &'a str,
        outcome: &'a str,
        since: i64,
        limit: u32,
    ) -> StoreFuture<'a, Vec<i64>> {
        Box::pin(self.durations("call", source, Some(outcome), since, limit))
    }

    fn attempt_counts(&self, since: i64) -> StoreFuture<'_, Vec<AttemptCount>> {
        Box::pin(self.count_attempts(since))
    }

    fn attempt_latencies<'a>(
        &'a self,
        source: &'a str,
        since: i64,
        limit: u32,
    ) -> StoreFuture<'a, Vec<i64>> {
        Box::pin(self.durations("attempt", source, None, since, limit))
    }

    fn attempt_latency_histograms<'a>(
        &'a self,
        bounds_ms: &'a [u64],
    ) -> StoreFuture<'a, Vec<LatencyHistogram>> {
        Box::pin(self.latency_histograms(bounds_ms))
    }

    fn finish_job<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        outcome: &'a JobOutcome,
        now: i64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.end_attempt(id, owner, outcome, now))
    }

    fn queue_depth(&self, now: i64) -> StoreFuture<'_, QueueDepth> {
        Box::pin(self.count_jobs(now))
    }

    fn record_events<'a>(&'a self, events: &'a [Event]) -> StoreFuture<'a, ()> {
        Box::pin(self.insert_events(events))
    }

    fn events<'a>(&'a self, filter: &'a EventFilter) -> StoreFuture<'a, Vec<Event>> {
        Box::pin(self.select_events(filter))
    }

    fn workflow<'a>(&'a self, stix_id: &'a str) -> StoreFuture<'a, Option<Workflow>> {
        Box::pin(self.select_workflow(stix_id))
    }

    fn workflows<'a>(&'a self, stix_ids: &'a [String]) -> StoreFuture<'a, Vec<Workflow>> {
        Box::pin(self.select_workflows(stix_ids))
    }

    fn save_workflow<'a>(&'a self, workflow: &'a Workflow) -> StoreFuture<'a, ()> {
        Box::pin(self.upsert_workflow(workflow))
    }

    fn blocklist_changes<'a>(
        &'a self,
        list: &'a str,
        after_us: i64,
        limit: u32,
    ) -> StoreFuture<'a, Vec<BlockEntry>> {
        Box::pin(self.select_blocklist_changes(list, after_us, limit))
    }

    fn block<'a>(&'a self, entry: &'a BlockEntry) -> StoreFuture<'a, ()> {
        Box::pin(self.upsert_block(entry))
    }

    fn unblock<'a>(&'a self, list: &'a str, value: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(self.delete_block(list, value))
    }

    fn blocklist<'a>(&'a self, list: &'a str, now: i64) -> StoreFuture<'a, Vec<BlockEntry>> {
        Box::pin(self.select_blocklist(list, now))
    }

    fn blocked_on<'a>(&'a self, value: &'a str, now: i64) -> StoreFuture<'a, Vec<String>> {
        Box::pin(self.select_lists_of(value, now))
    }

    fn expire_blocks(&self, now: i64) -> StoreFuture<'_, Vec<BlockEntry>> {
        Box::pin(self.delete_expired_blocks(now))
    }

    fn search_indicators<'a>(
        &'a self,
        query: &'a IndicatorQuery,
    ) -> StoreFuture<'a, IndicatorPage> {
        Box::pin(self.search(query))
    }

    fn indicator_by_id<'a>(&'a self, stix_id: &'a str) -> StoreFuture<'a, Option<StoredIndicator>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT kind, value FROM indicators WHERE stix_id = {}",
                self.placeholder(1)
            );
            let Some(row) = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(stix_id)
                .fetch_optional(&self.pool)
                .await?
            else {
                return Ok(None);
            };
            let (kind, value): (String, String) = (row.try_get("kind")?, row.try_get("value")?);
            self.indicator(&kind, &value).await
        })
    }

    fn create_token<'a>(
        &'a self,
        name: &'a str,
        role: &'a str,
        secret_hash: &'a str,
        created_at: i64,
        expires_at: Option<i64>,
    ) -> StoreFuture<'a, Account> {
        Box::pin(self.insert_account(crate::access::NewAccount {
            name,
            kind: "token",
            role,
            secret_hash: Some(secret_hash),
            password_hash: None,
            created_at,
            expires_at,
        }))
    }

    fn create_user<'a>(
        &'a self,
        name: &'a str,
        role: &'a str,
        password_hash: &'a str,
        created_at: i64,
    ) -> StoreFuture<'a, Account> {
        Box::pin(self.insert_account(crate::access::NewAccount {
            name,
            kind: "user",
            role,
            secret_hash: None,
            password_hash: Some(password_hash),
            created_at,
            expires_at: None,
        }))
    }

    fn user<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<(Account, String)>> {
        Box::pin(self.select_user(name))
    }

    fn token_by_hash<'a>(&'a self, secret_hash: &'a str) -> StoreFuture<'a, Option<Account>> {
        Box::pin(self.select_token_by_hash(secret_hash))
    }

    fn accounts(&self) -> StoreFuture<'_, Vec<Account>> {
        Box::pin(self.select_accounts())
    }

    fn revoke_account<'a>(&'a self, name: &'a str, at: i64) -> StoreFuture<'a, bool> {
        Box::pin(self.mark_account_revoked(name, at))
    }

    fn touch_account(&self, id: i64, at: i64) -> StoreFuture<'_, ()> {
        Box::pin(self.mark_account_used(id, at))
    }

    fn create_session<'a>(
        &'a self,
        secret_hash: &'a str,
        account_id: i64,
        csrf: &'a str,
        now: i64,
        expires_at: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.insert_session(secret_hash, account_id, csrf, now, expires_at))
    }

    fn session<'a>(&'a self, secret_hash: &'a str, now: i64) -> StoreFuture<'a, Option<Session>> {
        Box::pin(self.select_session(secret_hash, now))
    }

    fn end_session<'a>(&'a self, secret_hash: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(self.delete_session(secret_hash))
    }

    fn overview(&self, since: i64, top: u32) -> StoreFuture<'_, Overview> {
        Box::pin(self.read_overview(since, top))
    }

    fn top_facet_values<'a>(
        &'a self,
        facet: Facet,
        min_priority: u8,
        limit: u32,
    ) -> StoreFuture<'a, Vec<(String, u64)>> {
        Box::pin(self.read_top_facet_values(facet, min_priority, limit))
    }

    fn take_rate_slot<'a>(
        &'a self,
        scope: &'a str,
        max: u32,
        window_ms: i64,
    ) -> StoreFuture<'a, Option<i64>> {
        Box::pin(SqlStore::take_rate_slot(self, scope, max, window_ms))
    }

    fn latest_answer<'a>(&'a self, key: &'a AnswerKey) -> StoreFuture<'a, Option<VendorAnswer>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT fetched_at, expires_at, body FROM vendor_answers WHERE source = {} AND key_fingerprint = {} AND call = {} AND indicator = {} AND parameters = {} ORDER BY fetched_at DESC, id DESC LIMIT 1",
                self.placeholder(1),
                self.placeholder(2),
                self.placeholder(3),
                self.placeholder(4),
                self.placeholder(5)
            );
            let row = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(key.source.as_str())
                .bind(key.key_fingerprint.as_str())
                .bind(key.call.as_str())
                .bind(key.indicator.as_str())
                .bind(key.parameters.as_str())
                .fetch_optional(&self.pool)
                .await?;
            row.map(|row| {
                let body: String = row.try_get("body")?;
                Ok(VendorAnswer {
                    key: key.clone(),
                    fetched_at: row.try_get("fetched_at")?,
                    expires_at: row.try_get("expires_at")?,
                    body: serde_json::from_str(&body)
                        .map_err(|e| StoreError::Corrupt(format!("answer body: {e}")))?,
                })
            })
            .transpose()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://scry:s3cret@db.internal:5432/scry"),
            "postgres://scry:***@db.internal:5432/scry"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(
            redact("sqlite:///var/lib/scry.db"),
            "sqlite:///var/lib/scry.db"
        );
        assert_eq!(
            redact("postgres://scry@db:5432/scry?sslmode=require&Password=s3cret&sslpassword=k"),
            "postgres://scry@db:5432/scry?sslmode=require&Password=***&sslpassword=***"
        );
        // An `@` after the host is not user information.
        assert_eq!(
            redact("postgres://scry:pw@db/scry?options=a@b"),
            "postgres://scry:***@db/scry?options=a@b"
        );
    }
}
