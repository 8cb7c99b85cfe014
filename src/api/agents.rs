//! `/api/v1/agents` and `/api/v1/capabilities`: the agent registry, runtime
//! state reports, pause/resume (docs/agents.md).

use super::agent_config::agent_config_struct;
use super::types::Text;
use super::{encode, reply, ApiResult, ApiTags, AppState, Auth, Role};
use crate::api::nullable::Nullable;
use crate::api::types::Ident;
use crate::db;
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{param::Path, payload::Json, Enum, Object, OpenApi};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum AgentState {
    Idle,
    Processing,
    Waiting,
    Error,
    Paused,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Idle => "idle",
            AgentState::Processing => "processing",
            AgentState::Waiting => "waiting",
            AgentState::Error => "error",
            AgentState::Paused => "paused",
        }
    }
}

agent_config_struct! {
    /// An agent's model configuration (the fields its variants share). Every field is
    /// optional; text fields are free text up to 100,000 characters.
    #[derive(Debug, Clone, Object)]
    #[oai(rename_all = "camelCase")]
    pub struct AgentConfig {}
    config: documented Option<Text>
}

/// `PUT /agents/{name}`. Omitted fields take their defaults (description
/// `""`, isAgent `true`, peers `[]`, payloadClass `""`, the XML fields null);
/// an omitted or null `config` keeps the stored config, an object replaces it.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct AgentRegistration {
    #[oai(validator(max_length = 100000))]
    pub description: Option<Text>,
    pub is_agent: Option<bool>,
    /// Names of the agents this one talks to.
    #[oai(validator(max_items = 1000))]
    pub peers: Option<Vec<Text>>,
    #[oai(validator(max_length = 100000))]
    pub payload_class: Option<Text>,
    #[oai(validator(max_length = 100000))]
    pub root_tag: Option<Text>,
    #[oai(validator(max_length = 100000))]
    pub schema_xsd: Option<Text>,
    #[oai(validator(max_length = 100000))]
    pub example_xml: Option<Text>,
    pub config: Option<AgentConfig>,
}

/// AgentInfo.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct AgentInfo {
    pub name: String,
    pub description: String,
    pub is_agent: bool,
    pub peers: Vec<String>,
    pub payload_class: String,
    pub state: AgentState,
    pub current_thread: Nullable<String>,
    /// Messages in the agent's inbox not yet acknowledged.
    pub queue_depth: i64,
    pub last_activity: Nullable<DateTime<Utc>>,
    /// Messages sent or received by the agent.
    pub message_count: i64,
}

#[derive(Debug, Object)]
pub struct AgentList {
    pub agents: Vec<AgentInfo>,
    pub count: i64,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct AgentConfigView {
    pub name: String,
    pub description: String,
    pub is_agent: bool,
    pub peers: Vec<String>,
    pub payload_class: String,
    /// The stored config: every field is sent, null when not set.
    pub config: crate::api::variants::ConfigValues,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct StateReport {
    pub state: AgentState,
    pub current_thread: Option<Ident>,
}

#[derive(Debug, Object)]
pub struct PauseResult {
    pub success: bool,
    pub agent: String,
    pub state: AgentState,
}

#[derive(Debug, Object)]
pub struct AgentRemoved {
    pub success: bool,
    pub name: String,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Capability {
    pub name: String,
    pub description: String,
    pub is_agent: bool,
    pub peers: Vec<String>,
    pub root_tag: Nullable<String>,
}

#[derive(Debug, Object)]
pub struct CapabilityList {
    pub capabilities: Vec<Capability>,
    pub count: i64,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CapabilityDetail {
    pub name: String,
    pub description: String,
    pub is_agent: bool,
    pub peers: Vec<String>,
    pub root_tag: Nullable<String>,
    pub payload_class: String,
    pub schema_xsd: Nullable<String>,
    /// Always present; null when unknown.
    pub example_xml: Nullable<String>,
}

pub struct AgentsApi;

#[OpenApi(prefix_path = "/api/v1")]
impl AgentsApi {
    /// Register or update an agent (service).
    #[oai(
        path = "/agents/:name",
        method = "put",
        operation_id = "putAgent",
        tag = "ApiTags::Agents"
    )]
    async fn put_agent(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        name: Path<Ident>,
        body: Json<AgentRegistration>,
    ) -> ApiResult<Json<AgentInfo>> {
        auth.require(Role::Service)?;
        reply(db::agents::register(&state.pool, &name.0, &encode(&body.0))).await
    }

    /// Remove an agent and its pending inbox (service). Message and thread
    /// history is kept.
    #[oai(
        path = "/agents/:name",
        method = "delete",
        operation_id = "deleteAgent",
        tag = "ApiTags::Agents"
    )]
    async fn delete_agent(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        name: Path<String>,
    ) -> ApiResult<Json<AgentRemoved>> {
        auth.require(Role::Service)?;
        reply(db::agents::remove(&state.pool, &name.0)).await
    }

