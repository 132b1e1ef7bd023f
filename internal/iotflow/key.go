package iotflow

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"time"
)

// Key formats. Both carry a recognisable prefix so that secret scanners can
// spot a leaked one; the 32 random bytes behind it give 256 bits of entropy.
const (
	APIKeyPrefix     = "iot_"
	AdminTokenPrefix = "iotadm_"
	keyRandomBytes   = 32
	// ShownPrefixLen is how much of a secret may be shown or logged: the
	// format prefix plus a few characters, far too few to guess the rest.
	ShownPrefixLen = 12
)

// APIKey is the stored form of a device API key: never the secret itself,
// only its SHA-256 hash and a short prefix to recognise it by. A device may
// hold several keys: during a rotation the old one keeps working until its
// ExpiresAt. A revoked key has Active false and RevokedAt set.
type APIKey struct {
	ID         int64
	DeviceID   int64
	Prefix     string
	Hash       string // hex SHA-256 of the whole key
	Active     bool
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
	UsageCount int64
	RevokedAt  *time.Time
}

// Usable reports whether the key may authenticate at now: it is active, not
// revoked and not expired.
func (k *APIKey) Usable(now time.Time) bool {
	return k.Active && k.RevokedAt == nil && (k.ExpiresAt == nil || now.Before(*k.ExpiresAt))
}

// KeyUsage is how much a key was used since usage was last recorded: Count
// requests, the last of them at LastUsed.
type KeyUsage struct {
	Count    int64
	LastUsed time.Time
}

// AdminToken is the stored form of an admin bearer token.
type AdminToken struct {
	ID        int64
	Name      string
	Prefix    string
	Hash      string // hex SHA-256 of the whole token
	CreatedAt time.Time
}

// NewSecret returns a fresh random secret with the given format prefix, for
// example APIKeyPrefix, and its hash and shown prefix.
func NewSecret(prefix string) (secret, hash, shown string, err error) {
	b := make([]byte, keyRandomBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", "", err
	}
	secret = prefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, HashSecret(secret), ShownPrefix(secret), nil
}

// HashSecret returns the hex SHA-256 of a key or token. SHA-256 suffices:
// the secrets are random and 256 bits strong, so no dictionary applies.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// ShownPrefix returns the part of a secret that may be shown or logged.
func ShownPrefix(secret string) string {
	if len(secret) <= ShownPrefixLen {
		return ""
	}
	return secret[:ShownPrefixLen]
}

// SecretMatches compares a presented secret with a stored hash in constant time.
func SecretMatches(secret, hash string) bool {
	return HashMatches(HashSecret(secret), hash)
}

// HashMatches compares the hash of a presented secret (HashSecret) with a
// stored hash in constant time, for a caller that has hashed it already.
func HashMatches(presented, stored string) bool {
	return subtle.ConstantTimeCompare([]byte(presented), []byte(stored)) == 1
}
