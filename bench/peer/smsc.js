// A bare SMSC on another SMPP implementation (npm `smpp`), the peer of docs/performance.md's
// "SMPP layer >= 0.8 x a bare peer SMPP server on submit_sm throughput".
// Accepts every bind, answers submit_sm with submit_sm_resp and a message_id, answers
// enquire_link and unbind. Nothing else: no storage, no routing, no deliver_sm.
// Run: node bench/peer/smsc.js [port]   (prints `listening HOST:PORT`)
'use strict';
const smpp = require('smpp');

const port = Number(process.argv[2] || 0);
let messageId = 0;

const server = smpp.createServer({ debug: false }, (session) => {
  // One PDU per write: without TCP_NODELAY, Nagle and delayed ACK hold responses ~40 ms
  // (the gateway under test sets it too, ussd/smpp/server.py).
  session.socket.setNoDelay(true);
  session.on('error', () => session.close());
  for (const bind of ['bind_transceiver', 'bind_transmitter', 'bind_receiver']) {
    session.on(bind, (pdu) => {
      session.send(pdu.response({ system_id: 'peer' }));
    });
  }
  session.on('submit_sm', (pdu) => {
    messageId += 1;
    session.send(pdu.response({ message_id: String(messageId) }));
  });
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('unbind', (pdu) => {
    session.send(pdu.response());
    session.close();
  });
});

server.listen(port, '127.0.0.1', () => {
  const address = server.address();
  console.log(`listening ${address.address}:${address.port}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
