package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/iotflow/iotflow/internal/config"
	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/ratelimit"
)

// newRedis connects to REDIS_URL; nil when it is not set. Close the client
// on shutdown.
func newRedis(ctx context.Context, cfg *config.Config, log *slog.Logger) (*redis.Client, error) {
	if cfg.RedisURL == "" {
		return nil, nil
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("invalid REDIS_URL: %w", err)
	}
	client := redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		log.Warn("Redis unreachable at start; rate limits are kept in memory, and other nodes' wake-ups wait, until it answers", "err", err)
	}
	return client, nil
}

// newLimits builds the API's rate limits: in memory, or shared through
// Redis when there is a client.
func newLimits(cfg *config.Config, client *redis.Client, log *slog.Logger) *httpapi.Limits {
	var limiter ratelimit.Limiter = ratelimit.NewMemory()
	if client != nil {
		limiter = ratelimit.NewRedis(client, ratelimit.NewMemory(), log, ratelimit.WithPrefix(cfg.RedisPrefix))
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
	}
}
