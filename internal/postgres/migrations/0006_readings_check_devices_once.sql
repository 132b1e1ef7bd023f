-- A reading's device was checked by a foreign key: a trigger per row that
-- locks the device row again, which cost a write transaction of a dozen
-- readings about as much as everything else in it. InsertReadings now
-- checks and locks each device of a batch once, in its statement, and
-- DeleteDevice deletes a device's readings itself, under the device's row
-- lock, so that no reading can outlive its device.
ALTER TABLE telemetry_data DROP CONSTRAINT telemetry_data_device_id_fkey;
