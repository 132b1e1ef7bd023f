package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/iotflow/iotflow/internal/config"
	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/mqtt"
)

// newMQTT builds the broker over the app's services and the HTTP API's
// rate limits (one quota per device whatever it speaks).
func newMQTT(cfg *config.Config, a *app, limits *httpapi.Limits, log *slog.Logger) (*mqtt.Broker, error) {
	return mqtt.New(mqtt.Options{
		Fleet: a.svc, Downlink: a.downlink, Logger: log,
		Limits: &mqtt.Limits{Limiter: limits.Limiter, Device: limits.Device, Telemetry: limits.Telemetry,
			Backlog: limits.Backlog, AuthFailures: limits.AuthFailures},
		MaxPacketSize: uint32(cfg.MQTTMaxPacketBytes), MaxBodyBytes: int(cfg.MaxBodyBytes),
		MaxBatchBodyBytes: int(cfg.MaxBatchBodyBytes), MaxBatch: cfg.MaxBatch,
		MaxInflight: uint16(cfg.MQTTMaxInflight), MaxPendingWrites: int32(cfg.MQTTMaxPending),
		MaxSessionExpiry: cfg.MQTTSessionExpiry, MaxClients: int64(cfg.MQTTMaxConnections),
		RequestTimeout: cfg.RequestTimeout, SeenEvery: min(cfg.OnlineTimeout/3, 60e9),
	})
}

// mqttState is what /health shows of MQTT.
type mqttState struct {
	mu     sync.Mutex
	state  httpapi.MQTTState
	broker *mqtt.Broker
}

func (m *mqttState) get() httpapi.MQTTState {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.state
	s.Listeners = append([]string{}, s.Listeners...)
	if m.broker != nil && s.Status == "listening" {
		s.Connected = m.broker.Connected()
	}
	return s
}

// startMQTT opens the MQTT listeners and starts the broker. An address set
// explicitly that cannot be bound is an error; the default one, when
// taken (another broker runs there), leaves MQTT off with a loud warning,
// since a service that is otherwise fine should still start.
func (a *app) startMQTT(cfg *config.Config, tlsCfg *tls.Config, stdout io.Writer) error {
	type listener struct {
		id, addr, scheme string
		set              bool
		tls              *tls.Config
	}
	var want []listener
	if cfg.MQTTAddr != "" {
		want = append(want, listener{"mqtt", cfg.MQTTAddr, "mqtt", cfg.MQTTAddrSet, nil})
	}
	if tlsCfg != nil && cfg.MQTTTLSAddr != "" {
		want = append(want, listener{"mqtts", cfg.MQTTTLSAddr, "mqtts", cfg.MQTTTLSAddrSet, tlsCfg})
	}
	a.mqttState.mu.Lock()
	defer a.mqttState.mu.Unlock()
	a.mqttState.state = httpapi.MQTTState{Status: "off", Listeners: []string{}}
	if len(want) == 0 {
		return nil
	}
	var reasons []string
	for _, l := range want {
		addr, err := a.mqtt.Listen(l.id, l.addr, l.tls)
		if err != nil && l.set {
			return fmt.Errorf("listen for MQTT on %s: %w", l.addr, err)
		}
		if err != nil {
			reason := fmt.Sprintf("the default MQTT address %s cannot be bound (another broker may run there): %v", l.addr, err)
			a.log.Error("MQTT IS OFF on "+l.addr+": set IOTFLOW_MQTT_ADDR to a free address, or off", "err", err)
			fmt.Fprintf(stdout, "MQTT is off: %s\n", reason)
			reasons = append(reasons, reason)
			continue
		}
		url := l.scheme + "://" + addr.String()
		a.mqttState.state.Listeners = append(a.mqttState.state.Listeners, url)
		fmt.Fprintf(stdout, "MQTT listening on %s\n", url)
		a.log.Info("mqtt listening", "addr", addr.String(), "scheme", l.scheme)
	}
	if len(a.mqttState.state.Listeners) == 0 {
		a.mqttState.state.Status, a.mqttState.state.Reason = "unavailable", reasons[0]
		return nil
	}
	a.mqttState.state.Status = "listening"
	a.mqttState.broker = a.mqtt
	return a.mqtt.Start()
}
