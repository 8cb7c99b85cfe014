//! The console in a real browser (headless Chromium over WebDriver): it
//! loads with no console error, asks for a key and then shows the organism,
//! a spend made through the API reaches the feed panel within 5 s, the
//! usage chart has a bar for each day with records, pausing an agent from
//! the page pauses it in the API, a reader key gets no pause button and an
//! open server needs no key. Screenshots of every view, laptop and phone
//! width, go to target/console-screenshots/.

use crate::support::browser::Browser;
use crate::support::console::{
    key, ok, open_view, screenshots, seed, sign_in, AGENT, FEED_LATENCY, ORGANISM, PATIENCE, USER,
};
use crate::support::{TestServer, ADMIN_KEY};
use serde_json::json;
use std::time::Instant;

#[tokio::test]
async fn the_console_in_a_browser() {
    let Some(b) = Browser::launch().await else {
        return;
    };
    let server = TestServer::start_with(|c| c.organism = ORGANISM.into()).await;
    let days = seed(&server).await;
    let console = server.http_url("/console");

    // A key is needed: the page asks for one, without console errors.
    b.goto(&console).await;
    b.wait_for(
        "!document.getElementById('login').hidden",
        PATIENCE,
        "the key form",
    )
    .await;
    assert_eq!(
        b.js("return document.getElementById('app').hidden").await,
        json!(true)
    );
    b.screenshot("login-laptop").await;
    b.assert_quiet_console("loading the page").await;

    sign_in(&b, ADMIN_KEY).await;
    let facts = b
        .js("return document.getElementById('org-facts').textContent")
        .await;
    assert!(facts.as_str().unwrap().contains("2 agents"), "{facts}");
    // The key is kept for this tab only.
    let stored = b
        .js("return sessionStorage.getItem('agentplane.key')")
        .await;
    assert_eq!(stored, json!(ADMIN_KEY));
    assert_eq!(b.js("return localStorage.length").await, json!(0));

    // A spend made through the API shows in the feed panel within 5 s.
    let started = Instant::now();
    ok(server.post(
        &format!("/api/v1/users/{USER}/credits/spend"),
        json!({"blockId": "llm", "input": {}, "amount": 11, "idempotencyKey": "live-1"}),
    ))
    .await;
    let spent = "[...document.querySelectorAll('#feed-list li[data-type=\"credits.changed\"]')]\
                 .some(li => /amount=-?11(?!\\d)/.test(li.textContent))";
    b.wait_for(spent, FEED_LATENCY, "the spend in the feed")
        .await;
    eprintln!("spend reached the feed panel in {:?}", started.elapsed());

    // Filters hide what does not match; pause holds new events back.
    b.type_into("#f-user", "someone-else").await;
    b.wait_for(
        &format!("!({spent})"),
        PATIENCE,
        "the filter hiding the spend",
    )
    .await;
    b.type_into("#f-user", USER).await;
    b.wait_for(spent, PATIENCE, "the filter showing the spend again")
        .await;
    b.click("#feed-pause").await;
    ok(server.post(
        &format!("/api/v1/users/{USER}/credits/spend"),
        json!({"blockId": "llm", "input": {}, "amount": 13, "idempotencyKey": "live-2"}),
    ))
    .await;
    b.wait_for(
        "document.getElementById('feed-status').textContent.includes('paused, 1 new')",
        PATIENCE,
        "the paused feed counting the new event",
    )
    .await;
    let held = "[...document.querySelectorAll('#feed-list li')].some(li => /amount=-?13(?!\\d)/.test(li.textContent))";
    assert_eq!(b.js(&format!("return {held}")).await, json!(false));
    b.click("#feed-pause").await;
    b.wait_for(held, PATIENCE, "the held event after resuming")
        .await;
    b.type_into("#f-user", "").await;

    // Credits of a user: balance, available, ledger.
    open_view(&b, "credits").await;
    b.type_into("#c-user", USER).await;
    b.click("#credits-form button[type=submit]").await;
    b.wait_for(
        "document.getElementById('credits-balance')?.textContent === '969'",
        PATIENCE,
        "the balance",
    )
    .await;
    let held = b
        .js("return document.getElementById('credits-held').textContent")
        .await;
    assert_eq!(held, json!("20"));
    let available = b
        .js("return document.getElementById('credits-available').textContent")
        .await;
    assert_eq!(available, json!("949"));
    b.wait_for(
        "document.querySelectorAll('#credits-ledger tbody tr').length >= 3",
        PATIENCE,
        "the ledger",
    )
    .await;

    // Usage: a bar with data for each day that has records, and only those.
    open_view(&b, "usage").await;
    b.wait_for(
        "document.querySelector('#chart-tokens')",
        PATIENCE,
        "the usage chart",
    )
    .await;
    let bars = b
        .js("return [...document.querySelectorAll('#chart-tokens rect.has-data')].map(r => r.dataset.date)")
        .await;
    assert_eq!(bars, json!(days), "days with data in the chart");
    let all = b
        .js("return document.querySelectorAll('#chart-tokens rect').length")
        .await;
    assert_eq!(all, json!(30));
    let today_tokens = b
        .js(&format!(
            "return document.querySelector('#chart-tokens rect[data-date=\"{}\"]').dataset.value",
            days[1]
        ))
        .await;
    assert_eq!(today_tokens, json!("950"));
    // Thread budgets: fullest first, 90 % or more marked.
    let budgets = b
        .js("return [...document.querySelectorAll('#budgets tbody tr')].map(r => [r.dataset.thread, r.classList.contains('hot')])")
        .await;
    assert_eq!(budgets[0], json!(["t-hot", true]), "{budgets}");
    assert!(
        budgets.as_array().unwrap()[1..]
            .iter()
            .all(|r| r[1] == json!(false)),
        "{budgets}"
    );

    // Agents: pausing from the page pauses the agent in the API.
    open_view(&b, "agents").await;
    let pause = format!("button[data-action=pause][data-agent={AGENT}]");
    b.wait_for(
        &format!("document.querySelector('{pause}')"),
        PATIENCE,
        "the pause button",
    )
    .await;
    b.click(&pause).await;
    b.wait_for(
        &format!("document.querySelector('tr[data-agent={AGENT}] [data-state]')?.dataset.state === 'paused'"),
        PATIENCE,
        "the paused state on the page",
    )
    .await;
    let agent = ok(server.get(&format!("/api/v1/agents/{AGENT}"))).await;
    assert_eq!(agent["state"], "paused", "{agent}");
    b.wait_for(
        &format!("document.querySelector('button[data-action=resume][data-agent={AGENT}]')"),
        PATIENCE,
        "the resume button",
    )
    .await;

    // Variants side by side.
    open_view(&b, "variants").await;
    b.wait_for(
        "document.querySelectorAll('#variants-table thead th[data-slug]').length === 2",
        PATIENCE,
        "two variants",
    )
    .await;
    let text = b
        .js("return document.getElementById('variants-table').textContent")
        .await;
    for want in [
        "p50 latency",
        "p95 latency",
        "Success rate",
        "66.7 %",
        "Runs",
    ] {
        assert!(text.as_str().unwrap().contains(want), "{want} in {text}");
    }

    // The keyboard alone: Tab reaches the views' links, Enter opens one, and
    // the focused element shows a visible outline.
    b.js("document.getElementById('tab-agents').focus()").await;
    b.keys(&fantoccini::key::Key::Tab.to_string()).await;
    assert_eq!(
        b.js("return document.activeElement.id").await,
        json!("tab-variants")
    );
    let outline = b
        .js("return getComputedStyle(document.activeElement).outlineStyle")
        .await;
    assert_ne!(outline, json!("none"), "no visible focus");
    b.keys(&fantoccini::key::Key::Enter.to_string()).await;
    b.wait_for(
        "!document.getElementById('view-variants').hidden",
        PATIENCE,
        "the variants view opened with Enter",
    )
    .await;
    b.js("document.querySelector('#v-agent').focus()").await;
    b.keys(&fantoccini::key::Key::Tab.to_string()).await;
    assert_eq!(
        b.js("return document.activeElement.textContent").await,
        json!("Compare")
    );

    screenshots(&b, "admin").await;
    b.assert_quiet_console("using the console as admin").await;

    // A reader sees everything but gets no pause or resume button.
    let reader = key(&server, "reader").await;
    b.click("#forget").await;
    // A wrong key is refused on the form (the browser logs that 401: the
    // log is read and dropped here).
    b.wait_for(
        "!document.getElementById('login').hidden",
        PATIENCE,
        "the key form again",
    )
    .await;
    b.type_into("#key-input", "ap_wrong").await;
    b.click("#key-form button[type=submit]").await;
    b.wait_for(
        "document.getElementById('key-error').textContent.includes('not valid')",
        PATIENCE,
        "the refusal",
    )
    .await;
    assert_eq!(
        b.js("return document.getElementById('app').hidden").await,
        json!(true)
    );
    let _ = b.console_log().await;
    sign_in(&b, &reader).await;
    assert_eq!(
        b.js("return document.getElementById('who').textContent")
            .await,
        json!("reader key")
    );
    open_view(&b, "agents").await;
    b.wait_for(
        &format!("document.querySelector('tr[data-agent={AGENT}]')"),
        PATIENCE,
        "the agents table",
    )
    .await;
    let buttons = b
        .js("return document.querySelectorAll('#agents-body button').length")
        .await;
    assert_eq!(
        buttons,
        json!(0),
        "a reader must see no pause or resume button"
    );
    b.screenshot("reader-agents-laptop").await;
    b.assert_quiet_console("using the console as a reader")
        .await;

    // A key bound to a user: its credits only, its daily usage, and no
    // request the server would refuse it (so no console error either).
    let bound = ok(server.post(
        "/api/v1/keys",
        json!({"name": "ada's", "role": "service", "userId": USER}),
    ))
    .await;
    b.click("#forget").await;
    sign_in(&b, bound["key"].as_str().unwrap()).await;
    open_view(&b, "credits").await;
    b.wait_for(
        "document.getElementById('credits-balance')?.textContent === '969'",
        PATIENCE,
        "the bound user's balance",
    )
    .await;
    assert_eq!(
        b.js("return document.getElementById('c-user').readOnly")
            .await,
        json!(true)
    );
    open_view(&b, "usage").await;
    b.wait_for(
        "document.querySelectorAll('#chart-tokens rect.has-data').length === 2",
        PATIENCE,
        "the bound user's days",
    )
    .await;
    b.screenshot("bound-usage-laptop").await;
    b.assert_quiet_console("using the console with a bound key")
        .await;

    // An open server needs no key: the page goes straight to the views.
    let open = TestServer::start_with(|c| {
        c.admin_key = None;
        c.organism = ORGANISM.into();
    })
    .await;
    // (no key at all: the test admin key is not configured on this server)
    let status = reqwest::Client::new()
        .put(open.http_url("/api/v1/agents/solo"))
        .json(&json!({}))
        .send()
        .await
        .expect("register solo")
        .status();
    assert_eq!(status, 200);
    b.goto(&open.http_url("/console")).await;
    b.wait_for(
        "!document.getElementById('app').hidden",
        PATIENCE,
        "the views without a key",
    )
    .await;
    assert_eq!(
        b.js("return document.getElementById('login').hidden").await,
        json!(true)
    );
    open_view(&b, "agents").await;
    b.wait_for(
        "document.querySelector('button[data-action=pause][data-agent=solo]')",
        PATIENCE,
        "pause on an open server",
    )
    .await;
    b.click("button[data-action=pause][data-agent=solo]").await;
    b.wait_for(
        "document.querySelector('tr[data-agent=solo] [data-state]')?.dataset.state === 'paused'",
        PATIENCE,
        "solo paused",
    )
    .await;
    b.assert_quiet_console("using an open server").await;

    b.close().await;
    open.stop().await;
    server.stop().await;
}

#[test]
fn a_missing_browser_skips_unless_required() {
    use crate::support::browser::find;
    let nowhere = &["/nonexistent/chromium"];
    assert_eq!(find(nowhere, nowhere, false), Ok(None));
    let required = find(nowhere, nowhere, true).unwrap_err();
    assert!(
        required.contains("AGENTPLANE_REQUIRE_BROWSER=1"),
        "{required}"
    );
}
