//! Where a request's API key comes from: `Authorization: Bearer <key>`, or
//! `?token=<key>` (browsers cannot set headers on a WebSocket upgrade).
//!
//! These read raw client input before anyone is authenticated, so they work
//! on bytes and never slice a string at a position they have not checked.

use poem::Request;

/// The bearer token of `req`, if it carries one.
pub fn bearer_token(req: &Request) -> Option<String> {
    let header = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    token_from(header, req.uri().query())
}

/// The token from an `Authorization` header value or a query string; the
/// header wins. A header that is not a bearer credential, or not UTF-8,
/// carries no token.
pub fn token_from(authorization: Option<&[u8]>, query: Option<&str>) -> Option<String> {
    let from_header = authorization
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string());
    from_header.or_else(|| {
        query?
            .split('&')
            .find_map(|kv| kv.strip_prefix("token=").map(percent_decode))
    })
}

/// Decodes `%XX` escapes (and `+` stays `+`: keys never contain spaces).
/// A `%` not followed by two hex digits is kept as it is; bytes that do not
/// form UTF-8 become U+FFFD, which no key contains.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_percent_before_a_multibyte_character_is_kept() {
        assert_eq!(percent_decode("%a\u{e9}"), "%a\u{e9}");
        assert_eq!(percent_decode("%\u{e9}x"), "%\u{e9}x");
        assert_eq!(
            token_from(None, Some("token=%a\u{e9}")),
            Some("%a\u{e9}".into())
        );
    }

    #[test]
    fn escapes_decode_and_the_header_wins() {
        assert_eq!(percent_decode("ap_%41%2f%"), "ap_A/%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(
            token_from(Some(b"Bearer  k1 "), Some("token=k2")),
            Some("k1".into())
        );
        assert_eq!(
            token_from(Some(b"Basic x"), Some("a=1&token=k2")),
            Some("k2".into())
        );
        assert_eq!(token_from(Some(&[0xff, 0xfe]), None), None);
    }

    proptest! {
        #[test]
        fn never_panics_on_any_query(q in any::<String>(), h in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = token_from(Some(&h), Some(&q));
            let _ = token_from(None, Some(&q));
            let _ = percent_decode(&q);
        }

        #[test]
        fn encoded_keys_round_trip(key in "[ -~]{0,80}") {
            let encoded: String = key.bytes().map(|b| format!("%{b:02X}")).collect();
            prop_assert_eq!(percent_decode(&encoded), key);
        }
    }
}
