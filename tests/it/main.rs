//! The integration tests, in one binary: one module per domain, and the
//! harness they share in `support`. One binary links once and, when no
//! DATABASE_URL is set, starts one throwaway cluster for the whole run.
//!
//! A new test file: `tests/it/<name>.rs`, declared below with `mod <name>;`,
//! taking its helpers from `crate::support`.

mod support;

mod access;
mod access_ws;
mod agents;
mod asyncapi;
mod citus_plan;
mod connections;
mod console;
mod console_browser;
mod credits;
mod credits_concurrency;
mod credits_input;
mod db_errors;
mod db_tls;
mod feed;
mod feed_credits;
mod feed_events;
mod feed_large_events;
mod feed_notify;
mod feed_relay;
mod feed_sse;
mod feed_ws;
mod feed_ws_faults;
mod foundation;
mod local_cluster;
mod operations;
mod schema;
mod spec_walk;
mod spend_outcome;
mod spend_queue;
mod sql_inlining;
mod strict_input;
mod usage;
mod usage_fold;
mod variants;
mod variants_props;
mod webhooks;
mod webhooks_delivery;
