/*
  IoTFlow device for the ESP32 over MQTT.

  Publishes a reading every DEFAULT_INTERVAL_S seconds, takes commands
  ("led", "reboot", "set_interval"; anything else is answered "failed") and
  applies the desired "interval" and "led" of its shadow, reporting them back.

  Libraries (Arduino IDE: Sketch > Include Library > Manage Libraries...):
    PubSubClient by Nick O'Leary, 2.8
    ArduinoJson by Benoit Blanchon, 7.x
  Board: the "esp32" package by Espressif (Boards Manager).

  The MQTT contract (see internal/mqtt/topics.go in IoTFlow):
    CONNECT    username = device id, password = API key
    publish    iotflow/devices/{id}/telemetry             one reading: {"data", "metadata", "timestamp", "message_id"}
    subscribe  iotflow/devices/{id}/commands              {"id", "command", "parameters", "status": "sent", ...}
    publish    iotflow/devices/{id}/commands/{cid}/result {"status": "acknowledged"|"completed"|"failed", "result": {...}}
    subscribe  iotflow/devices/{id}/shadow/desired        the shadow at once, and on every change of desired
    publish    iotflow/devices/{id}/shadow/reported       a JSON merge patch of what was applied

  QoS: PubSubClient publishes at QoS 0 only, so a reading is sent once and
  never acknowledged. IoTFlow drops a QoS 0 publish it refuses (rate limit,
  invalid payload) without telling the device. Each reading carries a
  message_id, so a firmware that resends readings (after a reconnect, or over
  HTTP: POST /api/v1/devices/telemetry) cannot store one twice: the server
  keeps one message_id only once. For acknowledged delivery use an MQTT
  library that publishes at QoS 1 (IoTFlow's PUBACK follows the durable store).
  Subscriptions are QoS 1: PubSubClient acknowledges what it receives.
*/

#include <WiFi.h>
#include <PubSubClient.h>
#include <ArduinoJson.h>
#include <sys/time.h>
#include <time.h>

// ---- Settings ---------------------------------------------------------------

#define WIFI_SSID      "your-wifi"
#define WIFI_PASSWORD  "your-wifi-password"
#define IOTFLOW_HOST   "192.168.1.10"  // the machine running `iotflow serve`
#define IOTFLOW_PORT   1883            // IOTFLOW_MQTT_ADDR; 8883 with USE_TLS
#define DEVICE_ID      "1"             // "id" from POST /api/v1/devices/register
#define API_KEY        "iot_replace_with_the_api_key_shown_at_registration"
#define LED_PIN        2               // the on-board LED of most ESP32 dev boards
#define DEFAULT_INTERVAL_S 10
#define NTP_SERVER     "pool.ntp.org"  // readings carry their own time once the clock is set

// MQTT over TLS: IoTFlow serves it on IOTFLOW_MQTT_TLS_ADDR (:8883) when
// IOTFLOW_TLS_CERT_FILE and IOTFLOW_TLS_KEY_FILE are set. Uncomment, set
// IOTFLOW_PORT to 8883 and paste the CA certificate that signed the server's
// (IOTFLOW_HOST must then match a name in that certificate).
// #define USE_TLS

#ifdef USE_TLS
#include <WiFiClientSecure.h>
static const char ROOT_CA[] = R"PEM(
-----BEGIN CERTIFICATE-----
...the CA certificate, PEM...
-----END CERTIFICATE-----
)PEM";
WiFiClientSecure net;
#else
WiFiClient net;
#endif

PubSubClient mqtt(net);

// A command is JSON of about 450 bytes plus its parameters, and the shadow
// holds desired, reported and delta. PubSubClient's default buffer of 256
// bytes would drop every command unseen (it silently skips larger messages;
// the command then times out on the server). Keep the shadow below this.
const uint16_t MQTT_BUFFER = 4096;

// ---- State ------------------------------------------------------------------

char topicTelemetry[64], topicCommands[64], topicDesired[64], topicReported[64];
uint32_t bootId;           // with seq, makes message_ids unique across reboots
uint32_t seq = 0;
unsigned long intervalMs = DEFAULT_INTERVAL_S * 1000UL;
unsigned long lastReading = 0, lastAttempt = 0, retryMs = 2000;
bool ledOn = false;
long long lastCommand = 0;  // a QoS 1 message may come twice: never run a command twice

// ---- Helpers ----------------------------------------------------------------

