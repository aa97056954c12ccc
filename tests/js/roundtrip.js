// One MQTT.js round trip through moth, for tests/tests/js.rs: connect,
// subscribe, publish to the subscribed topic, receive the message back.
//
// usage: node roundtrip.js URL TOPIC [--ca FILE] [--v31 | --v5]
//   URL   ws://host:port/path or wss://host:port/path
//   --ca  CA certificate (PEM) the server certificate must chain to
//   --v31 speak MQTT 3.1 (MQTT.js then offers the `mqttv3.1` subprotocol)
//   --v5  speak MQTT 5: the message carries user properties and a content
//         type, which must come back unchanged with the subscription
//         identifier
//   --aliases  with --v5: accept topic aliases from the broker; the message
//         is published three times and must arrive three times under its
//         topic, the repeats as an alias alone
// Prints `OK <payload>` and exits 0 on success; exits non-zero otherwise.
'use strict';
const fs = require('fs');
const mqtt = require('mqtt');

const args = process.argv.slice(2);
const [url, topic] = args;
const options = { clientId: `mqttjs-${process.pid}`, connectTimeout: 10000, reconnectPeriod: 0 };
const ca = args.indexOf('--ca');
if (ca >= 0) {
  options.ca = fs.readFileSync(args[ca + 1]);
  options.rejectUnauthorized = true;
}
if (args.includes('--v31')) {
  options.protocolId = 'MQIsdp';
  options.protocolVersion = 3;
}
const v5 = args.includes('--v5');
if (v5) {
  options.protocolVersion = 5;
}
const aliases = v5 && args.includes('--aliases');
if (aliases) {
  options.properties = { topicAliasMaximum: 5 };
}
const copies = aliases ? 3 : 1;
let received = 0;
let aliasOnly = 0;
const payload = `hello from MQTT.js ${process.version}`;

const timer = setTimeout(() => {
  console.error('timeout: no round trip within 15 s');
  process.exit(3);
}, 15000);

const client = mqtt.connect(url, options);
client.on('connect', () => {
  const subOptions = v5 ? { qos: 1, properties: { subscriptionIdentifier: 12 } } : { qos: 1 };
  client.subscribe(topic, subOptions, (err, granted) => {
    if (err || !granted.length || granted[0].qos !== 1) {
      console.error(`subscribe failed: ${err ? err.message : JSON.stringify(granted)}`);
      process.exit(1);
    }
    const pubOptions = { qos: 1 };
    if (v5) {
      pubOptions.properties = { userProperties: { origin: 'node' }, contentType: 'text/plain' };
    }
    for (let i = 0; i < copies; i++) client.publish(topic, payload, pubOptions);
  });
});
client.on('message', (t, message, packet) => {
  if (t === topic && message.toString() === payload) {
    if (v5) {
      const p = packet.properties || {};
      const user = p.userProperties || {};
      const ids = [].concat(p.subscriptionIdentifier || []);
      if (user.origin !== 'node' || p.contentType !== 'text/plain' || !ids.includes(12)) {
        console.error(`MQTT 5 properties did not come back: ${JSON.stringify(p)}`);
        process.exit(2);
      }
      if (aliases && packet.topic === '' && p.topicAlias) aliasOnly++;
    }
    if (++received < copies) return;
    if (aliases && aliasOnly !== copies - 1) {
      console.error(`expected ${copies - 1} deliveries by alias alone, got ${aliasOnly}`);
      process.exit(2);
    }
    console.log(`OK ${message}`);
    clearTimeout(timer);
    client.end(false, () => process.exit(0));
  }
});
client.on('error', (e) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
