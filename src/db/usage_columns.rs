//! A usage batch as `usage.record_batch` takes it: one column per field.
//!
//! The batch endpoint reads a body of up to 10,000 records straight into
//! these columns (`src/api/usage/batch_body.rs`). Every string of the batch
//! is copied once into one buffer and each column holds where its strings
//! lie, so reading a 1,000-record body allocates a few vectors instead of
//! three or more strings per record (per-record strings, and moving
//! 200-byte records into a growing vector, would be a third of the server's
//! time per batch).

use super::usage::NewRecord;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::ops::Range;

/// Where one string lies in [`RecordColumns`]' buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// One record's fields, borrowed (from a request body or a [`NewRecord`]).
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    pub thread_id: &'a str,
    pub agent_id: Option<&'a str>,
    pub model: &'a str,
    pub provider: Option<&'a str>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub latency_ms: Option<i64>,
    pub user_id: Option<&'a str>,
    pub variant_id: Option<&'a str>,
    pub cached_prompt_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
}

/// The records of a batch, field by field, in record order.
#[derive(Debug, Default, PartialEq)]
pub struct RecordColumns {
    /// Every string field of every record, back to back.
    text: String,
    thread_ids: Vec<Span>,
    agent_ids: Vec<Option<Span>>,
    models: Vec<Span>,
    providers: Vec<Option<Span>>,
    prompt_tokens: Vec<i64>,
    completion_tokens: Vec<i64>,
    latency_ms: Vec<Option<i64>>,
    user_ids: Vec<Option<Span>>,
    variant_ids: Vec<Option<Span>>,
    metadata: Vec<Option<Value>>,
    at: Vec<Option<DateTime<Utc>>>,
    cached_prompt_tokens: Breakdown,
    cache_write_tokens: Breakdown,
    reasoning_tokens: Breakdown,
}

/// One count of the breakdown, record by record: nothing is kept until a
/// record gives it (most batches give none, and then send a NULL array).
#[derive(Debug, Default, PartialEq)]
struct Breakdown(Option<Vec<Option<i64>>>);

impl Breakdown {
    /// Appends record `i`'s count (`i` records came before it).
    fn push(&mut self, i: usize, v: Option<i64>) {
        match (&mut self.0, v) {
            (Some(all), v) => all.push(v),
            (None, None) => {}
            (None, Some(v)) => {
                let mut all = vec![None; i];
                all.push(Some(v));
                self.0 = Some(all);
            }
        }
    }
}

impl RecordColumns {
    /// Empty columns with room for `records` records and `text` bytes of
    /// strings.
    pub fn with_capacity(records: usize, text: usize) -> Self {
        RecordColumns {
            text: String::with_capacity(text),
            thread_ids: Vec::with_capacity(records),
            agent_ids: Vec::with_capacity(records),
            models: Vec::with_capacity(records),
            providers: Vec::with_capacity(records),
            prompt_tokens: Vec::with_capacity(records),
            completion_tokens: Vec::with_capacity(records),
            latency_ms: Vec::with_capacity(records),
            user_ids: Vec::with_capacity(records),
            variant_ids: Vec::with_capacity(records),
            metadata: Vec::with_capacity(records),
            at: Vec::with_capacity(records),
            cached_prompt_tokens: Breakdown::default(),
            cache_write_tokens: Breakdown::default(),
            reasoning_tokens: Breakdown::default(),
        }
    }

    /// Empty columns sized for a JSON body of `len` bytes (a record of the
    /// usual fields is 120-150 bytes, its strings about 40).
    pub fn for_body(len: usize) -> Self {
        Self::with_capacity(len / 96, len / 3)
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.thread_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.thread_ids.is_empty()
    }

