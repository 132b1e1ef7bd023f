package iotflow

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Device statuses.
const (
	StatusActive      = "active"
	StatusInactive    = "inactive"
	StatusMaintenance = "maintenance"
)

// Field length limits, as in the reference service's schema.
const (
	MaxNameLen        = 100
	MaxDeviceTypeLen  = 50
	MaxLocationLen    = 200
	MaxVersionLen     = 20
	MaxDescriptionLen = 1000
	MaxDataTypeLen    = 50
)

// ValidStatus reports whether s is one of the device statuses.
func ValidStatus(s string) bool {
	return s == StatusActive || s == StatusInactive || s == StatusMaintenance
}

// Device is a registered IoT device. Empty optional strings are stored and
// shown as null.
type Device struct {
	ID              int64
	Name            string
	Description     string
	DeviceType      string
	Status          string
	Location        string
	FirmwareVersion string
	HardwareVersion string
	CreatedAt       time.Time
	UpdatedAt       time.Time
	LastSeen        *time.Time
	// OfflineAt is when the device's connection (MQTT) ended, or nil: from
	// then until it is seen again it is offline, whatever LastSeen says.
	OfflineAt *time.Time

	// TelemetryCount is the number of stored readings of the device, kept
	// up to date by the store as readings are inserted.
	TelemetryCount int64
	// PendingCommands is how many commands wait for the device to take
	// them, and ShadowVersion the version of its desired configuration:
	// kept by the store, shown to a device in its answers.
	PendingCommands int64
	ShadowVersion   int64
}

// IsOnline reports whether the device was seen within timeout before now,
// and not only up to the end of its connection.
func (d *Device) IsOnline(now time.Time, timeout time.Duration) bool {
	return d.LastSeen != nil && now.Sub(*d.LastSeen) <= timeout &&
		(d.OfflineAt == nil || d.OfflineAt.Before(*d.LastSeen))
}

// NewDevice is what registration supplies.
type NewDevice struct {
	Name            string
	Description     string
	DeviceType      string
	Location        string
	FirmwareVersion string
	HardwareVersion string
}

// Normalize trims surrounding white space from every field.
func (n *NewDevice) Normalize() {
	n.Name = strings.TrimSpace(n.Name)
	n.Description = strings.TrimSpace(n.Description)
	n.DeviceType = strings.TrimSpace(n.DeviceType)
	n.Location = strings.TrimSpace(n.Location)
	n.FirmwareVersion = strings.TrimSpace(n.FirmwareVersion)
	n.HardwareVersion = strings.TrimSpace(n.HardwareVersion)
}

// Validate checks the registration fields against the schema.
func (n *NewDevice) Validate() error {
	if n.Name == "" {
		return Errorf(EINVALID, "Validation error", "Field 'name' is required and must not be blank")
	}
	if n.DeviceType == "" {
		return Errorf(EINVALID, "Validation error", "Field 'device_type' is required and must not be blank")
	}
	return firstError(
		CheckText("name", n.Name, MaxNameLen),
		CheckText("description", n.Description, MaxDescriptionLen),
		CheckText("device_type", n.DeviceType, MaxDeviceTypeLen),
		CheckText("location", n.Location, MaxLocationLen),
		CheckText("firmware_version", n.FirmwareVersion, MaxVersionLen),
		CheckText("hardware_version", n.HardwareVersion, MaxVersionLen),
	)
}

// DeviceUpdate holds the fields to change; nil fields stay as they are.
type DeviceUpdate struct {
	Name            *string
	Description     *string
	Status          *string
	Location        *string
	FirmwareVersion *string
	HardwareVersion *string
}

// Empty reports whether the update changes nothing.
func (u *DeviceUpdate) Empty() bool {
	return u.Name == nil && u.Description == nil && u.Status == nil &&
		u.Location == nil && u.FirmwareVersion == nil && u.HardwareVersion == nil
}

// Normalize trims surrounding white space from every set field.
func (u *DeviceUpdate) Normalize() {
	for _, p := range []*string{u.Name, u.Description, u.Status, u.Location, u.FirmwareVersion, u.HardwareVersion} {
		if p != nil {
			*p = strings.TrimSpace(*p)
		}
	}
}

// Validate checks every set field.
func (u *DeviceUpdate) Validate() error {
	if u.Name != nil && *u.Name == "" {
		return Errorf(EINVALID, "Validation error", "Field 'name' must not be blank")
	}
	if u.Status != nil && !ValidStatus(*u.Status) {
		return Errorf(EINVALID, "Validation error", "Field 'status' must be one of active, inactive, maintenance")
	}
	return firstError(
		checkTextPtr("name", u.Name, MaxNameLen),
		checkTextPtr("description", u.Description, MaxDescriptionLen),
		checkTextPtr("location", u.Location, MaxLocationLen),
		checkTextPtr("firmware_version", u.FirmwareVersion, MaxVersionLen),
		checkTextPtr("hardware_version", u.HardwareVersion, MaxVersionLen),
	)
}

// DeviceFilter selects and pages devices; newest first.
type DeviceFilter struct {
	Status     string // exact status, or "" for any
	DeviceType string // exact type, or "" for any
	Search     string // case-insensitive substring of the name, or ""
	Limit      int
	Offset     int
}

// CheckText checks a text value, a field or a query parameter: at most
// max characters, and nothing that not every store can keep (PostgreSQL's
// text refuses NUL, which SQLite would store).
func CheckText(field, v string, max int) error {
	if utf8.RuneCountInString(v) > max {
		return Errorf(EINVALID, "Validation error", "Field '%s' must be at most %d characters", field, max)
	}
	if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
		return Errorf(EINVALID, "Validation error", "Field '%s' must be valid UTF-8 without the NUL character", field)
	}
	return nil
}

func checkTextPtr(field string, v *string, max int) error {
	if v == nil {
		return nil
	}
	return CheckText(field, *v, max)
}

func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
