//! SQL hygiene that the speed of every operation depends on.
//!
//! A LANGUAGE sql helper that PostgreSQL cannot inline is parsed and planned
//! again on every call. That happens silently when a helper is declared more
//! strictly than its body allows (IMMUTABLE around to_char or
//! jsonb_build_object, which are STABLE): before this test, `ap.ts` and the
//! credits.changed event body cost a spend about a quarter of its time.

use crate::support::TestDb;

/// Every non-volatile scalar SQL helper of ours whose body is one expression
/// (no FROM) is inlined into a generic plan that calls it.
#[tokio::test]
async fn scalar_sql_helpers_are_inlined() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let helpers = c
        .query(
            "SELECT p.oid::regprocedure::text,
                    p.oid::regproc::text,
                    coalesce((SELECT string_agg(format_type(t, NULL), ', ' ORDER BY o)
                              FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, o)), ''),
                    p.pronargs
             FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace
             JOIN pg_language l ON l.oid = p.prolang
             WHERE l.lanname = 'sql'
               AND n.nspname IN ('ap', 'auth', 'credits', 'feed', 'usage', 'agents',
                                 'variants', 'executions')
               AND NOT p.proretset AND p.prorettype <> 'void'::regtype
               AND p.provolatile <> 'v' AND p.prosrc !~* '\\mfrom\\M'
               AND NOT 'anyelement'::regtype = ANY (p.proargtypes::oid[])
             ORDER BY 1",
            &[],
        )
        .await
        .expect("list helpers");
    assert!(helpers.len() >= 10, "the catalog query found the helpers");
    c.batch_execute("SET plan_cache_mode = force_generic_plan")
        .await
        .expect("generic plans");
    let mut not_inlined = Vec::new();
    for (i, row) in helpers.iter().enumerate() {
        let (signature, name, types, nargs): (String, String, String, i16) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        // Parameters, not constants: an IMMUTABLE function of constants is
        // folded to its value whether or not it was inlined.
        let params: Vec<String> = (1..=nargs).map(|k| format!("${k}")).collect();
        let nulls = vec!["NULL"; nargs as usize].join(", ");
        let stmt = format!("q{i}");
        let prepare = if nargs == 0 {
            format!("PREPARE {stmt} AS SELECT {name}()")
        } else {
            format!(
                "PREPARE {stmt}({types}) AS SELECT {name}({})",
                params.join(", ")
            )
        };
        c.batch_execute(&prepare).await.expect("prepare");
        let execute = if nargs == 0 {
            format!("EXPLAIN (VERBOSE, COSTS OFF) EXECUTE {stmt}")
        } else {
            format!("EXPLAIN (VERBOSE, COSTS OFF) EXECUTE {stmt}({nulls})")
        };
        if let Some(plan) = plan_calling(&c, &execute, &name).await {
            not_inlined.push(format!("{signature}: {plan}"));
        }
    }
    assert!(
        not_inlined.is_empty(),
        "not inlined (declared more strictly than the body, or not one expression):\n{}",
        not_inlined.join("\n")
    );
}

/// The helpers that render a table's row take it as `anyelement` (Citus
/// forbids functions taking a distributed table's row type): each one whose
/// body is one expression is inlined into a query over its table all the same.
#[tokio::test]
async fn row_helpers_are_inlined() {
    // (helper, its table [and the arguments after the row])
    const ROW_HELPERS: &[(&str, &str)] = &[
        ("agents.agent_json", "agents.agents, 0"),
        ("agents.effective_state", "agents.agents"),
        ("agents.thread_json", "agents.threads"),
        ("credits.block_costs_json", "credits.block_costs"),
        ("credits.ledger_event_body", "credits.transactions"),
        ("credits.tx_json", "credits.transactions"),
        ("credits.user_json", "credits.users"),
        ("executions.node_json", "executions.node_executions"),
        ("executions.node_wire", "executions.node_executions"),
        ("variants.to_json", "variants.variants"),
    ];
    let db = TestDb::new().await;
    let c = db.client().await;
    let listed: Vec<String> = c
        .query(
            "SELECT p.oid::regproc::text
             FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace
             JOIN pg_language l ON l.oid = p.prolang
             WHERE l.lanname = 'sql'
               AND n.nspname IN ('ap', 'auth', 'credits', 'feed', 'usage', 'agents',
                                 'variants', 'executions')
               AND NOT p.proretset AND p.provolatile <> 'v'
               AND 'anyelement'::regtype = ANY (p.proargtypes::oid[])
               AND p.prosrc !~* '\\mfrom\\M'
             ORDER BY 1",
            &[],
        )
        .await
        .expect("list row helpers")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let known: Vec<String> = ROW_HELPERS.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(
        listed, known,
        "every row helper is checked here (add new ones)"
    );
    let mut not_inlined = Vec::new();
    for (helper, table_and_args) in ROW_HELPERS {
        let (table, more) = match table_and_args.split_once(", ") {
            Some((t, a)) => (t, format!(", {a}")),
            None => (*table_and_args, String::new()),
        };
        let explain =
            format!("EXPLAIN (VERBOSE, COSTS OFF) SELECT {helper}(r{more}) FROM {table} r");
        if let Some(plan) = plan_calling(&c, &explain, helper).await {
            not_inlined.push(format!("{helper}: {plan}"));
        }
    }
    assert!(
        not_inlined.is_empty(),
        "not inlined:\n{}",
        not_inlined.join("\n")
    );
}

/// The plan `explain` prints, when it still calls `function` (the call was
/// not inlined); None when the plan names it nowhere.
async fn plan_calling(c: &tokio_postgres::Client, explain: &str, function: &str) -> Option<String> {
    let lines: Vec<String> = c
        .query(explain, &[])
        .await
        .expect("explain")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let plan = lines.join("\n");
    plan.contains(&format!("{function}(")).then_some(plan)
}
