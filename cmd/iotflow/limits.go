package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/iotflow/iotflow/internal/config"
	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/ratelimit"
)

// newLimits builds the API's rate limits: in memory, or shared through
// Redis when REDIS_URL is set. Close the returned io.Closer on shutdown.
func newLimits(ctx context.Context, cfg *config.Config, log *slog.Logger) (*httpapi.Limits, io.Closer, error) {
	var limiter ratelimit.Limiter = ratelimit.NewMemory()
	var closer io.Closer = io.NopCloser(nil)
	if cfg.RedisURL != "" {
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, nil, fmt.Errorf("invalid REDIS_URL: %w", err)
		}
		client := redis.NewClient(opts)
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := client.Ping(pctx).Err(); err != nil {
			log.Warn("Redis unreachable at start; rate limits are kept in memory until it answers", "err", err)
		}
		cancel()
		limiter = ratelimit.NewRedis(client, ratelimit.NewMemory(), log, ratelimit.WithPrefix(cfg.RedisPrefix))
		closer = client
	}
	backlogBurst := min(cfg.MaxBatch, cfg.BacklogRateLimitPerHour)
	return &httpapi.Limits{
		Limiter:      limiter,
		Device:       ratelimit.PerMinute("device", cfg.RateLimitPerMinute),
		Telemetry:    ratelimit.PerMinute("telemetry", cfg.TelemetryRateLimitPerMinute),
		Backlog:      ratelimit.Limit{Name: "telemetry_backlog", Rate: cfg.BacklogRateLimitPerHour, Period: time.Hour, Burst: backlogBurst},
		Register:     ratelimit.PerMinute("register", cfg.RegisterRateLimitPerMinute),
		AuthFailures: ratelimit.PerMinute("auth_failures", cfg.AuthFailureLimitPerMinute),
		Admin:        ratelimit.PerMinute("admin", cfg.AdminRateLimitPerMinute),
	}, closer, nil
}
