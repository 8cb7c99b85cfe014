//! Filter matching against the SQL function, compared with expectations
//! stated from how the data was generated.
use proptest::prelude::*;
use serde_json::{Map, Value};

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0i64..5).prop_map(Value::from),
        "[a-c]{1,2}".prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
    ]
}

fn input() -> impl Strategy<Value = Map<String, Value>> {
    let leaf = prop_oneof![
        4 => scalar(),
        1 => Just(Value::Null),
        1 => Just(Value::from("")),
    ];
    let nested = prop::collection::btree_map("[p-r]", leaf.clone(), 0..3)
        .prop_map(|m| Value::Object(m.into_iter().collect()));
    prop::collection::btree_map("[a-e]", prop_oneof![3 => leaf, 1 => nested], 0..5)
        .prop_map(|m| m.into_iter().collect())
}

/// A filter contained in `input` (a subset, recursively), chosen by `picks`.
fn subset(input: &Map<String, Value>, picks: &[bool]) -> Map<String, Value> {
    let mut out = Map::new();
    for (i, (k, v)) in input.iter().enumerate() {
        if !picks.get(i).copied().unwrap_or(false) {
            continue;
        }
        let v = match v {
            Value::Object(inner) => {
                let rotated: Vec<bool> = picks.iter().skip(i + 1).copied().collect();
                Value::Object(subset(inner, &rotated))
            }
            other => other.clone(),
        };
        out.insert(k.clone(), v);
    }
    out
}

fn matches(rt: &tokio::runtime::Runtime, c: &tokio_postgres::Client, f: &Value, i: &Value) -> bool {
    rt.block_on(async {
        c.query_one("SELECT credits.filter_matches($1, $2)", &[f, i])
            .await
            .unwrap()
            .get(0)
    })
}

#[test]
fn filter_matching() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(super::TestDb::new());
    let c = rt.block_on(db.client());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
    runner
        .run(
            &(
                input(),
                prop::collection::vec(any::<bool>(), 8),
                "[v-z]",
                0usize..3,
                scalar(),
            ),
            |(inp, picks, absent_key, empty_kind, other)| {
                let input = Value::Object(inp.clone());
                // 1. any subset matches
                let f = subset(&inp, &picks);
                prop_assert!(
                    matches(&rt, &c, &Value::Object(f.clone()), &input),
                    "subset {f:?} of {input}"
                );
                // 2. a key the input lacks, asked to be null / "" / {}, still matches
                let empty = match empty_kind {
                    0 => Value::Null,
                    1 => Value::from(""),
                    _ => Value::Object(Map::new()),
                };
                let mut f2 = f.clone();
                f2.insert(absent_key.clone(), empty);
                prop_assert!(
                    matches(&rt, &c, &Value::Object(f2.clone()), &input),
                    "{f2:?} on {input}"
                );
                // 3. null and "" in the input are alike for the filter
                for (k, v) in &inp {
                    if v.is_null() || v == &Value::from("") {
                        for alt in [Value::Null, Value::from("")] {
                            let mut f3 = Map::new();
                            f3.insert(k.clone(), alt);
                            prop_assert!(matches(&rt, &c, &Value::Object(f3), &input));
                        }
                    }
                }
                // 4. a key whose value differs does not match
                for (k, v) in &inp {
                    let is_empty = v.is_null() || v == &Value::from("");
                    if !is_empty && !v.is_object() && v != &other {
                        let mut f4 = f.clone();
                        f4.insert(k.clone(), other.clone());
                        prop_assert!(
                            !matches(&rt, &c, &Value::Object(f4.clone()), &input),
                            "{f4:?} on {input}"
                        );
                        // and a non-empty scalar never matches a missing key
                        let mut f5 = Map::new();
                        f5.insert(absent_key.clone(), v.clone());
                        prop_assert!(!matches(&rt, &c, &Value::Object(f5), &input));
                    }
                }
                Ok(())
            },
        )
        .unwrap();
    drop(c);
    drop(db);
}
