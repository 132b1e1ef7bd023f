#!/usr/bin/env python3
"""A small IoTFlow device over MQTT.

It connects with its API key, publishes a simulated temperature reading every
few seconds (QoS 1, each with a message_id), takes commands ("reboot",
"set_interval"; anything else is answered "failed") and applies the desired
configuration of its shadow ("interval", "unit"), reporting what it applied.

    pip install -r requirements.txt           # paho-mqtt, 1.x or 2.x
    python3 iotflow_device.py --register http://localhost:5000   # registers, prints id and key, runs
    IOTFLOW_DEVICE_ID=1 IOTFLOW_API_KEY=iot_... python3 iotflow_device.py

Every option can also be set by environment variable (shown by --help).

The MQTT contract it follows (see internal/mqtt/topics.go in IoTFlow):
  CONNECT         username = device id, password = API key
  publish QoS 1   iotflow/devices/{id}/telemetry            one reading, the HTTP telemetry body
  subscribe       iotflow/devices/{id}/commands             one JSON command per message
  publish QoS 1   iotflow/devices/{id}/commands/{cid}/result {"status": ..., "result": {...}}
  subscribe       iotflow/devices/{id}/shadow/desired       the shadow now, and on every change of desired
  publish QoS 1   iotflow/devices/{id}/shadow/reported      a JSON merge patch of what was applied
The server sends PUBACK for a reading only once it is durably stored.
"""

import argparse
import collections
import json
import logging
import os
import queue
import random
import signal
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid

import paho.mqtt.client as mqtt

log = logging.getLogger("iotflow-device")

# CONNACK codes after which retrying with the same key is pointless: a wrong
# key (MQTT 5: 0x86, MQTT 3.1.1: 4) or a device that is not active (0x87, 5).
# paho 1.x passes MQTT 3.1.1's return codes as they are, paho 2.x as the MQTT 5
# reason codes they map to; the two sets do not overlap. (Over MQTT 3.1.1,
# IoTFlow also answers 4 when too many CONNECTs failed from this address.)
FATAL_CONNACK = {0x86, 0x87, 4, 5}

MIN_INTERVAL, MAX_INTERVAL = 1, 3600  # seconds allowed for the publish interval
HOLD_OFF = 10  # seconds to hold readings back after one was refused for now


def env(name, default=None):
    """An environment variable, or default when it is unset or empty."""
    value = os.environ.get(name)
    return value if value else default


def code_of(rc):
    """The number of a result code: paho 1.x passes ints (MQTT 3.1.1) or
    ReasonCodes, paho 2.x ReasonCode objects; both carry .value."""
    return getattr(rc, "value", rc)


# --------------------------------------------------------------------------
# Registration over HTTP (standard library only)
# --------------------------------------------------------------------------

def register(base_url, name, device_type, provisioning_token=None, ca_file=None):
    """POST /api/v1/devices/register; returns (device id, API key).

    The key is shown only this once: keep it. ca_file verifies an https://
    base URL against a private CA."""
    body = json.dumps({"name": name, "device_type": device_type}).encode()
    req = urllib.request.Request(
        base_url.rstrip("/") + "/api/v1/devices/register", data=body, method="POST",
        headers={"Content-Type": "application/json"})
    if provisioning_token:  # required when the server sets IOTFLOW_PROVISIONING_TOKEN
        req.add_header("X-Provisioning-Token", provisioning_token)
    try:
        context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            device = json.load(resp)["device"]
    except urllib.error.HTTPError as e:
        # Every IoTFlow error is JSON: {"error": "...", "message": "..."}
        detail = e.read().decode(errors="replace")
        raise SystemExit(f"registration failed: HTTP {e.code}: {detail}")
    return device["id"], device["api_key"]


# --------------------------------------------------------------------------
# The device
# --------------------------------------------------------------------------

