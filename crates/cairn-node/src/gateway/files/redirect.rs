//! `GET /uri?uri=$CAP`: the redirect to `/uri/$CAP`, and the quoting it uses.

use super::*;

/// `GET /uri?uri=$CAP[&more]`: 302 to `/uri/$CAP[?more]` (Tahoe's `URIHandler.render_GET`).
pub(in crate::gateway) fn get_uri_redirect(
    args: &Args,
    headers: &HeaderMap,
    base: &str,
) -> Result<Response, WebError> {
    let Some(cap) = args.get("uri") else {
        return Err(WebError::bad_request("GET /uri requires uri="));
    };
    if Cap::parse(cap.trim()).is_err() {
        return Err(WebError::bad_request("Invalid capability"));
    }
    let mut location = match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) => format!("http://{host}/{base}/{}", quote(cap)),
        None => format!("/{base}/{}", quote(cap)),
    };
    let rest: Vec<(&String, &String)> =
        args.0.iter().filter(|(k, _)| k.as_str() != "uri").collect();
    if !rest.is_empty() {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in rest {
            ser.append_pair(k, v);
        }
        location.push('?');
        location.push_str(&ser.finish());
    }
    let mut r = (StatusCode::FOUND, format!("redirecting to {location}\n")).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain;charset=utf-8"),
    );
    Ok(r)
}

/// Python's `urllib.parse.quote(s)` (safe: letters, digits, `_.-~/`).
pub(crate) fn quote(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const SET: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'_')
        .remove(b'.')
        .remove(b'-')
        .remove(b'~')
        .remove(b'/');
    utf8_percent_encode(s, SET).to_string()
}
