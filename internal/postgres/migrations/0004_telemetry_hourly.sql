-- Readings per UTC hour, kept by InsertReadings and DeleteDevice, so that
-- counting the readings of the last 24 hours sums at most 25 rows and
-- counts through the index only within the oldest, partial hour.
CREATE TABLE telemetry_hourly (
    hour TIMESTAMPTZ PRIMARY KEY,
    n    BIGINT      NOT NULL
);

INSERT INTO telemetry_hourly (hour, n)
SELECT date_trunc('hour', "timestamp" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', count(*)
FROM telemetry_data
GROUP BY 1;
