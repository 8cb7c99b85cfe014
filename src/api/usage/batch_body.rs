//! The body of `POST /usage/records/batch`, read without building a JSON tree
//! first.
//!
//! poem-openapi's `Json<T>` parses a body into a `serde_json::Value` and then
//! walks it into `T`: for a 1,000-record batch that took 1.3 ms, most of the
//! server's time per batch under batch ingest. `BatchBody` reads the
//! records straight from the bytes with serde and checks them by the rules
//! `UsageRecordIn` declares. Whatever that fast path does not accept goes
//! through `Json<RecordBatch>`'s own path, so a refused body gets the error
//! poem-openapi gives it, and the OpenAPI document describes both (same
//! schema, same content type). The database checks every record again in any case.

use super::batch_scan;
use super::types::{RecordBatch, UsageRecordIn};
use crate::api::types::IdentCheck;
use crate::db::usage::NewRecord;
use crate::db::usage_columns::{RecordColumns, RecordRef};
use chrono::{DateTime, Utc};
use poem::{FromRequest, Request, RequestBody};
use poem_openapi::{
    error::{ContentTypeError, ParseRequestPayloadError},
    payload::{Json, ParsePayload, Payload},
    registry::{MetaMediaType, MetaRequest, MetaSchemaRef, Registry},
    types::{ParseFromJSON, Type},
    validation::Validator,
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::fmt;

/// The records of a batch body, in body order.
pub struct BatchBody(pub RecordColumns);

/// Most records a batch may hold (`RecordBatch`'s `max_items`).
const MAX_RECORDS: usize = 10_000;
/// Largest token count or latency (`UsageRecordIn`'s `maximum`).
const MAX_COUNT: i64 = 1_000_000_000;

/// One record of a body as the fast path reads it: strings borrowed from
/// the body. A string written with an escape cannot be borrowed, so it
/// fails here and the body takes the checked path (no identifier has a
/// character that needs one; `\/` may still spell a `/`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRecord<'a> {
    thread_id: &'a str,
    #[serde(borrow)]
    agent_id: Option<&'a str>,
    model: &'a str,
    #[serde(borrow)]
    provider: Option<&'a str>,
    prompt_tokens: i64,
    completion_tokens: i64,
    latency_ms: Option<i64>,
    #[serde(borrow)]
    user_id: Option<&'a str>,
    #[serde(borrow)]
    variant_id: Option<&'a str>,
    metadata: Option<Value>,
    at: Option<DateTime<Utc>>,
    cached_prompt_tokens: Option<i64>,
    cache_write_tokens: Option<i64>,
    reasoning_tokens: Option<i64>,
}

/// Whether `UsageRecordIn`'s validators accept `r` (serde has checked the
/// types; a missing optional field reads as None, unknown fields are
/// ignored, as there).
fn is_valid(r: &RecordRef<'_>) -> bool {
    let ident = |s: &str| IdentCheck.check(&s);
    let count = |n: i64| (0..=MAX_COUNT).contains(&n);
    ident(r.thread_id)
        && r.agent_id.is_none_or(ident)
        && ident(r.model)
        && r.provider
            .is_none_or(|p| (1..=128).contains(&p.chars().count()))
        && count(r.prompt_tokens)
        && count(r.completion_tokens)
        && r.latency_ms.is_none_or(count)
        && r.user_id.is_none_or(ident)
        && r.variant_id.is_none_or(ident)
        && r.cached_prompt_tokens.is_none_or(count)
        && r.cache_write_tokens.is_none_or(count)
        && r.reasoning_tokens.is_none_or(count)
}

/// Reads the body's `records` array into columns, record by record, and
/// stops at the first record the fast path does not accept.
struct RecordsSeed<'c>(&'c mut RecordColumns);

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of usage records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(w) = seq.next_element::<WireRecord<'de>>()? {
            let r = RecordRef {
                thread_id: w.thread_id,
                agent_id: w.agent_id,
                model: w.model,
                provider: w.provider,
                prompt_tokens: w.prompt_tokens,
                completion_tokens: w.completion_tokens,
                latency_ms: w.latency_ms,
                user_id: w.user_id,
                variant_id: w.variant_id,
                cached_prompt_tokens: w.cached_prompt_tokens,
                cache_write_tokens: w.cache_write_tokens,
                reasoning_tokens: w.reasoning_tokens,
            };
            if self.0.len() == MAX_RECORDS || !is_valid(&r) {
                return Err(de::Error::custom("not for the fast path"));
            }
            self.0.push(r, w.metadata, w.at);
        }
        Ok(())
    }
}

