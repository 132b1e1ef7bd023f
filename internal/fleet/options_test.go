package fleet

import "github.com/iotflow/iotflow/internal/config"

// withDefaults fills the settings o leaves zero with the configuration's
// defaults, as the service gets them.
func withDefaults(o Options) Options {
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
