package mqtt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotflow/iotflow/internal/downlink"
	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/ratelimit"
)

// hook decides what clients may do: it authenticates each CONNECT with a
// device key, keeps every device to its own topics, stores what devices
// publish through the write pipeline before the broker acknowledges it,
// and delivers commands and the shadow to the subscribed.
type hook struct {
	mochi.HookBase
	srv *mochi.Server
	o   Options

	mu       sync.Mutex
	sessions map[*mochi.Client]*session
	// tbTargets maps a command being delivered on the ThingsBoard topic,
	// which names no device, to its device: the read ACL lets only that
	// device's clients receive it.
	tbTargets sync.Map

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// session is one connected client of a device.
type session struct {
	cl     *mochi.Client
	device int64
	key    string // the API key it connected with, checked again on each publish

	mu       sync.Mutex
	subs     map[kind]bool     // the subscriptions of kindCommands, kindTBRequests, kindDesired it holds
	loops    map[string]func() // the cancels of its running "commands" and "desired" loops
	stopped  bool
	ctx      context.Context
	cancel   context.CancelFunc
	lastSeen time.Time

	answers answers // its QoS 1 publishes awaiting their PUBACKs
}

func newHook(srv *mochi.Server, o Options) *hook {
	ctx, cancel := context.WithCancel(context.Background())
	return &hook{srv: srv, o: o, sessions: map[*mochi.Client]*session{}, ctx: ctx, cancel: cancel}
}

func (h *hook) ID() string { return "iotflow" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mochi.OnConnect, mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnSessionEstablished,
		mochi.OnDisconnect, mochi.OnPublish, mochi.OnSubscribed, mochi.OnUnsubscribed,
	}, []byte{b})
}

// start runs the upkeep: connected devices are marked seen, so that they
// count as online while they stay connected.
func (h *hook) start() {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(h.o.SeenEvery)
		defer t.Stop()
		for {
			select {
			case <-h.ctx.Done():
				return
			case <-t.C:
				h.markSeen()
			}
		}
	}()
}

// closing refuses every CONNECT from now on (OnConnect checks h.ctx under
// h.mu) and ends the connections of every session, so that nothing is
// acknowledged after and nothing keeps the broker's Close waiting.
func (h *hook) closing() {
	h.mu.Lock()
	h.cancel()
	for _, s := range h.sessions {
		s.stop()
		s.cl.Stop(packets.ErrServerShuttingDown)
	}
	h.mu.Unlock()
}

func (h *hook) stop() {
	h.closing()
	h.wg.Wait()
}

// unblock bounds the writes to every client from now on by d: the broker
// says goodbye to each client on closing, under the client's write lock,
// which a client that stopped reading would hold for ever.
func (h *hook) unblock(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for cl := range h.sessions {
		if cl.Net.Conn != nil {
			_ = cl.Net.Conn.SetWriteDeadline(time.Now().Add(d))
		}
	}
}

func (h *hook) markSeen() {
	h.mu.Lock()
	var live []*session
	for cl, s := range h.sessions {
		if cl.Closed() {
			delete(h.sessions, cl) // its disconnect was never reported
			s.stop()
			continue
		}
		live = append(live, s)
	}
	h.mu.Unlock()
	for _, s := range live {
		h.o.Fleet.Heartbeat(h.ctx, &iotflow.Device{ID: s.device})
	}
}

func (h *hook) connected() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return int64(len(h.sessions))
}

func (h *hook) session(cl *mochi.Client) *session {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[cl]
}

func (h *hook) timeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(h.ctx, h.o.RequestTimeout)
}

// credentials is the API key of a CONNECT: the password, or the username
// when there is no password (as ThingsBoard devices send their token).
func credentials(pk packets.Packet) string {
	if pk.Connect.PasswordFlag && len(pk.Connect.Password) > 0 {
		return string(pk.Connect.Password)
	}
	return string(pk.Connect.Username)
}

