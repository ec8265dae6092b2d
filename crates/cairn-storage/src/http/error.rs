//! Error answers (`HttpError`: a status and a plain-text reason) and the plain response
//! builders.

use super::*;

/// An error answer: status and a plain-text reason.
#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub message: String,
}

impl HttpError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        HttpError {
            status,
            message: message.into(),
        }
    }
    pub(super) fn not_found() -> Self {
        HttpError::new(StatusCode::NOT_FOUND, "")
    }
    pub(super) fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {e}");
        HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {e}"),
        )
    }
}

impl From<GbsError> for HttpError {
    fn from(e: GbsError) -> Self {
        HttpError::new(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
            e.to_string(),
        )
    }
}

impl From<StoreError> for HttpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::BadWriteEnabler(m) => HttpError::new(StatusCode::UNAUTHORIZED, m),
            StoreError::TooLarge(m) => HttpError::new(StatusCode::BAD_REQUEST, m),
            StoreError::NoSpace(m) => HttpError::new(StatusCode::INSUFFICIENT_STORAGE, m),
            StoreError::WrongKind(m) => HttpError::new(StatusCode::CONFLICT, m),
            other => HttpError::internal(other),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.message,
        )
            .into_response()
    }
}

pub(super) type HResult = Result<Response, HttpError>;

pub(super) fn cbor(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, gbs::CBOR_MIME_TYPE)], body).into_response()
}

pub(super) fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}
