package downlink

import (
	"context"
	"encoding/json"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// ShadowView is a device's shadow with the delta: the desired members
// whose reported value differs, what the device has yet to apply.
type ShadowView struct {
	*iotflow.Shadow
	Delta json.RawMessage
}

func view(sh *iotflow.Shadow) *ShadowView {
	return &ShadowView{Shadow: sh, Delta: iotflow.ShadowDelta(sh.Desired, sh.Reported)}
}

// Shadow returns the device's shadow.
func (s *Service) Shadow(ctx context.Context, deviceID int64) (*ShadowView, error) {
	sh, err := s.store.Shadow(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	return view(sh), nil
}

// WaitShadow returns the shadow once its version differs from version, or
// as it is when wait passes first: a device polling for changes cheaply.
func (s *Service) WaitShadow(ctx context.Context, deviceID, version int64, wait time.Duration) (*ShadowView, error) {
	var last *iotflow.Shadow
	err := s.wait(ctx, shadowTopic(deviceID), min(wait, MaxWait), func() (bool, error) {
		sh, err := s.store.Shadow(ctx, deviceID)
		if err != nil {
			return false, err
		}
		last = sh
		return sh.Version != version, nil
	})
	if last == nil || (err != nil && ctx.Err() == nil) {
		return nil, err
	}
	return view(last), nil
}

// maxShadowRetries bounds the retries of a patch that lost a race with
// another change of the same shadow.
const maxShadowRetries = 20

// PatchDesired applies a merge patch (RFC 7396) to the desired document.
// With ifMatch, only over a version it accepts: EPRECONDITION, changing
// nothing, when the shadow is at another. Without, it is applied over
// whatever came first.
func (s *Service) PatchDesired(ctx context.Context, deviceID int64, patch json.RawMessage, ifMatch func(version int64) bool) (*ShadowView, error) {
	return s.patch(ctx, deviceID, ifMatch, func(sh *iotflow.Shadow, now time.Time) error {
		merged, err := iotflow.MergePatch(sh.Desired, patch, "desired")
		if err != nil {
			return err
		}
		times, err := touchKeys(sh.DesiredTimes, patch, now)
		if err != nil {
			return err
		}
		sh.Desired, sh.DesiredTimes, sh.DesiredVersion, sh.DesiredUpdatedAt = merged, times, sh.DesiredVersion+1, &now
		return nil
	})
}

// PatchReported applies a device's merge patch of what it applied to the
// reported document.
func (s *Service) PatchReported(ctx context.Context, deviceID int64, patch json.RawMessage) (*ShadowView, error) {
	return s.patch(ctx, deviceID, nil, func(sh *iotflow.Shadow, now time.Time) error {
		merged, err := iotflow.MergePatch(sh.Reported, patch, "reported")
		if err != nil {
			return err
		}
		sh.Reported, sh.ReportedUpdatedAt = merged, &now
		return nil
	})
}

func (s *Service) patch(ctx context.Context, deviceID int64, ifMatch func(int64) bool, change func(*iotflow.Shadow, time.Time) error) (*ShadowView, error) {
	for range maxShadowRetries {
		sh, err := s.store.Shadow(ctx, deviceID)
		if err != nil {
			return nil, err
		}
		if ifMatch != nil && !ifMatch(sh.Version) {
			return nil, stale(sh.Version)
		}
		prev := sh.Version
		if err := change(sh, iotflow.Truncate(s.now())); err != nil {
			return nil, err
		}
		sh.Version++
		err = s.store.SaveShadow(ctx, sh, prev)
		if err == nil {
			s.notify(ctx, shadowTopic(deviceID))
			return view(sh), nil
		} else if iotflow.ErrorCode(err) != iotflow.ECONFLICT {
			return nil, err
		}
		// Another change came first: read it, and check If-Match again.
	}
	return nil, iotflow.Errorf(iotflow.EUNAVAILABLE, "Shadow busy", "The shadow of device %d changed too often to apply the patch; try again", deviceID)
}

func stale(current int64) error {
	return iotflow.Errorf(iotflow.EPRECONDITION, "Version mismatch", "The shadow is at version %d, not the one in If-Match", current)
}

// touchKeys records now as the time of each top-level member of patch in
// times, and drops those the patch removes.
func touchKeys(times, patch json.RawMessage, now time.Time) (json.RawMessage, error) {
	var t map[string]string
	if len(times) > 0 {
		if err := json.Unmarshal(times, &t); err != nil {
			return nil, err
		}
	}
	if t == nil {
		t = map[string]string{}
	}
	var p map[string]json.RawMessage
	if err := json.Unmarshal(patch, &p); err != nil {
		return nil, err
	}
	for k, v := range p {
		if string(v) == "null" {
			delete(t, k)
		} else {
			t[k] = now.UTC().Format(time.RFC3339Nano)
		}
	}
	return json.Marshal(t)
}

// KeyTime returns when a top-level member of the desired document was
// last set, or when the document was, for one set before times were kept.
func KeyTime(sh *iotflow.Shadow, key string) *time.Time {
	var t map[string]string
	if json.Unmarshal(sh.DesiredTimes, &t) == nil {
		if at, err := time.Parse(time.RFC3339Nano, t[key]); err == nil {
			return &at
		}
	}
	return sh.DesiredUpdatedAt
}