// remoteIP is the address a client connects from.
func remoteIP(cl *mochi.Client) string {
	host, _, err := net.SplitHostPort(cl.Net.Remote)
	if err != nil {
		return cl.Net.Remote
	}
	return host
}

// The CONNACK refusals, as MQTT 5 reason codes and MQTT 3.1.1 return codes.
var (
	refuseBadKey   = refusal{v5: packets.ErrBadUsernameOrPassword, v3: packets.ErrMalformedUsernameOrPassword}  // 0x86, 4
	refuseInactive = refusal{v5: packets.ErrNotAuthorized, v3: packets.Err3NotAuthorized}                       // 0x87, 5
	refuseTooMany  = refusal{v5: packets.ErrConnectionRateExceeded, v3: packets.ErrMalformedUsernameOrPassword} // 0x9F, 4
	refuseDown     = refusal{v5: packets.ErrServerUnavailable, v3: packets.Err3ServerUnavailable}               // 0x88, 3
)

type refusal struct{ v5, v3 packets.Code }

// OnConnect authenticates the client before the broker looks at its
// session: a refused client never reaches one. A device's clients are
// named apart from every other device's, so that no client id takes over
// another device's session.
func (h *hook) OnConnect(cl *mochi.Client, pk packets.Packet) error {
	ctx, cancel := h.timeout()
	defer cancel()
	d, _, err := h.o.Fleet.AuthenticateKey(ctx, credentials(pk))
	if err != nil {
		r := refuseDown
		switch iotflow.ErrorCode(err) {
		case iotflow.EUNAUTHORIZED:
			r = refuseBadKey
			if !h.allowFailure(ctx, remoteIP(cl)) {
				r = refuseTooMany
			}
		case iotflow.EFORBIDDEN:
			r = refuseInactive
		}
		code := r.v5
		if cl.Properties.ProtocolVersion < 5 {
			code = r.v3
		}
		code.Reason = iotflow.ErrorMessage(err)
		if credentials(pk) == "" {
			code.Reason = "Send the device API key as the password (or as the username, with no password)"
		}
		h.o.Logger.Info("mqtt connect refused", "remote", cl.Net.Remote, "reason", code.Reason, "code", code.Code)
		_ = h.srv.SendConnack(cl, code, false, nil)
		return code
	}
	cl.ID = strconv.FormatInt(d.ID, 10) + "/" + cl.ID
	// A will would be published to subscribers without the write ACL: a
	// device could leave a command on another device's topic. The service
	// publishes nothing a device sends, so it has no will; the device's
	// disconnect, clean or not, is what it records.
	cl.Properties.Will = mochi.Will{}
	s := &session{cl: cl, device: d.ID, key: credentials(pk), subs: map[kind]bool{}, loops: map[string]func(){}}
	s.ctx, s.cancel = context.WithCancel(h.ctx)
	h.mu.Lock()
	if h.ctx.Err() != nil { // the broker closed while the key was looked up
		h.mu.Unlock()
		code := refuseDown.v5
		if cl.Properties.ProtocolVersion < 5 {
			code = refuseDown.v3
		}
		code.Reason = "The service is shutting down"
		_ = h.srv.SendConnack(cl, code, false, nil)
		return code
	}
	h.sessions[cl] = s
	h.mu.Unlock()
	h.o.Fleet.Heartbeat(ctx, d)
	return nil
}

// allowFailure counts a failed authentication against the address; false
// once the address has used up its limit.
func (h *hook) allowFailure(ctx context.Context, ip string) bool {
	l := h.o.Limits
	if l == nil {
		return true
	}
	res, err := l.Limiter.AllowN(ctx, ip, l.AuthFailures, 1)
	return err != nil || res.Allowed
}

func (h *hook) OnConnectAuthenticate(cl *mochi.Client, _ packets.Packet) bool {
	return h.session(cl) != nil
}

