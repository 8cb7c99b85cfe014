//! agentplane: the PostgreSQL control plane for AI-agent platforms.
//!
//! The rules live in SQL (`migrations/`, `sql/`); this crate authenticates,
//! validates the shape of input, calls one SQL function per operation and
//! maps results and SQLSTATEs to HTTP.

pub mod api;
pub mod asyncapi;
pub mod config;
pub mod connections;
pub mod console;
pub mod db;
pub mod feed;
pub mod localpg;
pub mod server;
pub mod telemetry;
pub mod webhooks;
