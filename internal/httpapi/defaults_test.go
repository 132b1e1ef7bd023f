package httpapi

import (
	"github.com/iotflow/iotflow/internal/config"
	"github.com/iotflow/iotflow/internal/downlink"
	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/ingest"
	"github.com/iotflow/iotflow/internal/series"
)

// The service's parts as the tests build them: the settings a test leaves
// zero get the configuration's defaults, as the service would. Exported
// for the external tests of the package.
var (
	DepsWithDefaults = depsWithDefaults
	FleetOptions     = fleetOptions
	IngestOptions    = ingestOptions
)

func depsWithDefaults(d Deps) Deps {
	c := config.Defaults()
	if d.RequestTimeout == 0 {
		d.RequestTimeout = c.RequestTimeout
	}
	if d.MaxBodyBytes == 0 {
		d.MaxBodyBytes = c.MaxBodyBytes
	}
	if d.MaxBatchBodyBytes == 0 {
		d.MaxBatchBodyBytes = c.MaxBatchBodyBytes
	}
	if d.MaxBatch == 0 {
		d.MaxBatch = c.MaxBatch
	}
	if d.Series == nil && d.Service != nil {
		d.Series = &series.Service{Store: d.Service.Store()}
	}
	if d.Downlink == nil && d.Service != nil {
		d.Downlink = downlink.New(d.Service.Store(), downlink.Options{Changed: d.Service.ForgetDevice})
	}
	return d
}

func fleetOptions(o fleet.Options) fleet.Options {
	c := config.Defaults()
	if o.OnlineTimeout == 0 {
		o.OnlineTimeout = c.OnlineTimeout
	}
	if o.MaxClockSkew == 0 {
		o.MaxClockSkew = c.MaxClockSkew
	}
	if o.AuthCacheSize == 0 {
		o.AuthCacheSize = c.AuthCacheSize
	}
	if o.AuthCacheTTL == 0 {
		o.AuthCacheTTL = c.AuthCacheTTL
	}
	if o.KeyRotationGrace == 0 {
		o.KeyRotationGrace = c.KeyRotationGrace
	}
	return o
}

func ingestOptions(o ingest.Options) ingest.Options {
	c := config.Defaults()
	o.MaxBatch, o.QueueSize, o.Writers, o.CommitTimeout = c.WriteBatch, c.WriteQueue, c.WriteWriters, c.RequestTimeout
	return o
}
