//! Who may use the server: accounts (API tokens and local users) and browser sessions. Only
//! SHA-256 digests of token and session secrets are stored (they are 256-bit random values, so a
//! fast digest is enough: there is nothing to guess); users' passwords are stored as the salted,
//! slow hash the engine makes. Revoking an account ends its sessions with it.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::StoreError;
use crate::model::{Account, Session};
use crate::sql::SqlStore;

const ACCOUNT_COLUMNS: &str =
    "t.id, t.name, t.kind, t.role, t.created_at, t.expires_at, t.last_used_at, t.revoked_at";

fn account_from(row: &AnyRow) -> Result<Account, StoreError> {
    Ok(Account {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        role: row.try_get("role")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// A new account as it is inserted.
pub(crate) struct NewAccount<'a> {
    pub(crate) name: &'a str,
    /// `token` or `user`.
    pub(crate) kind: &'a str,
    pub(crate) role: &'a str,
    pub(crate) secret_hash: Option<&'a str>,
    pub(crate) password_hash: Option<&'a str>,
    pub(crate) created_at: i64,
    pub(crate) expires_at: Option<i64>,
}

impl SqlStore {
    pub(crate) async fn insert_account(&self, new: NewAccount<'_>) -> Result<Account, StoreError> {
        let sql = format!(
            "INSERT INTO accounts (name, kind, role, secret_hash, password_hash, created_at, expires_at) VALUES {} ON CONFLICT DO NOTHING",
            self.value_rows(1, 7)
        );
        let added = sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(new.name)
            .bind(new.kind)
            .bind(new.role)
            .bind(new.secret_hash)
            .bind(new.password_hash)
            .bind(new.created_at)
            .bind(new.expires_at)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if added == 0 {
            return Err(StoreError::Conflict(format!(
                "an account named {:?} exists already",
                new.name
            )));
        }
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts t WHERE t.name = {}",
            self.placeholder(1)
        );
        let row = sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(new.name)
            .fetch_one(&self.pool)
            .await?;
        account_from(&row)
    }

    pub(crate) async fn select_user(
        &self,
        name: &str,
    ) -> Result<Option<(Account, String)>, StoreError> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS}, t.password_hash FROM accounts t WHERE t.name = {} AND t.kind = 'user'",
            self.placeholder(1)
        );
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| Ok((account_from(&row)?, row.try_get("password_hash")?)))
            .transpose()
    }

    pub(crate) async fn select_token_by_hash(
        &self,
        secret_hash: &str,
    ) -> Result<Option<Account>, StoreError> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts t WHERE t.secret_hash = {}",
            self.placeholder(1)
        );
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(account_from)
            .transpose()
    }

    pub(crate) async fn select_accounts(&self) -> Result<Vec<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts t ORDER BY t.name");
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(account_from)
            .collect()
    }

    pub(crate) async fn mark_account_revoked(
        &self,
        name: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "UPDATE accounts SET revoked_at = {} WHERE name = {} AND revoked_at IS NULL",
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
            "DELETE FROM sessions WHERE account_id IN (SELECT id FROM accounts WHERE name = {})",
            self.placeholder(1)
        );
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(revoked)
    }

    pub(crate) async fn mark_account_used(&self, id: i64, at: i64) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE accounts SET last_used_at = {} WHERE id = {}",
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
        account_id: i64,
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
            "INSERT INTO sessions (secret_hash, account_id, csrf, created_at, expires_at) VALUES {}",
            self.value_rows(1, 5)
        );
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(secret_hash)
            .bind(account_id)
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
            "SELECT {ACCOUNT_COLUMNS}, s.csrf, s.expires_at AS session_expires_at FROM sessions s \
             JOIN accounts t ON t.id = s.account_id WHERE s.secret_hash = {} AND s.expires_at > {}",
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
                    account: account_from(&row)?,
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
