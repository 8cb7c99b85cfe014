"""One flow per domain through the Python client that openapi-python-client
generated, unedited, from the served /openapi.json (scripts/sdk-check.sh).

Every call goes through the generated functions and models: a response the
client cannot parse (a null where the document promises a value, a status the
document does not list) raises here or leaves `parsed` empty, and the flow
fails.

    python flow.py BASE_URL ADMIN_KEY   (with the generated package on PYTHONPATH)
"""

import sys
import uuid

from agentplane_client import AuthenticatedClient
from agentplane_client.api.agents import get_agent, list_agents, put_agent, put_agent_state
from agentplane_client.api.credits_ import (  # `credits` is a Python builtin
    create_credit_hold,
    get_credits,
    list_credit_transactions,
    release_credit_hold,
    settle_credit_hold,
    spend_credits,
    top_up_credits,
)
from agentplane_client.api.executions import list_node_executions, upsert_node_execution
from agentplane_client.api.keys import create_key, list_keys, revoke_key
from agentplane_client.api.messages import inject, list_messages
from agentplane_client.api.threads import get_thread, list_thread_messages
from agentplane_client.api.usage import (
    get_thread_budget,
    get_usage_history,
    get_usage_overview,
    record_usage,
)
from agentplane_client.api.variants import (
    activate_variant,
    clone_variant,
    create_variant,
    get_variant_metrics,
    list_variants,
    record_performance,
)
from agentplane_client.models import (
    AgentRegistration,
    CloneVariant,
    CreateKey,
    CreateVariant,
    ErrorBody,
    HoldRequest,
    InjectRequest,
    NodeExecutionInput,
    PerformanceInput,
    SettleRequest,
    SpendRequest,
    StateReport,
    TopUpRequest,
    UsageRecordIn,
)


def ok(resp):
    """The parsed body of a 2xx answer (the generated model)."""
    assert resp.status_code // 100 == 2, (resp.status_code, resp.content)
    assert resp.parsed is not None and not isinstance(resp.parsed, ErrorBody), resp.content
    return resp.parsed


def keys(c):
    created = ok(create_key.sync_detailed(client=c, body=CreateKey.from_dict(
        {"name": "sdk", "role": "reader", "userId": "sdk-user"})))
    assert created.key
    listed = ok(list_keys.sync_detailed(client=c))
    assert any(k.id == created.id for k in listed.keys)
    ok(revoke_key.sync_detailed(client=c, id=created.id))


def credits(c, user):
    ok(top_up_credits.sync_detailed(client=c, user_id=user,
                                    body=TopUpRequest.from_dict({"amount": 100})))
    before = ok(get_credits.sync_detailed(client=c, user_id=user)).balance
    spent = ok(spend_credits.sync_detailed(client=c, user_id=user, body=SpendRequest.from_dict(
        {"blockId": "sdk-block", "amount": 7, "idempotencyKey": "sdk-1"})))
    assert spent.balance == before - 7, spent
    hold = ok(create_credit_hold.sync_detailed(client=c, user_id=user,
                                               body=HoldRequest.from_dict({"amount": 10})))
    ok(settle_credit_hold.sync_detailed(client=c, user_id=user, hold_id=hold.hold_id,
                                        body=SettleRequest.from_dict({"amount": 4})))
    other = ok(create_credit_hold.sync_detailed(client=c, user_id=user,
                                                body=HoldRequest.from_dict({"amount": 1})))
    ok(release_credit_hold.sync_detailed(client=c, user_id=user, hold_id=other.hold_id))
    balance = ok(get_credits.sync_detailed(client=c, user_id=user))
    assert balance.balance == before - 11, balance
    page = ok(list_credit_transactions.sync_detailed(client=c, user_id=user, limit=100))
    assert len(page.transactions) >= 3


def usage(c, thread):
    ok(record_usage.sync_detailed(client=c, body=UsageRecordIn.from_dict(
        {"threadId": thread, "agentId": "sdk-agent", "model": "gpt-4o", "promptTokens": 100,
         "completionTokens": 50, "userId": "sdk-user"})))
    ok(get_usage_overview.sync_detailed(client=c))
    history = ok(get_usage_history.sync_detailed(client=c))
    assert len(history.records) >= 1
    ok(get_thread_budget.sync_detailed(client=c, thread_id=thread))


def agents(c, name):
    ok(put_agent.sync_detailed(client=c, name=name, body=AgentRegistration.from_dict(
        {"description": "an SDK-driven agent"})))
    ok(list_agents.sync_detailed(client=c))
    injected = ok(inject.sync_detailed(client=c, body=InjectRequest.from_dict(
        {"to": name, "payload": {"text": "hello"}, "payloadType": "greeting"})))
    thread = injected.thread_id
    ok(put_agent_state.sync_detailed(client=c, name=name, body=StateReport.from_dict(
        {"state": "processing", "currentThread": thread})))
    agent = ok(get_agent.sync_detailed(client=c, name=name))
    assert agent.current_thread == thread
    ok(get_thread.sync_detailed(client=c, id=thread))
    msgs = ok(list_thread_messages.sync_detailed(client=c, id=thread))
    assert len(msgs.messages) == 1
    ok(list_messages.sync_detailed(client=c))


def variants(c, name):
    created = ok(create_variant.sync_detailed(client=c, name=name, body=CreateVariant.from_dict(
        {"name": "Fast one", "slug": "fast", "temperature": 0.2})))
    ok(clone_variant.sync_detailed(client=c, name=name, body=CloneVariant.from_dict(
        {"source": created.slug, "name": "Copy"})))
    ok(activate_variant.sync_detailed(client=c, name=name, slug=created.slug))
    ok(record_performance.sync_detailed(client=c, name=name, body=PerformanceInput.from_dict(
        {"success": True, "latencyMs": 12})))
    ok(get_variant_metrics.sync_detailed(client=c, name=name, slug=created.slug))
    listed = ok(list_variants.sync_detailed(client=c, name=name))
    assert len(listed.variants) == 2


def executions(c, tag):
    node = {"graphId": "g-" + tag, "graphVersion": 1, "graphExecId": "ge-" + tag,
            "nodeId": "n1", "blockId": "b1", "status": "RUNNING", "inputData": {"in": 1},
            "addTime": "2026-01-02T03:04:05Z"}
    ok(upsert_node_execution.sync_detailed(client=c, node_exec_id="ne-" + tag,
                                           body=NodeExecutionInput.from_dict(node)))
    nodes = ok(list_node_executions.sync_detailed(client=c, graph_exec_id="ge-" + tag))
    assert len(nodes.nodes) == 1


def main():
    base_url, key = sys.argv[1], sys.argv[2]
    tag = uuid.uuid4().hex[:8]
    c = AuthenticatedClient(base_url=base_url, token=key, raise_on_unexpected_status=True)
    keys(c)
    credits(c, "py-" + tag)
    usage(c, "py-thread-" + tag)
    agents(c, "py-agent-" + tag)
    variants(c, "py-agent-" + tag)
    executions(c, "py-" + tag)
    print("python client: 6 flows passed")


if __name__ == "__main__":
    main()
