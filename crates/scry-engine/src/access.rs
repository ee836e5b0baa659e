//! Who may do what through the server: API tokens with a role, and browser sessions opened with
//! a token. Secrets are 256-bit random values shown once; the store keeps only their SHA-256
//! (DESIGN.md invariant 6), so a copy of the database lets nobody in.

use std::fmt;
use std::str::FromStr;

use scry_sources::secret::digest_hex;
use scry_store::{ApiToken, Store, StoreError};

use crate::automation::now_ms;

/// What a token may do. Each role may do everything the roles before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Read indicators, pivots, history, dashboards, feeds.
    Viewer,
    /// Also submit and enrich indicators, set workflow state, block, dry-run rules.
    Analyst,
    /// Also manage tokens.
    Admin,
}

impl Role {
    pub const NAMES: [&'static str; 3] = ["viewer", "analyst", "admin"];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AccessError;

    fn from_str(text: &str) -> Result<Role, AccessError> {
        match text {
            "viewer" => Ok(Role::Viewer),
            "analyst" => Ok(Role::Analyst),
            "admin" => Ok(Role::Admin),
            other => Err(AccessError::UnknownRole(other.to_owned())),
        }
    }
}

/// Who is asking: a live token and its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub token_id: i64,
    pub name: String,
    pub role: Role,
}

impl Principal {
    pub fn may(&self, needed: Role) -> bool {
        self.role >= needed
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("unknown role {0:?} (expected viewer, analyst or admin)")]
    UnknownRole(String),
    #[error("invalid token name {0:?}: use 1 to 64 letters, digits, '.', '_' or '-'")]
    InvalidName(String),
    #[error("no random numbers from the operating system")]
    Random,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Every token secret starts with this, so secret scanners and people can tell what it is.
pub const TOKEN_PREFIX: &str = "scry_";

/// How long a token's last use may be out of date: a request writes it at most this often.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

/// A fresh secret: the prefix and 256 random bits in hex.
pub fn new_secret() -> Result<String, AccessError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| AccessError::Random)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{TOKEN_PREFIX}{hex}"))
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Creates a token; returns its secret (to be shown once, never again) and what is stored.
pub async fn create_token(
    store: &dyn Store,
    name: &str,
    role: Role,
    valid_for_ms: Option<i64>,
) -> Result<(String, ApiToken), AccessError> {
    if !valid_name(name) {
        return Err(AccessError::InvalidName(name.to_owned()));
    }
    let secret = new_secret()?;
    let now = now_ms();
    let token = store
        .create_token(
            name,
            role.as_str(),
            &digest_hex(&secret),
            now,
            valid_for_ms.map(|ms| now.saturating_add(ms)),
        )
        .await?;
    Ok((secret, token))
}

/// Whether a stored token may be used at `now`.
fn live(token: &ApiToken, now: i64) -> Option<Principal> {
    if token.revoked_at.is_some() || token.expires_at.is_some_and(|at| at <= now) {
        return None;
    }
    Some(Principal {
        token_id: token.id,
        name: token.name.clone(),
        role: token.role.parse().ok()?,
    })
}

/// The principal a token secret stands for, if it is live; notes the use.
pub async fn authenticate(
    store: &dyn Store,
    secret: &str,
) -> Result<Option<Principal>, StoreError> {
    if !secret.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let Some(token) = store.token_by_hash(&digest_hex(secret)).await? else {
        return Ok(None);
    };
    let now = now_ms();
    let principal = live(&token, now);
    if principal.is_some()
        && token
            .last_used_at
            .is_none_or(|at| now - at >= LAST_USED_GRANULARITY_MS)
    {
        store.touch_token(token.id, now).await?;
    }
    Ok(principal)
}

/// A browser session: the cookie's secret and the anti-forgery value of its forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedSession {
    pub cookie: String,
    pub csrf: String,
}

/// Opens a session for a principal, valid for `valid_for_ms`.
pub async fn open_session(
    store: &dyn Store,
    principal: &Principal,
    valid_for_ms: i64,
) -> Result<OpenedSession, AccessError> {
    let cookie = new_secret()?;
    let csrf = new_secret()?.trim_start_matches(TOKEN_PREFIX).to_owned();
    let now = now_ms();
    store
        .create_session(
            &digest_hex(&cookie),
            principal.token_id,
            &csrf,
            now,
            now.saturating_add(valid_for_ms),
        )
        .await?;
    Ok(OpenedSession { cookie, csrf })
}

/// The principal and anti-forgery value of a live session, by its cookie.
pub async fn session(
    store: &dyn Store,
    cookie: &str,
) -> Result<Option<(Principal, String)>, StoreError> {
    let now = now_ms();
    let Some(session) = store.session(&digest_hex(cookie), now).await? else {
        return Ok(None);
    };
    Ok(live(&session.token, now).map(|p| (p, session.csrf)))
}

/// Ends the session of a cookie.
pub async fn close_session(store: &dyn Store, cookie: &str) -> Result<(), StoreError> {
    store.end_session(&digest_hex(cookie)).await
}
