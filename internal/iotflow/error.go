// Package iotflow is the domain of the IoTFlow service: devices, API keys,
// telemetry readings, their validation rules and the Store contract that the
// storage backends implement. It imports nothing else of the project.
package iotflow

import (
	"errors"
	"fmt"
)

// Error codes. The HTTP layer maps each to one status code.
const (
	ECONFLICT     = "conflict"           // a unique value (device name) is taken
	EINTERNAL     = "internal"           // a fault of the service; details are logged, never shown
	EINVALID      = "invalid"            // the request is malformed or fails validation
	ENOTFOUND     = "not_found"          // the entity does not exist
	EUNAUTHORIZED = "unauthorized"       // credentials are missing or wrong
	EFORBIDDEN    = "forbidden"          // credentials are valid but not allowed
	EUNAVAILABLE  = "unavailable"        // a dependency is down; try again later
	ERATELIMIT    = "rate_limit"         // a rate limit was used up; try again later
	ETOOLARGE     = "too_large"          // the request body is over its size limit
	EMETHOD       = "method_not_allowed" // the path exists, but not with this method
	EPRECONDITION = "precondition"       // a condition of the request (If-Match) no longer holds
)

// Error is the one application error type. Title is a short summary (the
// "error" field of the JSON body); Message explains it to the caller.
type Error struct {
	Code    string
	Title   string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("iotflow error: code=%s title=%q message=%q", e.Code, e.Title, e.Message)
}

// Errorf builds an *Error with the given code and title and a formatted message.
func Errorf(code, title, format string, args ...any) *Error {
	return &Error{Code: code, Title: title, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of an application error, EINTERNAL for any
// other non-nil error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of an application error, or a generic
// message for any other error, so internals never reach a client.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "An internal error occurred."
}

// ErrorTitle returns the short title of an application error.
func ErrorTitle(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Title != "" {
		return e.Title
	}
	switch ErrorCode(err) {
	case ENOTFOUND:
		return "Not found"
	case ECONFLICT:
		return "Conflict"
	case EINVALID:
		return "Invalid request"
	case EUNAUTHORIZED:
		return "Unauthorized"
	case EFORBIDDEN:
		return "Forbidden"
	case EUNAVAILABLE:
		return "Service unavailable"
	case ERATELIMIT:
		return "Rate limit exceeded"
	case ETOOLARGE:
		return "Payload too large"
	case EMETHOD:
		return "Method not allowed"
	}
	return "Internal server error"
}

// DeviceNotFound is the error of an id that names no device, made where
// the lookup fails and passed up unchanged.
func DeviceNotFound(id int64) error {
	return Errorf(ENOTFOUND, "Device not found", "No device has id %d", id)
}

// KeyNotFound is the error of a key id that names no key of the device.
func KeyNotFound(deviceID, keyID int64) error {
	return Errorf(ENOTFOUND, "Key not found", "Device %d has no key %d", deviceID, keyID)
}