/// The body object: its `records` (once), any other member ignored.
struct BodySeed<'c>(&'c mut RecordColumns);

impl<'de> Visitor<'de> for BodySeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with records")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<&str>()? {
            if key != "records" {
                map.next_value::<IgnoredAny>()?;
            } else if seen {
                return Err(de::Error::duplicate_field("records"));
            } else {
                seen = true;
                map.next_value_seed(RecordsSeed(self.0))?;
            }
        }
        if !seen {
            return Err(de::Error::missing_field("records"));
        }
        Ok(())
    }
}

/// The records when the fast path accepts the body, else None. The body is
/// checked as UTF-8 once, whole, so neither the scanner nor serde checks each
/// string again. The scanner reads the usual shape; serde reads the rest.
fn parse_fast(data: &[u8]) -> Option<RecordColumns> {
    let text = std::str::from_utf8(data).ok()?;
    batch_scan::scan(text, MAX_RECORDS, is_valid).or_else(|| parse_serde(text))
}

/// The fast path's reading with serde: records into columns, strings
/// borrowed from the body.
fn parse_serde(text: &str) -> Option<RecordColumns> {
    let mut columns = RecordColumns::for_body(text.len());
    let mut d = serde_json::Deserializer::from_str(text);
    d.deserialize_map(BodySeed(&mut columns)).ok()?;
    d.end().ok()?;
    Some(columns)
}

/// poem-openapi's `Json<RecordBatch>` reading of the same bytes (its
/// `from_request`, minus reading the body).
fn parse_checked(data: &[u8]) -> Result<RecordColumns, ParseRequestPayloadError> {
    let value = if data.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(data).map_err(|e| ParseRequestPayloadError {
            reason: e.to_string(),
        })?
    };
    let batch =
        RecordBatch::parse_from_json(Some(value)).map_err(|e| ParseRequestPayloadError {
            reason: e.into_message(),
        })?;
    let records: Vec<NewRecord> = batch
        .records
        .into_iter()
        .map(|r: UsageRecordIn| r.into())
        .collect();
    Ok(RecordColumns::from(records.as_slice()))
}

impl Payload for BatchBody {
    const CONTENT_TYPE: &'static str = Json::<RecordBatch>::CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        Json::<RecordBatch>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        RecordBatch::schema_ref()
    }

    fn register(registry: &mut Registry) {
        RecordBatch::register(registry);
    }
}

impl ParsePayload for BatchBody {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let data = <Vec<u8> as FromRequest>::from_request(request, body).await?;
        match parse_fast(&data) {
            Some(records) => Ok(Self(records)),
            None => Ok(Self(parse_checked(&data)?)),
        }
    }
}

