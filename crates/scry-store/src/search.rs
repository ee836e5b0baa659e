//! The indicator list behind the workbench queue and the REST API: filters, orderings and keyset
//! pages. Every ordering is an index (`priority`, `last_changed`, `first_seen`, `value`, each with
//! the storage id), and a page starts after the previous page's last row, so page 1,000 costs what
//! page 1 does.

use sqlx::{AssertSqlSafe, Row};

use crate::StoreError;
use crate::model::{
    IndicatorCursor, IndicatorOrder, IndicatorPage, IndicatorQuery, ListedIndicator,
};
use crate::sql::{INDICATOR_COLUMNS, SqlStore};

/// Most rows one page may hold.
pub const MAX_PAGE: u32 = 1_000;

enum Bound {
    Int(i64),
    Text(String),
}

/// `%"text"%` for a JSON document holding `text` as a string, with LIKE's wildcards escaped.
fn json_string_pattern(text: &str) -> String {
    let quoted = serde_json::to_string(text).expect("strings serialize");
    format!("%{}%", like_escaped(&quoted))
}

fn like_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl SqlStore {
    pub(crate) async fn search(&self, query: &IndicatorQuery) -> Result<IndicatorPage, StoreError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        let mut conditions: Vec<String> = Vec::new();
        let mut binds: Vec<Bound> = Vec::new();
        // Each condition's placeholders are numbered on from those bound before it, each used once.
        let add = |sql: &dyn Fn(&dyn Fn() -> String) -> String,
                   values: Vec<Bound>,
                   conditions: &mut Vec<String>,
                   binds: &mut Vec<Bound>| {
            let first = binds.len();
            let counter = std::cell::Cell::new(first);
            let placeholder = || {
                counter.set(counter.get() + 1);
                self.in_order(counter.get())
            };
            conditions.push(sql(&placeholder));
            binds.extend(values);
        };
        // Only a real bound: a condition on priority would draw the planner to the priority index
        // and a sort of every row, whatever the order asked for.
        if query.min_priority > 0 || query.max_priority < 100 {
            add(
                &|p| format!("i.priority >= {} AND i.priority <= {}", p(), p()),
                vec![
                    Bound::Int(i64::from(query.min_priority)),
                    Bound::Int(i64::from(query.max_priority)),
                ],
                &mut conditions,
                &mut binds,
            );
        }
        for (column, values) in [("i.kind", &query.kinds), ("i.severity", &query.severities)] {
            if !values.is_empty() {
                let values_bound = values.iter().map(|v| Bound::Text(v.clone())).collect();
                let count = values.len();
                add(
                    &|p| {
                        let list: Vec<String> = (0..count).map(|_| p()).collect();
                        format!("{column} IN ({})", list.join(", "))
                    },
                    values_bound,
                    &mut conditions,
                    &mut binds,
                );
            }
        }
        if let Some(status) = &query.status {
            add(
                &|p| format!("COALESCE(w.status, 'new') = {}", p()),
                vec![Bound::Text(status.clone())],
                &mut conditions,
                &mut binds,
            );
        }
        if let Some(enrichment) = &query.enrichment {
            add(
                &|p| format!("i.enrichment_status = {}", p()),
                vec![Bound::Text(enrichment.clone())],
                &mut conditions,
                &mut binds,
            );
        }
        if let Some(since) = query.changed_since {
            add(
                &|p| format!("i.last_changed >= {}", p()),
                vec![Bound::Int(since)],
                &mut conditions,
                &mut binds,
            );
        }
        if let Some(before) = query.changed_before {
            add(
                &|p| format!("i.last_changed < {}", p()),
                vec![Bound::Int(before)],
                &mut conditions,
                &mut binds,
            );
        }
        if let Some(after) = query.version_after {
            add(
                &|p| format!("i.version_us > {}", p()),
                vec![Bound::Int(after)],
                &mut conditions,
                &mut binds,
            );
        }
        if let Some(text) = query.text.as_deref().filter(|t| !t.is_empty()) {
            add(
                &|p| format!("LOWER(i.value) LIKE {} ESCAPE '\\'", p()),
                vec![Bound::Text(format!(
                    "%{}%",
                    like_escaped(&text.to_lowercase())
                ))],
                &mut conditions,
                &mut binds,
            );
        }
        if let Some(tag) = &query.tag {
            let pattern = json_string_pattern(tag);
            add(
                &|p| {
                    format!(
                        "(i.tags LIKE {} ESCAPE '\\' OR w.labels LIKE {} ESCAPE '\\')",
                        p(),
                        p()
                    )
                },
                vec![Bound::Text(pattern.clone()), Bound::Text(pattern)],
                &mut conditions,
                &mut binds,
            );
        }
        if let Some(source) = &query.source {
            add(
                &|p| format!("i.sources LIKE {} ESCAPE '\\'", p()),
                vec![Bound::Text(json_string_pattern(source))],
                &mut conditions,
                &mut binds,
            );
        }
        let column = format!("i.{}", query.order.column());
        let (comparison, direction) = if query.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        if let Some(after) = &query.after {
            if after.order != query.order || after.descending != query.descending {
                return Err(StoreError::Invalid(format!(
                    "the cursor {after} is for another order than {}{}",
                    if query.descending { "-" } else { "" },
                    query.order.name()
                )));
            }
            let key = || match query.order {
                IndicatorOrder::Value => Bound::Text(after.key.clone()),
                _ => Bound::Int(after.key.parse().unwrap_or(0)),
            };
            add(
                &|p| {
                    format!(
                        "({column} {comparison} {} OR ({column} = {} AND i.id {comparison} {}))",
                        p(),
                        p(),
                        p()
                    )
                },
                vec![key(), key(), Bound::Int(after.id)],
                &mut conditions,
                &mut binds,
            );
        }
        let columns: Vec<String> = INDICATOR_COLUMNS
            .split(", ")
            .map(|c| format!("i.{c}"))
            .collect();
        let sql = format!(
            "SELECT i.id, {}, w.status AS workflow_status, w.labels AS workflow_labels \
             FROM indicators i LEFT JOIN workflow w ON w.stix_id = i.stix_id \
             WHERE {} ORDER BY {column} {direction}, i.id {direction} LIMIT {limit}",
            columns.join(", "),
            if conditions.is_empty() {
                "1 = 1".to_owned()
            } else {
                conditions.join(" AND ")
            }
        );
        let mut statement = sqlx::query(AssertSqlSafe(sql.as_str()));
        for bound in binds {
            statement = match bound {
                Bound::Int(n) => statement.bind(n),
                Bound::Text(t) => statement.bind(t),
            };
        }
        let rows = statement.fetch_all(&self.pool).await?;
        let mut page = IndicatorPage {
            rows: Vec::with_capacity(rows.len()),
            next: None,
        };
        for row in &rows {
            let stored = SqlStore::stored_indicator(row)?;
            let cursor = IndicatorCursor {
                order: query.order,
                descending: query.descending,
                key: match query.order {
                    IndicatorOrder::Priority => stored.record.priority.to_string(),
                    IndicatorOrder::LastChanged => stored.last_changed.to_string(),
                    IndicatorOrder::FirstSeen => stored.first_seen.to_string(),
                    IndicatorOrder::Value => stored.record.value.clone(),
                    IndicatorOrder::Version => stored.version_us.to_string(),
                },
                id: row.try_get("id")?,
            };
            if rows.len() == limit as usize {
                page.next = Some(cursor.clone());
            }
            let labels: Vec<String> = match row.try_get::<Option<String>, _>("workflow_labels")? {
                Some(text) => serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(format!("labels: {e}")))?,
                None => Vec::new(),
            };
            // The LIKE filters above narrow the rows read; these checks make them exact.
            if let Some(tag) = &query.tag
                && !stored.record.tags.contains(tag)
                && !labels.contains(tag)
            {
                continue;
            }
            if let Some(source) = &query.source
                && stored.record.sources.get(source).is_none()
            {
                continue;
            }
            page.rows.push(ListedIndicator {
                status: row
                    .try_get::<Option<String>, _>("workflow_status")?
                    .unwrap_or_else(|| "new".to_owned()),
                labels,
                stored,
                cursor,
            });
        }
        Ok(page)
    }
}
