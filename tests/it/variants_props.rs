//! Agent variants: property tests (proptest) and concurrency tests run
//! against the real SQL functions in sql/variants/, never a copy of them.

use crate::support::variants::{add_agent, agent_config};
use crate::support::TestDb;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};
use tokio::runtime::Runtime;

const CASES: u32 = 64;

/// (JSON key, strategy kind) of every AgentConfig field.
const FIELDS: [(&str, &str); 12] = [
    ("modelProvider", "text"),
    ("modelName", "text"),
    ("systemPrompt", "text"),
    ("userPromptTemplate", "text"),
    ("promptVersion", "text"),
    ("temperature", "temperature"),
    ("maxTokens", "pos"),
    ("contextWindow", "nonneg"),
    ("inputTokenLimit", "nonneg"),
    ("tokenBudget", "big"),
    ("timeoutSeconds", "pos"),
    ("maxRetries", "retries"),
];

/// A valid value for a config field.
fn field_value(kind: &str) -> BoxedStrategy<Value> {
    match kind {
        "text" => prop_oneof![
            "[a-zA-Z0-9 ]{0,12}".prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::from),
        ]
        .boxed(),
        "temperature" => (0u32..=200).prop_map(|x| json!(x as f64 / 100.0)).boxed(),
        "pos" => (1i64..100_000).prop_map(|x| json!(x)).boxed(),
        "nonneg" => (0i64..1_000_000).prop_map(|x| json!(x)).boxed(),
        "big" => (0i64..10_000_000_000).prop_map(|x| json!(x)).boxed(),
        _ => (0i64..=10).prop_map(|x| json!(x)).boxed(),
    }
}

/// A random subset of config fields, each a value or an explicit null.
fn config_subset() -> impl Strategy<Value = Map<String, Value>> {
    let parts: Vec<BoxedStrategy<Option<(String, Value)>>> = FIELDS
        .iter()
        .map(|(k, kind)| {
            let k = k.to_string();
            prop::option::of(prop_oneof![1 => Just(Value::Null), 3 => field_value(kind)])
                .prop_map(move |v| v.map(|v| (k.clone(), v)))
                .boxed()
        })
        .collect();
    parts.prop_map(|v| v.into_iter().flatten().collect())
}

/// A full config with every field set.
fn full_config() -> impl Strategy<Value = Map<String, Value>> {
    let parts: Vec<BoxedStrategy<(String, Value)>> = FIELDS
        .iter()
        .map(|(k, kind)| {
            let k = k.to_string();
            field_value(kind).prop_map(move |v| (k.clone(), v)).boxed()
        })
        .collect();
    parts.prop_map(|v| v.into_iter().collect())
}

/// Numbers compared as numbers (SQL prints 1.0 as 1).
fn norm(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        other => other.clone(),
    }
}

fn config_of(v: &Value) -> Value {
    Value::Object(
        FIELDS
            .iter()
            .map(|(k, _)| (k.to_string(), norm(&v[*k])))
            .collect(),
    )
}

struct Env {
    rt: Runtime,
    client: tokio_postgres::Client,
    _db: TestDb,
}

impl Env {
    fn new() -> Env {
        let rt = Runtime::new().unwrap();
        let db = rt.block_on(TestDb::new());
        let client = rt.block_on(db.client());
        rt.block_on(add_agent(&client, "bot"));
        Env {
            rt,
            client,
            _db: db,
        }
    }

