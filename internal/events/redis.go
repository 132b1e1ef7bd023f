package events

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Redis carries wake-ups through a Redis channel.
type Redis struct {
	Client  *redis.Client
	Channel string
}

// Publish sends topic to every node listening on the channel.
func (r Redis) Publish(ctx context.Context, topic string) error {
	return r.Client.Publish(ctx, r.Channel, topic).Err()
}

// Listen delivers what is published on the channel until ctx ends. The
// client subscribes again by itself after a lost connection; each
// confirmed subscription, the first and those after, calls ready, since
// what was published in between is lost.
func (r Redis) Listen(ctx context.Context, ready func(), deliver func(topic string)) error {
	ps := r.Client.Subscribe(ctx, r.Channel)
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil { // the first confirmation
		return err
	}
	ready()
	ch := ps.ChannelWithSubscriptions()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m, ok := <-ch:
			if !ok {
				return context.Canceled
			}
			switch m := m.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					ready()
				}
			case *redis.Message:
				deliver(m.Payload)
			}
		}
	}
}
