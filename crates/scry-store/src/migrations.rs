//! Embedded, versioned schema migrations, applied in order and recorded in `schema_migrations`.
//!
//! One text serves both databases; SQLite reads `BIGINT` columns as integers.
//! Migrations are only ever appended; a store whose schema is newer than this binary's is refused.

/// A migration: version, name, and its statements. The one dialect difference in them, the
/// auto-increment key, is written `{id}` and filled in per database by [`Migration::statement`].
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub statements: &'static [&'static str],
}

impl Migration {
    /// A statement as SQLite (`postgres == false`) or PostgreSQL runs it.
    pub fn statement(statement: &str, postgres: bool) -> String {
        let id = if postgres {
            "BIGSERIAL PRIMARY KEY"
        } else {
            "INTEGER PRIMARY KEY AUTOINCREMENT"
        };
        statement.replace("{id}", id)
    }
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "indicators, score history, vendor answers",
        statements: &[
            "CREATE TABLE indicators (
                id {id},
                stix_id TEXT NOT NULL UNIQUE,
                kind TEXT NOT NULL,
                value TEXT NOT NULL,
                priority BIGINT NOT NULL,
                severity TEXT NOT NULL,
                enrichment_status TEXT NOT NULL,
                skip_reason TEXT,
                tlp TEXT,
                tags TEXT NOT NULL,
                reasons TEXT NOT NULL,
                sources TEXT NOT NULL,
                observed_at BIGINT NOT NULL,
                first_seen BIGINT NOT NULL,
                last_changed BIGINT NOT NULL,
                UNIQUE (kind, value)
            )",
            "CREATE INDEX indicators_by_priority ON indicators (priority DESC, id)",
            "CREATE TABLE score_history (
                id {id},
                stix_id TEXT NOT NULL,
                at BIGINT NOT NULL,
                priority BIGINT NOT NULL,
                severity TEXT NOT NULL,
                reasons TEXT NOT NULL
            )",
            "CREATE INDEX score_history_by_indicator ON score_history (stix_id, at)",
            "CREATE TABLE vendor_answers (
                id {id},
                source TEXT NOT NULL,
                key_fingerprint TEXT NOT NULL,
                call TEXT NOT NULL,
                indicator TEXT NOT NULL,
                parameters TEXT NOT NULL,
                fetched_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                body TEXT NOT NULL
            )",
            "CREATE INDEX vendor_answers_by_call ON vendor_answers (source, key_fingerprint, call, indicator, parameters, fetched_at)",
        ],
    },
    Migration {
        version: 2,
        name: "pivot facets",
        statements: &[
            "CREATE TABLE facets (stix_id TEXT NOT NULL, facet TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (stix_id, facet, value))",
            "CREATE INDEX facets_by_value ON facets (facet, value, stix_id)",
        ],
    },
    Migration {
        version: 3,
        name: "what each re-enrichment changed",
        statements: &["ALTER TABLE score_history ADD COLUMN changes TEXT"],
    },
    Migration {
        version: 4,
        name: "pivots page through hub values by priority",
        statements: &[
            "ALTER TABLE facets ADD COLUMN priority BIGINT NOT NULL DEFAULT 0",
            "UPDATE facets SET priority = (SELECT i.priority FROM indicators i WHERE i.stix_id = facets.stix_id)",
            "CREATE INDEX facets_by_value_priority ON facets (facet, value, priority DESC, stix_id)",
            "DROP INDEX facets_by_value",
        ],
    },
    Migration {
        version: 5,
        name: "automation: job queue, history, workflow state, blocklists",
        statements: &[
            "CREATE TABLE jobs (
                id {id},
                kind TEXT NOT NULL,
                dedupe_key TEXT UNIQUE,
                payload TEXT NOT NULL,
                state TEXT NOT NULL,
                attempts BIGINT NOT NULL DEFAULT 0,
                max_attempts BIGINT NOT NULL,
                run_after BIGINT NOT NULL,
                lease_owner TEXT,
                lease_until BIGINT,
                last_error TEXT,
                created_at BIGINT NOT NULL,
                finished_at BIGINT
            )",
            "CREATE INDEX jobs_ready ON jobs (state, run_after, id)",
            "CREATE TABLE events (
                id {id},
                at BIGINT NOT NULL,
                kind TEXT NOT NULL,
                stix_id TEXT,
                indicator TEXT,
                rule TEXT,
                action TEXT,
                outcome TEXT NOT NULL,
                origin TEXT NOT NULL,
                duration_ms BIGINT,
                credits BIGINT NOT NULL DEFAULT 0,
                detail TEXT NOT NULL
            )",
            "CREATE INDEX events_by_indicator ON events (stix_id, id)",
            "CREATE INDEX events_by_rule ON events (rule, id)",
            "CREATE INDEX events_by_time ON events (at, id)",
            "CREATE TABLE workflow (
                stix_id TEXT PRIMARY KEY,
                status TEXT NOT NULL,
                labels TEXT NOT NULL,
                priority_override BIGINT,
                ticket TEXT,
                updated_at BIGINT NOT NULL,
                origin TEXT NOT NULL
            )",
            "CREATE TABLE blocklist_entries (
                list TEXT NOT NULL,
                value TEXT NOT NULL,
                stix_id TEXT NOT NULL,
                added_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                reason TEXT NOT NULL,
                origin TEXT NOT NULL,
                PRIMARY KEY (list, value)
            )",
            "CREATE INDEX blocklist_by_expiry ON blocklist_entries (expires_at)",
        ],
    },
    Migration {
        version: 6,
        name: "when each indicator was last enriched, for scheduled refreshes",
        statements: &[
            "ALTER TABLE indicators ADD COLUMN checked_at BIGINT NOT NULL DEFAULT 0",
            "UPDATE indicators SET checked_at = observed_at",
            "CREATE INDEX indicators_by_check ON indicators (checked_at, id)",
        ],
    },
    Migration {
        version: 7,
        name: "server: accounts (API tokens, local users), browser sessions, queue orderings",
        statements: &[
            "CREATE TABLE accounts (
                id {id},
                name TEXT NOT NULL UNIQUE,
                kind TEXT NOT NULL,
                role TEXT NOT NULL,
                secret_hash TEXT UNIQUE,
                password_hash TEXT,
                created_at BIGINT NOT NULL,
                expires_at BIGINT,
                last_used_at BIGINT,
                revoked_at BIGINT
            )",
            "CREATE TABLE sessions (
                secret_hash TEXT PRIMARY KEY,
                account_id BIGINT NOT NULL,
                csrf TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL
            )",
            "CREATE INDEX sessions_by_expiry ON sessions (expires_at)",
            // Each order of the indicator list is one of these, read forwards or backwards.
            "CREATE INDEX indicators_by_priority_then_id ON indicators (priority, id)",
            "CREATE INDEX indicators_by_change ON indicators (last_changed, id)",
            "CREATE INDEX indicators_by_first_seen ON indicators (first_seen, id)",
            "CREATE INDEX indicators_by_value ON indicators (value, id)",
        ],
    },
    Migration {
        version: 8,
        name: "rate ledger: vendor calls in the current window, shared by every process",
        statements: &[
            "CREATE TABLE rate_ledger (
                scope TEXT NOT NULL,
                at BIGINT NOT NULL
            )",
            "CREATE INDEX rate_ledger_by_scope ON rate_ledger (scope, at)",
        ],
    },
    Migration {
        version: 9,
        name: "history: the account (key and service address) each vendor call was paid with",
        statements: &["ALTER TABLE events ADD COLUMN account TEXT"],
    },
    Migration {
        version: 10,
        name: "versions: a commit clock every saving transaction stamps what it changes with, in commit order",
        statements: &[
            // One row: the last stamp given (Unix µs). A transaction that changes an indicator
            // or a blocklist entry takes the next stamps from it; the row stays locked until that
            // transaction commits, so stamps increase in commit order whichever process writes.
            "CREATE TABLE commit_clock (
                id BIGINT PRIMARY KEY,
                last_us BIGINT NOT NULL
            )",
            "ALTER TABLE indicators ADD COLUMN version_us BIGINT NOT NULL DEFAULT 0",
            "UPDATE indicators SET version_us = last_changed * 1000 + id % 1000",
            "CREATE INDEX indicators_by_version ON indicators (version_us, id)",
            "ALTER TABLE blocklist_entries ADD COLUMN version_us BIGINT NOT NULL DEFAULT 0",
            "UPDATE blocklist_entries SET version_us = added_at * 1000",
            "INSERT INTO commit_clock (id, last_us) SELECT 1, COALESCE(MAX(v), 0) FROM \
             (SELECT MAX(version_us) AS v FROM indicators UNION ALL SELECT MAX(version_us) AS v FROM blocklist_entries) stamps",
        ],
    },
    Migration {
        version: 11,
        name: "blocklists: a removed entry stays a while as a tombstone, so feeds can say it was removed",
        statements: &[
            "ALTER TABLE blocklist_entries ADD COLUMN removed_at BIGINT",
            "CREATE INDEX blocklist_by_version ON blocklist_entries (list, version_us)",
        ],
    },
];

/// The newest schema version this binary knows.
pub fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}