class Device:
    def __init__(self, args):
        self.args = args
        self.device_id = int(args.device_id)
        base = f"iotflow/devices/{self.device_id}"
        self.topic_telemetry = base + "/telemetry"
        self.topic_batch = base + "/telemetry/batch"
        self.topic_commands = base + "/commands"
        self.topic_desired = base + "/shadow/desired"
        self.topic_reported = base + "/shadow/reported"
        self.topic_result = base + "/commands/{}/result"

        # State that commands and the shadow change.
        self.interval = float(args.interval)
        self.unit = "C"
        self.boot()

        # paho runs its callbacks on its own network thread, holding its own
        # locks; they only put events on this queue, and the main thread does
        # all the work (publishing from a callback, or sharing a lock with
        # one, invites deadlocks).
        self.inbox = queue.Queue()
        self.stopping = threading.Event()
        self.rebooting = False
        self.fatal = None
        # Commands already handled, with their final answer: a QoS 1 message
        # may arrive twice, and a command must not run twice.
        self.done = collections.OrderedDict()
        self.pending = {}  # mid -> the readings of a publish awaiting its PUBACK
        # Readings refused for now (a rate limit, a failing service), to be
        # sent again as one batch once hold_until has passed.
        self.backlog = collections.deque(maxlen=1000)
        self.hold_until = 0.0

        self.client = self.make_client()

    def boot(self):
        """What a (simulated) reboot resets."""
        self.boot_id = uuid.uuid4().hex[:8]  # message ids stay unique across restarts
        self.seq = 0
        self.started = time.monotonic()
        self.temperature = 21.5

    # ---- MQTT client -----------------------------------------------------

    def make_client(self):
        v5 = self.args.mqtt_version == "5"
        protocol = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        client_id = f"iotflow-example-{self.device_id}"
        kwargs = {"client_id": client_id, "protocol": protocol}
        if not v5:
            kwargs["clean_session"] = True  # MQTT 5 takes clean_start at connect instead
        if hasattr(mqtt, "CallbackAPIVersion"):
            # paho-mqtt 2.x: the callback API version comes first.
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
        else:
            # paho-mqtt 1.x
            client = mqtt.Client(**kwargs)

        # Username: the device id (anything works); password: the API key.
        client.username_pw_set(str(self.device_id), self.args.api_key)
        if self.args.tls:
            # MQTT over TLS (IoTFlow's IOTFLOW_MQTT_TLS_ADDR, port 8883).
            client.tls_set(ca_certs=self.args.ca_file)
        client.reconnect_delay_set(min_delay=1, max_delay=60)
        client.max_queued_messages_set(1000)  # bound what piles up while offline

        # The callbacks below accept the signatures of paho 1.x (MQTT 3.1.1
        # and 5) and of paho 2.x's CallbackAPIVersion.VERSION2 alike.
        client.on_connect = self.on_connect
        client.on_connect_fail = self.on_connect_fail
        client.on_disconnect = self.on_disconnect
        client.on_subscribe = self.on_subscribe
        client.on_publish = self.on_publish
        client.on_message = self.on_message
        return client

    def connect(self):
        log.info("connecting to %s:%d as device %d (MQTT %s)", self.args.host, self.args.port,
                 self.device_id, "5" if self.args.mqtt_version == "5" else "3.1.1")
        # No persistent session is needed: commands issued while the device is
        # offline stay pending on the server until it subscribes again.
        kwargs = {"clean_start": True} if self.args.mqtt_version == "5" else {}
        try:
            # The first attempt in the foreground, to log why it failed.
            self.client.connect(self.args.host, self.args.port, keepalive=60, **kwargs)
        except OSError as e:  # unreachable, refused, a TLS handshake that failed
            log.warning("cannot connect to %s:%d: %s; retrying", self.args.host, self.args.port, e)
        self.client.loop_start()  # the network thread; it (re)connects by itself

    def on_connect(self, client, userdata, flags, rc, properties=None):
        code = code_of(rc)
        if code != 0:
            log.error("connection refused: %s (%s)", rc, code)
            if code in FATAL_CONNACK:
                self.fatal = f"connection refused: {rc}; check the device id and API key"
                self.stopping.set()
            return
        log.info("connected")
        # Subscribe on every (re)connect: a clean session keeps no subscriptions.
        # The server publishes the shadow at once on the desired subscription.
        client.subscribe([(self.topic_commands, 1), (self.topic_desired, 1)])

    def on_connect_fail(self, client, userdata):
        # A (re)connection failed before any CONNACK: unreachable, refused, or
        # a TLS handshake that failed (a wrong --ca-file, a host name the
        # certificate does not name).
        log.warning("cannot connect to %s:%d; retrying", self.args.host, self.args.port)

    def on_disconnect(self, client, userdata, *args):
        # paho 1.x: (rc) or (rc, properties); paho 2.x: (flags, reason_code, properties)
        rc = args[1] if len(args) == 3 else args[0]
        if not self.stopping.is_set() and not self.rebooting:
            log.warning("disconnected (%s); paho reconnects by itself", rc)

    def on_subscribe(self, client, userdata, mid, granted, properties=None):
        for g in granted:
            if code_of(g) >= 0x80:
                log.error("a subscription was refused (%s)", g)
                return
        log.info("subscribed to commands and shadow/desired")

    def on_publish(self, client, userdata, mid, reason_code=None, properties=None):
        # Called on PUBACK, which IoTFlow sends for a reading only once it is
        # stored. With MQTT 5 it refuses a publish by a PUBACK reason code of
        # 0x80 or more, with the reason as reason string; paho 2.x passes both
        # here, paho 1.x neither (a refusal then looks like a success). With
        # MQTT 3.1.1, over a rate limit, it closes the connection instead, and
        # paho sends the message again once it has reconnected (an invalid
        # message is acknowledged and dropped).
        code = code_of(reason_code) if reason_code is not None else 0
        why = getattr(properties, "ReasonString", "") if properties is not None else ""
        self.inbox.put(("puback", (mid, code, why)))

    def on_message(self, client, userdata, msg):
        self.inbox.put((msg.topic, msg.payload))

    def handle_puback(self, mid, code, why):
        readings = self.pending.pop(mid, None)
        if readings is None:  # an answer or a report, not telemetry
            if code >= 0x80:
                log.error("publish refused (0x%02X): %s", code, why)
            return
        ids = ", ".join(r["message_id"] for r in readings)
        if code < 0x80:
            log.info("stored %s", ids)
        elif code in (0x80, 0x97):
            # 0x97: a rate limit; 0x80: the service failed. Both may pass
            # later, and the message_id makes sending a reading again safe.
            log.warning("refused for now (0x%02X: %s): %s; sent again later", code, why, ids)
            self.backlog.extendleft(reversed(readings))
            self.hold_until = time.monotonic() + HOLD_OFF
        else:  # 0x99, the payload is invalid: it would fail again
            log.error("refused (0x%02X: %s): %s dropped", code, why, ids)

    def publish(self, topic, body):
        return self.client.publish(topic, json.dumps(body, separators=(",", ":")), qos=1)

    # ---- telemetry -------------------------------------------------------

    def publish_reading(self):
        self.seq += 1
        self.temperature += random.uniform(-0.3, 0.3)  # a slow random walk
        value = self.temperature if self.unit == "C" else self.temperature * 9 / 5 + 32
        reading = {
            "data": {"temperature": round(value, 2), "humidity": round(random.uniform(40, 60), 1)},
            "metadata": {"unit": self.unit, "uptime_s": int(time.monotonic() - self.started)},
            "timestamp": int(time.time() * 1000),  # Unix epoch milliseconds: when it was measured
            # Makes a reading sent again (after a lost PUBACK, a refusal, a
            # reconnect) safe: the server stores one message_id only once.
            "message_id": f"{self.device_id}-{self.boot_id}-{self.seq}",
        }
        if time.monotonic() < self.hold_until:
            self.backlog.append(reading)
            return
        if self.backlog:
            # The backlog goes as one batch (up to IOTFLOW_MAX_BATCH records);
            # batches beyond the telemetry rate limit draw on a separate
            # backlog allowance of the service.
            batch = [self.backlog.popleft() for _ in range(min(len(self.backlog), 100))]
            self.send(self.topic_batch, {"records": batch}, batch)
        self.send(self.topic_telemetry, reading, [reading])

    def send(self, topic, body, readings):
        # While offline, paho queues a QoS 1 message (up to max_queued_messages)
        # and sends it once reconnected: each reading keeps its own timestamp.
        info = self.publish(topic, body)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            log.warning("queue full: %s dropped", ", ".join(r["message_id"] for r in readings))
            return
        # Recorded before the main thread reads the PUBACK event from the inbox.
        self.pending[info.mid] = readings

    # ---- commands --------------------------------------------------------

    def answer(self, cid, status, result=None):
        body = {"status": status}
        if result is not None:
            body["result"] = result
        return self.publish(self.topic_result.format(cid), body)

    def handle_command(self, payload):
        # {"id", "device_id", "command", "parameters", "status": "sent", ...}
        try:
            cmd = json.loads(payload)
            cid = int(cmd["id"])
        except (ValueError, KeyError, TypeError):
            log.error("not a command: %r", payload[:200])
            return
        name = cmd.get("command")
        params = cmd.get("parameters") or {}
        if cid in self.done:  # delivered again: repeat the final answer, run nothing
            self.answer(cid, *self.done[cid])
            return
        log.info("command %d: %s %s", cid, name, json.dumps(params))
        self.answer(cid, "acknowledged")

        after = None
        try:
            if not isinstance(params, dict):
                raise ValueError("parameters must be a JSON object")
            if name == "set_interval":
                seconds = params.get("seconds", params.get("interval"))
                self.set_interval(seconds)
                status, result = "completed", {"interval": seconds}
                # The interval is part of the device's reported state too.
                self.publish(self.topic_reported, {"interval": seconds})
            elif name == "reboot":
                delay = params.get("delay", 1)
                if not isinstance(delay, (int, float)) or isinstance(delay, bool) or not 0 <= delay <= 60:
                    raise ValueError("'delay' must be a number of seconds from 0 to 60")
                status, result = "completed", {"rebooting": True, "delay": delay}
                after = lambda: self.reboot(delay)  # answer first: a reboot forgets everything
            else:
                status, result = "failed", {"reason": f"unknown command {name!r}"}
        except ValueError as e:
            status, result = "failed", {"reason": str(e)}

        info = self.answer(cid, status, result)
        self.done[cid] = (status, result)
        while len(self.done) > 100:
            self.done.popitem(last=False)
        log.info("command %d %s: %s", cid, status, json.dumps(result))
        if after:
            wait_published(info, 5)
            after()

    def set_interval(self, seconds):
        """Changes the publish interval; ValueError when seconds is not valid."""
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) \
                or not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
            raise ValueError(f"'seconds' must be a number from {MIN_INTERVAL} to {MAX_INTERVAL}")
        if self.interval != seconds:
            self.interval = float(seconds)
            log.info("publishing every %g s", self.interval)

    def reboot(self, delay):
        """Simulates a reboot: disconnect, wait, forget the state, reconnect."""
        log.info("rebooting in %g s", delay)
        self.rebooting = True
        self.client.disconnect()
        self.client.loop_stop()
        time.sleep(delay)
        self.boot()
        self.interval = float(self.args.interval)
        self.unit = "C"
        self.rebooting = False
        self.connect()  # the shadow arrives again on subscribing and is applied anew

    # ---- shadow ----------------------------------------------------------

    def handle_desired(self, payload):
        # {"device_id", "desired", "reported", "delta", "version", "desired_version", ...}
        try:
            shadow = json.loads(payload)
        except ValueError:
            log.error("not a shadow: %r", payload[:200])
            return
        desired = shadow.get("desired") or {}
        reported = shadow.get("reported") or {}
        log.info("shadow version %s: desired %s, delta %s", shadow.get("version"),
                 json.dumps(desired), json.dumps(shadow.get("delta")))
        # Apply all of desired, not only the delta: after a restart the device
        # has its defaults again while reported still shows the old values.
        applied = {}
        if "interval" in desired:
            try:
                self.set_interval(desired["interval"])
                applied["interval"] = desired["interval"]
            except ValueError as e:
                log.warning("desired interval not applied: %s", e)
        if "unit" in desired:
            if desired["unit"] in ("C", "F"):
                self.unit = desired["unit"]
                applied["unit"] = self.unit
            else:
                log.warning("desired unit not applied: must be \"C\" or \"F\"")
        for key in desired:
            if key not in ("interval", "unit"):
                log.warning("desired %r is unknown here; it stays in the delta", key)
        # Report, as a merge patch, what was applied and is not reported yet.
        patch = {k: v for k, v in applied.items() if reported.get(k) != v}
        if patch:
            self.publish(self.topic_reported, patch)
            log.info("reported %s", json.dumps(patch))

    # ---- main loop -------------------------------------------------------

    def run(self):
        self.connect()
        next_reading = time.monotonic()
        while not self.stopping.is_set():
            if time.monotonic() >= next_reading:
                self.publish_reading()
                next_reading = time.monotonic() + self.interval
            try:
                wait = min(1.0, max(0.0, next_reading - time.monotonic()))
                topic, payload = self.inbox.get(timeout=wait)
            except queue.Empty:
                continue
            old_interval = self.interval
            if topic == "puback":
                self.handle_puback(*payload)
            elif topic == self.topic_commands:
                self.handle_command(payload)
            elif topic == self.topic_desired:
                self.handle_desired(payload)
            if self.interval != old_interval:  # a new interval counts from now
                next_reading = time.monotonic() + self.interval
        self.client.disconnect()
        self.client.loop_stop()
        if self.fatal:
            raise SystemExit(self.fatal)


