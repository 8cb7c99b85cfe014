//! A byte scanner for the usual shape of a batch body: `{"records": [...]}`
//! whose records hold only the string and count fields, with plain strings
//! and whole numbers.
//!
//! Reading a 1,000-record body with serde took about half the server's time
//! per batch under batch ingest: a generic visitor per field, a
//! field-name match per key. Agent runtimes send exactly this shape, so the
//! scanner reads it in one pass over the bytes. It accepts a subset of JSON
//! and reads it as serde does; anything else (an escape, a fraction or an
//! exponent, `metadata` or `at`, an unknown member, a repeated field) makes
//! it answer None and the body goes on to serde (`batch_body.rs`), so it never
//! decides what a body means on its own.

use crate::db::usage_columns::{RecordColumns, RecordRef};

/// The records of `text` when it has the usual shape and every record passes
/// `accept` (at most `max_records` of them), else None.
pub(super) fn scan(
    text: &str,
    max_records: usize,
    accept: impl Fn(&RecordRef<'_>) -> bool,
) -> Option<RecordColumns> {
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    let mut columns = RecordColumns::for_body(text.len());
    s.byte(b'{')?;
    if s.key()? != "records" {
        return None;
    }
    s.byte(b'[')?;
    if !s.peek_is(b']') {
        loop {
            let r = s.record()?;
            if columns.len() == max_records || !accept(&r) {
                return None;
            }
            columns.push(r, None, None);
            if !s.comma_or(b']')? {
                break;
            }
        }
    } else {
        s.byte(b']')?;
    }
    s.byte(b'}')?;
    s.skip_ws();
    (s.at == s.bytes.len()).then_some(columns)
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

/// Which field a record member names (a bit each, to refuse a repeated one).
#[derive(Clone, Copy)]
enum Field {
    ThreadId = 1,
    AgentId = 2,
    Model = 4,
    Provider = 8,
    PromptTokens = 16,
    CompletionTokens = 32,
    LatencyMs = 64,
    UserId = 128,
    VariantId = 256,
    CachedPromptTokens = 512,
    CacheWriteTokens = 1024,
    ReasoningTokens = 2048,
}

impl Field {
    fn named(name: &str) -> Option<Field> {
        Some(match name {
            "threadId" => Field::ThreadId,
            "agentId" => Field::AgentId,
            "model" => Field::Model,
            "provider" => Field::Provider,
            "promptTokens" => Field::PromptTokens,
            "completionTokens" => Field::CompletionTokens,
            "latencyMs" => Field::LatencyMs,
            "userId" => Field::UserId,
            "variantId" => Field::VariantId,
            "cachedPromptTokens" => Field::CachedPromptTokens,
            "cacheWriteTokens" => Field::CacheWriteTokens,
            "reasoningTokens" => Field::ReasoningTokens,
            _ => return None,
        })
    }
}

impl<'a> Scanner<'a> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn peek_is(&mut self, b: u8) -> bool {
        self.skip_ws();
        self.bytes.get(self.at) == Some(&b)
    }

    /// The byte `b`, after any whitespace.
    fn byte(&mut self, b: u8) -> Option<()> {
        if self.peek_is(b) {
            self.at += 1;
            Some(())
        } else {
            None
        }
    }

    /// After a member or an element: true at a comma, false at `close`.
    fn comma_or(&mut self, close: u8) -> Option<bool> {
        self.skip_ws();
        match self.bytes.get(self.at) {
            Some(b',') => {
                self.at += 1;
                Some(true)
            }
            Some(&b) if b == close => {
                self.at += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// A string without escapes or control characters (serde would read
    /// those; here they send the body to serde).
    fn string(&mut self) -> Option<&'a str> {
        self.byte(b'"')?;
        let start = self.at;
        let rest = self.bytes.get(start..)?;
        let len = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest[len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        self.text.get(start..start + len)
    }

    /// A member's name and its colon.
    fn key(&mut self) -> Option<&'a str> {
        let k = self.string()?;
        self.byte(b':')?;
        Some(k)
    }

    /// `null`, after any whitespace.
    fn null(&mut self) -> bool {
        if self.peek_is(b'n') && self.bytes[self.at..].starts_with(b"null") {
            self.at += 4;
            true
        } else {
            false
        }
    }

    fn opt_string(&mut self) -> Option<Option<&'a str>> {
        if self.null() {
            Some(None)
        } else {
            self.string().map(Some)
        }
    }

    /// A whole number without sign, fraction or exponent (JSON allows no
    /// leading zero); one that does not fit an i64 sends the body to serde.
    fn count(&mut self) -> Option<i64> {
        self.skip_ws();
        let start = self.at;
        let mut n: i64 = 0;
        while let Some(&d @ b'0'..=b'9') = self.bytes.get(self.at) {
            n = n.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
            self.at += 1;
        }
        let digits = self.at - start;
        let leading_zero = digits > 1 && self.bytes[start] == b'0';
        let continues = matches!(self.bytes.get(self.at), Some(b'.' | b'e' | b'E'));
        (digits > 0 && !leading_zero && !continues).then_some(n)
    }

    fn opt_count(&mut self) -> Option<Option<i64>> {
        if self.null() {
            Some(None)
        } else {
            self.count().map(Some)
        }
    }

    /// One record object with the required fields, each field at most once.
    fn record(&mut self) -> Option<RecordRef<'a>> {
        self.byte(b'{')?;
        let mut r = RecordRef {
            thread_id: "",
            agent_id: None,
            model: "",
            provider: None,
            prompt_tokens: 0,
            completion_tokens: 0,
            latency_ms: None,
            user_id: None,
            variant_id: None,
            cached_prompt_tokens: None,
            cache_write_tokens: None,
            reasoning_tokens: None,
        };
        let mut seen = 0u32;
        if self.peek_is(b'}') {
            return None; // (the required fields are missing)
        }
        loop {
            let field = Field::named(self.key()?)?;
            if seen & field as u32 != 0 {
                return None;
            }
            seen |= field as u32;
            match field {
                Field::ThreadId => r.thread_id = self.string()?,
                Field::AgentId => r.agent_id = self.opt_string()?,
                Field::Model => r.model = self.string()?,
                Field::Provider => r.provider = self.opt_string()?,
                Field::PromptTokens => r.prompt_tokens = self.count()?,
                Field::CompletionTokens => r.completion_tokens = self.count()?,
                Field::LatencyMs => r.latency_ms = self.opt_count()?,
                Field::UserId => r.user_id = self.opt_string()?,
                Field::VariantId => r.variant_id = self.opt_string()?,
                Field::CachedPromptTokens => r.cached_prompt_tokens = self.opt_count()?,
                Field::CacheWriteTokens => r.cache_write_tokens = self.opt_count()?,
                Field::ReasoningTokens => r.reasoning_tokens = self.opt_count()?,
            }
            if !self.comma_or(b'}')? {
                break;
            }
        }
        let required = Field::ThreadId as u32
            | Field::Model as u32
            | Field::PromptTokens as u32
            | Field::CompletionTokens as u32;
        (seen & required == required).then_some(r)
    }
}
