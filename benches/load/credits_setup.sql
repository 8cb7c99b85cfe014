-- The spend figures: 10,000 users with a balance nobody exhausts in a run, one hot
-- user, and a block priced 1 credit per run for platform credentials.
-- Shared by benches/load/setup.rs and scripts/instructions.sh.
SELECT credits.put_block_costs('bench-block',
    '[{"costType":"run","amount":1,"filter":{"credentials":{"provider":"platform"}}}]');
SELECT count(credits.put_user('bu' || i, 1000000000, 'reset', '{}')) FROM generate_series(1, 10000) i;
SELECT count(credits.get_credits('bu' || i)) FROM generate_series(1, 10000) i;
SELECT credits.put_user('hot', 1000000000, 'reset', '{}');
SELECT credits.get_credits('hot');
