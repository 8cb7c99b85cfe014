//! `Nullable<T>`: a response field that is always sent and may be `null`.
//!
//! poem-openapi maps `Option<T>` to an optional property of type `T`, but a
//! response always carries the key (`null` when there is no value), so a
//! generated client that trusts the document fails on the `null`. This type
//! says what the server does: the property is required and `nullable: true`.
//! Request bodies keep `Option<T>` (the key may be left out).

use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde_json::Value;
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Nullable<T>(pub Option<T>);

impl<T> Nullable<T> {
    pub fn into_inner(self) -> Option<T> {
        self.0
    }
}

impl<T> From<Option<T>> for Nullable<T> {
    fn from(v: Option<T>) -> Self {
        Nullable(v)
    }
}

impl<T> std::ops::Deref for Nullable<T> {
    type Target = Option<T>;
    fn deref(&self) -> &Option<T> {
        &self.0
    }
}

impl<T: Type> Type for Nullable<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        format!("nullable_{}", T::name()).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        match T::schema_ref() {
            MetaSchemaRef::Inline(schema) => MetaSchemaRef::Inline(Box::new(MetaSchema {
                nullable: true,
                ..*schema
            })),
            // A `$ref` cannot carry siblings in OpenAPI 3.0: wrap it.
            reference => MetaSchemaRef::Inline(Box::new(MetaSchema {
                all_of: vec![reference],
                nullable: true,
                ..MetaSchema::ANY
            })),
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_ref().and_then(|v| v.as_raw_value())
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        match &self.0 {
            Some(v) => v.raw_element_iter(),
            None => Box::new(std::iter::empty()),
        }
    }

    fn is_none(&self) -> bool {
        self.0.is_none()
    }
}

/// A missing key reads as `null` too: the jsonb a SQL function answers may
/// leave a null out, and the value sent is the same either way.
impl<T: ParseFromJSON> ParseFromJSON for Nullable<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::Null => Ok(Nullable(None)),
            v => T::parse_from_json(Some(v))
                .map(|v| Nullable(Some(v)))
                .map_err(ParseError::propagate),
        }
    }
}

impl<T: ToJSON> ToJSON for Nullable<T> {
    fn to_json(&self) -> Option<Value> {
        Some(
            self.0
                .as_ref()
                .and_then(ToJSON::to_json)
                .unwrap_or(Value::Null),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use serde_json::json;

    #[test]
    fn schema_is_required_and_nullable() {
        const { assert!(<Nullable<String> as Type>::IS_REQUIRED) };
        let MetaSchemaRef::Inline(s) = Nullable::<DateTime<Utc>>::schema_ref() else {
            panic!("inline schema expected")
        };
        assert!(s.nullable);
        assert_eq!((s.ty, s.format), ("string", Some("date-time")));
    }

    #[test]
    fn null_and_missing_read_as_none_and_none_is_sent_as_null() {
        assert_eq!(
            Nullable::<i64>::parse_from_json(None).ok(),
            Some(Nullable(None))
        );
        assert_eq!(
            Nullable::<i64>::parse_from_json(Some(Value::Null)).ok(),
            Some(Nullable(None))
        );
        assert_eq!(
            Nullable::<i64>::parse_from_json(Some(json!(3))).ok(),
            Some(Nullable(Some(3)))
        );
        assert!(Nullable::<i64>::parse_from_json(Some(json!("x"))).is_err());
        assert_eq!(Nullable::<i64>(None).to_json(), Some(Value::Null));
        assert_eq!(Nullable(Some(3i64)).to_json(), Some(json!(3)));
    }
}
