package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// wakeChannel is the LISTEN/NOTIFY channel of wake-ups between nodes.
const wakeChannel = "iotflow_wake"

// Wakeups carries wake-ups between the nodes that share the database with
// LISTEN and NOTIFY: a topic of a few bytes, sent once a change is
// committed, never the change itself. It satisfies events.Carrier.
type Wakeups struct{ s *Store }

// Wakeups returns the store's carrier of wake-ups.
func (s *Store) Wakeups() Wakeups { return Wakeups{s} }

// Publish notifies every listening node of topic.
func (w Wakeups) Publish(ctx context.Context, topic string) error {
	_, err := w.s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, wakeChannel, topic)
	return wrap(ctx, "notify", err)
}

// Listen holds a connection of its own, outside the pool, listening on
// the channel, and calls deliver with each topic until ctx ends or the
// connection fails. A connection silent for listenCheck is pinged, so
// that one the network dropped without a word is found within seconds.
func (w Wakeups) Listen(ctx context.Context, ready func(), deliver func(topic string)) error {
	conn, err := pgx.ConnectConfig(ctx, w.s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return wrap(ctx, "connect to listen", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+wakeChannel); err != nil {
		return wrap(ctx, "listen", err)
	}
	ready()
	for {
		wctx, cancel := context.WithTimeout(ctx, listenCheck)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			deliver(n.Payload)
		case ctx.Err() == nil && wctx.Err() != nil: // silent for a while
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return wrap(ctx, "ping the listening connection", err)
			}
		default:
			return wrap(ctx, "wait for notification", err)
		}
	}
}

// listenCheck is how long the listening connection may stay silent
// before it is pinged.
const listenCheck = 30 * time.Second
