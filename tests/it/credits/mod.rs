//! Credits (docs/credits.md): month semantics, refill policies, holds, history,
//! roles, block prices, reporting views. SQL functions are called directly
//! and through the real HTTP router. Concurrency: credits_concurrency; bad
//! input and the filter property: credits_input.

use crate::support::credits::*;
use crate::support::{column, error_code, TestApp};
use serde_json::{json, Value};

mod holds;
mod ledger;
mod periods;
mod roles;