    fn sql(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Value {
        self.rt
            .block_on(self.client.query_one(sql, params))
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
            .get(0)
    }
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn slugify_is_deterministic_lowercase_kebab_and_keeps_ascii_alnum() {
    let env = Env::new();
    let names = prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9 _.,!?éÄ€-]{0,40}",
        "[ -~]{100,300}",
    ]
    .prop_map(|s| s.replace('\0', ""));
    runner()
        .run(&names, |name| {
            let row = env.rt.block_on(env.client.query_one(
                "SELECT variants.slugify($1), variants.slugify($1), \
                        variants.slugify(variants.slugify($1))",
                &[&name],
            ));
            let row = row.unwrap();
            let (a, b, again): (Option<String>, Option<String>, Option<String>) =
                (row.get(0), row.get(1), row.get(2));
            prop_assert_eq!(&a, &b, "deterministic");
            let alnum: String = name
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .map(|c| c.to_ascii_lowercase())
                .collect();
            match a {
                None => prop_assert!(alnum.is_empty(), "{:?} has a letter or digit", name),
                Some(s) => {
                    prop_assert!(!s.is_empty() && s.len() <= 128);
                    prop_assert!(s
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
                    prop_assert!(!s.starts_with('-') && !s.ends_with('-') && !s.contains("--"));
                    let kept: String = s.chars().filter(|c| *c != '-').collect();
                    // every ASCII letter/digit of the name, in order (a prefix when truncated)
                    prop_assert!(alnum.starts_with(&kept), "{:?} -> {:?}", name, s);
                    if s.len() < 120 {
                        prop_assert_eq!(&kept, &alnum);
                    }
                    prop_assert_eq!(again.as_deref(), Some(s.as_str()), "a slug is its own slug");
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn random_activation_sequences_leave_at_most_the_last_one_active() {
    let env = Env::new();
    for i in 0..4 {
        env.sql(
            "SELECT variants.create('bot', $1)",
            &[&json!({"name": format!("v{i}")})],
        );
    }
    // None = deactivate, Some(i) = activate v{i}
    let ops = prop::collection::vec(prop::option::of(0usize..4), 1..12);
    runner()
        .run(&ops, |ops| {
            env.sql("SELECT variants.deactivate('bot')", &[]);
            let mut expected: Option<String>;
            for op in ops {
                match op {
                    Some(i) => {
                        let slug = format!("v{i}");
                        let v = env.sql("SELECT variants.activate('bot', $1)", &[&slug]);
                        prop_assert_eq!(&v["isActive"], &json!(true));
                        expected = Some(slug);
                    }
                    None => {
                        env.sql("SELECT variants.deactivate('bot')", &[]);
                        expected = None;
                    }
                }
                let row = env
                    .rt
                    .block_on(env.client.query_one(
                        "SELECT count(*) FILTER (WHERE is_active), \
                                max(slug) FILTER (WHERE is_active) \
                         FROM variants.variants WHERE agent_name = 'bot'",
                        &[],
                    ))
                    .unwrap();
                let (n, active): (i64, Option<String>) = (row.get(0), row.get(1));
                prop_assert!(n <= 1);
                prop_assert_eq!(&active, &expected);
                // the resolved config agrees
                let r = env.sql("SELECT variants.resolved_config('bot')", &[]);
                prop_assert_eq!(r["variantSlug"].as_str(), expected.as_deref());
                // and so does the activation history
                // (no history row yet when every call so far was a no-op)
                let last: Option<String> = env
                    .rt
                    .block_on(env.client.query_opt(
                        "SELECT v.slug FROM variants.activations h \
                         LEFT JOIN variants.variants v \
                                ON v.agent_name = h.agent_name AND v.id = h.variant_id \
                         WHERE h.agent_name = 'bot' ORDER BY h.at DESC, h.id DESC LIMIT 1",
                        &[],
                    ))
                    .unwrap()
                    .and_then(|r| r.get(0));
                prop_assert_eq!(&last, &expected);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn clone_keeps_every_field_not_overridden_and_takes_every_override() {
    let env = Env::new();
    let counter = std::cell::Cell::new(0u32);
    let case = (any::<bool>(), full_config(), config_subset());
    runner()
        .run(&case, |(from_variant, src_cfg, overrides)| {
            counter.set(counter.get() + 1);
            let n = counter.get();
            let (source, source_cfg) = if from_variant {
                let mut body = src_cfg.clone();
                body.insert("name".into(), json!(format!("src {n}")));
                let v = env.sql("SELECT variants.create('bot', $1)", &[&Value::Object(body)]);
                (v["slug"].as_str().map(String::from), config_of(&v))
            } else {
                (None, config_of(&agent_config()))
            };
            let c = env.sql(
                "SELECT variants.clone('bot', $1, $2, NULL, $3)",
                &[
                    &source,
                    &format!("clone {n}"),
                    &Value::Object(overrides.clone()),
                ],
            );
            prop_assert_eq!(&c["slug"], &json!(format!("clone-{n}")));
            prop_assert_eq!(&c["isActive"], &json!(false));
            for (k, _) in FIELDS {
                let want = match overrides.get(k) {
                    Some(o) => norm(o),
                    None => source_cfg[k].clone(),
                };
                prop_assert_eq!(&norm(&c[k]), &want, "field {}", k);
            }
            // no overrides: equal to the source
            let same = env.sql(
                "SELECT variants.clone('bot', $1, $2, $3, '{}')",
                &[&source, &format!("same {n}"), &format!("same-{n}")],
            );
            prop_assert_eq!(config_of(&same), source_cfg);
            Ok(())
        })
        .unwrap();
}

#[test]
fn patch_twice_equals_patch_once_and_untouched_fields_stay() {
    let env = Env::new();
    let counter = std::cell::Cell::new(0u32);
    let case = (full_config(), config_subset(), any::<bool>());
    runner()
        .run(&case, |(initial, patch, rename)| {
            counter.set(counter.get() + 1);
            let n = counter.get();
            let mut body = initial.clone();
            body.insert("name".into(), json!(format!("p {n}")));
            let v = env.sql("SELECT variants.create('bot', $1)", &[&Value::Object(body)]);
            let slug = v["slug"].as_str().unwrap().to_string();
            let mut patch = patch;
            if rename {
                patch.insert("name".into(), json!(format!("renamed {n}")));
            }
            let patch = Value::Object(patch);
            let once = env.sql("SELECT variants.patch('bot', $1, $2)", &[&slug, &patch]);
            let twice = env.sql("SELECT variants.patch('bot', $1, $2)", &[&slug, &patch]);
            prop_assert_eq!(&once, &twice, "the same PATCH twice leaves the same state");
            let stored = env.sql("SELECT variants.get('bot', $1)", &[&slug]);
            prop_assert_eq!(&stored, &once);
            for (k, _) in FIELDS {
                let want = match patch.get(k) {
                    Some(p) => norm(p),
                    None => norm(&v[k]),
                };
                prop_assert_eq!(&norm(&once[k]), &want, "field {}", k);
            }
            let name = if rename {
                json!(format!("renamed {n}"))
            } else {
                v["name"].clone()
            };
            prop_assert_eq!(&once["name"], &name);
            for k in ["id", "slug", "agentName", "isActive", "createdAt"] {
                prop_assert_eq!(&once[k], &v[k]);
            }
            Ok(())
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_activations_end_with_exactly_one_active() {
    let db = TestDb::new().await;
    let c = db.client().await;
    add_agent(&c, "bot").await;
    for i in 0..5 {
        agentplane::db::variants::create(&c, "bot", &json!({"name": format!("v{i}")}))
            .await
            .unwrap();
    }
    let pool = db.pool();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let client = pool.get().await.unwrap();
            agentplane::db::variants::activate(&**client, "bot", &format!("v{}", i % 5)).await
        }));
    }
    for t in tasks {
        let v = t.await.unwrap().expect("every activation succeeds");
        assert_eq!(v["isActive"], true);
    }
    let row = c
        .query_one(
            "SELECT count(*) FILTER (WHERE is_active), max(id::text) FILTER (WHERE is_active) \
             FROM variants.variants WHERE agent_name = 'bot'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    let active: String = row.get(1);
    // the one active is the last activated, and every real activation emitted one event
    let last: String = c
        .query_one(
            "SELECT variant_id::text FROM variants.activations WHERE agent_name = 'bot' \
             ORDER BY at DESC, id DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(active, last);
    let (history, events): (i64, i64) = {
        let r = c
            .query_one(
                "SELECT (SELECT count(*) FROM variants.activations), \
                        (SELECT count(*) FROM feed.events WHERE type = 'variant.activated')",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!((1..=50).contains(&history));
    assert_eq!(history, events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_activate_deactivate_delete_keep_the_invariant() {
    let db = TestDb::new().await;
    let c = db.client().await;
    add_agent(&c, "bot").await;
    for i in 0..3 {
        agentplane::db::variants::create(&c, "bot", &json!({"name": format!("v{i}")}))
            .await
            .unwrap();
    }
    let pool = db.pool();
    let mut tasks = Vec::new();
    for i in 0..30 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let client = pool.get().await.unwrap();
            let slug = format!("v{}", 1 + (i / 3) % 2);
            match i % 3 {
                0 => agentplane::db::variants::deactivate(&**client, "bot")
                    .await
                    .map(|_| ()),
                1 => match agentplane::db::variants::activate(&**client, "bot", &slug).await {
                    // v2 may already be deleted
                    Err(e) if e.mapped().status == 404 => Ok(()),
                    other => other.map(|_| ()),
                },
                _ => match agentplane::db::variants::delete(&**client, "bot", "v2").await {
                    // deleting the active one is a clean 409; an already deleted one 404
                    Err(e) if [404, 409].contains(&e.mapped().status) => Ok(()),
                    other => other.map(|_| ()),
                },
            }
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("no unexpected error");
    }
    // (at most one active row is the unique index's job; what the functions
    // must get right is that it is the one the last activation chose)
    let consistent: bool = c
        .query_one(
            "SELECT (SELECT id FROM variants.variants WHERE agent_name = 'bot' AND is_active)
                    IS NOT DISTINCT FROM
                    (SELECT variant_id FROM variants.activations WHERE agent_name = 'bot'
                      ORDER BY at DESC, id DESC LIMIT 1)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        consistent,
        "the active variant is not the last one activated"
    );
}

#[test]
fn resolution_sql_falls_back_per_null_field() {
    let env = Env::new();
    let r = env.sql("SELECT variants.resolved_config('bot')", &[]);
    assert_eq!(r["variantId"], Value::Null);
    assert_eq!(config_of(&r), config_of(&agent_config()));
    env.sql(
        "SELECT variants.create('bot', $1)",
        &[&json!({"name": "v", "maxTokens": 7, "modelName": "m2"})],
    );
    env.sql(
        "SELECT variants.patch('bot', 'v', $1)",
        &[&json!({"modelName": null, "promptVersion": null})],
    );
    let v = env.sql("SELECT variants.activate('bot', 'v')", &[]);
    let r = env.sql("SELECT variants.resolved_config('bot')", &[]);
    assert_eq!(r["variantId"], v["id"]);
    let mut want = agent_config();
    want["maxTokens"] = json!(7);
    assert_eq!(config_of(&r), config_of(&want));
}
