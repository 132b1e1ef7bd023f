-- When a device's MQTT connection ended: it is offline from then until it
-- is seen again (last_seen after offline_at).
ALTER TABLE devices ADD COLUMN offline_at INTEGER;