// OnSessionEstablished resumes the deliveries of a session that kept its
// subscriptions from an earlier connection.
func (h *hook) OnSessionEstablished(cl *mochi.Client, _ packets.Packet) {
	s := h.session(cl)
	if s == nil {
		return
	}
	for filter := range cl.State.Subscriptions.GetAll() {
		h.subscribed(s, parseTopic(filter))
	}
}

func (h *hook) OnDisconnect(cl *mochi.Client, _ error, _ bool) {
	h.mu.Lock()
	s := h.sessions[cl]
	delete(h.sessions, cl)
	h.mu.Unlock()
	if s == nil {
		return
	}
	s.stop()
	h.mu.Lock()
	another := false
	for _, o := range h.sessions {
		another = another || o.device == s.device
	}
	h.mu.Unlock()
	if another { // another connection of the device stays
		h.o.Fleet.Heartbeat(h.ctx, &iotflow.Device{ID: s.device})
		return
	}
	h.o.Fleet.Disconnected(s.device)
}

// OnACLCheck keeps a device to its own topics. For writes it is asked of
// each publish; for reads, of each subscription's filter and of each
// message before it is delivered.
func (h *hook) OnACLCheck(cl *mochi.Client, name string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	s := h.session(cl)
	if s == nil {
		return false
	}
	t := parseTopic(name)
	if write {
		return t.publishable() && (t.device == 0 || t.device == s.device)
	}
	switch t.kind {
	case kindCommands, kindDesired:
		return t.device == s.device
	case kindTBRequests:
		return true
	case kindTBRequest:
		target, ok := h.tbTargets.Load(t.commandID)
		return ok && target == s.device
	}
	return false
}

func (h *hook) OnSubscribed(cl *mochi.Client, pk packets.Packet, codes []byte) {
	s := h.session(cl)
	if s == nil {
		return
	}
	for i, f := range pk.Filters {
		if i < len(codes) && codes[i] < packets.ErrUnspecifiedError.Code {
			h.subscribed(s, parseTopic(f.Filter))
		}
	}
}

func (h *hook) OnUnsubscribed(cl *mochi.Client, pk packets.Packet) {
	s := h.session(cl)
	if s == nil {
		return
	}
	for _, f := range pk.Filters {
		t := parseTopic(f.Filter)
		s.mu.Lock()
		delete(s.subs, t.kind)
		commands := s.subs[kindCommands] || s.subs[kindTBRequests]
		var stop []func()
		if !commands && s.loops["commands"] != nil {
			stop, s.loops["commands"] = append(stop, s.loops["commands"]), nil
		}
		if !s.subs[kindDesired] && s.loops["desired"] != nil {
			stop, s.loops["desired"] = append(stop, s.loops["desired"]), nil
		}
		s.mu.Unlock()
		for _, f := range stop {
			f()
		}
	}
}

// subscribed starts what a new subscription of s asks for.
func (h *hook) subscribed(s *session, t topic) {
	if h.o.Downlink == nil || !t.subscribable() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs[t.kind] = true
	loop := "commands"
	run := h.deliverCommands
	if t.kind == kindDesired {
		loop, run = "desired", h.deliverDesired
	}
	if s.stopped || s.loops[loop] != nil {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	s.loops[loop] = cancel
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		run(ctx, s)
	}()
}

func (s *session) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	if s.cancel != nil {
		s.cancel()
	}
}

func (s *session) has(k kind) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs[k]
}

