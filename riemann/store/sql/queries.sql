-- Every query the store runs, each under a "-- name:" line. Parameters are named
-- (%(name)s) and always passed separately from the text.

-- name: lock_migrations
SELECT pg_advisory_xact_lock(hashtext('riemann schema migrations'));

-- name: create_schema_migrations
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- name: applied_versions
SELECT version FROM schema_migrations ORDER BY version;

-- name: schema_migrations_exists
SELECT to_regclass('schema_migrations') IS NOT NULL;

-- name: record_migration
INSERT INTO schema_migrations (version, name) VALUES (%(version)s, %(name)s);

-- name: search_for_update
SELECT strategy, store_threshold, start_ordinal, end_ordinal, next_ordinal
FROM searches
WHERE strategy = %(strategy)s
FOR UPDATE;

-- name: get_search
SELECT strategy, store_threshold, start_ordinal, end_ordinal, next_ordinal
FROM searches
WHERE strategy = %(strategy)s;

-- name: create_search
INSERT INTO searches (strategy, store_threshold, start_ordinal, end_ordinal, next_ordinal)
VALUES (%(strategy)s, %(store_threshold)s, %(start_ordinal)s, %(end_ordinal)s,
        %(start_ordinal)s)
ON CONFLICT (strategy) DO NOTHING;

-- name: extend_search
UPDATE searches
SET end_ordinal = %(end_ordinal)s
WHERE strategy = %(strategy)s;

-- name: insert_block
INSERT INTO search_blocks (strategy, start_index, end_index, start_ordinal, end_ordinal)
VALUES (%(strategy)s, %(start_index)s, %(end_index)s, %(start_ordinal)s,
        %(end_ordinal)s);

-- name: advance_search
UPDATE searches SET next_ordinal = %(next_ordinal)s WHERE strategy = %(strategy)s;

-- name: notify_blocks_claimable
-- Wakes idle workers at once (delivered when the transaction commits).
SELECT pg_notify('riemann_blocks_claimable', %(strategy)s);

-- name: notify_block_claimed
-- Tells generators the queue got shorter (delivered when the transaction commits).
SELECT pg_notify('riemann_block_claimed', %(strategy)s);

-- name: listen_blocks_claimable
LISTEN riemann_blocks_claimable;

-- name: listen_block_claimed
LISTEN riemann_block_claimed;

-- name: claimable_count
SELECT count(*)
FROM search_blocks
WHERE strategy = %(strategy)s
  AND (state = 'NOT_STARTED' OR (state = 'FAILED' AND claimable_at <= now()));

-- name: claim_block
UPDATE search_blocks AS b
SET state = 'IN_PROGRESS',
    lease_id = gen_random_uuid(),
    lease_expires_at = now() + make_interval(secs => %(lease_seconds)s),
    worker_id = %(worker_id)s,
    started_at = now(),
    attempts = b.attempts + 1
FROM searches AS s
WHERE s.strategy = b.strategy
  AND b.block_id = (
    SELECT block_id
    FROM search_blocks
    WHERE (state = 'NOT_STARTED' OR (state = 'FAILED' AND claimable_at <= now()))
      AND (%(strategy)s::text IS NULL OR strategy = %(strategy)s::text)
    ORDER BY block_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
  )
RETURNING b.block_id, b.strategy, b.start_index, b.end_index, b.start_ordinal,
          b.end_ordinal, b.lease_id::text, b.attempts, s.store_threshold;

-- name: renew_lease
UPDATE search_blocks
SET lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
WHERE block_id = %(block_id)s
  AND lease_id = %(lease_id)s::uuid
  AND state = 'IN_PROGRESS'
  AND lease_expires_at > now()
RETURNING worker_id;

-- name: finish_block
UPDATE search_blocks
SET state = 'FINISHED',
    finished_at = now(),
    lease_expires_at = NULL,
    duration_seconds = %(duration_seconds)s,
    candidates_checked = %(candidates_checked)s,
    best_n = %(best_n)s::numeric,
    best_witness_value = %(best_witness_value)s::numeric,
    best_above_5040_n = %(best_above_5040_n)s::numeric,
    best_above_5040_witness_value = %(best_above_5040_witness_value)s::numeric,
    digest = %(digest)s,
    last_error = NULL
WHERE block_id = %(block_id)s
  AND lease_id = %(lease_id)s::uuid
  AND state = 'IN_PROGRESS'
  AND lease_expires_at > now();

-- name: finished_under_lease
SELECT 1
FROM search_blocks
WHERE block_id = %(block_id)s
  AND lease_id = %(lease_id)s::uuid
  AND state = 'FINISHED'
  AND digest = %(digest)s;

-- name: insert_witness
INSERT INTO witnesses (strategy, n, divisor_sum, witness_value, log_n, level,
                       exponents, block_id)
VALUES (%(strategy)s, %(n)s::numeric, %(divisor_sum)s::numeric,
        %(witness_value)s::numeric, %(log_n)s::numeric, %(level)s, %(exponents)s,
        %(block_id)s);

-- name: fail_block
-- By the worker holding the lease while it holds it (lease_expired false), or by
-- the janitor under the lease it read as expired (true): a compare-and-set either
-- way, so neither overrides the other or a worker that just finished.
UPDATE search_blocks
SET state = %(state)s::block_state,
    claimable_at = now() + make_interval(secs => %(retry_after_seconds)s),
    lease_id = NULL,
    lease_expires_at = NULL,
    last_error = %(error)s
WHERE block_id = %(block_id)s
  AND lease_id = %(lease_id)s::uuid
  AND state = 'IN_PROGRESS'
  AND (lease_expires_at <= now()) = %(lease_expired)s;

