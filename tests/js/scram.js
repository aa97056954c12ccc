// MQTT 5 enhanced authentication from MQTT.js, for tests/tests/js.rs: the
// client's half of SCRAM-SHA-256 (RFC 5802) written with Node's crypto,
// apart from moth's `scram` plugin, through MQTT.js's `handleAuth`.
//
// usage: node scram.js URL USER PASSWORD [--reauth]
//   Connects with authentication method SCRAM-SHA-256; the CONNACK must
//   carry the server signature this client computed (the broker proved it
//   knows the credentials). --reauth: then re-authenticates (AUTH 0x19),
//   which must end with AUTH 0x00 and a correct signature too.
// Prints `OK` and exits 0 on success, `REFUSED <reason code>` and exits 2
// when the broker refuses; exits 1 on anything else.
'use strict';
const crypto = require('crypto');
const mqtt = require('mqtt');

const [url, user, password] = process.argv.slice(2);
const reauth = process.argv.includes('--reauth');
const METHOD = 'SCRAM-SHA-256';

const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();
const sha256 = (data) => crypto.createHash('sha256').update(data).digest();

function fail(why) {
  console.log(`FAILED ${why}`);
  process.exit(1);
}

// One exchange: the first message, then the answer to the server's.
function exchange() {
  const nonce = crypto.randomBytes(18).toString('base64');
  const bare = `n=${user.replace(/=/g, '=3D').replace(/,/g, '=2C')},r=${nonce}`;
  const x = { first: Buffer.from(`n,,${bare}`), expected: null };
  x.answer = (serverFirst) => {
    const attrs = {};
    for (const field of serverFirst.split(',')) attrs[field[0]] = field.slice(2);
    if (!attrs.r.startsWith(nonce) || attrs.r.length <= nonce.length) fail('the server nonce does not extend ours');
    const salted = crypto.pbkdf2Sync(password, Buffer.from(attrs.s, 'base64'), parseInt(attrs.i, 10), 32, 'sha256');
    const clientKey = hmac(salted, 'Client Key');
    const withoutProof = `c=biws,r=${attrs.r}`;
    const authMessage = `${bare},${serverFirst},${withoutProof}`;
    const signature = hmac(sha256(clientKey), authMessage);
    const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]));
    x.expected = `v=${hmac(hmac(salted, 'Server Key'), authMessage).toString('base64')}`;
    return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`);
  };
  return x;
}

const timer = setTimeout(() => fail('timeout: not done within 15 s'), 15000);
let current = exchange();
let reauthenticated = false;

function done() {
  clearTimeout(timer);
  console.log('OK');
  client.end(true, () => process.exit(0));
}

const client = mqtt.connect(url, {
  clientId: `mqttjs-scram-${process.pid}`,
  protocolVersion: 5,
  connectTimeout: 10000,
  reconnectPeriod: 0,
  properties: { authenticationMethod: METHOD, authenticationData: current.first },
});

client.handleAuth = (packet, callback) => {
  const data = packet.properties && packet.properties.authenticationData;
  if (packet.reasonCode === 0x18) {
    const answer = current.answer(data.toString());
    callback(null, { cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: METHOD, authenticationData: answer } });
  } else if (packet.reasonCode === 0x00) {
    // The end of the re-authentication.
    if (!data || data.toString() !== current.expected) fail('the re-authentication signature is wrong');
    reauthenticated = true;
    callback();
    done();
  } else {
    callback(new Error(`unexpected AUTH reason ${packet.reasonCode}`));
  }
};

client.on('connect', (connack) => {
  const data = connack.properties && connack.properties.authenticationData;
  if (!data || data.toString() !== current.expected) fail('CONNACK does not carry the right server signature');
  if (!reauth) return done();
  current = exchange();
  // MQTT.js has no public call for AUTH 0x19; its packet writer sends it.
  client._sendPacket({
    cmd: 'auth',
    reasonCode: 0x19,
    properties: { authenticationMethod: METHOD, authenticationData: current.first },
  }, () => {});
});

client.on('error', (e) => {
  if (reauthenticated) return;
  if (e.code !== undefined) {
    clearTimeout(timer);
    console.log(`REFUSED ${e.code}`);
    process.exit(2);
  }
  fail(e.message);
});
