//! The dashboard's aggregates: indicators per severity, the most shared ASNs, countries, CVEs and
//! tags (the facet values also among high-priority indicators only), indicators first seen per day and source calls per day. Facet and day counts read index
//! ranges; severities and tags read the indicators table once.

use std::collections::HashMap;

use scry_core::Facet;
use sqlx::{AssertSqlSafe, Row};

use crate::StoreError;
use crate::model::Overview;
use crate::sql::SqlStore;

const DAY_MS: i64 = 86_400_000;

impl SqlStore {
    pub(crate) async fn read_overview(&self, since: i64, top: u32) -> Result<Overview, StoreError> {
        let mut overview = Overview::default();
        for row in sqlx::query(
            "SELECT severity, COUNT(*) AS n FROM indicators GROUP BY severity ORDER BY n DESC",
        )
        .fetch_all(&self.pool)
        .await?
        {
            let n = row.try_get::<i64, _>("n")? as u64;
            overview.indicators += n;
            overview.by_severity.push((row.try_get("severity")?, n));
        }
        for facet in [Facet::Asn, Facet::Country, Facet::Cve] {
            for (value, n) in self.read_top_facet_values(facet, 0, top).await? {
                overview.top.push((facet.as_str().to_owned(), value, n));
            }
        }
        let mut tags: HashMap<String, u64> = HashMap::new();
        for row in sqlx::query("SELECT tags FROM indicators WHERE tags <> '[]'")
            .fetch_all(&self.pool)
            .await?
        {
            let text: String = row.try_get("tags")?;
            let list: Vec<String> = serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("tags: {e}")))?;
            for tag in list {
                *tags.entry(tag).or_default() += 1;
            }
        }
        let mut tags: Vec<(String, u64)> = tags.into_iter().collect();
        tags.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        overview.top.extend(
            tags.into_iter()
                .take(top as usize)
                .map(|(tag, n)| ("tag".to_owned(), tag, n)),
        );
        let sql = format!(
            "SELECT first_seen / {DAY_MS} AS day, COUNT(*) AS n FROM indicators WHERE first_seen >= {} GROUP BY first_seen / {DAY_MS} ORDER BY day",
            self.placeholder(1)
        );
        for row in sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(since)
            .fetch_all(&self.pool)
            .await?
        {
            overview
                .new_per_day
                .push((row.try_get("day")?, row.try_get::<i64, _>("n")? as u64));
        }
        let sql = format!(
            "SELECT at / {DAY_MS} AS day, origin, outcome, COUNT(*) AS n FROM events WHERE at >= {} AND kind = 'call' \
             GROUP BY at / {DAY_MS}, origin, outcome ORDER BY day, origin, outcome",
            self.placeholder(1)
        );
        for row in sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(since)
            .fetch_all(&self.pool)
            .await?
        {
            let origin: String = row.try_get("origin")?;
            overview.calls_per_day.push((
                row.try_get("day")?,
                origin.strip_prefix("source:").unwrap_or(&origin).to_owned(),
                row.try_get("outcome")?,
                row.try_get::<i64, _>("n")? as u64,
            ));
        }
        Ok(overview)
    }

    /// The `limit` values of `facet` shared by the most indicators of at least `min_priority`,
    /// most first (ties by value): one read of the facet's index range.
    pub(crate) async fn read_top_facet_values(
        &self,
        facet: Facet,
        min_priority: u8,
        limit: u32,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let [f, min, limit_at] = [1, 2, 3].map(|n| self.placeholder(n));
        let sql = format!(
            "SELECT value, COUNT(*) AS n FROM facets WHERE facet = {f} AND priority >= {min} \
             GROUP BY value ORDER BY n DESC, value LIMIT {limit_at}"
        );
        let mut top = Vec::new();
        for row in sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(facet.as_str())
            .bind(i64::from(min_priority))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
        {
            top.push((row.try_get("value")?, row.try_get::<i64, _>("n")? as u64));
        }
        Ok(top)
    }
}
