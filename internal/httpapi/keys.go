package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/iotflow"
)

// keyJSON describes an API key; never its secret or its hash.
type keyJSON struct {
	ID         int64   `json:"id"`
	Prefix     string  `json:"prefix"`
	Status     string  `json:"status"` // active, expired or revoked
	CreatedAt  string  `json:"created_at"`
	ExpiresAt  *string `json:"expires_at"`
	RevokedAt  *string `json:"revoked_at"`
	LastUsedAt *string `json:"last_used_at"`
	UsageCount int64   `json:"usage_count"`
}

func keyView(k *iotflow.APIKey, now time.Time) keyJSON {
	status := "active"
	switch {
	case k.RevokedAt != nil || !k.Active:
		status = "revoked"
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		status = "expired"
	}
	return keyJSON{ID: k.ID, Prefix: k.Prefix, Status: status, CreatedAt: formatTime(k.CreatedAt),
		ExpiresAt: formatTimePtr(k.ExpiresAt), RevokedAt: formatTimePtr(k.RevokedAt),
		LastUsedAt: formatTimePtr(k.LastUsedAt), UsageCount: k.UsageCount}
}

// rotateKey issues the calling device a new key. The key used for the call
// keeps working for the grace period, or stops at once with ?revoke_old=true.
func (s *server) rotateKey(w http.ResponseWriter, r *http.Request, d *iotflow.Device) {
	revoke := false
	if v := r.URL.Query().Get("revoke_old"); v != "" {
		var err error
		if revoke, err = strconv.ParseBool(v); err != nil {
			s.writeError(w, r, invalid("Query parameter 'revoke_old' must be true or false"))
			return
		}
	}
	secret, key, old, err := s.Service.RotateKey(r.Context(), d, info(r.Context()).key, revoke)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.Service.Now()
	writeJSON(w, http.StatusCreated, map[string]any{
		"message":      "API key rotated successfully",
		"api_key":      secret,
		"key":          keyView(key, now),
		"previous_key": keyView(old, now),
	})
}

func (s *server) listKeys(w http.ResponseWriter, r *http.Request, _ *fleet.AdminIdentity) {
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	keys, err := s.Service.Keys(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.Service.Now()
	out := make([]keyJSON, len(keys))
	for i, k := range keys {
		out[i] = keyView(k, now)
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "device_id": id, "keys": out})
}

// issueKeyRequest is the optional body of POST /api/v1/admin/devices/{id}/keys.
type issueKeyRequest struct {
	ExpiresAt *time.Time `json:"expires_at"`
}

func (s *server) issueKey(w http.ResponseWriter, r *http.Request, who *fleet.AdminIdentity) {
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req issueKeyRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if req.ExpiresAt != nil {
		t := iotflow.Truncate(*req.ExpiresAt)
		req.ExpiresAt = &t
	}
	secret, key, err := s.Service.IssueKey(r.Context(), who, id, req.ExpiresAt)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"message": "API key issued successfully",
		"api_key": secret,
		"key":     keyView(key, s.Service.Now()),
	})
}

func (s *server) revokeKey(w http.ResponseWriter, r *http.Request, who *fleet.AdminIdentity) {
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	keyID, err := strconv.ParseInt(r.PathValue("key_id"), 10, 64)
	if err != nil || keyID < 1 {
		s.writeError(w, r, invalid("Key id must be a positive integer"))
		return
	}
	key, err := s.Service.RevokeKey(r.Context(), who, id, keyID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"message": "API key revoked successfully", "key": keyView(key, s.Service.Now())})
}
