-- message_id makes retried submissions safe: a device's message_id is
-- stored once, and a retry is answered with the original reading.
ALTER TABLE telemetry_data ADD COLUMN message_id TEXT;

CREATE UNIQUE INDEX telemetry_data_message_id_idx ON telemetry_data (device_id, message_id)
    WHERE message_id IS NOT NULL;
