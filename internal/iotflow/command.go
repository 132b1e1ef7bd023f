package iotflow

import (
	"encoding/json"
	"time"
)

// Command states. A command is pending until a device takes it (sent),
// may be acknowledged, and ends completed or failed by the device's
// answer, expired when its time to live passes first, timed_out when the
// device took it and did not answer in time, or cancelled by an operator.
const (
	CommandPending      = "pending"
	CommandSent         = "sent"
	CommandAcknowledged = "acknowledged"
	CommandCompleted    = "completed"
	CommandFailed       = "failed"
	CommandExpired      = "expired"
	CommandTimedOut     = "timed_out"
	CommandCancelled    = "cancelled"
)

// CommandStates lists every state, in the order of a command's life.
var CommandStates = []string{CommandPending, CommandSent, CommandAcknowledged, CommandCompleted,
	CommandFailed, CommandExpired, CommandTimedOut, CommandCancelled}

// CommandEnded reports whether a command in state s has ended.
func CommandEnded(s string) bool {
	switch s {
	case CommandCompleted, CommandFailed, CommandExpired, CommandTimedOut, CommandCancelled:
		return true
	}
	return false
}

// Limits of a command.
const (
	MaxCommandLen      = 100
	MaxIdempotencyKey  = 200
	DefaultCommandTTL  = time.Hour
	MaxCommandTTL      = 7 * 24 * time.Hour
	DefaultCommandWait = 30 * time.Second // for a device's answer once it took the command
)

// Command is an instruction to a device, stored so that it survives
// restarts and moves between nodes.
type Command struct {
	ID         int64
	DeviceID   int64
	Command    string
	Parameters json.RawMessage // a JSON object
	Status     string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	// Timeout is how long the device may take to answer once it took the
	// command.
	Timeout        time.Duration
	SentAt         *time.Time
	AcknowledgedAt *time.Time
	CompletedAt    *time.Time      // when it ended, however
	Result         json.RawMessage // the device's answer, or nil
	// IdempotencyKey, when set, names the command among the device's: the
	// same key again returns it instead of creating another.
	IdempotencyKey string
}

// ValidateCommand checks what an operator sends.
func ValidateCommand(name string, parameters json.RawMessage, ttl, timeout time.Duration) (json.RawMessage, error) {
	if name == "" {
		return nil, Errorf(EINVALID, "Validation error", "Field 'command' is required")
	}
	if err := CheckText("command", name, MaxCommandLen); err != nil {
		return nil, err
	}
	if t := trimJSONSpace(parameters); len(t) == 0 || string(t) == "null" {
		parameters = json.RawMessage("{}")
	} else if !isObject(parameters) {
		return nil, Errorf(EINVALID, "Validation error", "Field 'parameters' must be a JSON object")
	} else if err := checkJSON("parameters", parameters); err != nil {
		return nil, err
	}
	if ttl <= 0 || ttl > MaxCommandTTL {
		return nil, Errorf(EINVALID, "Validation error", "Field 'ttl_seconds' must be from 1 to %d", int(MaxCommandTTL/time.Second))
	}
	if timeout <= 0 || timeout > ttl {
		return nil, Errorf(EINVALID, "Validation error", "Field 'timeout_seconds' must be from 1 to the command's ttl_seconds")
	}
	return parameters, nil
}

// ValidateResult checks a device's answer: a JSON object, or absent.
func ValidateResult(result json.RawMessage) (json.RawMessage, error) {
	if t := trimJSONSpace(result); len(t) == 0 || string(t) == "null" {
		return nil, nil
	}
	if !isObject(result) {
		return nil, Errorf(EINVALID, "Validation error", "Field 'result' must be a JSON object")
	}
	return result, checkJSON("result", result)
}

// CommandFilter selects a device's commands, newest first.
type CommandFilter struct {
	DeviceID int64
	Status   string // "" for any
	// Before, when set, selects only commands older than the one with this
	// id: the next page.
	Before int64
	Limit  int
}

// CommandAnswer is a device's answer to a command.
type CommandAnswer struct {
	Status string // acknowledged, completed or failed
	Result json.RawMessage
	At     time.Time
}

// Shadow is a device's desired configuration, set by operators, and its
// reported one, set by the device, each a JSON object changed by merge
// patches (RFC 7396). Version counts every change of either;
// DesiredVersion the changes of the desired document.
type Shadow struct {
	DeviceID       int64
	Desired        json.RawMessage
	Reported       json.RawMessage
	Version        int64
	DesiredVersion int64
	// DesiredTimes says when each top-level member of Desired was last
	// set: a JSON object of RFC 3339 times.
	DesiredTimes      json.RawMessage
	DesiredUpdatedAt  *time.Time
	ReportedUpdatedAt *time.Time
}

// Answer applies a device's answer to c and returns the command as it then
// is, and whether that changed it. An answer is taken in any state that
// has not ended, so one may overtake the delivery or its acknowledgement:
// acknowledged records when (once), completed and failed end the command
// with the result. After the end, the same final answer, or a late
// acknowledgement of a completed or failed command, changes nothing;
// any other answer is ECONFLICT.
func Answer(c *Command, a CommandAnswer) (*Command, bool, error) {
	switch a.Status {
	case CommandAcknowledged, CommandCompleted, CommandFailed:
	default:
		return nil, false, Errorf(EINVALID, "Validation error", "Field 'status' must be acknowledged, completed or failed")
	}
	if CommandEnded(c.Status) {
		same := a.Status == c.Status && SameJSON(a.Result, c.Result)
		lateAck := a.Status == CommandAcknowledged && (c.Status == CommandCompleted || c.Status == CommandFailed)
		if same || lateAck {
			return c, false, nil
		}
		return nil, false, Errorf(ECONFLICT, "Command has ended",
			"Command %d is %s already; a %s answer cannot change it", c.ID, c.Status, a.Status)
	}
	next := *c
	switch a.Status {
	case CommandAcknowledged:
		if c.Status == CommandAcknowledged {
			return c, false, nil
		}
		at := a.At
		next.Status, next.AcknowledgedAt = CommandAcknowledged, &at
	default:
		at := a.At
		next.Status, next.CompletedAt, next.Result = a.Status, &at, a.Result
	}
	return &next, true, nil
}