impl<'a> ApiExtractor<'a> for BatchBody {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Self as Payload>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: <Self as Payload>::CONTENT_TYPE,
                schema: <Self as Payload>::schema_ref(),
            }],
            required: <Self as ParsePayload>::IS_REQUIRED,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        match request.content_type() {
            Some(content_type) if Self::check_content_type(content_type) => {
                <Self as ParsePayload>::from_request(request, body).await
            }
            Some(content_type) => Err(ContentTypeError::NotSupported {
                content_type: content_type.to_string(),
            }
            .into()),
            None => Err(ContentTypeError::ExpectContentType.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record() -> Value {
        json!({"threadId": "t1", "agentId": "a1", "model": "gpt-4o", "provider": "openai",
               "promptTokens": 10, "completionTokens": 5, "latencyMs": 7,
               "userId": "u1", "variantId": "v1",
               "metadata": {"k": 1}, "at": "2026-01-02T03:04:05Z", "extra": true})
    }

    fn body(records: Vec<Value>) -> Vec<u8> {
        serde_json::to_vec(&json!({ "records": records })).unwrap_or_default()
    }

    /// The fast path reads exactly what the checked path reads.
    #[test]
    fn fast_and_checked_paths_agree_on_a_good_body() {
        let data = body(vec![
            record(),
            json!({"threadId": "t2", "model": "o1",
                                              "promptTokens": 0, "completionTokens": 0,
                                              "agentId": null}),
        ]);
        let fast = parse_fast(&data).expect("fast path");
        let checked = parse_checked(&data).expect("checked path");
        assert_eq!(fast, checked);
        assert_eq!(fast.len(), 2);
    }

    /// A string the fast path cannot borrow (written with an escape) sends
    /// the body to the checked path, which reads it.
    #[test]
    fn an_escaped_string_takes_the_checked_path() {
        let data = br#"{"records": [{"threadId": "a\/b", "model": "m",
                        "promptTokens": 1, "completionTokens": 2}], "other": [1]}"#;
        assert!(parse_fast(data).is_none());
        let checked = parse_checked(data).expect("checked path");
        assert_eq!(checked.thread_ids(), vec!["a/b"]);
        let plain = br#"{"other": {"x": 1}, "records": [{"threadId": "a/b", "model": "m",
                         "promptTokens": 1, "completionTokens": 2}]}"#;
        assert_eq!(parse_fast(plain).expect("fast path"), checked);
    }

    /// Every body one of `UsageRecordIn`'s rules refuses leaves the fast path
    /// (and is then refused by the checked path, with its message).
    #[test]
    fn fast_path_accepts_nothing_the_checked_path_refuses() {
        let spoil: [(&str, Value); 14] = [
            ("threadId", json!("a b")),
            ("threadId", json!("x".repeat(129))),
            ("threadId", json!(7)),
            ("agentId", json!("")),
            ("model", json!(null)),
            ("provider", json!("p".repeat(129))),
            ("provider", json!("")),
            ("promptTokens", json!(-1)),
            ("promptTokens", json!(1_000_000_001i64)),
            ("completionTokens", json!(1.5)),
            ("latencyMs", json!("7")),
            ("userId", json!("é")),
            ("variantId", json!([])),
            ("at", json!("yesterday")),
        ];
        for (field, value) in spoil {
            let mut bad = record();
            bad[field] = value.clone();
            let data = body(vec![record(), bad]);
            assert!(parse_fast(&data).is_none(), "{field} = {value}");
            assert!(parse_checked(&data).is_err(), "{field} = {value}");
        }
        let too_many = body(vec![record(); MAX_RECORDS + 1]);
        assert!(parse_fast(&too_many).is_none());
        assert!(parse_checked(&too_many).is_err());
        assert!(parse_fast(b"").is_none());
        assert!(parse_fast(b"{\"records\": {}}").is_none());
        assert!(parse_fast(b"{\"records\": [], \"records\": []}").is_none());
        assert!(parse_fast(b"{\"other\": []}").is_none());
        assert!(parse_fast(b"{\"records\": []} x").is_none());
        assert!(parse_fast(b"{\"records\": [\xff]}").is_none());
    }

    /// The scanner reads the usual body (any whitespace, any field order,
    /// nulls for optional fields) exactly as serde does.
    #[test]
    fn the_scanner_reads_the_usual_body_as_serde_does() {
        let text =
            " {\"records\" : [ {\"threadId\":\"t-1\",\"agentId\":\"agent-3\",\"model\":\"gpt-4o\",
            \"promptTokens\":100,\"completionTokens\":0,\"latencyMs\":250},
            {\"completionTokens\": 5 , \"model\": \"o3-mini\", \"promptTokens\": 1000000000,
             \"threadId\": \"t:2@x/y.z-w_\", \"agentId\": null, \"latencyMs\": null,
             \"provider\": \"Open AI é\", \"userId\": \"u\", \"variantId\": null,
             \"cachedPromptTokens\": 7, \"cacheWriteTokens\": null, \"reasoningTokens\": 2}]}\r\n";
        let scanned = batch_scan::scan(text, MAX_RECORDS, is_valid).expect("scanned");
        assert_eq!(Some(&scanned), parse_serde(text).as_ref());
        assert_eq!(scanned.len(), 2);
        assert_eq!(scanned.providers(), vec![None, Some("Open AI é")]);
        // a breakdown count is kept from the first record that gives it
        assert_eq!(scanned.cached_prompt_tokens(), Some(&[None, Some(7)][..]));
        assert_eq!(scanned.cache_write_tokens(), None);
        assert_eq!(scanned.reasoning_tokens(), Some(&[None, Some(2)][..]));
        let empty = batch_scan::scan("{\"records\":[]}", MAX_RECORDS, is_valid).expect("empty");
        assert!(empty.is_empty());
    }

    /// Everything outside the usual shape is left to serde.
    #[test]
    fn the_scanner_leaves_every_other_body_to_serde() {
        let good = r#""threadId":"t","model":"m","promptTokens":1,"completionTokens":2"#;
        let others = [
            format!(r#"{{"records":[{{{good},"metadata":{{}}}}]}}"#),
            format!(r#"{{"records":[{{{good},"at":"2026-01-01T00:00:00Z"}}]}}"#),
            format!(r#"{{"records":[{{{good},"extra":1}}]}}"#),
            format!(r#"{{"records":[{{{good},"model":"n"}}]}}"#),
            format!(r#"{{"records":[{{{good}}}],"other":1}}"#),
            format!(r#"{{"other":1,"records":[{{{good}}}]}}"#),
            r#"{"records":[{"threadId":"a\/b","model":"m","promptTokens":1,"completionTokens":2}]}"#.into(),
            r#"{"records":[{"threadId":"t","model":"m","promptTokens":01,"completionTokens":2}]}"#.into(),
            r#"{"records":[{"threadId":"t","model":"m","promptTokens":1.0,"completionTokens":2}]}"#.into(),
            r#"{"records":[{"threadId":"t","model":"m","promptTokens":1e3,"completionTokens":2}]}"#.into(),
            r#"{"records":[{"threadId":"t","model":"m","promptTokens":-1,"completionTokens":2}]}"#.into(),
            r#"{"records":[{"threadId":"t","model":"m","promptTokens":99999999999999999999,"completionTokens":2}]}"#.into(),
            r#"{"records":[{"threadId":"t","model":"m","completionTokens":2}]}"#.into(),
            r#"{"records":[{"threadId":"t","model":null,"promptTokens":1,"completionTokens":2}]}"#.into(),
            r#"{"records":[{"threadId":"a b","model":"m","promptTokens":1,"completionTokens":2}]}"#.into(),
            format!(r#"{{"records":[{{{good}}},]}}"#),
            format!(r#"{{"records":[{{{good}}}]}} x"#),
            format!(r#"{{"records":[{{{good},}}]}}"#),
            "{\"records\":[{}]}".into(),
            "{\"records\":[{\"threadId\":\"t\x01\",\"model\":\"m\",\"promptTokens\":1,\"completionTokens\":2}]}".into(),
        ];
        for body in others {
            assert!(
                batch_scan::scan(&body, MAX_RECORDS, is_valid).is_none(),
                "{body}"
            );
        }
        let two = format!(r#"{{"records":[{{{good}}},{{{good}}}]}}"#);
        assert!(batch_scan::scan(&two, 2, is_valid).is_some());
        assert!(batch_scan::scan(&two, 1, is_valid).is_none());
    }

    mod scanner_agrees {
        use super::super::{batch_scan, is_valid, parse_checked, parse_serde, MAX_RECORDS};
        use proptest::prelude::*;

        fn member() -> impl Strategy<Value = String> {
            let name = prop::sample::select(vec![
                "threadId",
                "threadId",
                "model",
                "model",
                "promptTokens",
                "completionTokens",
                "agentId",
                "provider",
                "latencyMs",
                "userId",
                "variantId",
                "cachedPromptTokens",
                "reasoningTokens",
                "metadata",
                "at",
                "other",
            ]);
            let value = prop::sample::select(vec![
                r#""t-1""#,
                r#""gpt-4o""#,
                r#""a/b""#,
                r#""a\/b""#,
                r#""""#,
                r#""x y""#,
                r#""é""#,
                "null",
                "0",
                "7",
                "100",
                "01",
                "1.5",
                "2e3",
                "-1",
                "1000000001",
                "99999999999999999999",
                r#""7""#,
                "{}",
                "[]",
                "true",
            ]);
            let ws = prop::sample::select(vec![
                "", " ", "
	", "
 ",
            ]);
            (name, value, ws.clone(), ws)
                .prop_map(|(n, v, a, b)| format!(r#"{a}"{n}"{b}:{a}{v}{b}"#))
        }

        fn record() -> impl Strategy<Value = String> {
            let usual = Just(
                r#""threadId":"t","model":"m","promptTokens":1,"completionTokens":2"#.to_string(),
            );
            (
                prop::option::of(usual),
                prop::collection::vec(member(), 0..6),
            )
                .prop_map(|(base, extra)| {
                    let mut parts: Vec<String> = base.into_iter().collect();
                    parts.extend(extra);
                    format!("{{{}}}", parts.join(","))
                })
        }

        proptest! {
            /// Whatever the scanner accepts, serde and poem-openapi read the
            /// same way.
            #[test]
            fn on_what_it_accepts(records in prop::collection::vec(record(), 0..4)) {
                let text = format!(r#"{{"records":[{}]}}"#, records.join(","));
                if let Some(scanned) = batch_scan::scan(&text, MAX_RECORDS, is_valid) {
                    let by_serde = parse_serde(&text);
                    prop_assert_eq!(Some(&scanned), by_serde.as_ref(), "{}", text);
                    // and poem-openapi's own reading, the reference
                    prop_assert_eq!(Some(scanned), parse_checked(text.as_bytes()).ok(), "{}", text);
                }
            }
        }
    }
}