// pause waits d, or until ctx ends; false when it did.
func pause(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// deliverCommands takes the device's commands as a long poll does, on
// whichever node they are issued, and publishes each to the topics the
// session subscribed to. A command is sent once it is taken: should the
// connection fail before the device has it, it times out as one taken
// over HTTP whose answer was lost.
func (h *hook) deliverCommands(ctx context.Context, s *session) {
	for ctx.Err() == nil && !s.cl.Closed() {
		cs, err := h.o.Downlink.Take(ctx, s.device, downlink.MaxWait)
		if err != nil {
			if ctx.Err() == nil {
				h.o.Logger.Warn("mqtt: taking commands failed", "device", s.device, "err", err)
				pause(ctx, time.Second)
			}
			continue
		}
		for _, c := range cs {
			h.publishCommand(s, c)
		}
	}
}

func (h *hook) publishCommand(s *session, c *iotflow.Command) {
	if s.has(kindCommands) {
		body, _ := json.Marshal(downlink.CommandView(c))
		h.publish(commandsTopic(s.device), body)
	}
	if s.has(kindTBRequests) {
		params := c.Parameters
		if len(params) == 0 {
			params = json.RawMessage("{}")
		}
		body, _ := json.Marshal(map[string]any{"method": c.Command, "params": params})
		h.tbTargets.Store(c.ID, s.device)
		h.publish(tbRequest+strconv.FormatInt(c.ID, 10), body)
		h.tbTargets.Delete(c.ID)
	}
}

func (h *hook) publish(topic string, body []byte) {
	if err := h.srv.Publish(topic, body, false, 1); err != nil {
		h.o.Logger.Warn("mqtt: publish failed", "topic", topic, "err", err)
	}
}

// deliverDesired publishes the shadow at once, then whenever its desired
// document changes.
func (h *hook) deliverDesired(ctx context.Context, s *session) {
	var v *downlink.ShadowView
	for v == nil {
		var err error
		v, err = h.o.Downlink.Shadow(ctx, s.device)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			h.o.Logger.Warn("mqtt: reading the shadow failed", "device", s.device, "err", err)
			pause(ctx, time.Second)
		}
	}
	h.publishShadow(s, v)
	version, desired := v.Version, v.DesiredVersion
	for ctx.Err() == nil && !s.cl.Closed() {
		v, err := h.o.Downlink.WaitShadow(ctx, s.device, version, downlink.MaxWait)
		if err != nil || v == nil {
			if ctx.Err() == nil {
				pause(ctx, time.Second)
			}
			continue
		}
		version = v.Version
		if v.DesiredVersion != desired {
			desired = v.DesiredVersion
			h.publishShadow(s, v)
		}
	}
}

func (h *hook) publishShadow(s *session, v *downlink.ShadowView) {
	body, _ := json.Marshal(v.JSON())
	h.publish(desiredTopic(s.device), body)
}

// OnPublish stores or applies what a device publishes before it is
// acknowledged: the PUBACK of a reading follows its durable commit, like
// a 201. QoS 1 publishes are answered by the connection's queue of
// answers (acks.go), in order, so that the connection reads on meanwhile;
// QoS 0 and 2 are handled here, the broker answering QoS 2 by its own
// flow. Nothing a device publishes is routed to other clients.
func (h *hook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	s := h.session(cl)
	if s == nil {
		return pk, packets.ErrRejectPacket
	}
	t := parseTopic(pk.TopicName)
	if pk.FixedHeader.Qos == 1 {
		reading := t.kind == kindTelemetry || t.kind == kindBatch || t.kind == kindTBTelemetry
		h.enqueue(s, &pending{pk: pk, ordered: !reading, work: func() error { return h.handle(s, t, pk.Payload) }})
		return pk, packets.ErrRejectPacket // answered by the queue, not the broker
	}
	err := h.handle(s, t, pk.Payload)
	if err == nil {
		return pk, packets.CodeSuccessIgnore
	}
	h.refusePublish(cl, pk, err)
	return pk, packets.ErrRejectPacket
}

