-- Time series: the rollups of every key's numeric values per device and
-- UTC minute or hour, and each key's newest value, kept by the rollup of
-- internal/series from the readings above its watermark. Series reads
-- combine them with the readings it has not reached yet. The watermark
-- starts at 0, so the rollup takes in every reading stored before.
CREATE TABLE telemetry_rollups (
    device_id BIGINT           NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    width     INTEGER          NOT NULL, -- seconds: 60 or 3600
    key       TEXT             NOT NULL,
    bucket    TIMESTAMPTZ      NOT NULL, -- a multiple of width
    n         BIGINT           NOT NULL,
    sum       DOUBLE PRECISION NOT NULL,
    min       DOUBLE PRECISION NOT NULL,
    max       DOUBLE PRECISION NOT NULL,
    first_at  TIMESTAMPTZ      NOT NULL,
    first_id  BIGINT           NOT NULL,
    first     DOUBLE PRECISION NOT NULL,
    last_at   TIMESTAMPTZ      NOT NULL,
    last_id   BIGINT           NOT NULL,
    last      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (device_id, width, key, bucket)
);

-- For retention, which deletes the rollups of old buckets.
CREATE INDEX telemetry_rollups_bucket_idx ON telemetry_rollups (bucket);

CREATE TABLE telemetry_keys (
    device_id  BIGINT      NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    key        TEXT        NOT NULL,
    kind       TEXT        NOT NULL, -- number, boolean, string or null
    at         TIMESTAMPTZ NOT NULL, -- the newest reading's timestamp
    reading_id BIGINT      NOT NULL,
    value      TEXT        NOT NULL, -- its value, as JSON
    PRIMARY KEY (device_id, key)
);

-- The highest reading id the rollups cover.
CREATE TABLE telemetry_rollup_state (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    rolled_id BIGINT  NOT NULL
);

INSERT INTO telemetry_rollup_state (id, rolled_id) VALUES (1, 0);
