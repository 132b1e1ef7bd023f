-- Downlink: commands to devices, stored so that none is lost to a restart,
-- and each device's shadow (desired and reported configuration). A
-- device's row counts its pending commands and names its desired version,
-- so that an authenticated request, which reads the device from the key
-- cache, can tell the device at no cost that it has work.
ALTER TABLE devices ADD COLUMN pending_commands INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN shadow_version INTEGER NOT NULL DEFAULT 0;

CREATE TABLE commands (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id       INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    command         TEXT    NOT NULL,
    parameters      TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    timeout_us      INTEGER NOT NULL,
    sent_at         INTEGER,
    acknowledged_at INTEGER,
    completed_at    INTEGER,
    result          TEXT,
    idempotency_key TEXT
) STRICT;

CREATE INDEX commands_device_idx ON commands (device_id, id);
CREATE UNIQUE INDEX commands_idempotency_idx ON commands (device_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The sweeper's: commands that have not ended.
CREATE INDEX commands_open_idx ON commands (expires_at)
    WHERE status IN ('pending', 'sent', 'acknowledged');

CREATE TABLE device_shadows (
    device_id           INTEGER PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    desired             TEXT    NOT NULL,
    reported            TEXT    NOT NULL,
    version             INTEGER NOT NULL,
    desired_version     INTEGER NOT NULL,
    -- when each top-level key of desired was last set: {"key": "RFC 3339 time"}
    desired_times       TEXT    NOT NULL,
    desired_updated_at  INTEGER,
    reported_updated_at INTEGER
) STRICT;