    /// Appends one record.
    pub fn push(&mut self, r: RecordRef<'_>, metadata: Option<Value>, at: Option<DateTime<Utc>>) {
        let i = self.len();
        self.cached_prompt_tokens.push(i, r.cached_prompt_tokens);
        self.cache_write_tokens.push(i, r.cache_write_tokens);
        self.reasoning_tokens.push(i, r.reasoning_tokens);
        let thread_id = self.keep(r.thread_id);
        self.thread_ids.push(thread_id);
        let agent_id = r.agent_id.map(|s| self.keep(s));
        self.agent_ids.push(agent_id);
        let model = self.keep(r.model);
        self.models.push(model);
        let provider = r.provider.map(|s| self.keep(s));
        self.providers.push(provider);
        self.prompt_tokens.push(r.prompt_tokens);
        self.completion_tokens.push(r.completion_tokens);
        self.latency_ms.push(r.latency_ms);
        let user_id = r.user_id.map(|s| self.keep(s));
        self.user_ids.push(user_id);
        let variant_id = r.variant_id.map(|s| self.keep(s));
        self.variant_ids.push(variant_id);
        self.metadata.push(metadata);
        self.at.push(at);
    }

    /// Copies `s` into the buffer. (A body is read whole into memory and is
    /// far below 4 GiB, so u32 offsets hold any position.)
    fn keep(&mut self, s: &str) -> Span {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        Span {
            start,
            end: self.text.len() as u32,
        }
    }

    fn strs(&self, spans: &[Span]) -> Vec<&str> {
        spans.iter().map(|s| &self.text[s.range()]).collect()
    }

    fn opt_strs(&self, spans: &[Option<Span>]) -> Vec<Option<&str>> {
        spans
            .iter()
            .map(|s| s.map(|s| &self.text[s.range()]))
            .collect()
    }

    pub fn thread_ids(&self) -> Vec<&str> {
        self.strs(&self.thread_ids)
    }
    pub fn agent_ids(&self) -> Vec<Option<&str>> {
        self.opt_strs(&self.agent_ids)
    }
    pub fn models(&self) -> Vec<&str> {
        self.strs(&self.models)
    }
    pub fn providers(&self) -> Vec<Option<&str>> {
        self.opt_strs(&self.providers)
    }
    pub fn prompt_tokens(&self) -> &[i64] {
        &self.prompt_tokens
    }
    pub fn completion_tokens(&self) -> &[i64] {
        &self.completion_tokens
    }
    pub fn latency_ms(&self) -> &[Option<i64>] {
        &self.latency_ms
    }
    pub fn user_ids(&self) -> Vec<Option<&str>> {
        self.opt_strs(&self.user_ids)
    }
    pub fn variant_ids(&self) -> Vec<Option<&str>> {
        self.opt_strs(&self.variant_ids)
    }
    pub fn metadata(&self) -> &[Option<Value>] {
        &self.metadata
    }
    pub fn at(&self) -> &[Option<DateTime<Utc>>] {
        &self.at
    }
    /// None when no record gives the count.
    pub fn cached_prompt_tokens(&self) -> Option<&[Option<i64>]> {
        self.cached_prompt_tokens.0.as_deref()
    }
    pub fn cache_write_tokens(&self) -> Option<&[Option<i64>]> {
        self.cache_write_tokens.0.as_deref()
    }
    pub fn reasoning_tokens(&self) -> Option<&[Option<i64>]> {
        self.reasoning_tokens.0.as_deref()
    }
}

impl NewRecord {
    /// This record's string and count fields, borrowed.
    pub fn as_ref(&self) -> RecordRef<'_> {
        RecordRef {
            thread_id: &self.thread_id,
            agent_id: self.agent_id.as_deref(),
            model: &self.model,
            provider: self.provider.as_deref(),
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            latency_ms: self.latency_ms,
            user_id: self.user_id.as_deref(),
            variant_id: self.variant_id.as_deref(),
            cached_prompt_tokens: self.cached_prompt_tokens,
            cache_write_tokens: self.cache_write_tokens,
            reasoning_tokens: self.reasoning_tokens,
        }
    }
}

impl From<&[NewRecord]> for RecordColumns {
    fn from(records: &[NewRecord]) -> Self {
        let mut columns = RecordColumns::with_capacity(records.len(), 0);
        for r in records {
            columns.push(r.as_ref(), r.metadata.clone(), r.at);
        }
        columns
    }
}
