// One flow per domain through openapi-fetch with the types openapi-typescript
// generated from the served /openapi.json (scripts/sdk-check.sh). `tsc
// --strict` checks every request against the document; at run time each
// answer must be a success whose body has the fields the flow reads.
//
//   node dist/flow.js BASE_URL ADMIN_KEY
import createClient from "openapi-fetch";
import type { paths } from "./generated/schema.js";

declare const process: { argv: string[]; exit(code: number): never };

const [baseUrl, key] = [process.argv[2] ?? "", process.argv[3] ?? ""];
const api = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${key}` } });

/** The body of a 2xx answer; anything else fails the flow. */
function ok<T>(r: { data?: T; error?: unknown; response: Response }): T {
  if (!r.response.ok || r.data === undefined) {
    throw new Error(`${r.response.url}: ${r.response.status} ${JSON.stringify(r.error)}`);
  }
  return r.data;
}

function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(`failed: ${what}`);
}

async function keys(): Promise<void> {
  const created = ok(
    await api.POST("/api/v1/keys", { body: { name: "sdk", role: "reader", userId: "sdk-user" } }),
  );
  const listed = ok(await api.GET("/api/v1/keys"));
  check(listed.keys.some((k) => k.id === created.id), "the new key is listed");
  ok(await api.DELETE("/api/v1/keys/{id}", { params: { path: { id: created.id } } }));
}

async function credits(userId: string): Promise<void> {
  const path = { userId };
  ok(await api.POST("/api/v1/users/{userId}/credits/top-up", { params: { path }, body: { amount: 100 } }));
  const before = ok(await api.GET("/api/v1/users/{userId}/credits", { params: { path } })).balance;
  const spent = ok(
    await api.POST("/api/v1/users/{userId}/credits/spend", {
      params: { path },
      body: { blockId: "sdk-block", amount: 7, idempotencyKey: "sdk-1" },
    }),
  );
  check(spent.balance === before - 7, "balance after spend");
  const hold = ok(await api.POST("/api/v1/users/{userId}/credits/holds", { params: { path }, body: { amount: 10 } }));
  ok(
    await api.POST("/api/v1/users/{userId}/credits/holds/{holdId}/settle", {
      params: { path: { userId, holdId: hold.holdId } },
      body: { amount: 4 },
    }),
  );
  const other = ok(await api.POST("/api/v1/users/{userId}/credits/holds", { params: { path }, body: { amount: 1 } }));
  ok(
    await api.POST("/api/v1/users/{userId}/credits/holds/{holdId}/release", {
      params: { path: { userId, holdId: other.holdId } },
    }),
  );
  const balance = ok(await api.GET("/api/v1/users/{userId}/credits", { params: { path } }));
  check(balance.balance === before - 11, "balance after holds");
  const page = ok(
    await api.GET("/api/v1/users/{userId}/credits/transactions", { params: { path, query: { limit: 100 } } }),
  );
  check(page.transactions.length >= 3, "transactions listed");
}

async function usage(threadId: string): Promise<void> {
  ok(
    await api.POST("/api/v1/usage/records", {
      body: { threadId, agentId: "sdk-agent", model: "gpt-4o", promptTokens: 100, completionTokens: 50, userId: "sdk-user" },
    }),
  );
  ok(await api.GET("/api/v1/usage"));
  const history = ok(await api.GET("/api/v1/usage/history"));
  check(history.records.length >= 1, "usage history");
  ok(await api.GET("/api/v1/usage/threads/{threadId}", { params: { path: { threadId } } }));
}

async function agents(name: string): Promise<void> {
  const path = { name };
  ok(await api.PUT("/api/v1/agents/{name}", { params: { path }, body: { description: "an SDK-driven agent" } }));
  ok(await api.GET("/api/v1/agents"));
  const injected = ok(
    await api.POST("/api/v1/inject", { body: { to: name, payload: { text: "hello" }, payloadType: "greeting" } }),
  );
  const thread = injected.threadId;
  ok(
    await api.PUT("/api/v1/agents/{name}/state", {
      params: { path },
      body: { state: "processing", currentThread: thread },
    }),
  );
  const agent = ok(await api.GET("/api/v1/agents/{name}", { params: { path } }));
  check(agent.currentThread === thread, "current thread");
  ok(await api.GET("/api/v1/threads/{id}", { params: { path: { id: thread } } }));
  const msgs = ok(await api.GET("/api/v1/threads/{id}/messages", { params: { path: { id: thread } } }));
  check(msgs.messages.length === 1, "thread messages");
  ok(await api.GET("/api/v1/messages"));
}

async function variants(name: string): Promise<void> {
  const path = { name };
  const created = ok(
    await api.POST("/api/v1/agents/{name}/variants", {
      params: { path },
      body: { name: "Fast one", slug: "fast", temperature: 0.2 },
    }),
  );
  ok(
    await api.POST("/api/v1/agents/{name}/variants/clone", {
      params: { path },
      body: { source: created.slug, name: "Copy" },
    }),
  );
  ok(
    await api.POST("/api/v1/agents/{name}/variants/{slug}/activate", {
      params: { path: { name, slug: created.slug } },
    }),
  );
  ok(
    await api.POST("/api/v1/agents/{name}/performance", {
      params: { path },
      body: { success: true, latencyMs: 12 },
    }),
  );
  ok(await api.GET("/api/v1/agents/{name}/variants/{slug}/metrics", { params: { path: { name, slug: created.slug } } }));
  const listed = ok(await api.GET("/api/v1/agents/{name}/variants", { params: { path } }));
  check(listed.variants.length === 2, "variants listed");
}

async function executions(tag: string): Promise<void> {
  ok(
    await api.PUT("/api/v1/executions/nodes/{nodeExecId}", {
      params: { path: { nodeExecId: `ne-${tag}` } },
      body: {
        graphId: `g-${tag}`,
        graphVersion: 1,
        graphExecId: `ge-${tag}`,
        nodeId: "n1",
        blockId: "b1",
        status: "RUNNING",
        inputData: { in: 1 },
        addTime: "2026-01-02T03:04:05Z",
      },
    }),
  );
  const nodes = ok(
    await api.GET("/api/v1/executions/{graphExecId}/nodes", { params: { path: { graphExecId: `ge-${tag}` } } }),
  );
  check(nodes.nodes.length === 1, "node executions listed");
}

async function main(): Promise<void> {
  const tag = Math.random().toString(16).slice(2, 10);
  await keys();
  await credits(`ts-${tag}`);
  await usage(`ts-thread-${tag}`);
  await agents(`ts-agent-${tag}`);
  await variants(`ts-agent-${tag}`);
  await executions(`ts-${tag}`);
  console.log("typescript client: 6 flows passed");
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
