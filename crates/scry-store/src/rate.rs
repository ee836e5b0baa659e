//! The rate ledger: the vendor calls of the current window, kept in the store so that every
//! process using it — several `scry worker`s on one PostgreSQL server, or a worker beside
//! `scry serve` on one SQLite file — keeps under one rate limit together (DESIGN.md invariant 2).
//!
//! A place is taken in one short write transaction: calls that left the window are dropped, the
//! rest are counted, and one more is written when there is room. Time is the database's clock,
//! so workers on machines whose clocks differ still share one window. On PostgreSQL the
//! transaction holds an advisory lock of its own, not the one saves take, so a call never waits
//! behind a large save.

use sqlx::{AssertSqlSafe, Row};

use crate::StoreError;
use crate::sql::{Backend, SqlStore};

/// The PostgreSQL advisory lock that serializes rate ledger transactions.
const RATE_LOCK: i64 = 7_365_637_280;

impl SqlStore {
    pub(crate) async fn take_rate_slot(
        &self,
        scope: &str,
        max: u32,
        window_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let clock = match self.backend {
            Backend::Sqlite => {
                "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS BIGINT) AS now"
            }
            Backend::Postgres => {
                "SELECT CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT) AS now"
            }
        };
        let mut tx = self.begin_write_under(RATE_LOCK).await?;
        let now: i64 = sqlx::query(clock)
            .fetch_one(&mut *tx)
            .await?
            .try_get("now")?;
        let (p1, p2) = (self.placeholder(1), self.placeholder(2));
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM rate_ledger WHERE scope = {p1} AND at <= {p2}"
        )))
        .bind(scope)
        .bind(now - window_ms)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT COUNT(*) AS calls, MIN(at) AS oldest FROM rate_ledger WHERE scope = {p1}"
        )))
        .bind(scope)
        .fetch_one(&mut *tx)
        .await?;
        let calls: i64 = row.try_get("calls")?;
        let wait = if calls < i64::from(max) {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO rate_ledger (scope, at) VALUES ({p1}, {p2})"
            )))
            .bind(scope)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            None
        } else {
            let oldest: Option<i64> = row.try_get("oldest")?;
            Some((oldest.unwrap_or(now) + window_ms - now).max(1))
        };
        tx.commit().await?;
        Ok(wait)
    }
}
