//! Who may do what through the server: accounts with a role — API tokens, and local users who log
//! in to the workbench with a password — and browser sessions opened by either. Token secrets are
//! 256-bit random values shown once and kept as SHA-256 digests; passwords are kept as salted
//! PBKDF2-HMAC-SHA256 hashes (600,000 iterations, aws-lc-rs, already built for TLS). A copy of the
//! database lets nobody in (DESIGN.md invariant 6).

use std::fmt;
use std::str::FromStr;

use scry_sources::secret::digest_hex;
use scry_store::{Account, Store, StoreError};

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
    pub account_id: i64,
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
    #[error("a password needs at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    #[error("no random numbers from the operating system")]
    Random,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The shortest password a local user may have.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// PBKDF2 iterations for new password hashes (OWASP's figure for PBKDF2-HMAC-SHA256).
const PBKDF2_ITERATIONS: u32 = 600_000;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `pbkdf2-sha256$ITERATIONS$SALT$HASH` (hex) of a password, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, AccessError> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| AccessError::Random)?;
    let mut out = [0u8; 32];
    let iterations = std::num::NonZeroU32::new(PBKDF2_ITERATIONS).expect("not zero");
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password.as_bytes(),
        &mut out,
    );
    Ok(format!(
        "pbkdf2-sha256${PBKDF2_ITERATIONS}${}${}",
        hex(&salt),
        hex(&out)
    ))
}

/// Whether `password` matches a stored hash (compared in constant time).
pub fn verify_password(stored: &str, password: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("pbkdf2-sha256"), Some(iterations), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Some(iterations), Some(salt), Some(hash)) = (
        iterations
            .parse::<u32>()
            .ok()
            .and_then(std::num::NonZeroU32::new),
        unhex(salt),
        unhex(hash),
    ) else {
        return false;
    };
    aws_lc_rs::pbkdf2::verify(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password.as_bytes(),
        &hash,
    )
    .is_ok()
}

/// Adds a local user who logs in to the workbench with `password`.
pub async fn create_user(
    store: &dyn Store,
    name: &str,
    role: Role,
    password: &str,
) -> Result<Account, AccessError> {
    if !valid_name(name) {
        return Err(AccessError::InvalidName(name.to_owned()));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccessError::WeakPassword);
    }
    let hash = hash_password(password)?;
    Ok(store
        .create_user(name, role.as_str(), &hash, now_ms())
        .await?)
}

/// Checks `password` against `hash` on the blocking pool, at most half the machine's cores at a
/// time: a password check is deliberately slow (PBKDF2, 600,000 rounds), and run on the async
/// threads it would stall every other request while logins arrive.
pub async fn verify_password_off_thread(hash: String, password: String) -> bool {
    static CHECKS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let checks = CHECKS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        tokio::sync::Semaphore::new((cores / 2).max(1))
    });
    let Ok(_permit) = checks.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || verify_password(&hash, &password))
        .await
        .unwrap_or(false)
}

/// The principal a user name and password stand for, if they match a live user. An unknown name
/// costs as much time as a wrong password, so timing tells nothing about which names exist.
pub async fn log_in(
    store: &dyn Store,
    name: &str,
    password: &str,
) -> Result<Option<Principal>, StoreError> {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let found = store.user(name).await?;
    let Some((account, hash)) = found else {
        let decoy = tokio::task::spawn_blocking(|| {
            DECOY
                .get_or_init(|| hash_password("decoy").unwrap_or_default())
                .clone()
        })
        .await
        .unwrap_or_default();
        verify_password_off_thread(decoy, password.to_owned()).await;
        return Ok(None);
    };
    if !verify_password_off_thread(hash, password.to_owned()).await {
        return Ok(None);
    }
    let now = now_ms();
    let principal = live(&account, now);
    if principal.is_some() {
        store.touch_account(account.id, now).await?;
    }
    Ok(principal)
}

/// Every token secret starts with this, so secret scanners and people can tell what it is.
pub const TOKEN_PREFIX: &str = "scry_";

/// How long a token's last use may be out of date: a request writes it at most this often.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

/// A fresh secret: the prefix and 256 random bits in hex.
pub fn new_secret() -> Result<String, AccessError> {
    Ok(format!("{TOKEN_PREFIX}{}", random_hex()?))
}

/// 256 random bits in hex, without the token prefix: anti-forgery values and ids.
pub fn random_hex() -> Result<String, AccessError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| AccessError::Random)?;
    Ok(hex(&bytes))
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
) -> Result<(String, Account), AccessError> {
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
fn live(token: &Account, now: i64) -> Option<Principal> {
    if token.revoked_at.is_some() || token.expires_at.is_some_and(|at| at <= now) {
        return None;
    }
    Some(Principal {
        account_id: token.id,
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
        store.touch_account(token.id, now).await?;
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
    let csrf = random_hex()?;
    let now = now_ms();
    store
        .create_session(
            &digest_hex(&cookie),
            principal.account_id,
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
    Ok(live(&session.account, now).map(|p| (p, session.csrf)))
}

/// Ends the session of a cookie.
pub async fn close_session(store: &dyn Store, cookie: &str) -> Result<(), StoreError> {
    store.end_session(&digest_hex(cookie)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_salted_hash() {
        let hash = hash_password("correct horse battery").expect("hash");
        assert!(hash.starts_with("pbkdf2-sha256$600000$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse batterY"));
        let again = hash_password("correct horse battery").expect("hash");
        assert_ne!(hash, again, "each hash has its own salt");
        for broken in [
            "",
            "pbkdf2-sha256$0$00$00",
            "md5$1$00$00",
            &hash[..hash.len() - 1],
        ] {
            assert!(
                !verify_password(broken, "correct horse battery"),
                "{broken}"
            );
        }
    }
}
