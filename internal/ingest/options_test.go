package ingest

import "github.com/iotflow/iotflow/internal/config"

// withDefaults fills the settings o leaves zero with the configuration's
// defaults, as the service gets them.
func withDefaults(o Options) Options {
	c := config.Defaults()
	if o.MaxBatch == 0 {
		o.MaxBatch = c.WriteBatch
	}
	if o.QueueSize == 0 {
		o.QueueSize = c.WriteQueue
	}
	if o.Writers == 0 {
		o.Writers = c.WriteWriters
	}
	if o.CommitTimeout == 0 {
		o.CommitTimeout = c.RequestTimeout
	}
	return o
}
