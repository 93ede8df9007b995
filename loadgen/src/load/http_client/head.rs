//! The response head as a load client reads it: status, framing, whether the
//! connection stays open, and the sidecar's `Server-Timing` entries.
//!
//! httparse checks the whole head, and the client then reads only the fields
//! it needs. Framing follows RFC 9112: `Transfer-Encoding` overrides
//! `Content-Length`, conflicting lengths make the response invalid, and 1xx,
//! 204 and 304 responses have no body.

use std::mem::MaybeUninit;
use std::time::Duration;

use crate::driver::SendFailure;
use crate::measure::server_timing_in;

/// Header fields parsed per response; more make the response invalid.
const MAX_FIELDS: usize = 64;

/// The framing of a response body, which marks where the body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// The parts of a response head the client needs.
#[derive(Debug)]
pub(super) struct Head {
    pub status: u16,
    /// Bytes of the head, including the blank line.
    pub length: usize,
    pub framing: Framing,
    pub keep_alive: bool,
    pub authn: Option<Duration>,
    pub authz: Option<Duration>,
}

fn invalid(what: &str) -> SendFailure {
    SendFailure::Other(format!("invalid HTTP response: {what}"))
}

/// Parses a response head; `Ok(None)` means more bytes are needed.
pub(super) fn parse_head(buffer: &[u8]) -> Result<Option<Head>, SendFailure> {
    // Uninitialized slots spare writing 64 empty fields for every response.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buffer,
        &mut fields,
    );
    let length = match parsed {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(invalid(&error.to_string())),
    };
    let status = response.code.unwrap_or_default();

    let mut keep_alive = response.version == Some(1);
    let mut content_length = None;
    let mut chunked = false;
    let (mut authn, mut authz) = (None, None);
    for field in response.headers.iter() {
        let (name, value) = (field.name, field.value.trim_ascii());
        // `eq_ignore_ascii_case` compares lengths first, so a field the client
        // does not need costs four integer comparisons.
        if name.eq_ignore_ascii_case("content-length") {
            let length = parse_length(value)?;
            if content_length.is_some_and(|known| known != length) {
                return Err(invalid("conflicting Content-Length values"));
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked |= contains_token(value, "chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            if contains_token(value, "close") {
                keep_alive = false;
            } else if contains_token(value, "keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("server-timing") {
            if let Ok(value) = std::str::from_utf8(value) {
                authn = authn.or_else(|| server_timing_in(value, "authn"));
                authz = authz.or_else(|| server_timing_in(value, "authz"));
            }
        }
    }

    // RFC 9112, section 6.3: 1xx, 204 and 304 responses have no body, and
    // Transfer-Encoding overrides Content-Length.
    let framing = if status < 200 || status == 204 || status == 304 {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else if let Some(length) = content_length {
        Framing::Length(length)
    } else {
        keep_alive = false;
        Framing::UntilClose
    };
    Ok(Some(Head {
        status,
        length,
        framing,
        keep_alive,
        authn,
        authz,
    }))
}

fn parse_length(value: &[u8]) -> Result<usize, SendFailure> {
    let bad = || invalid("Content-Length is not a number");
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    value.iter().try_fold(0usize, |length, digit| {
        length
            .checked_mul(10)
            .and_then(|length| length.checked_add(usize::from(digit - b'0')))
            .ok_or_else(bad)
    })
}

fn contains_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&byte| byte == b',')
        .any(|part| part.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Returns the length of a complete chunked body, `None` while incomplete.
/// Trailers are accepted and ignored.
pub(super) fn chunked_body_end(body: &[u8]) -> Result<Option<usize>, SendFailure> {
    let bad = || invalid("bad chunked encoding");
    let mut position = 0;
    loop {
        let Some(line_end) = find_crlf(&body[position..]) else {
            return Ok(None);
        };
        let line = &body[position..position + line_end];
        let size_text = line.split(|&byte| byte == b';').next().unwrap_or_default();
        let size_text = std::str::from_utf8(size_text).map_err(|_| bad())?;
        let size = usize::from_str_radix(size_text.trim(), 16).map_err(|_| bad())?;
        position += line_end + 2;
        if size == 0 {
            // The trailer section ends with an empty line.
            loop {
                let Some(trailer_end) = find_crlf(&body[position..]) else {
                    return Ok(None);
                };
                position += trailer_end + 2;
                if trailer_end == 0 {
                    return Ok(Some(position));
                }
            }
        }
        let chunk_end = position.checked_add(size + 2).ok_or_else(bad)?;
        if body.len() < chunk_end {
            return Ok(None);
        }
        position = chunk_end;
    }
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|pair| pair == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(head: &[u8]) -> Head {
        parse_head(head).unwrap().unwrap()
    }

    fn rejected(head: &[u8]) -> String {
        match parse_head(head) {
            Err(error) => error.to_string(),
            Ok(head) => panic!("accepted: {head:?}"),
        }
    }

    #[test]
    fn chunked_body_complete() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";

        assert_eq!(chunked_body_end(body).unwrap(), Some(body.len()));
        assert_eq!(chunked_body_end(&body[..body.len() - 1]).unwrap(), None);
        assert_eq!(chunked_body_end(b"5\r\nhel").unwrap(), None);
        assert!(chunked_body_end(b"zz\r\n").is_err());
    }

    #[test]
    fn head_reads_framing_and_timing() {
        let head = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 19\r\n\
            Server-Timing: authz;dur=0.004\r\n\r\nRBAC: access denied";

        let parsed = parsed(head);

        assert_eq!(parsed.status, 403);
        assert_eq!(parsed.framing, Framing::Length(19));
        assert!(parsed.keep_alive);
        assert_eq!(parsed.authz, Some(Duration::from_micros(4)));
        assert_eq!(parsed.authn, None);
        assert_eq!(&head[parsed.length..], b"RBAC: access denied");
    }

    #[test]
    fn head_without_length_reads_until_close() {
        let parsed = parsed(b"HTTP/1.1 200 OK\r\n\r\n");

        assert_eq!(parsed.framing, Framing::UntilClose);
        assert!(!parsed.keep_alive);
    }

    #[test]
    fn incomplete_head_asks_for_more() {
        for partial in [
            &b""[..],
            b"HTTP/1.1 200",
            b"HTTP/1.1 200 OK\r\nConte",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r",
        ] {
            assert!(parse_head(partial).unwrap().is_none(), "{partial:?}");
        }
    }

    #[test]
    fn field_names_ignore_case() {
        let parsed = parsed(
            b"HTTP/1.1 200 OK\r\nCONTENT-length:\t 5 \r\nconnection: Keep-Alive, Upgrade\r\n\r\n",
        );

        assert_eq!(parsed.framing, Framing::Length(5));
        assert!(parsed.keep_alive);
    }

    #[test]
    fn bare_line_feeds_are_accepted() {
        let head = b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok";

        let parsed = parsed(head);

        assert_eq!(parsed.framing, Framing::Length(2));
        assert_eq!(&head[parsed.length..], b"ok");
    }

    #[test]
    fn transfer_encoding_overrides_content_length() {
        let parsed = parsed(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        );

        assert_eq!(parsed.framing, Framing::Chunked);
    }

    #[test]
    fn bodiless_statuses_have_no_body() {
        for status in ["101", "204", "304"] {
            let head = format!("HTTP/1.1 {status} X\r\nContent-Length: 7\r\n\r\n");

            assert_eq!(
                parsed(head.as_bytes()).framing,
                Framing::Length(0),
                "{status}"
            );
        }
    }

    #[test]
    fn http_1_0_closes_unless_kept_alive() {
        let closes = parsed(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        let kept =
            parsed(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n");
        let closed = parsed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");

        assert!(!closes.keep_alive);
        assert!(kept.keep_alive);
        assert!(!closed.keep_alive);
    }

    #[test]
    fn status_line_without_reason_is_accepted() {
        assert_eq!(
            parsed(b"HTTP/1.1 503\r\nContent-Length: 0\r\n\r\n").status,
            503
        );
    }

    #[test]
    fn malformed_heads_are_rejected() {
        let cases: [&[u8]; 8] = [
            b"HTTP/2 200 OK\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"SMTP ready\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n",
        ];
        for head in cases {
            let error = rejected(head);

            assert!(
                error.starts_with("invalid HTTP response: "),
                "{head:?}: {error}"
            );
        }
    }

    #[test]
    fn bad_or_conflicting_lengths_are_rejected() {
        let negative = rejected(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n");
        let conflicting =
            rejected(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
        let repeated = parsed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n");

        assert!(
            negative.contains("Content-Length is not a number"),
            "{negative}"
        );
        assert!(conflicting.contains("conflicting"), "{conflicting}");
        assert_eq!(repeated.framing, Framing::Length(2));
    }

    #[test]
    fn too_many_fields_are_rejected() {
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        for index in 0..=MAX_FIELDS {
            head.extend_from_slice(format!("X-{index}: y\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");

        assert!(rejected(&head).contains("too many headers"));
    }

    #[test]
    fn huge_content_length_is_rejected_not_wrapped() {
        let error = rejected(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n");

        assert!(error.contains("Content-Length"), "{error}");
    }
}
