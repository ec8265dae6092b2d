//! `Content-Type` and `Accept`.

use super::*;

/// Check a request's `Content-Type` (first value): absent or empty means CBOR; anything other
/// than `application/cbor` (parameters ignored, case-insensitive) → 415.
pub fn check_content_type(first_value: Option<&[u8]>) -> Result<(), GbsError> {
    let Some(raw) = first_value else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(raw);
    let main = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if main.is_empty() || main == CBOR_MIME_TYPE {
        Ok(())
    } else {
        Err(GbsError::UnsupportedMediaType(main))
    }
}

/// Check the first `Accept` header as Tahoe does (`parse_accept_header(...).best`): absent is
/// fine; otherwise the best-quality media range must be exactly `application/cbor`. So
/// `Accept: */*` gets 406.
pub fn check_accept(first_value: Option<&[u8]>) -> Result<(), GbsError> {
    let Some(raw) = first_value else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(raw);
    let mut best: Option<(u32, u8, String)> = None; // (q*1000, specificity, type)
    for item in text.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if media.is_empty() {
            continue;
        }
        let mut q = 1000u32;
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q = v
                        .trim()
                        .parse::<f64>()
                        .map(|f| (f.clamp(0.0, 1.0) * 1000.0) as u32)
                        .unwrap_or(0);
                }
            }
        }
        if q == 0 {
            continue;
        }
        let spec = match media.as_str() {
            "*/*" => 0,
            m if m.ends_with("/*") => 1,
            _ => 2,
        };
        let better = match &best {
            None => true,
            Some((bq, bs, _)) => (q, spec) > (*bq, *bs),
        };
        if better {
            best = Some((q, spec, media));
        }
    }
    match best {
        Some((_, _, m)) if m == CBOR_MIME_TYPE => Ok(()),
        _ => Err(GbsError::NotAcceptable),
    }
}