def wait_published(info, timeout):
    """Waits for a QoS 1 message's PUBACK; False when it did not come."""
    try:
        info.wait_for_publish(timeout)
        return info.is_published()
    except (ValueError, RuntimeError):  # not queued, or the connection is gone
        return False


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default=env("IOTFLOW_MQTT_HOST", "localhost"),
                   help="MQTT host (IOTFLOW_MQTT_HOST, default localhost)")
    p.add_argument("--port", type=int, default=env("IOTFLOW_MQTT_PORT"),
                   help="MQTT port (IOTFLOW_MQTT_PORT, default 1883, or 8883 with --tls)")
    p.add_argument("--tls", action="store_true", default=env("IOTFLOW_MQTT_TLS") == "1",
                   help="MQTT over TLS (IOTFLOW_MQTT_TLS=1)")
    p.add_argument("--ca-file", default=env("IOTFLOW_CA_FILE"),
                   help="CA certificate for --tls (and an https:// --register); default: the system's (IOTFLOW_CA_FILE)")
    p.add_argument("--mqtt-version", choices=["5", "3.1.1"], default=env("IOTFLOW_MQTT_VERSION", "5"),
                   help="protocol (IOTFLOW_MQTT_VERSION, default 5: refusals come as PUBACK reason "
                        "codes; 3.1.1 closes the connection instead)")
    p.add_argument("--device-id", default=env("IOTFLOW_DEVICE_ID"), help="device id (IOTFLOW_DEVICE_ID)")
    p.add_argument("--api-key", default=env("IOTFLOW_API_KEY"), help="API key (IOTFLOW_API_KEY)")
    p.add_argument("--interval", type=float, default=float(env("IOTFLOW_INTERVAL", "10")),
                   help="seconds between readings (IOTFLOW_INTERVAL, default 10)")
    p.add_argument("--register", metavar="BASE_URL", default=env("IOTFLOW_REGISTER_URL"),
                   help="first register a new device at this HTTP base URL (e.g. http://localhost:5000), "
                        "print its id and key, then run as it (IOTFLOW_REGISTER_URL)")
    p.add_argument("--name", default=env("IOTFLOW_DEVICE_NAME"),
                   help="name to register (default python-example-<random>)")
    p.add_argument("--device-type", default="sensor", help="device_type to register (default sensor)")
    p.add_argument("--provisioning-token", default=env("IOTFLOW_PROVISIONING_TOKEN"),
                   help="X-Provisioning-Token for registration (IOTFLOW_PROVISIONING_TOKEN)")
    p.add_argument("-v", "--verbose", action="store_true", help="log paho's own messages too")
    args = p.parse_args()

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")

    if args.register:
        name = args.name or f"python-example-{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
        args.device_id, args.api_key = register(args.register, name, args.device_type,
                                                args.provisioning_token, args.ca_file)
        # Printed once, to stdout: the server will not show the key again.
        print(f"registered {name!r}:\n  export IOTFLOW_DEVICE_ID={args.device_id}\n"
              f"  export IOTFLOW_API_KEY={args.api_key}", flush=True)
    if not args.device_id or not args.api_key:
        p.error("a device id and API key are needed (--device-id/--api-key, the environment, or --register)")
    if args.port is None:
        args.port = 8883 if args.tls else 1883
    args.port = int(args.port)
    if not MIN_INTERVAL <= args.interval <= MAX_INTERVAL:
        p.error(f"--interval must be from {MIN_INTERVAL} to {MAX_INTERVAL}")

    device = Device(args)
    if args.verbose:
        device.client.enable_logger(logging.getLogger("paho"))

    def stop(signum, frame):
        log.info("stopping")
        device.stopping.set()
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    device.run()


if __name__ == "__main__":
    main()
