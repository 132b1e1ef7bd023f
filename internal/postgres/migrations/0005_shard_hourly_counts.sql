-- Shard the hourly counts by device (device_id % 16): concurrent write
-- transactions for different devices then update different rows instead of
-- queueing behind one hot row per hour, which each holds until its commit
-- is flushed to disk. Readers sum the shards of an hour.
DROP TABLE telemetry_hourly;
CREATE TABLE telemetry_hourly (
    hour  TIMESTAMPTZ NOT NULL,
    shard SMALLINT    NOT NULL,
    n     BIGINT      NOT NULL,
    PRIMARY KEY (hour, shard)
);

INSERT INTO telemetry_hourly (hour, shard, n)
SELECT date_trunc('hour', "timestamp" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', device_id % 16, count(*)
FROM telemetry_data
GROUP BY 1, 2;
