//! Fixtures shared by the variants tests (variants, variants_props).

use serde_json::{json, Value};

/// The agent's own config used throughout (as API JSON); the same values
/// [`add_agent`] stores.
pub fn agent_config() -> Value {
    json!({
        "modelProvider": "openai", "modelName": "gpt-4o", "systemPrompt": "Be brief.",
        "userPromptTemplate": "Q: {q}", "promptVersion": "v1", "temperature": 0.7,
        "maxTokens": 1000, "contextWindow": 8000, "inputTokenLimit": 6000,
        "tokenBudget": 100000, "timeoutSeconds": 30, "maxRetries": 2
    })
}

/// Registers an agent with [`agent_config`] directly in agents.agents.
pub async fn add_agent(c: &tokio_postgres::Client, name: &str) {
    c.execute(
        "INSERT INTO agents.agents (name, model_provider, model_name, system_prompt, \
         user_prompt_template, prompt_version, temperature, max_tokens, context_window, \
         input_token_limit, token_budget, timeout_seconds, max_retries) \
         VALUES ($1, 'openai', 'gpt-4o', 'Be brief.', 'Q: {q}', 'v1', 0.7, 1000, 8000, 6000, \
         100000, 30, 2)",
        &[&name],
    )
    .await
    .unwrap();
}
