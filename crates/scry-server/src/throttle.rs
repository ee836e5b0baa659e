//! Login throttling: failed logins are counted per account and per client address, and past a
//! few free failures each key is locked for a time that doubles with every further failure (up to
//! 15 minutes), during which its logins are refused without checking a password. Attempts in
//! progress count against the allowance, so a burst of concurrent guesses cannot all get through
//! before the first one fails. A successful login clears its account's and address's record.
//!
//! Hand-written rather than a rate limiter such as `governor`: a GCRA quota spends a cell on
//! every check and has no notion of "only failures count" or of a lock that grows with each
//! failure, which is what slows a password guesser while leaving a user who typed one wrong
//! password alone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures an account may have before it is locked.
const FREE_PER_ACCOUNT: u32 = 5;
/// Failures an address may have before it is locked: higher, since people behind one proxy or
/// NAT share an address.
const FREE_PER_ADDRESS: u32 = 20;
/// The first lock; each further failure doubles it.
const FIRST_LOCK: Duration = Duration::from_secs(1);
/// The longest lock.
const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// A key with no failure for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Keys remembered at most; past it the stalest is forgotten, so guessing many names cannot
/// grow memory without bound.
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    in_flight: u32,
    locked_until: Option<Instant>,
    last_seen: Instant,
}

/// The client behind a connection from `peer`: `peer` itself, unless it is one of `trusted`
/// proxies, in which case the nearest address in `X-Forwarded-For` (read from the right) that
/// is not a trusted proxy. A header that does not parse leaves the peer.
pub fn client_address(
    peer: std::net::IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let is_trusted = |address: &std::net::IpAddr| trusted.iter().any(|net| net.contains(address));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded: Option<Vec<std::net::IpAddr>> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|value| value.to_str().ok())
        .collect::<Option<Vec<&str>>>()
        .and_then(|values| {
            values
                .iter()
                .flat_map(|v| v.split(','))
                .map(|hop| hop.trim().parse().ok())
                .collect()
        });
    forwarded
        .and_then(|hops| hops.into_iter().rev().find(|hop| !is_trusted(hop)))
        .unwrap_or(peer)
}

/// Who a login attempt is by: the account name given (none for a token, which names no
/// account until it is found) and the client's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub account: Option<String>,
    pub address: Option<std::net::IpAddr>,
}

impl Attempt {
    fn keys(&self) -> Vec<(String, u32)> {
        let mut keys = Vec::new();
        if let Some(account) = &self.account {
            keys.push((
                format!("account:{}", account.to_lowercase()),
                FREE_PER_ACCOUNT,
            ));
        }
        if let Some(address) = self.address {
            keys.push((format!("address:{address}"), FREE_PER_ADDRESS));
        }
        keys
    }
}

/// A login that was allowed to check its password; say how it ended.
#[derive(Debug)]
#[must_use = "report the outcome with `succeeded` or `failed`"]
pub struct Permit {
    keys: Vec<(String, u32)>,
}

/// The failed-login records of a server.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    records: Mutex<HashMap<String, Record>>,
}

impl LoginThrottle {
    /// Lets the attempt check its password, or says how long until it may try again.
    pub fn begin(&self, attempt: &Attempt, now: Instant) -> Result<Permit, Duration> {
        let keys = attempt.keys();
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = Duration::ZERO;
        for (key, free) in &keys {
            if let Some(record) = records.get(key) {
                if let Some(until) = record.locked_until.filter(|until| *until > now) {
                    wait = wait.max(until - now);
                } else if record.in_flight > 0 && record.failures + record.in_flight >= *free {
                    // Attempts in progress would use up the allowance (past it, one at a
                    // time): wait for them.
                    wait = wait.max(FIRST_LOCK);
                }
            }
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        if records.len() + keys.len() > MAX_KEYS {
            forget_stalest(&mut records, now, keys.len());
        }
        for (key, _) in &keys {
            let record = records.entry(key.clone()).or_insert(Record {
                failures: 0,
                in_flight: 0,
                locked_until: None,
                last_seen: now,
            });
            record.in_flight += 1;
            record.last_seen = now;
        }
        Ok(Permit { keys })
    }

    /// The password was right: the account's and address's failures are forgotten.
    pub fn succeeded(&self, permit: Permit) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        for (key, _) in permit.keys {
            records.remove(&key);
        }
    }

    /// The password was wrong (or the account unknown): counted, and the key locked when it is
    /// past its free failures.
    pub fn failed(&self, permit: Permit, now: Instant) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        for (key, free) in permit.keys {
            let Some(record) = records.get_mut(&key) else {
                continue;
            };
            record.in_flight = record.in_flight.saturating_sub(1);
            record.failures = record.failures.saturating_add(1);
            record.last_seen = now;
            if record.failures >= free {
                let doublings = (record.failures - free).min(20);
                let lock = FIRST_LOCK.saturating_mul(1 << doublings).min(MAX_LOCK);
                record.locked_until = Some(now + lock);
            }
        }
    }

    /// Keys remembered now (for tests and figures).
    pub fn remembered(&self) -> usize {
        self.records.lock().map_or(0, |r| r.len())
    }
}

