-- Counts of committed readings not yet added to devices.telemetry_count and
-- telemetry_hourly. A write batch used to update its devices' rows and its
-- hours' rows itself, which cost it about as much as storing its readings;
-- it now appends one row here, with its counts per device and hour, and a
-- background fold moves these rows into the counters in one transaction a
-- few times a second. Readers add what is pending, so every count stays
-- exact. The table has no key: the fold takes every row it can see.
CREATE TABLE telemetry_pending (
    device_ids BIGINT[]      NOT NULL,
    hours      TIMESTAMPTZ[] NOT NULL,
    counts     INTEGER[]     NOT NULL
);
