-- One group of a usage fold's sums (usage._fold): a thread's, an agent's, a
-- model's or a day's. The fold computes them all in a read-only statement
-- and writes them in the next one, so the transaction takes no xid, and holds
-- back no feed event, while it reads and groups the records (issue 8,
-- figure 5; README "Benchmarks").
CREATE TYPE usage.fold_sum AS (
    kind              smallint,  -- GROUPING(): 7 thread, 11 agent, 13 model, 14 day
    key               text,      -- thread id, agent id ('' = none) or lower-cased model
    day               date,
    prompt_tokens     bigint,
    completion_tokens bigint,
    request_count     bigint,
    cost_micros       numeric,   -- NULL: nothing priced (numeric: sums of
                                 -- records at the highest prices pass 2^63)
    latency_sum       bigint,
    latency_count     bigint
);