-- name: release_block
UPDATE search_blocks
SET state = 'NOT_STARTED',
    attempts = attempts - 1,
    claimable_at = now(),
    lease_id = NULL,
    lease_expires_at = NULL,
    worker_id = NULL
WHERE block_id = %(block_id)s
  AND lease_id = %(lease_id)s::uuid
  AND state = 'IN_PROGRESS'
  AND lease_expires_at > now();

-- name: expired_leases
SELECT block_id, strategy, lease_id::text, attempts, worker_id
FROM search_blocks
WHERE state = 'IN_PROGRESS'
  AND lease_expires_at < now() - make_interval(secs => %(stale_after_seconds)s)
ORDER BY block_id
FOR UPDATE SKIP LOCKED;

-- name: requeue_dead
UPDATE search_blocks
SET state = 'NOT_STARTED', attempts = 0, claimable_at = now(), lease_id = NULL,
    lease_expires_at = NULL
WHERE state = 'DEAD'
  AND (%(block_ids)s::bigint[] IS NULL OR block_id = ANY (%(block_ids)s::bigint[]))
RETURNING block_id, strategy;

-- name: upsert_worker
INSERT INTO workers (worker_id, hostname, pid)
VALUES (%(worker_id)s, %(hostname)s, %(pid)s)
ON CONFLICT (worker_id) DO UPDATE
SET last_seen_at = now(), stopped_at = NULL;

-- name: worker_seen
UPDATE workers
SET last_seen_at = now(), current_block_id = %(block_id)s
WHERE worker_id = %(worker_id)s;

-- name: worker_finished_block
UPDATE workers
SET last_seen_at = now(),
    current_block_id = NULL,
    blocks_finished = blocks_finished + 1,
    candidates_per_second = %(candidates_per_second)s
WHERE worker_id = %(worker_id)s;

-- name: worker_stopped
UPDATE workers
SET stopped_at = now(), current_block_id = NULL
WHERE worker_id = %(worker_id)s;

-- name: recent_throughput
-- Candidates per second of one worker on this strategy's recent blocks.
SELECT sum(candidates_checked) / nullif(sum(duration_seconds), 0)
FROM (
    SELECT candidates_checked, duration_seconds
    FROM search_blocks
    WHERE strategy = %(strategy)s AND state = 'FINISHED' AND duration_seconds > 0
    ORDER BY finished_at DESC
    LIMIT 20
) AS recent;

-- name: block_counts
SELECT strategy, state::text, count(*), coalesce(sum(end_ordinal - start_ordinal), 0)
FROM search_blocks
GROUP BY strategy, state;

-- name: searches
SELECT strategy, store_threshold, start_ordinal, end_ordinal, next_ordinal
FROM searches
ORDER BY strategy;

-- name: first_unfinished
SELECT min(start_ordinal)
FROM search_blocks
WHERE strategy = %(strategy)s AND state <> 'FINISHED';

-- name: finished_totals
SELECT coalesce(sum(candidates_checked), 0), max(finished_at)
FROM search_blocks
WHERE strategy = %(strategy)s AND state = 'FINISHED';

-- name: throughput_since
-- Candidates finished in the window, and how long the window has really been busy:
-- less than its length while a search is young.
SELECT coalesce(sum(candidates_checked), 0),
       extract(epoch FROM now() - min(started_at))
FROM search_blocks
WHERE strategy = %(strategy)s AND state = 'FINISHED'
  AND finished_at > now() - make_interval(secs => %(seconds)s);

-- name: best_above_robin_bound
-- The largest witness value of an n > 5040 (where counterexamples would be): the
-- best of the finished blocks' own bests above 5040.
SELECT best_above_5040_n, best_above_5040_witness_value, block_id
FROM search_blocks
WHERE strategy = %(strategy)s AND state = 'FINISHED'
  AND best_above_5040_witness_value IS NOT NULL
ORDER BY best_above_5040_witness_value DESC, best_above_5040_n
LIMIT 1;

-- name: finished_between
-- Candidates of finished blocks that fall in [%(start)s, %(end)s).
SELECT coalesce(sum(least(end_ordinal, %(end)s::numeric)
                    - greatest(start_ordinal, %(start)s::numeric)), 0)
FROM search_blocks
WHERE strategy = %(strategy)s AND state = 'FINISHED'
  AND end_ordinal > %(start)s::numeric AND start_ordinal < %(end)s::numeric;

-- name: issued_through
SELECT max(end_ordinal)
FROM search_blocks
WHERE strategy = %(strategy)s AND state <> 'NOT_STARTED';

-- name: live_workers
SELECT worker_id, hostname, pid, started_at, last_seen_at, current_block_id,
       blocks_finished, candidates_per_second
FROM workers
WHERE stopped_at IS NULL
  AND last_seen_at > now() - make_interval(secs => %(seen_within_seconds)s)
ORDER BY worker_id;

-- name: dead_blocks
SELECT block_id, strategy, start_index, end_index, attempts, last_error
FROM search_blocks
WHERE state = 'DEAD'
ORDER BY block_id;

-- name: witnesses
SELECT n, divisor_sum, witness_value, log_n, strategy, level, exponents, block_id
FROM witnesses
WHERE (%(min_witness)s::numeric IS NULL OR witness_value >= %(min_witness)s::numeric)
  AND (%(strategy)s::text IS NULL OR strategy = %(strategy)s::text)
ORDER BY strategy, n;

-- name: last_finished_at
SELECT max(finished_at) FROM search_blocks WHERE state = 'FINISHED';
