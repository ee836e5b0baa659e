//! The one error table of the server: every failure a client can see has a stable code, an HTTP
//! status and a message saying what was wrong and where (which parameter, which field). Handlers
//! return [`ApiError`]; axum's own rejections (bad JSON, bad query strings, bodies over the limit)
//! are turned into it by the extractors in this module, so no response has another shape.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use scry_engine::access::Role;
use scry_store::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

/// Every error code, its status and what it means; served in the OpenAPI document's description.
pub const ERROR_TABLE: &[(&str, u16, &str)] = &[
    (
        "unauthenticated",
        401,
        "no token or session, or one that is unknown, expired or revoked",
    ),
    ("forbidden", 403, "the token's role may not do this"),
    (
        "csrf",
        403,
        "a browser request that changes state without its session's anti-forgery value",
    ),
    (
        "not_found",
        404,
        "no such indicator, blocklist, collection, token or route",
    ),
    (
        "method_not_allowed",
        405,
        "the route exists but not with this method",
    ),
    (
        "invalid_parameter",
        400,
        "a query or path parameter is malformed; `field` names it",
    ),
    (
        "invalid_body",
        400,
        "the body is not the JSON the route takes; `field` names the problem",
    ),
    (
        "unsupported_media_type",
        415,
        "the Content-Type is not one the route reads",
    ),
    (
        "not_acceptable",
        406,
        "the Accept header asks for a type the route cannot give",
    ),
    (
        "payload_too_large",
        413,
        "the body is over [server] max_body_mib",
    ),
    (
        "too_much_work",
        422,
        "the request asks for more work than one request may: too many indicators or actions, or a file that expands past [server] max_expanded_mib; `field` names the limit",
    ),
    (
        "request_timeout",
        408,
        "the request's body and answer took longer than [server] request_timeout_seconds",
    ),
    ("conflict", 409, "what was to be created exists already"),
    (
        "store_unavailable",
        503,
        "the store did not answer; the request changed nothing",
    ),
    (
        "internal",
        500,
        "a fault in scry; the server log has the detail",
    ),
];

/// The JSON body of every error.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// One of the codes in the error table.
    pub code: &'static str,
    pub message: String,
    /// The parameter or field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("sign in: send `Authorization: Bearer <token>` or log in")]
    Unauthenticated,
    #[error("this needs the {needed} role; the token has {has}")]
    Forbidden { needed: Role, has: Role },
    #[error("this form or request lacks the session's anti-forgery value")]
    Csrf,
    #[error("{0}")]
    NotFound(String),
    #[error("{field}: {message}")]
    InvalidParameter { field: String, message: String },
    #[error("{message}")]
    InvalidBody {
        field: Option<String>,
        message: String,
    },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotAcceptable(String),
    #[error("the body is larger than the server takes ([server] max_body_mib)")]
    PayloadTooLarge,
    #[error("{message}")]
    TooMuchWork { field: String, message: String },
    #[error("the request took longer than [server] request_timeout_seconds ({0} s)")]
    RequestTimeout(u64),
    #[error("{0}")]
    Conflict(String),
    #[error("the store did not answer: {0}")]
    StoreUnavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn parameter(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::InvalidParameter {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn body(field: Option<&str>, message: impl Into<String>) -> ApiError {
        ApiError::InvalidBody {
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::Csrf => "csrf",
            ApiError::NotFound(_) => "not_found",
            ApiError::InvalidParameter { .. } => "invalid_parameter",
            ApiError::InvalidBody { .. } => "invalid_body",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::NotAcceptable(_) => "not_acceptable",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::TooMuchWork { .. } => "too_much_work",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::Conflict(_) => "conflict",
            ApiError::StoreUnavailable(_) => "store_unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        let code = self.code();
        let status = ERROR_TABLE
            .iter()
            .find(|(c, _, _)| *c == code)
            .map_or(500, |(_, status, _)| *status);
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn detail(&self) -> ErrorDetail {
        let field = match self {
            ApiError::InvalidParameter { field, .. } => Some(field.clone()),
            ApiError::InvalidBody { field, .. } => field.clone(),
            ApiError::TooMuchWork { field, .. } => Some(field.clone()),
            _ => None,
        };
        let message = match self {
            ApiError::InvalidParameter { message, .. } => message.clone(),
            other => other.to_string(),
        };
        ErrorDetail {
            code: self.code(),
            message,
            field,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::Invalid(message) => ApiError::parameter("after", message),
            StoreError::Conflict(message) => ApiError::Conflict(message),
            StoreError::Query(e) => {
                tracing::error!("store query failed: {e}");
                ApiError::StoreUnavailable("the query failed; see the server log".into())
            }
            other => {
                tracing::error!("store: {other}");
                ApiError::Internal(other.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!("internal error: {detail}");
        }
        let status = self.status();
        let mut response = (
            status,
            axum::Json(ErrorBody {
                error: self.detail(),
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"scry\", Basic realm=\"scry\""),
            );
        }
        response
    }
}

/// A query string read into `T`; a malformed one is an `invalid_parameter` error naming the field.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_error::<T>(&rejection, parts.uri.query())),
        }
    }
}

fn query_error<T: DeserializeOwned>(rejection: &QueryRejection, query: Option<&str>) -> ApiError {
    let text = rejection.body_text();
    let text = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(&text)
        .to_owned();
    // serde names the field for unknown and missing ones ("unknown field `x`"); for a bad value
    // ("invalid digit found in string") each parameter is read alone to find the one at fault.
    if text.contains("field `") {
        let field = text.split('`').nth(1).unwrap_or("query").to_owned();
        return ApiError::parameter(field, text);
    }
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or("")).unwrap_or_default();
    for (key, value) in pairs {
        let alone =
            serde_urlencoded::to_string([(key.as_str(), value.as_str())]).unwrap_or_default();
        if let Err(e) = serde_urlencoded::from_str::<T>(&alone)
            && !e.to_string().starts_with("missing field")
        {
            return ApiError::parameter(key, format!("{value:?}: {e}"));
        }
    }
    ApiError::parameter("query", text)
}

/// A JSON body read into `T`; a malformed one is an `invalid_body` error saying where.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_error(rejection)),
        }
    }
}

fn json_error(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
            "send the body as JSON with `Content-Type: application/json`".into(),
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge
        }
        JsonRejection::JsonDataError(e) => {
            // "Failed to deserialize the JSON body into the target type: indicators[2]: invalid type: …"
            let text = e.body_text();
            let detail = text
                .split_once("target type: ")
                .map_or(text.as_str(), |(_, d)| d)
                .to_owned();
            let field = detail
                .split_once(": ")
                .map(|(path, _)| path.to_owned())
                .filter(|p| !p.contains(' '));
            ApiError::body(field.as_deref(), detail)
        }
        other => ApiError::body(None, other.body_text()),
    }
}
