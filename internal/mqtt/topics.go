package mqtt

import (
	"strconv"
	"strings"
)

// kind is what a topic (or a subscription's filter) is for.
type kind int

const (
	kindNone      kind = iota
	kindTelemetry      // publish: one reading, the HTTP telemetry body
	kindBatch          // publish: {"records": [...]}
	kindHeartbeat      // publish: anything
	kindCommands       // subscribe: the device's commands
	kindResult         // publish: the answer to one command
	kindDesired        // subscribe: the desired document, now and on change
	kindReported       // publish: a merge patch of the reported document
	// The ThingsBoard device API, whose topics name no device: "me" is
	// the connection's own.
	kindTBTelemetry // publish
	kindTBRequests  // subscribe: v1/devices/me/rpc/request/+
	kindTBRequest   // delivery: v1/devices/me/rpc/request/{cid}
	kindTBResponse  // publish: v1/devices/me/rpc/response/{cid}
)

// topic is a parsed topic name or filter.
type topic struct {
	kind      kind
	device    int64 // 0 on ThingsBoard topics: the connection's device
	commandID int64
}

const (
	tbTelemetry = "v1/devices/me/telemetry"
	tbRequests  = "v1/devices/me/rpc/request/+"
	tbRequest   = "v1/devices/me/rpc/request/"
	tbResponse  = "v1/devices/me/rpc/response/"
)

// parseTopic reads a topic name or filter; kindNone when it is none of
// IoTFlow's.
func parseTopic(name string) topic {
	switch {
	case name == tbTelemetry:
		return topic{kind: kindTBTelemetry}
	case name == tbRequests:
		return topic{kind: kindTBRequests}
	case strings.HasPrefix(name, tbRequest):
		if id, ok := positive(name[len(tbRequest):]); ok {
			return topic{kind: kindTBRequest, commandID: id}
		}
		return topic{}
	case strings.HasPrefix(name, tbResponse):
		if id, ok := positive(name[len(tbResponse):]); ok {
			return topic{kind: kindTBResponse, commandID: id}
		}
		return topic{}
	}
	rest, ok := strings.CutPrefix(name, "iotflow/devices/")
	if !ok {
		return topic{}
	}
	idText, rest, _ := strings.Cut(rest, "/")
	id, ok := positive(idText)
	if !ok {
		return topic{}
	}
	t := topic{device: id}
	switch rest {
	case "telemetry":
		t.kind = kindTelemetry
	case "telemetry/batch":
		t.kind = kindBatch
	case "heartbeat":
		t.kind = kindHeartbeat
	case "commands":
		t.kind = kindCommands
	case "shadow/desired":
		t.kind = kindDesired
	case "shadow/reported":
		t.kind = kindReported
	default:
		cid, ok := strings.CutPrefix(rest, "commands/")
		cid, ok2 := strings.CutSuffix(cid, "/result")
		if n, ok3 := positive(cid); ok && ok2 && ok3 {
			t.kind, t.commandID = kindResult, n
		}
	}
	return t
}

// positive reads a decimal id of at least 1, without sign or leading zero.
func positive(s string) (int64, bool) {
	if s == "" || s[0] < '1' || s[0] > '9' {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// Topics of device id.
func commandsTopic(id int64) string {
	return "iotflow/devices/" + strconv.FormatInt(id, 10) + "/commands"
}
func desiredTopic(id int64) string {
	return "iotflow/devices/" + strconv.FormatInt(id, 10) + "/shadow/desired"
}

// publishable says whether a device may publish to t, and subscribable
// whether it may subscribe to it.
func (t topic) publishable() bool {
	switch t.kind {
	case kindTelemetry, kindBatch, kindHeartbeat, kindResult, kindReported, kindTBTelemetry, kindTBResponse:
		return true
	}
	return false
}

func (t topic) subscribable() bool {
	switch t.kind {
	case kindCommands, kindDesired, kindTBRequests:
		return true
	}
	return false
}