// refusePublish answers a publish that was not stored or applied. MQTT 5
// gets its PUBACK (or PUBREC) with the reason code and the message as
// reason string. MQTT 3.1.1 has no negative acknowledgement, so it gets
// what makes its client do the right thing: a publish that could succeed
// later (over a rate limit, the service unavailable) is not acknowledged
// and the connection is closed, so that the client sends it again once it
// reconnects, and nothing that was not stored is acknowledged; one that
// can never succeed (an invalid payload, an answer to a command that is
// unknown or has ended) is acknowledged and dropped, since a client
// resends an unacknowledged message on every reconnect, forever, with
// everything it sends after it stuck behind it. A QoS 0 one is dropped.
func (h *hook) refusePublish(cl *mochi.Client, pk packets.Packet, err error) {
	code := reasonCode(err)
	h.o.Logger.Info("mqtt publish refused", "client", cl.ID, "topic", pk.TopicName, "reason", code.Reason, "code", code.Code)
	qos := pk.FixedHeader.Qos
	ack := packets.Puback
	if qos == 2 {
		ack = packets.Pubrec
	}
	switch {
	case qos == 0:
	case cl.Properties.ProtocolVersion < 5 && permanent(err):
		_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: ack}, PacketID: pk.PacketID})
	case cl.Properties.ProtocolVersion < 5:
		cl.Stop(code)
	default:
		_ = cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: ack}, PacketID: pk.PacketID, ReasonCode: code.Code,
			Properties: packets.Properties{ReasonString: code.Reason},
		})
	}
	if iotflow.ErrorCode(err) == iotflow.EUNAUTHORIZED || iotflow.ErrorCode(err) == iotflow.EFORBIDDEN {
		if cl.Properties.ProtocolVersion >= 5 {
			_ = h.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
		}
		cl.Stop(code) // the key or the device is no longer good
	}
}

// permanent says whether a refused publish would be refused again however
// often it were sent.
func permanent(err error) bool {
	switch iotflow.ErrorCode(err) {
	case iotflow.EINVALID, iotflow.ETOOLARGE, iotflow.ENOTFOUND, iotflow.ECONFLICT:
		return true
	}
	return false
}

// reasonCode is the MQTT 5 PUBACK reason of an error, with its message.
func reasonCode(err error) packets.Code {
	c := packets.ErrUnspecifiedError // 0x80: the service failed; retry
	switch iotflow.ErrorCode(err) {
	case iotflow.EINVALID, iotflow.ETOOLARGE:
		c = packets.ErrPayloadFormatInvalid // 0x99
	case iotflow.ERATELIMIT:
		c = packets.ErrQuotaExceeded // 0x97
	case iotflow.EUNAUTHORIZED, iotflow.EFORBIDDEN:
		c = packets.ErrNotAuthorized // 0x87
	case iotflow.ENOTFOUND, iotflow.ECONFLICT:
		c = packets.ErrImplementationSpecificError // 0x83: no such command, or it has ended
	}
	c.Reason = iotflow.ErrorMessage(err)
	return c
}

