-- Downlink: commands to devices, stored so that none is lost to a restart
-- or a change of node, and each device's shadow (desired and reported
-- configuration). A device's row counts its pending commands and names
-- its desired version, so that an authenticated request, which reads the
-- device from the key cache, can tell the device at no cost that it has
-- work.
ALTER TABLE devices ADD COLUMN pending_commands INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN shadow_version BIGINT NOT NULL DEFAULT 0;

CREATE TABLE commands (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id       BIGINT      NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    command         TEXT        NOT NULL,
    parameters      JSONB       NOT NULL,
    status          TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    timeout         INTERVAL    NOT NULL,
    sent_at         TIMESTAMPTZ,
    acknowledged_at TIMESTAMPTZ,
    completed_at    TIMESTAMPTZ,
    result          JSONB,
    idempotency_key TEXT
);

CREATE INDEX commands_device_idx ON commands (device_id, id);
CREATE UNIQUE INDEX commands_idempotency_idx ON commands (device_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The sweeper's: commands that have not ended.
CREATE INDEX commands_open_idx ON commands (expires_at)
    WHERE status IN ('pending', 'sent', 'acknowledged');

CREATE TABLE device_shadows (
    device_id           BIGINT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    desired             JSONB       NOT NULL,
    reported            JSONB       NOT NULL,
    version             BIGINT      NOT NULL,
    desired_version     BIGINT      NOT NULL,
    -- when each top-level key of desired was last set: {"key": "RFC 3339 time"}
    desired_times       JSONB       NOT NULL,
    desired_updated_at  TIMESTAMPTZ,
    reported_updated_at TIMESTAMPTZ
);
