//! Field types shared by the request bodies of every resource.

use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde_json::Value;
use std::borrow::Cow;

/// The impls a strict string newtype shares with `String` (schema name,
/// serialisation, conversions); only its schema and parsing differ, so each
/// type passes its `schema_ref` here and writes its own `ParseFromJSON`.
macro_rules! string_newtype {
    ($ty:ident, $schema_ref:expr) => {
        impl From<$ty> for String {
            fn from(t: $ty) -> String {
                t.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $ty {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl Type for $ty {
            const IS_REQUIRED: bool = true;
            type RawValueType = String;
            type RawElementValueType = String;

            fn name() -> Cow<'static, str> {
                String::name()
            }

            fn schema_ref() -> MetaSchemaRef {
                $schema_ref
            }

            fn register(registry: &mut Registry) {
                String::register(registry)
            }

            fn as_raw_value(&self) -> Option<&String> {
                Some(&self.0)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }

        impl ToJSON for $ty {
            fn to_json(&self) -> Option<Value> {
                Some(Value::String(self.0.clone()))
            }
        }
    };
}

/// A JSON string and nothing else: poem-openapi's `String` also accepts
/// numbers and booleans, which would turn `{"name": 5}` into `"5"` instead
/// of a 400: a wrong JSON type is bad input. Every string field of a
/// request body uses it, and the string validators (`min_length`,
/// `max_length`, `pattern`, custom) apply as usual.
///
/// PostgreSQL text cannot hold U+0000, so a string with one could never be
/// stored: it is refused here, and the schema's pattern says so (a field's
/// own `pattern` replaces it, and those patterns exclude U+0000 as well).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl Text {
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// The pattern `Text` documents: any string without U+0000.
pub const TEXT_PATTERN: &str = r"^[^\u0000]*$";

string_newtype!(
    Text,
    MetaSchemaRef::Inline(Box::new(MetaSchema {
        pattern: Some(TEXT_PATTERN.to_string()),
        ..MetaSchema::new("string")
    }))
);

impl ParseFromJSON for Text {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(s) if s.contains('\0') => Err(ParseError::custom(
                "text cannot contain U+0000 (PostgreSQL cannot store it)",
            )),
            Value::String(s) => Ok(Text(s)),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

// The identifier rule, written once for Rust: 1 to `ident_max_len!()`
// characters of the class `ident_class!()`. The byte table, the pattern the
// schema documents and the error texts are all derived from these two.
// (Macros rather than consts: `concat!` takes only literals.)
macro_rules! ident_class {
    () => {
        "A-Za-z0-9._:@/-"
    };
}
macro_rules! ident_max_len {
    () => {
        128
    };
}

/// The longest identifier, in bytes (every allowed character is one byte).
pub const IDENT_MAX_LEN: usize = ident_max_len!();

/// The rule in words, for error messages.
pub const IDENT_RULE: &str = concat!(
    "1-",
    ident_max_len!(),
    " characters of [",
    ident_class!(),
    "]"
);

/// Identifier check for body fields read in bulk (a usage batch holds up to
/// 10,000 records) or several to a body: poem-openapi's `pattern` validator
/// compiles its regex on every value, which costs ~0.1 ms each. Same rule as
/// [`IDENT_PATTERN`].
pub struct IdentCheck;

impl std::fmt::Display for IdentCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "identifier: {IDENT_RULE}")
    }
}

/// Whether an identifier may hold each byte value: one lookup per byte (a
/// batch of 1,000 usage records checks 3,000 identifiers). Built from the
/// class's text: `x-y` is a range, any other byte stands for itself.
const IDENT_BYTES: [bool; 256] = {
    let class = ident_class!().as_bytes();
    let mut table = [false; 256];
    let mut i = 0;
    while i < class.len() {
        if i + 2 < class.len() && class[i + 1] == b'-' {
            let mut c = class[i];
            while c <= class[i + 2] {
                table[c as usize] = true;
                c += 1;
            }
            i += 3;
        } else {
            table[class[i] as usize] = true;
            i += 1;
        }
    }
    table
};

impl<T: AsRef<str>> poem_openapi::validation::Validator<T> for IdentCheck {
    fn check(&self, value: &T) -> bool {
        let s = value.as_ref();
        (1..=IDENT_MAX_LEN).contains(&s.len()) && s.bytes().all(|b| IDENT_BYTES[b as usize])
    }
}

/// A strict string that is an identifier (the `IdentCheck` rule), for
/// bodies that carry several: the check runs without a regex, while the
/// schema still documents [`IDENT_PATTERN`], exactly as `Text` with that
/// `pattern` validator would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident(pub String);

/// The pattern `Ident` documents.
pub const IDENT_PATTERN: &str = concat!("^[", ident_class!(), "]{1,", ident_max_len!(), "}$");

string_newtype!(
    Ident,
    MetaSchemaRef::Inline(Box::new(MetaSchema {
        pattern: Some(IDENT_PATTERN.to_string()),
        ..MetaSchema::new("string")
    }))
);

impl ParseFromJSON for Ident {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        use poem_openapi::validation::Validator;
        match value.unwrap_or_default() {
            Value::String(s) if IdentCheck.check(&s) => Ok(Ident(s)),
            Value::String(_) => Err(ParseError::custom(IdentCheck.to_string())),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

/// Path and query parameters: the same check, so an identifier in a URL
/// costs no regex either (poem-openapi's `pattern` validator compiles its
/// regex on every request).
impl poem_openapi::types::ParseFromParameter for Ident {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        use poem_openapi::validation::Validator;
        if IdentCheck.check(&value) {
            Ok(Ident(value.to_string()))
        } else {
            Err(ParseError::custom(IdentCheck.to_string()))
        }
    }
}

/// A JSON object in a request body (a message payload, a block input,
/// metadata). The schema says `object`, so generated clients send one; the
/// value is passed on as it came and the SQL function that takes it refuses
/// anything else (400 with its own error code), as it always did.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonObject(pub Value);

impl JsonObject {
    pub fn into_inner(self) -> Value {
        self.0
    }
}

impl Type for JsonObject {
    const IS_REQUIRED: bool = true;
    type RawValueType = Value;
    type RawElementValueType = Value;

    fn name() -> Cow<'static, str> {
        "object".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new("object")))
    }

    fn register(_registry: &mut Registry) {}

    fn as_raw_value(&self) -> Option<&Value> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Value> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromJSON for JsonObject {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        Ok(JsonObject(value.unwrap_or_default()))
    }
}

