//! Downloads: the `Content-Disposition` of a file a browser saves, for the API's exports and
//! photos and the console's alike.

use axum::http::HeaderValue;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// RFC 5987 `attr-char`s that need no escaping (`ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" /
/// "-" / "." / "^" / "_" / "`" / "|" / "~"`): everything else is percent-encoded.
const ATTR_CHAR_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `Content-Disposition: attachment` for a download named `filename`, whatever it holds: the
/// exact name as RFC 6266 `filename*` (UTF-8, percent-encoded), and a plain `filename` for old
/// clients with every character outside printable ASCII, and `"`, `\`, `%`, `;`, replaced by
/// `_`. Nothing in the name can end the header or add a parameter to it.
pub fn attachment(filename: &str) -> HeaderValue {
    let fallback: String = filename
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '%' | ';')) || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = utf8_percent_encode(filename, ATTR_CHAR_ESCAPES);
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// A PDF file as a download named `filename`.
pub fn pdf(filename: &str, bytes: bytes::Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut r = (axum::http::StatusCode::OK, bytes).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    r.headers_mut().insert(
        axum::http::header::CONTENT_DISPOSITION,
        attachment(filename),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::attachment;

    #[test]
    fn attachment_names_cannot_break_the_header() {
        assert_eq!(
            attachment("ranking-2026-05.csv"),
            "attachment; filename=\"ranking-2026-05.csv\"; filename*=UTF-8''ranking-2026-05.csv"
        );
        assert_eq!(
            attachment("r-\"x\r\nSet-Cookie: a=b;.csv"),
            "attachment; filename=\"r-_x__Set-Cookie: a=b_.csv\"; \
             filename*=UTF-8''r-%22x%0D%0ASet-Cookie%3A%20a%3Db%3B.csv"
        );
        assert_eq!(
            attachment("ranking-2026年5月.csv"),
            "attachment; filename=\"ranking-2026_5_.csv\"; \
             filename*=UTF-8''ranking-2026%E5%B9%B45%E6%9C%88.csv"
        );
    }
}