/// Drops what is too old to matter, then the stalest keys until `room` more fit.
fn forget_stalest(records: &mut HashMap<String, Record>, now: Instant, room: usize) {
    records.retain(|_, r| r.in_flight > 0 || now.duration_since(r.last_seen) < FORGET_AFTER);
    while records.len() + room > MAX_KEYS {
        let Some(stalest) = records
            .iter()
            .filter(|(_, r)| r.in_flight == 0)
            .min_by_key(|(_, r)| r.last_seen)
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        records.remove(&stalest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(account: &str, address: &str) -> Attempt {
        Attempt {
            account: Some(account.into()),
            address: Some(address.parse().expect("address")),
        }
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_names_another() {
        let trusted: Vec<ipnet::IpNet> = vec![
            "127.0.0.1/32".parse().expect("net"),
            "10.0.0.0/8".parse().expect("net"),
        ];
        let headers = |value: &str| {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert("x-forwarded-for", value.parse().expect("header"));
            headers
        };
        let ip = |text: &str| -> std::net::IpAddr { text.parse().expect("address") };
        let cases = [
            // An untrusted peer's header is ignored: anyone can write it.
            ("198.51.100.9", "203.0.113.5", "198.51.100.9"),
            // Through one trusted proxy, and through a chain (the nearest untrusted hop wins,
            // not the leftmost, which the client itself may have written).
            ("127.0.0.1", "203.0.113.5", "203.0.113.5"),
            (
                "127.0.0.1",
                "192.0.2.66, 203.0.113.5, 10.1.2.3",
                "203.0.113.5",
            ),
            // Only trusted hops, or a header that does not parse: the peer.
            ("127.0.0.1", "10.1.2.3", "127.0.0.1"),
            ("127.0.0.1", "not an address", "127.0.0.1"),
        ];
        for (peer, forwarded, expected) in cases {
            assert_eq!(
                client_address(ip(peer), &headers(forwarded), &trusted),
                ip(expected),
                "{peer} forwarding {forwarded:?}"
            );
        }
        assert_eq!(
            client_address(ip("127.0.0.1"), &axum::http::HeaderMap::new(), &trusted),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn an_account_is_locked_after_its_free_failures_for_a_doubling_time() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        let guess = attempt("ana", "192.0.2.1");
        for _ in 0..FREE_PER_ACCOUNT {
            let permit = throttle.begin(&guess, start).expect("free failures");
            throttle.failed(permit, start);
        }
        assert_eq!(throttle.begin(&guess, start).err(), Some(FIRST_LOCK));
        // The same account from elsewhere is locked too.
        assert!(throttle.begin(&attempt("ANA", "192.0.2.2"), start).is_err());
        let later = start + FIRST_LOCK;
        let permit = throttle.begin(&guess, later).expect("the lock ended");
        throttle.failed(permit, later);
        assert_eq!(throttle.begin(&guess, later).err(), Some(FIRST_LOCK * 2));
        // Another account from the same address is not locked yet.
        let other = throttle
            .begin(&attempt("vic", "192.0.2.1"), later)
            .expect("another account");
        throttle.succeeded(other);
    }

    #[test]
    fn concurrent_guesses_wait_for_those_in_progress_and_success_clears() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        let guess = attempt("root", "192.0.2.9");
        let permits: Vec<Permit> = (0..FREE_PER_ACCOUNT)
            .map(|_| throttle.begin(&guess, now).expect("within the allowance"))
            .collect();
        assert!(
            throttle.begin(&guess, now).is_err(),
            "no more than the allowance at once"
        );
        for permit in permits {
            throttle.succeeded(permit);
        }
        assert_eq!(throttle.remembered(), 0);
        assert!(throttle.begin(&guess, now).is_ok());
    }

    #[test]
    fn wrong_tokens_count_against_their_address_only() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        let token_from = |address: &str| Attempt {
            account: None,
            address: Some(address.parse().expect("address")),
        };
        for _ in 0..FREE_PER_ADDRESS {
            let permit = throttle
                .begin(&token_from("192.0.2.7"), now)
                .expect("allowed");
            throttle.failed(permit, now);
        }
        assert!(throttle.begin(&token_from("192.0.2.7"), now).is_err());
        let elsewhere = throttle
            .begin(&token_from("192.0.2.8"), now)
            .expect("token logins from elsewhere go on");
        throttle.succeeded(elsewhere);
    }

    #[test]
    fn many_names_do_not_grow_memory_past_the_cap() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..(MAX_KEYS + 500) {
            let permit = throttle
                .begin(
                    &Attempt {
                        account: Some(format!("user{i}")),
                        address: None,
                    },
                    now,
                )
                .expect("a new name");
            throttle.failed(permit, now);
        }
        assert!(throttle.remembered() <= MAX_KEYS);
        assert!(throttle.remembered() > MAX_KEYS / 2);
    }
}
