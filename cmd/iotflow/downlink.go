package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/iotflow/iotflow/internal/config"
	"github.com/iotflow/iotflow/internal/downlink"
	"github.com/iotflow/iotflow/internal/events"
	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/metrics"
	"github.com/iotflow/iotflow/internal/postgres"
)

// newNotifier chooses how a change wakes the long polls of other nodes:
// Redis when REDIS_URL is set, else PostgreSQL's LISTEN/NOTIFY, else (the
// embedded database, one node) nothing beyond this process. It returns
// what must run for the wake-ups of other nodes to arrive, and a name for
// the log.
func newNotifier(cfg *config.Config, db database, rdb *redis.Client, log *slog.Logger) (events.Notifier, func(context.Context), string) {
	switch pg, isPG := db.(*postgres.Store); {
	case rdb != nil:
		n := events.NewShared(events.Redis{Client: rdb, Channel: cfg.RedisPrefix + "wake"}, log)
		return n, n.Run, "redis"
	case isPG:
		n := events.NewShared(pg.Wakeups(), log)
		return n, n.Run, "postgres"
	}
	return events.NewLocal(), func(context.Context) {}, "local"
}

// newDownlink wires the commands and shadows over the store and the fleet:
// a change of a device's commands or shadow, here or on another node,
// drops the device from the key cache so that its next answer counts
// afresh.
func newDownlink(db database, notifier events.Notifier, svc *fleet.Service, m *metrics.Metrics, log *slog.Logger) *downlink.Service {
	d := downlink.New(db, downlink.Options{Notifier: notifier, Changed: svc.ForgetDevice, Logger: log})
	m.GaugeFunc("iotflow_long_polls_waiting", "Long polls (commands, shadow, a command's end) waiting now on this node.",
		func() float64 { return float64(d.Waiting()) })
	counts := &cachedCounts{d: d, every: 10 * time.Second}
	m.LabeledGauges("iotflow_commands", "Commands by state, in the database (read at most every 10 s).", "state", counts.get)
	return d
}

// cachedCounts reads the commands by state at most every so often: the
// count walks the commands table, and scrapes may come from many places.
type cachedCounts struct {
	d     *downlink.Service
	every time.Duration

	mu     sync.Mutex
	at     time.Time
	values map[string]float64
}

func (c *cachedCounts) get() (map[string]float64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.values != nil && time.Since(c.at) < c.every {
		return c.values, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	got, err := c.d.Counts(ctx)
	if err != nil {
		return c.values, c.values != nil // the last known, or none
	}
	c.values = make(map[string]float64, len(got))
	for st, n := range got {
		c.values[st] = float64(n)
	}
	c.at = time.Now()
	return c.values, true
}