bool publishJson(const char* topic, const JsonDocument& doc) {
  char buf[768];
  size_t n = serializeJson(doc, buf, sizeof buf);
  if (n == 0 || n >= sizeof buf - 1) {
    Serial.printf("not published to %s: too large\n", topic);
    return false;
  }
  // QoS 0: false means it was not even sent (not connected, or larger than the buffer).
  return mqtt.publish(topic, (const uint8_t*)buf, n, false);
}

void setLed(bool on) {
  ledOn = on;
  digitalWrite(LED_PIN, on ? HIGH : LOW);
}

// Unix epoch milliseconds, or 0 while NTP has not set the clock (the server
// then uses the time it received the reading).
long long epochMillis() {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  if (tv.tv_sec < 1700000000) return 0;
  return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

// ---- Telemetry --------------------------------------------------------------

void publishReading() {
  JsonDocument doc;
  // The chip's own temperature sensor (rough; absent on some variants):
  // replace it with a real sensor.
  doc["data"]["temperature"] = roundf(temperatureRead() * 10) / 10;
  doc["data"]["rssi"] = WiFi.RSSI();
  doc["data"]["led"] = ledOn;  // booleans are stored as 1 and 0 in series
  doc["metadata"]["uptime_s"] = millis() / 1000;
  doc["metadata"]["free_heap"] = ESP.getFreeHeap();
  long long ms = epochMillis();
  if (ms) doc["timestamp"] = ms;
  char id[48];
  snprintf(id, sizeof id, "%s-%08lx-%lu", DEVICE_ID, (unsigned long)bootId, (unsigned long)++seq);
  doc["message_id"] = id;
  if (publishJson(topicTelemetry, doc)) Serial.printf("published %s\n", id);
}

// ---- Commands ---------------------------------------------------------------

void answer(long long cid, const char* status, const JsonDocument* result) {
  char topic[96];
  snprintf(topic, sizeof topic, "iotflow/devices/%s/commands/%lld/result", DEVICE_ID, cid);
  JsonDocument doc;
  doc["status"] = status;
  if (result) doc["result"] = *result;
  publishJson(topic, doc);
}

void report(const char* key, JsonVariantConst value) {
  JsonDocument patch;
  patch[key] = value;
  publishJson(topicReported, patch);
}

void handleCommand(const JsonDocument& cmd) {
  long long cid = cmd["id"] | 0LL;
  const char* name = cmd["command"] | "";
  JsonObjectConst params = cmd["parameters"];  // lookups in a missing object give the defaults
  if (cid <= 0 || cid == lastCommand) return;
  lastCommand = cid;
  Serial.printf("command %lld: %s\n", cid, name);
  answer(cid, "acknowledged", nullptr);

  JsonDocument result;
  const char* status = "completed";
  bool reboot = false;
  if (strcmp(name, "led") == 0) {
    // {"on": true|false}; without it the LED toggles.
    setLed(params["on"].is<bool>() ? params["on"].as<bool>() : !ledOn);
    result["led"] = ledOn;
    report("led", result["led"]);
  } else if (strcmp(name, "set_interval") == 0) {
    // {"seconds": 1..3600}
    double s = params["seconds"] | -1.0;
    if (s >= 1 && s <= 3600) {
      intervalMs = (unsigned long)(s * 1000);
      result["interval"] = params["seconds"];
      report("interval", params["seconds"]);
    } else {
      status = "failed";
      result["reason"] = "'seconds' must be a number from 1 to 3600";
    }
  } else if (strcmp(name, "reboot") == 0) {
    result["rebooting"] = true;
    reboot = true;
  } else {
    status = "failed";
    char reason[96];
    snprintf(reason, sizeof reason, "unknown command '%s'", name);
    result["reason"] = reason;  // copied into the document
  }
  answer(cid, status, &result);
  Serial.printf("command %lld %s\n", cid, status);

  if (reboot) {
    // Answer first: after the restart the device remembers nothing. Give the
    // QoS 0 answer time to leave, say goodbye, restart.
    unsigned long t = millis();
    while (millis() - t < 500) { mqtt.loop(); delay(10); }
    mqtt.disconnect();
    delay(100);
    ESP.restart();
  }
}

// ---- Shadow -----------------------------------------------------------------

// {"device_id", "desired", "reported", "delta", "version", "desired_version", ...}
// Applies all of desired (not only the delta: after a reboot the device has its
// defaults again, while reported still shows what it had) and reports what
// it applied and reported does not show yet.
void handleDesired(const JsonDocument& shadow) {
  JsonObjectConst desired = shadow["desired"];
  JsonObjectConst reported = shadow["reported"];
  JsonDocument patch;
  JsonVariantConst interval = desired["interval"];
  if (interval.is<double>()) {
    double s = interval.as<double>();
    if (s >= 1 && s <= 3600) {
      intervalMs = (unsigned long)(s * 1000);
      if (reported["interval"] != interval) patch["interval"] = interval;
    }
  }
  if (desired["led"].is<bool>()) {
    setLed(desired["led"].as<bool>());
    if (reported["led"] != desired["led"]) patch["led"] = ledOn;
  }
  Serial.printf("shadow version %ld applied\n", (long)(shadow["version"] | 0L));
  if (patch.size() > 0) publishJson(topicReported, patch);
}

// ---- MQTT -------------------------------------------------------------------

void onMessage(char* topic, byte* payload, unsigned int length) {
  // topic and payload lie in PubSubClient's buffer, which the next publish
  // overwrites: compare and parse first (ArduinoJson 7 copies what it parses).
  JsonDocument doc;
  DeserializationError err = deserializeJson(doc, payload, length);
  if (err) {
    Serial.printf("unreadable message on %s: %s\n", topic, err.c_str());
    return;
  }
  if (strcmp(topic, topicCommands) == 0) {
    handleCommand(doc);
  } else if (strcmp(topic, topicDesired) == 0) {
    handleDesired(doc);
  }
}

bool connectMqtt() {
  // A fixed client id: a reconnect takes over the previous session at once,
  // instead of leaving a half-open one to take commands until it times out.
  char clientId[40];
  snprintf(clientId, sizeof clientId, "esp32-%s", DEVICE_ID);
  Serial.printf("connecting to %s:%d\n", IOTFLOW_HOST, IOTFLOW_PORT);
  if (!mqtt.connect(clientId, DEVICE_ID, API_KEY)) {
    int state = mqtt.state();
    // 4: wrong key (or too many failed attempts from this address), 5: device not active.
    Serial.printf("MQTT connect failed, state %d\n", state);
    retryMs = (state == 4 || state == 5) ? 60000 : min(retryMs * 2, 30000UL);
    return false;
  }
  retryMs = 2000;
  // Subscribed anew on every connect (a clean session keeps none); the shadow
  // arrives right after the second.
  mqtt.subscribe(topicCommands, 1);
  mqtt.subscribe(topicDesired, 1);
  Serial.println("connected");
  return true;
}

// ---- Arduino ----------------------------------------------------------------

void setup() {
  Serial.begin(115200);
  pinMode(LED_PIN, OUTPUT);
  setLed(false);
  bootId = esp_random();
  snprintf(topicTelemetry, sizeof topicTelemetry, "iotflow/devices/%s/telemetry", DEVICE_ID);
  snprintf(topicCommands, sizeof topicCommands, "iotflow/devices/%s/commands", DEVICE_ID);
  snprintf(topicDesired, sizeof topicDesired, "iotflow/devices/%s/shadow/desired", DEVICE_ID);
  snprintf(topicReported, sizeof topicReported, "iotflow/devices/%s/shadow/reported", DEVICE_ID);

  WiFi.mode(WIFI_STA);
  WiFi.begin(WIFI_SSID, WIFI_PASSWORD);  // reconnects by itself after a loss
  Serial.print("WiFi");
  while (WiFi.status() != WL_CONNECTED) { delay(500); Serial.print("."); }
  Serial.println(" connected");
  configTime(0, 0, NTP_SERVER);

#ifdef USE_TLS
  net.setCACert(ROOT_CA);
#endif
  mqtt.setServer(IOTFLOW_HOST, IOTFLOW_PORT);
  mqtt.setCallback(onMessage);
  if (!mqtt.setBufferSize(MQTT_BUFFER)) Serial.println("no memory for the MQTT buffer");
  mqtt.setKeepAlive(30);
  mqtt.setSocketTimeout(10);
}

void loop() {
  if (WiFi.status() != WL_CONNECTED) {
    delay(100);
    return;
  }
  if (!mqtt.connected()) {
    if (lastAttempt == 0 || millis() - lastAttempt >= retryMs) {
      lastAttempt = millis();
      if (connectMqtt()) lastAttempt = 0;
    }
    delay(10);
    return;
  }
  mqtt.loop();  // reads one message, runs onMessage, keeps the connection alive
  if (lastReading == 0 || millis() - lastReading >= intervalMs) {
    lastReading = millis();
    publishReading();
  }
}