impl ToJSON for JsonObject {
    fn to_json(&self) -> Option<Value> {
        Some(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem_openapi::validation::Validator;
    use serde_json::json;

    #[test]
    fn ident_parameters_follow_the_identifier_rule() {
        use poem_openapi::types::ParseFromParameter;
        for ok in ["a", "user-1", "a.b_c:d@e/f", &"x".repeat(128)] {
            assert!(Ident::parse_from_parameter(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "é", "a?b", &"x".repeat(129)] {
            assert!(Ident::parse_from_parameter(bad).is_err(), "{bad}");
        }
    }

    /// The byte table holds exactly the identifier characters.
    #[test]
    fn ident_check_accepts_exactly_the_identifier_characters() {
        for c in (0u8..128).map(char::from).chain(['\u{e9}', '\u{2014}']) {
            let allowed = c.is_ascii_alphanumeric() || "._:@/-".contains(c);
            assert_eq!(IdentCheck.check(&c.to_string()), allowed, "{c:?}");
        }
    }

    #[test]
    fn text_takes_only_strings() {
        assert_eq!(
            Text::parse_from_json(Some(json!("a"))).ok(),
            Some(Text("a".into()))
        );
        for v in [
            json!(5),
            json!(true),
            json!({}),
            json!([]),
            Value::Null,
            json!("a\u{0}b"),
        ] {
            assert!(Text::parse_from_json(Some(v)).is_err());
        }
        assert!(Text::parse_from_json(None).is_err());
    }

    #[test]
    fn ident_takes_only_identifier_strings() {
        assert_eq!(
            Ident::parse_from_json(Some(json!("a.b"))).ok(),
            Some(Ident("a.b".into()))
        );
        for v in [
            json!(5),
            json!(true),
            json!({}),
            Value::Null,
            json!(""),
            json!("a b"),
        ] {
            assert!(Ident::parse_from_json(Some(v)).is_err());
        }
    }

    #[test]
    fn ident_check_matches_the_pattern() {
        let long = "x".repeat(128);
        for s in ["a", "A.b_c:d@e/f-9", long.as_str()] {
            assert!(IdentCheck.check(&s), "{s}");
        }
        let too_long = "x".repeat(129);
        for s in ["", " ", "a b", "\u{e9}", too_long.as_str()] {
            assert!(!IdentCheck.check(&s), "{s}");
        }
    }
}
