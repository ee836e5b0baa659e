//! Who may use the server: API tokens and browser sessions. Only SHA-256 digests of their secrets
//! are stored (the secrets are 256-bit random values, so a fast digest is enough: there is nothing
//! to guess), and a revoked token ends its sessions with it.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::StoreError;
use crate::model::{ApiToken, Session};
use crate::sql::SqlStore;

const TOKEN_COLUMNS: &str =
    "t.id, t.name, t.role, t.created_at, t.expires_at, t.last_used_at, t.revoked_at";

fn token_from(row: &AnyRow) -> Result<ApiToken, StoreError> {
    Ok(ApiToken {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: row.try_get("role")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

impl SqlStore {
    pub(crate) async fn insert_token(
        &self,
        name: &str,
        role: &str,
        secret_hash: &str,
        created_at: i64,
        expires_at: Option<i64>,
    ) -> Result<ApiToken, StoreError> {
        let sql = format!(
            "INSERT INTO api_tokens (name, role, secret_hash, created_at, expires_at) VALUES {} ON CONFLICT DO NOTHING",
            self.value_rows(1, 5)
        );
        let added = sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(name)
            .bind(role)
            .bind(secret_hash)
            .bind(created_at)
            .bind(expires_at)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if added == 0 {
            return Err(StoreError::Conflict(format!(
                "a token named {name:?} exists already"
            )));
        }
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t WHERE t.name = {}",
            self.placeholder(1)
        );
        let row = sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        token_from(&row)
    }

    pub(crate) async fn select_token_by_hash(
        &self,
        secret_hash: &str,
    ) -> Result<Option<ApiToken>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t WHERE t.secret_hash = {}",
            self.placeholder(1)
        );
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(token_from)
            .transpose()
    }

    pub(crate) async fn select_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens t ORDER BY t.name");
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(token_from)
            .collect()
    }

    pub(crate) async fn mark_token_revoked(&self, name: &str, at: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "UPDATE api_tokens SET revoked_at = {} WHERE name = {} AND revoked_at IS NULL",
            self.placeholder(1),
            self.placeholder(2)
        );
        let revoked = sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(at)
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        let sql = format!(
            "DELETE FROM sessions WHERE token_id IN (SELECT id FROM api_tokens WHERE name = {})",
            self.placeholder(1)
        );
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(revoked)
    }

    pub(crate) async fn mark_token_used(&self, id: i64, at: i64) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE api_tokens SET last_used_at = {} WHERE id = {}",
            self.placeholder(1),
            self.placeholder(2)
        );
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn insert_session(
        &self,
        secret_hash: &str,
        token_id: i64,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        // Expired sessions go as new ones come, so the table holds live sessions only.
        let sql = format!(
            "DELETE FROM sessions WHERE expires_at < {}",
            self.placeholder(1)
        );
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(now)
            .execute(&self.pool)
            .await?;
        let sql = format!(
            "INSERT INTO sessions (secret_hash, token_id, csrf, created_at, expires_at) VALUES {}",
            self.value_rows(1, 5)
        );
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(secret_hash)
            .bind(token_id)
            .bind(csrf)
            .bind(now)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn select_session(
        &self,
        secret_hash: &str,
        now: i64,
    ) -> Result<Option<Session>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS}, s.csrf, s.expires_at AS session_expires_at FROM sessions s \
             JOIN api_tokens t ON t.id = s.token_id WHERE s.secret_hash = {} AND s.expires_at > {}",
            self.in_order(1),
            self.in_order(2)
        );
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(secret_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| {
                Ok(Session {
                    token: token_from(&row)?,
                    csrf: row.try_get("csrf")?,
                    expires_at: row.try_get("session_expires_at")?,
                })
            })
            .transpose()
    }

    pub(crate) async fn delete_session(&self, secret_hash: &str) -> Result<(), StoreError> {
        let sql = format!(
            "DELETE FROM sessions WHERE secret_hash = {}",
            self.placeholder(1)
        );
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(secret_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
