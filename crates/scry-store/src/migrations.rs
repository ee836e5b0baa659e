//! Embedded, versioned schema migrations, applied in order and recorded in `schema_migrations`.
//!
//! Each migration has a text for SQLite and one for PostgreSQL (identical where the dialects agree).
//! Migrations are only ever appended; a store whose schema is newer than this binary's is refused.

/// A migration: version, name, SQLite statements, PostgreSQL statements.
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sqlite: &'static [&'static str],
    pub postgres: &'static [&'static str],
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "indicators, score history, vendor answers",
        sqlite: &[
            "CREATE TABLE indicators (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            stix_id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            priority INTEGER NOT NULL,
            severity TEXT NOT NULL,
            enrichment_status TEXT NOT NULL,
            skip_reason TEXT,
            tlp TEXT,
            tags TEXT NOT NULL,
            reasons TEXT NOT NULL,
            sources TEXT NOT NULL,
            observed_at INTEGER NOT NULL,
            first_seen INTEGER NOT NULL,
            last_changed INTEGER NOT NULL,
            UNIQUE (kind, value)
        )",
            "CREATE INDEX indicators_by_priority ON indicators (priority DESC, id)",
            "CREATE TABLE score_history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            stix_id TEXT NOT NULL,
            at INTEGER NOT NULL,
            priority INTEGER NOT NULL,
            severity TEXT NOT NULL,
            reasons TEXT NOT NULL
        )",
            "CREATE INDEX score_history_by_indicator ON score_history (stix_id, at)",
            "CREATE TABLE vendor_answers (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            source TEXT NOT NULL,
            key_fingerprint TEXT NOT NULL,
            call TEXT NOT NULL,
            indicator TEXT NOT NULL,
            parameters TEXT NOT NULL,
            fetched_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            body TEXT NOT NULL
        )",
            "CREATE INDEX vendor_answers_by_call ON vendor_answers (source, key_fingerprint, call, indicator, parameters, fetched_at)",
        ],
        postgres: &[
            "CREATE TABLE indicators (
            id BIGSERIAL PRIMARY KEY,
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
            id BIGSERIAL PRIMARY KEY,
            stix_id TEXT NOT NULL,
            at BIGINT NOT NULL,
            priority BIGINT NOT NULL,
            severity TEXT NOT NULL,
            reasons TEXT NOT NULL
        )",
            "CREATE INDEX score_history_by_indicator ON score_history (stix_id, at)",
            "CREATE TABLE vendor_answers (
            id BIGSERIAL PRIMARY KEY,
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
        sqlite: &[
            "CREATE TABLE facets (stix_id TEXT NOT NULL, facet TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (stix_id, facet, value))",
            "CREATE INDEX facets_by_value ON facets (facet, value, stix_id)",
        ],
        postgres: &[
            "CREATE TABLE facets (stix_id TEXT NOT NULL, facet TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (stix_id, facet, value))",
            "CREATE INDEX facets_by_value ON facets (facet, value, stix_id)",
        ],
    },
];

/// The newest schema version this binary knows.
pub fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}
