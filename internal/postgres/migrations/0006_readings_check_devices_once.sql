-- A reading's device was checked by a foreign key: a trigger per row that
-- locks the device row again, which cost a write transaction of a dozen
-- readings about as much as everything else in it. InsertReadings now
-- checks and locks each device of a batch once, with the function below,
-- and DeleteDevice deletes a device's readings itself, under the device's
-- row lock, so that no reading can outlive its device.
ALTER TABLE telemetry_data DROP CONSTRAINT telemetry_data_device_id_fkey;

-- lock_reading_devices locks the given devices, distinct and in ascending
-- order, against deletion (and in one order everywhere, so that concurrent
-- transactions wait instead of deadlocking), and raises foreign_key_violation
-- when one does not exist.
CREATE FUNCTION lock_reading_devices(ids BIGINT[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    found INT;
BEGIN
    SELECT count(*) INTO found FROM (
        SELECT id FROM devices WHERE id = ANY (ids) ORDER BY id FOR NO KEY UPDATE
    ) locked;
    IF found <> cardinality(ids) THEN
        RAISE EXCEPTION 'a reading names a device that does not exist'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
END
$$;