// handle does what a publish to t asks, as the HTTP route would.
func (h *hook) handle(s *session, t topic, payload []byte) error {
	ctx, cancel := h.timeout()
	defer cancel()
	d, _, err := h.o.Fleet.AuthenticateKey(ctx, s.key)
	if err != nil {
		return err
	}
	if t.device != 0 && t.device != d.ID { // the ACL refused it already; never store under another topic
		return iotflow.Errorf(iotflow.EFORBIDDEN, "Not authorized", "A device may publish only to its own topics")
	}
	switch t.kind {
	case kindTelemetry:
		if err := h.tooLarge(payload, h.o.MaxBodyBytes); err != nil {
			return err
		}
		var in fleet.ReadingInput
		if err := decodeObject(payload, &in); err != nil {
			return err
		}
		return h.submit(ctx, d, []fleet.ReadingInput{in}, nil)
	case kindBatch:
		if err := h.tooLarge(payload, h.o.MaxBatchBodyBytes); err != nil {
			return err
		}
		var req struct {
			Records []json.RawMessage `json:"records"`
		}
		if err := decodeObject(payload, &req); err != nil {
			return err
		}
		if req.Records == nil {
			return iotflow.Errorf(iotflow.EINVALID, "Validation error", "Field 'records' is required: a list of telemetry records")
		}
		return h.submit(ctx, d, nil, req.Records)
	case kindTBTelemetry:
		if err := h.tooLarge(payload, h.o.MaxBatchBodyBytes); err != nil {
			return err
		}
		records, err := thingsboardRecords(payload)
		if err != nil {
			return err
		}
		return h.submit(ctx, d, nil, records)
	case kindHeartbeat:
		if err := h.allow(ctx, d.ID, h.deviceLimit(), 1); err != nil {
			return err
		}
		h.o.Fleet.Heartbeat(ctx, d)
		return nil
	}
	if h.o.Downlink == nil {
		return iotflow.Errorf(iotflow.EINVALID, "Not available", "Commands and the shadow are not served here")
	}
	if err := h.allow(ctx, d.ID, h.deviceLimit(), 1); err != nil {
		return err
	}
	switch t.kind {
	case kindResult:
		var req struct {
			Status *string         `json:"status"`
			Result json.RawMessage `json:"result"`
		}
		if err := decodeObject(payload, &req); err != nil {
			return err
		}
		if req.Status == nil {
			return iotflow.Errorf(iotflow.EINVALID, "Validation error", "Field 'status' is required: acknowledged, completed or failed")
		}
		_, err := h.o.Downlink.Answer(ctx, d.ID, t.commandID, iotflow.CommandAnswer{Status: *req.Status, Result: req.Result})
		return err
	case kindTBResponse:
		result := json.RawMessage(bytes.TrimSpace(payload))
		if !json.Valid(result) {
			return iotflow.Errorf(iotflow.EINVALID, "Validation error", "The response is not JSON")
		}
		if len(result) == 0 || result[0] != '{' {
			result, _ = json.Marshal(map[string]json.RawMessage{"response": result})
		}
		_, err := h.o.Downlink.Answer(ctx, d.ID, t.commandID, iotflow.CommandAnswer{Status: iotflow.CommandCompleted, Result: result})
		return err
	case kindReported:
		if err := h.tooLarge(payload, h.o.MaxBodyBytes); err != nil {
			return err
		}
		_, err := h.o.Downlink.PatchReported(ctx, d.ID, payload)
		return err
	}
	return iotflow.Errorf(iotflow.EINVALID, "Invalid topic", "Nothing is served on this topic")
}

func (h *hook) tooLarge(payload []byte, limit int) error {
	if len(payload) > limit {
		return iotflow.Errorf(iotflow.ETOOLARGE, "Payload too large", "The payload exceeds %d bytes", limit)
	}
	return nil
}

// submit stores one reading (single) or a batch (records), counted
// against the telemetry limit (a batch, beyond it, against the backlog
// allowance). A batch stores its valid records and fails with the first
// invalid one's reason: records that carry a message_id are safe to send
// again.
func (h *hook) submit(ctx context.Context, d *iotflow.Device, single []fleet.ReadingInput, records []json.RawMessage) error {
	if len(single) == 1 {
		if err := h.allow(ctx, d.ID, h.telemetryLimit(), 1); err != nil {
			return err
		}
		_, err := h.o.Fleet.SubmitReading(ctx, d, &single[0])
		return err
	}
	switch {
	case len(records) == 0:
		return iotflow.Errorf(iotflow.EINVALID, "Validation error", "The batch is empty; send 1 to %d records", h.o.MaxBatch)
	case len(records) > h.o.MaxBatch:
		return iotflow.Errorf(iotflow.EINVALID, "Validation error", "The batch holds %d records; at most %d are allowed", len(records), h.o.MaxBatch)
	}
	if err := h.allowBatch(ctx, d.ID, len(records)); err != nil {
		return err
	}
	results, err := h.o.Fleet.SubmitBatch(ctx, d, records)
	if err != nil {
		return err
	}
	for _, r := range results {
		if r.Err != nil {
			return r.Err
		}
	}
	return nil
}

