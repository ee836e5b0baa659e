//! Who is calling, and whether they may: every route sits in a group guarded by the role it
//! needs ([`guard`]), so a route cannot be added without a role. A caller is a token (sent as
//! `Authorization: Bearer`, or as the password of HTTP Basic for TAXII clients) or a browser
//! session cookie; a session must also carry its anti-forgery value on anything that changes state.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use scry_engine::access::{self, Principal, Role};

use crate::AppState;
use crate::error::ApiError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "scry_session";
/// The header a browser script sends the anti-forgery value in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The caller of a request, put in its extensions by [`guard`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The session's anti-forgery value, when the caller came with a session cookie.
    pub session_csrf: Option<String>,
}

impl Caller {
    /// Checks a form's anti-forgery value (nothing to check for token callers).
    pub fn check_csrf(&self, given: Option<&str>) -> Result<(), ApiError> {
        match &self.session_csrf {
            Some(expected) if given != Some(expected.as_str()) => Err(ApiError::Csrf),
            _ => Ok(()),
        }
    }

    /// How the history names what this caller did.
    pub fn origin(&self) -> String {
        format!("api:{}", self.principal.name)
    }
}

/// The token in an `Authorization` header: `Bearer TOKEN`, or `Basic` with the token as password.
fn bearer_or_basic(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(credentials.trim().to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        return text
            .split_once(':')
            .map(|(_, password)| password.to_owned());
    }
    None
}

/// The value of a cookie.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// Who sent these headers, if anyone known.
pub async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
    if let Some(secret) = bearer_or_basic(headers) {
        // A wrong token is an error even when a cookie is there too: never fall back silently.
        return match access::authenticate(state.store.as_ref(), &secret).await? {
            Some(principal) => Ok(Some(Caller {
                principal,
                session_csrf: None,
            })),
            None => Err(ApiError::Unauthenticated),
        };
    }
    if let Some(cookie) = cookie(headers, SESSION_COOKIE) {
        return Ok(access::session(state.store.as_ref(), &cookie).await?.map(
            |(principal, csrf)| Caller {
                principal,
                session_csrf: Some(csrf),
            },
        ));
    }
    Ok(None)
}

/// Whether a browser says the request was made by a page of another site (Fetch Metadata's
/// `Sec-Fetch-Site`). A page on another port of this host is `same-site`, another domain
/// `cross-site`; both are refused for anything that changes state with a session. Clients that
/// send no such header (scripts, TAXII clients) are judged by their credentials alone.
pub fn from_another_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| {
            site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site")
        })
}

/// Whether a request changes state: every method but GET and HEAD.
fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD)
}

/// Refuses a request that changes state when a browser says another site's page made it; the
/// API and the workbench's forms share this rule.
pub fn refuse_other_sites(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    if is_unsafe(method) && from_another_site(headers) {
        Err(ApiError::Csrf)
    } else {
        Ok(())
    }
}

/// Lets a request through when its caller has at least `needed`.
///
/// The API's anti-forgery rule goes by how the caller authenticated, never by content type: a
/// session caller must send its anti-forgery value in the `x-csrf-token` header with every
/// method but GET and HEAD, whatever the body is (a form, text or multipart body gets no
/// exemption), and a browser request from another site is refused outright. HTML forms post to
/// the `/ui/` routes instead, which check the form's `csrf` field ([`crate::ui::page_guard`]).
pub async fn guard(
    State((state, needed)): State<(AppState, Role)>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(caller) = caller(&state, request.headers()).await? else {
        return Err(ApiError::Unauthenticated);
    };
    if !caller.principal.may(needed) {
        return Err(ApiError::Forbidden {
            needed,
            has: caller.principal.role,
        });
    }
    if is_unsafe(request.method()) && caller.session_csrf.is_some() {
        refuse_other_sites(request.method(), request.headers())?;
        let given = request
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok());
        caller.check_csrf(given)?;
    }
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}