    /// Every registered agent, sorted by name.
    #[oai(
        path = "/agents",
        method = "get",
        operation_id = "listAgents",
        tag = "ApiTags::Agents"
    )]
    async fn list_agents(&self, auth: Auth, state: Data<&AppState>) -> ApiResult<Json<AgentList>> {
        auth.require(Role::Reader)?;
        reply(db::agents::list(&state.pool)).await
    }

    /// One agent.
    #[oai(
        path = "/agents/:name",
        method = "get",
        operation_id = "getAgent",
        tag = "ApiTags::Agents"
    )]
    async fn get_agent(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        name: Path<String>,
    ) -> ApiResult<Json<AgentInfo>> {
        auth.require(Role::Reader)?;
        reply(db::agents::get(&state.pool, &name.0)).await
    }

    /// An agent's registration and its own config.
    #[oai(
        path = "/agents/:name/config",
        method = "get",
        operation_id = "getAgentConfig",
        tag = "ApiTags::Agents"
    )]
    async fn get_agent_config(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        name: Path<String>,
    ) -> ApiResult<Json<AgentConfigView>> {
        auth.require(Role::Reader)?;
        reply(db::agents::get_config(&state.pool, &name.0)).await
    }

    /// A runtime reports its agent's state (service). Reporting `paused`
    /// pauses the agent; a paused agent stays paused until resumed.
    #[oai(
        path = "/agents/:name/state",
        method = "put",
        operation_id = "putAgentState",
        tag = "ApiTags::Agents"
    )]
    async fn put_state(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        name: Path<String>,
        body: Json<StateReport>,
    ) -> ApiResult<Json<AgentInfo>> {
        auth.require(Role::Service)?;
        reply(db::agents::report_state(
            &state.pool,
            &name.0,
            body.state.as_str(),
            body.current_thread.as_deref(),
        ))
        .await
    }

    /// Pause an agent (service): its inbox keeps filling but hands nothing out.
    #[oai(
        path = "/agents/:name/pause",
        method = "post",
        operation_id = "pauseAgent",
        tag = "ApiTags::Agents"
    )]
    async fn pause(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        name: Path<String>,
    ) -> ApiResult<Json<PauseResult>> {
        auth.require(Role::Service)?;
        reply(db::agents::pause(&state.pool, &name.0)).await
    }

    /// Resume a paused agent (service): back to `idle`, claims deliver again.
    #[oai(
        path = "/agents/:name/resume",
        method = "post",
        operation_id = "resumeAgent",
        tag = "ApiTags::Agents"
    )]
    async fn resume(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        name: Path<String>,
    ) -> ApiResult<Json<PauseResult>> {
        auth.require(Role::Service)?;
        reply(db::agents::resume(&state.pool, &name.0)).await
    }

    /// Capabilities of every registered agent, sorted by name.
    #[oai(
        path = "/capabilities",
        method = "get",
        operation_id = "listCapabilities",
        tag = "ApiTags::Capabilities"
    )]
    async fn list_capabilities(
        &self,
        auth: Auth,
        state: Data<&AppState>,
    ) -> ApiResult<Json<CapabilityList>> {
        auth.require(Role::Reader)?;
        reply(db::agents::capabilities(&state.pool)).await
    }

    /// One capability, with payload class, schema and example.
    #[oai(
        path = "/capabilities/:name",
        method = "get",
        operation_id = "getCapability",
        tag = "ApiTags::Capabilities"
    )]
    async fn get_capability(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        name: Path<String>,
    ) -> ApiResult<Json<CapabilityDetail>> {
        auth.require(Role::Reader)?;
        reply(db::agents::capability(&state.pool, &name.0)).await
    }
}