func (h *hook) deviceLimit() ratelimit.Limit {
	if h.o.Limits == nil {
		return ratelimit.Limit{}
	}
	return h.o.Limits.Device
}

func (h *hook) telemetryLimit() ratelimit.Limit {
	if h.o.Limits == nil {
		return ratelimit.Limit{}
	}
	return h.o.Limits.Telemetry
}

func deviceKey(id int64) string { return "device:" + strconv.FormatInt(id, 10) }

// allow counts n events of device id under l: the HTTP API's keys, so
// that both transports draw on one quota. A failing limiter lets the
// events pass, as over HTTP.
func (h *hook) allow(ctx context.Context, id int64, l ratelimit.Limit, n int) error {
	if h.o.Limits == nil {
		return nil
	}
	res, err := h.o.Limits.Limiter.AllowN(ctx, deviceKey(id), l, n)
	if err != nil || res.Allowed {
		return nil
	}
	return iotflow.Errorf(iotflow.ERATELIMIT, "Rate limit exceeded", "The %s limit of %d per %s was exceeded by this device; retry in %d s",
		l.Name, l.Rate, l.Period, int64(res.RetryAfter/time.Second)+1)
}

func (h *hook) allowBatch(ctx context.Context, id int64, n int) error {
	if h.o.Limits == nil {
		return nil
	}
	res, err := h.o.Limits.Limiter.AllowN(ctx, deviceKey(id), h.o.Limits.Telemetry, n)
	if err != nil || res.Allowed {
		return nil
	}
	return h.allow(ctx, id, h.o.Limits.Backlog, n)
}

// decodeObject reads a payload that must be one JSON object.
func decodeObject(payload []byte, v any) error {
	t := bytes.TrimSpace(payload)
	if len(t) == 0 || t[0] != '{' {
		return iotflow.Errorf(iotflow.EINVALID, "Invalid JSON", "The payload must be one JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return iotflow.Errorf(iotflow.EINVALID, "Validation error", "Field '%s' has the wrong type", te.Field)
		}
		return iotflow.Errorf(iotflow.EINVALID, "Invalid JSON", "The payload is not valid JSON: %v", err)
	}
	if dec.More() {
		return iotflow.Errorf(iotflow.EINVALID, "Invalid JSON", "The payload holds more than one JSON value")
	}
	return nil
}

// thingsboardRecords turns ThingsBoard's telemetry into IoTFlow records: a
// JSON object of values, {"ts": epoch ms, "values": {...}}, or an array of
// either.
func thingsboardRecords(payload []byte) ([]json.RawMessage, error) {
	t := bytes.TrimSpace(payload)
	var items []json.RawMessage
	switch {
	case len(t) > 0 && t[0] == '[':
		if err := json.Unmarshal(t, &items); err != nil {
			return nil, iotflow.Errorf(iotflow.EINVALID, "Invalid JSON", "The payload is not valid JSON: %v", err)
		}
	case len(t) > 0 && t[0] == '{':
		items = []json.RawMessage{t}
	default:
		return nil, iotflow.Errorf(iotflow.EINVALID, "Invalid JSON", "The payload must be a JSON object or an array of them")
	}
	out := make([]json.RawMessage, len(items))
	for i, item := range items {
		var tv struct {
			TS     json.RawMessage `json:"ts"`
			Values json.RawMessage `json:"values"`
		}
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(item, &keys); err != nil {
			return nil, iotflow.Errorf(iotflow.EINVALID, "Validation error", "Item %d is not a JSON object", i)
		}
		rec := map[string]json.RawMessage{"data": item}
		if _, ok := keys["values"]; ok && len(keys) <= 2 {
			_ = json.Unmarshal(item, &tv)
			rec = map[string]json.RawMessage{"data": tv.Values}
			if tv.TS != nil {
				rec["timestamp"] = tv.TS
			}
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return nil, fmt.Errorf("thingsboard record: %w", err)
		}
		out[i] = b
	}
	return out, nil
}
