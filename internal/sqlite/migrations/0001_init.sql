-- The initial schema. Times are INTEGER unix microseconds UTC; optional
-- strings are NULL when empty. STRICT makes SQLite reject values of the
-- wrong type instead of storing them silently.

CREATE TABLE devices (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT    NOT NULL UNIQUE,
    -- strings.ToLower(name), computed in Go: Search matches a substring of
    -- it with instr(), Unicode-aware and without LIKE wildcards.
    name_folded      TEXT    NOT NULL,
    description      TEXT,
    device_type      TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    location         TEXT,
    firmware_version TEXT,
    hardware_version TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    last_seen        INTEGER,
    -- the number of rows in telemetry_data of the device, kept by
    -- InsertReadings so that counting never scans the telemetry.
    telemetry_count  INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX devices_created_idx ON devices (created_at DESC, id DESC);

CREATE TABLE device_auth (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id    INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    api_key_hash TEXT    NOT NULL UNIQUE,
    key_prefix   TEXT    NOT NULL,
    is_active    INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    usage_count  INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX device_auth_device_idx ON device_auth (device_id);

CREATE TABLE telemetry_data (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id   INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    -- when the reading was taken (the device's time, else received_at);
    -- reads order by it.
    timestamp   INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    data_type   TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    metadata    TEXT    NOT NULL
) STRICT;

CREATE INDEX telemetry_device_time_idx ON telemetry_data (device_id, timestamp DESC, id DESC);
CREATE INDEX telemetry_time_idx ON telemetry_data (timestamp DESC, id DESC);

-- Reserved for the device configuration feature; no Store method uses it yet.
CREATE TABLE device_configurations (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id    INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    config_key   TEXT    NOT NULL,
    config_value TEXT,
    data_type    TEXT    NOT NULL DEFAULT 'string',
    is_active    INTEGER NOT NULL DEFAULT 1,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (device_id, config_key)
) STRICT;

CREATE TABLE admin_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL UNIQUE,
    token_prefix TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL
) STRICT;
