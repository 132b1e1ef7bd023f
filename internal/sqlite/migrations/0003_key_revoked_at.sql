-- revoked_at records when a key was revoked (unix microseconds UTC); a
-- revoked key also has is_active 0. NULL for a key that was never revoked.
ALTER TABLE device_auth ADD COLUMN revoked_at INTEGER;
