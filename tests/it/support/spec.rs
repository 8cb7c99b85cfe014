//! Every response the HTTP tests receive is checked against the committed
//! `openapi/openapi.json`: the status must be one the operation documents and
//! the body must match that status's schema. Generated clients trust the
//! document, so a field the server sends as `null` where the document says
//! `string`, or an undocumented status, fails the test that produced it.

use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

/// One operation of the document: its path split into segments (`None` for
/// a `{parameter}`) and, per documented status, the schema of its body.
struct Operation {
    id: String,
    method: String,
    segments: Vec<Option<String>>,
    responses: HashMap<String, Option<Value>>,
}

struct Document {
    operations: Vec<Operation>,
    components: Value,
    /// Validators by schema text, compiled on first use: compiling all of
    /// them up front took seconds, during which a test's concurrent
    /// requests stood still.
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

/// The committed document, read once per test binary.
fn document() -> &'static Document {
    static DOC: OnceLock<Document> = OnceLock::new();
    DOC.get_or_init(|| {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
                .expect("openapi/openapi.json");
        let doc: Value = serde_json::from_str(&text).expect("openapi.json is JSON");
        build(&doc)
    })
}

fn build(doc: &Value) -> Document {
    let components = json_schema(&doc["components"]);
    let mut operations = Vec::new();
    for (path, methods) in doc["paths"].as_object().expect("paths") {
        let segments = path
            .split('/')
            .map(|s| (!s.starts_with('{')).then(|| s.to_string()))
            .collect();
        for (method, op) in methods.as_object().expect("methods") {
            let mut responses = HashMap::new();
            for (status, resp) in op["responses"].as_object().expect("responses") {
                let schema = resp["content"]
                    .as_object()
                    // the JSON answer, where an operation also streams
                    .and_then(|c| {
                        c.iter()
                            .find(|(ct, _)| ct.starts_with("application/json"))
                            .map(|(_, m)| m)
                            .or_else(|| c.values().next())
                    })
                    .map(|media| json_schema(&media["schema"]));
                responses.insert(status.clone(), schema);
            }
            operations.push(Operation {
                id: op["operationId"].as_str().expect("operationId").to_string(),
                method: method.to_uppercase(),
                segments: Vec::clone(&segments),
                responses,
            });
        }
    }
    Document {
        operations,
        components,
        validators: Mutex::default(),
    }
}

/// A validator for `schema` (already JSON Schema) whose `$ref`s resolve into
/// the document's components (carried along under the same key, so the
/// pointers hold).
fn validator(schema: &Value) -> Arc<jsonschema::Validator> {
    let doc = document();
    let key = schema.to_string();
    let mut cache = doc.validators.lock().expect("lock");
    let built = cache.entry(key).or_insert_with(|| {
        let root = json!({ "allOf": [schema], "components": doc.components });
        let v = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("schema does not compile: {e}\n{schema}"));
        Arc::new(v)
    });
    Arc::clone(built)
}

/// OpenAPI 3.0 schema -> JSON Schema (the conversion the AsyncAPI document
/// is written with).
pub fn json_schema(v: &Value) -> Value {
    agentplane::api::json_schema::from_openapi(v)
}

/// The operation `method path` belongs to: the template with the most
/// literal segments among those that match (`/variants/compare` before
/// `/variants/{slug}`).
fn operation(method: &str, path: &str) -> Option<&'static Operation> {
    let path = path.split('?').next().unwrap_or(path);
    let parts: Vec<&str> = path.split('/').collect();
    document()
        .operations
        .iter()
        .filter(|op| op.method == method && op.segments.len() == parts.len())
        .filter(|op| {
            op.segments.iter().zip(&parts).all(|(s, p)| match s {
                Some(s) => s == p,
                None => !p.is_empty(),
            })
        })
        .max_by_key(|op| op.segments.iter().filter(|s| s.is_some()).count())
}

/// Operations that answered a success in this test binary.
fn succeeded() -> &'static Mutex<BTreeSet<String>> {
    static SEEN: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    SEEN.get_or_init(Default::default)
}

/// Panics unless `status` is documented for the operation of `method path`
/// and `body` (Null: empty) matches its schema. Paths outside the document
/// (`/ws`, `/docs`, unknown routes) are not checked.
pub fn check(method: &str, path: &str, status: u16, body: &Value) {
    let Some(op) = operation(method, path) else {
        return;
    };
    let Some(schema) = op.responses.get(&status.to_string()) else {
        panic!(
            "{method} {path} ({}) answered {status}, which the document does not list: {body}",
            op.id
        );
    };
    if let Some(schema) = schema {
        let validator = validator(schema);
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path} ({}) {status}: the body does not match the document:\n  {}\nbody: {body}",
            op.id,
            errors.join("\n  ")
        );
    }
    if status < 300 {
        succeeded().lock().expect("lock").insert(op.id.clone());
    }
}

/// Every operationId of the document that has not answered a success yet.
pub fn operations_not_succeeded() -> Vec<String> {
    let seen = succeeded().lock().expect("lock");
    let mut missing: Vec<String> = document()
        .operations
        .iter()
        .filter(|op| !seen.contains(&op.id))
        .map(|op| op.id.clone())
        .collect();
    missing.sort();
    missing
}
