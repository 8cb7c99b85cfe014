//! OpenAPI 3.0 schemas (what poem-openapi writes) as JSON Schema: the
//! AsyncAPI document needs JSON Schema, and the tests validate bodies with a
//! JSON Schema validator.

use serde_json::{json, Map, Value};

/// OpenAPI 3.0 schema -> JSON Schema: `nullable: true` admits `null`
/// (whatever else the schema says, `$ref`/`allOf` included), and the boolean
/// `exclusiveMinimum`/`exclusiveMaximum` become the numeric form.
pub fn from_openapi(v: &Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(from_openapi).collect()),
        Value::Object(obj) => {
            let mut out = Map::new();
            for (k, v) in obj {
                // `properties` holds names, not keywords: convert each value.
                out.insert(k.clone(), from_openapi(v));
            }
            for (flag, bound) in [
                ("exclusiveMaximum", "maximum"),
                ("exclusiveMinimum", "minimum"),
            ] {
                match out.get(flag) {
                    Some(Value::Bool(true)) => {
                        let limit = out.remove(bound).unwrap_or(Value::Null);
                        out.insert(flag.to_string(), limit);
                    }
                    Some(Value::Bool(false)) => {
                        out.remove(flag);
                    }
                    _ => {}
                }
            }
            if out.remove("nullable") == Some(Value::Bool(true)) {
                return json!({ "anyOf": [{ "type": "null" }, Value::Object(out)] });
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}
