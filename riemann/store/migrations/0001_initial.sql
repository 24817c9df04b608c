-- The search queue, its results and the workers that process it.
-- Big integers (n, sigma(n), ordinals) are NUMERIC, so no server extension is needed.

CREATE TYPE block_state AS ENUM (
    'NOT_STARTED', 'IN_PROGRESS', 'FINISHED', 'FAILED', 'DEAD'
);

-- A position in a strategy's enumeration: a whole number. NUMERIC also holds NaN
-- (and, from PostgreSQL 14, infinities), which compare above every number; both
-- fail "< 1e1000", so a hand-edited row cannot smuggle one in.
CREATE DOMAIN ordinal AS numeric
    CHECK (VALUE >= 0 AND VALUE < 1e1000 AND VALUE = trunc(VALUE));

-- One search per strategy: where it starts and ends, where the generator goes on, and
-- the store threshold that every worker applies to it.
CREATE TABLE searches (
    strategy          text PRIMARY KEY,
    store_threshold   text NOT NULL,
    start_ordinal     ordinal NOT NULL,
    end_ordinal       ordinal,
    next_ordinal      ordinal NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (end_ordinal IS NULL OR end_ordinal >= start_ordinal),
    CHECK (next_ordinal >= start_ordinal)
);

-- The queue. A block is the half-open range [start_ordinal, end_ordinal) of its
-- strategy's enumeration; start_index and end_index name the same range for people.
CREATE TABLE search_blocks (
    block_id            bigserial PRIMARY KEY,
    strategy            text NOT NULL REFERENCES searches (strategy),
    start_index         text NOT NULL,
    end_index           text NOT NULL,
    start_ordinal       ordinal NOT NULL,
    end_ordinal         ordinal NOT NULL,
    state               block_state NOT NULL DEFAULT 'NOT_STARTED',
    attempts            integer NOT NULL DEFAULT 0,
    lease_id            uuid,
    lease_expires_at    timestamptz,
    worker_id           text,
    claimable_at        timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    duration_seconds    double precision,
    candidates_checked  numeric,
    best_n              numeric,
    best_witness_value  numeric,
    -- The best among n > 5040, where counterexamples would be: the same as best_n
    -- except in the first blocks, where small n have larger witness values.
    best_above_5040_n              numeric,
    best_above_5040_witness_value  numeric,
    digest              text,
    last_error          text,
    UNIQUE (strategy, start_ordinal),
    CHECK (end_ordinal > start_ordinal),
    CHECK (state <> 'IN_PROGRESS' OR lease_id IS NOT NULL)
);

CREATE INDEX search_blocks_claimable
    ON search_blocks (block_id)
    WHERE state IN ('NOT_STARTED', 'FAILED');
CREATE INDEX search_blocks_leased
    ON search_blocks (lease_expires_at)
    WHERE state = 'IN_PROGRESS';
CREATE INDEX search_blocks_finished
    ON search_blocks (strategy, finished_at)
    WHERE state = 'FINISHED';
CREATE INDEX search_blocks_unfinished
    ON search_blocks (strategy, start_ordinal)
    WHERE state <> 'FINISHED';
CREATE INDEX search_blocks_best_above_5040
    ON search_blocks (strategy, best_above_5040_witness_value DESC)
    WHERE state = 'FINISHED';

-- Every candidate whose witness value exceeded the store threshold, with its block.
CREATE TABLE witnesses (
    strategy        text NOT NULL,
    n               numeric NOT NULL,
    divisor_sum     numeric NOT NULL,
    witness_value   numeric NOT NULL,
    log_n           numeric NOT NULL,
    level           integer,
    exponents       integer[],
    block_id        bigint NOT NULL REFERENCES search_blocks (block_id),
    PRIMARY KEY (strategy, n)
);

CREATE INDEX witnesses_by_value ON witnesses (witness_value DESC);
CREATE INDEX witnesses_by_block ON witnesses (block_id);

-- Worker processes, as they last reported themselves.
CREATE TABLE workers (
    worker_id              text PRIMARY KEY,
    hostname               text NOT NULL,
    pid                    integer NOT NULL,
    started_at             timestamptz NOT NULL DEFAULT now(),
    last_seen_at           timestamptz NOT NULL DEFAULT now(),
    stopped_at             timestamptz,
    current_block_id       bigint,
    blocks_finished        bigint NOT NULL DEFAULT 0,
    candidates_per_second  double precision
);
