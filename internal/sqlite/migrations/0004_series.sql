-- Time series: the rollups of every key's numeric values per device and
-- UTC minute or hour, and each key's newest value, kept by the rollup of
-- internal/series from the readings above its watermark. Series reads
-- combine them with the readings it has not reached yet. The watermark
-- starts at 0, so the rollup takes in every reading stored before.
CREATE TABLE telemetry_rollups (
    device_id INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    width     INTEGER NOT NULL, -- seconds: 60 or 3600
    key       TEXT    NOT NULL,
    bucket    INTEGER NOT NULL, -- unix microseconds UTC, a multiple of width
    n         INTEGER NOT NULL,
    sum       REAL    NOT NULL,
    min       REAL    NOT NULL,
    max       REAL    NOT NULL,
    first_at  INTEGER NOT NULL,
    first_id  INTEGER NOT NULL,
    first     REAL    NOT NULL,
    last_at   INTEGER NOT NULL,
    last_id   INTEGER NOT NULL,
    last      REAL    NOT NULL,
    PRIMARY KEY (device_id, width, key, bucket)
) STRICT, WITHOUT ROWID;

-- For retention, which deletes the rollups of old buckets.
CREATE INDEX telemetry_rollups_bucket_idx ON telemetry_rollups (bucket);

CREATE TABLE telemetry_keys (
    device_id  INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    key        TEXT    NOT NULL,
    kind       TEXT    NOT NULL, -- number, boolean, string or null
    at         INTEGER NOT NULL, -- the newest reading's timestamp
    reading_id INTEGER NOT NULL,
    value      TEXT    NOT NULL, -- its value, as JSON
    PRIMARY KEY (device_id, key)
) STRICT, WITHOUT ROWID;

-- The highest reading id the rollups cover.
CREATE TABLE telemetry_rollup_state (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    rolled_id INTEGER NOT NULL
) STRICT;

INSERT INTO telemetry_rollup_state (id, rolled_id) VALUES (1, 0);
