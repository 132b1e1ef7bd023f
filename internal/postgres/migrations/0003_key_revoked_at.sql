-- revoked_at records when a key was revoked; a revoked key also has
-- is_active false. NULL for a key that was never revoked.
ALTER TABLE device_auth ADD COLUMN revoked_at TIMESTAMPTZ;
