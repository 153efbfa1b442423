#!/usr/bin/env node
// A Service Bus stand-in for tests: enough of the AMQP 1.0 dialect of Azure
// Service Bus for the real azservicebus client (and the Functions-style
// consumer of the local runner) to send, schedule, cancel, receive, settle
// and dead-letter messages on queues. Not a broker to run anything on:
// everything lives in memory, there is no authentication (SASL ANONYMOUS,
// every $cbs put-token is accepted) and no TLS (the client's connection
// string says UseDevelopmentEmulator=true).
//
//   node tools/sbstandin.js --port 5672 [--host 127.0.0.1]
//        [--max-delivery-count 10] [--lock-duration-ms 60000]
//
// Queues exist on first use. Peek-lock receivers get each message locked
// (delivery tag = lock token); accepted completes it, released or modified
// abandons it (delivery count +1, dead-lettered past the max delivery
// count), rejected dead-letters it; a lock that expires, or a link that
// closes, abandons. Dead letters are read from "<queue>/$DeadLetterQueue".
// $management answers schedule-message (the time travels in each message's
// x-opt-scheduled-enqueue-time annotation), cancel-scheduled-message,
// renew-lock and update-disposition. A message sent with the annotation set
// is scheduled too.
'use strict';

const rhea = require('rhea');
const crypto = require('crypto');

const types = rhea.types;
const args = parseArgs(process.argv.slice(2));
const HOST = args.host || '127.0.0.1';
const PORT = Number(args.port || 5672);
const MAX_DELIVERY_COUNT = Number(args['max-delivery-count'] || 10);
const LOCK_DURATION_MS = Number(args['lock-duration-ms'] || 60000);
const MAX_MESSAGE_SIZE = Number(args['max-message-size'] || 1024 * 1024);
const DEFAULT_TTL_MS = 14 * 24 * 3600 * 1000; // the queues' defaultMessageTimeToLive in infra/

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith('--')) out[argv[i].slice(2)] = argv[i + 1], i++;
  }
  return out;
}

// ---------------------------------------------------------------- queues

const queues = new Map(); // lower-case entity path → queue
let nextSequence = 1; // sequence numbers are unique across the stand-in

function queue(path) {
  const key = path.toLowerCase();
  let q = queues.get(key);
  if (!q) {
    q = { path, active: [], scheduled: new Map(), consumers: [], next: 0 };
    queues.set(key, q);
  }
  return q;
}

function deadLetterQueue(q) { return queue(q.path + '/$DeadLetterQueue'); }

// entityOf strips a sub-path ("/$management") and returns the queue path.
function entityOf(address) {
  return address.replace(/\/\$management$/i, '');
}

// enqueue adds a decoded message; it returns its sequence number.
function enqueue(q, msg, opts) {
  const entry = {
    seq: nextSequence++, msg, deliveries: 0, enqueuedAt: new Date(), lock: null,
  };
  const at = scheduledTime(msg);
  if (at && at.getTime() > Date.now()) {
    entry.scheduledAt = at;
    q.scheduled.set(entry.seq, entry);
    entry.timer = setTimeout(() => {
      if (q.scheduled.delete(entry.seq)) {
        entry.enqueuedAt = new Date();
        q.active.push(entry);
        pump(q);
      }
    }, at.getTime() - Date.now());
  } else {
    if (at) entry.scheduledAt = at;
    q.active.push(entry);
    if (!opts || !opts.quiet) pump(q);
  }
  return entry.seq;
}

function scheduledTime(msg) {
  const a = msg.message_annotations && msg.message_annotations['x-opt-scheduled-enqueue-time'];
  if (a === undefined || a === null) return null;
  const d = a instanceof Date ? a : new Date(Number(a));
  return isNaN(d.getTime()) ? null : d;
}

const locks = new Map(); // lock token (uuid hex, .NET order) → {q, entry, delivery}

// pump hands the queue's active messages to consumers with credit, in turn.
function pump(q) {
  while (q.active.length && q.consumers.length) {
    let sent = false;
    for (let i = 0; i < q.consumers.length && q.active.length; i++) {
      const link = q.consumers[(q.next + i) % q.consumers.length];
      if (!link.sendable()) continue;
      q.next = (q.next + i + 1) % q.consumers.length;
      deliver(q, link, q.active.shift());
      sent = true;
      break;
    }
    if (!sent) return;
  }
}

function deliver(q, link, entry) {
  entry.deliveries++;
  // rhea keeps the header's fields on the message itself.
  const m = Object.assign({}, entry.msg);
  m.delivery_count = entry.deliveries - 1;
  if (!m.ttl) m.ttl = DEFAULT_TTL_MS;
  const ann = Object.assign({}, entry.msg.message_annotations || {});
  ann['x-opt-sequence-number'] = types.wrap_long(entry.seq);
  ann['x-opt-enqueued-time'] = types.wrap_timestamp(entry.enqueuedAt.getTime());
  if (entry.scheduledAt) ann['x-opt-scheduled-enqueue-time'] = types.wrap_timestamp(entry.scheduledAt.getTime());
  const peekLock = link.local.attach.snd_settle_mode !== 1;
  const tag = crypto.randomBytes(16);
  if (peekLock) {
    const until = new Date(Date.now() + LOCK_DURATION_MS);
    ann['x-opt-locked-until'] = types.wrap_timestamp(until.getTime());
  }
  m.message_annotations = ann;
  const delivery = link.send(m, tag);
  if (!peekLock) return; // receive and delete: gone
  const token = dotnetUUID(tag);
  const lock = { q, entry, delivery, link, token, timer: null };
  lock.timer = setTimeout(() => abandon(lock, 'lock expired'), LOCK_DURATION_MS);
  entry.lock = lock;
  delivery.lock = lock;
  locks.set(token, lock);
}

// dotnetUUID returns the lock token as the client names it: the delivery
// tag read as a .NET GUID.
function dotnetUUID(tag) {
  const b = Buffer.from(tag);
  [b[0], b[3]] = [b[3], b[0]];
  [b[1], b[2]] = [b[2], b[1]];
  [b[4], b[5]] = [b[5], b[4]];
  [b[6], b[7]] = [b[7], b[6]];
  return b.toString('hex');
}

function unlock(lock) {
  clearTimeout(lock.timer);
  locks.delete(lock.token);
  lock.entry.lock = null;
}

function complete(lock) {
  unlock(lock);
}

function abandon(lock, why) {
  if (!locks.has(lock.token)) return;
  unlock(lock);
  const { q, entry } = lock;
  if (entry.deliveries >= MAX_DELIVERY_COUNT) {
    deadLetter(q, entry, 'MaxDeliveryCountExceeded', 'Message could not be consumed after ' + MAX_DELIVERY_COUNT + ' delivery attempts.');
    return;
  }
  q.active.unshift(entry);
  setImmediate(() => pump(q));
}

function deadLetter(q, entry, reason, description) {
  const msg = Object.assign({}, entry.msg);
  msg.application_properties = Object.assign({}, msg.application_properties || {});
  if (reason) msg.application_properties.DeadLetterReason = reason;
  if (description) msg.application_properties.DeadLetterErrorDescription = description;
  msg.message_annotations = Object.assign({}, msg.message_annotations || {}, { 'x-opt-deadletter-source': q.path });
  const dlq = deadLetterQueue(q);
  const dead = { seq: entry.seq, msg, deliveries: 0, enqueuedAt: new Date(), lock: null };
  dlq.active.push(dead);
  pump(dlq);
}

function settle(delivery, outcome) {
  delivery.update(true, outcome);
}

// ------------------------------------------------------------ management

function handleManagement(address, req) {
  const op = (req.application_properties || {}).operation;
  const body = req.body || {};
  const q = queue(entityOf(address));
  switch (op) {
    case 'com.microsoft:schedule-message': {
      const seqs = [];
      for (const item of body.messages || []) {
        const encoded = item.message;
        const msg = rhea.message.decode(Buffer.isBuffer(encoded) ? encoded : Buffer.from(encoded));
        seqs.push(enqueue(q, msg));
      }
      return ok({ 'sequence-numbers': types.wrap_array(seqs, 0x81) });
    }
    case 'com.microsoft:cancel-scheduled-message': {
      let missing = 0;
      for (const s of body['sequence-numbers'] || []) {
        const entry = q.scheduled.get(Number(s));
        if (!entry) { missing++; continue; }
        clearTimeout(entry.timer);
        q.scheduled.delete(Number(s));
      }
      if (missing) return status(404, 'The scheduled message was not found (already enqueued or cancelled).');
      return ok({});
    }
    case 'com.microsoft:renew-lock': {
      const out = [];
      for (const t of body['lock-tokens'] || []) {
        const lock = locks.get(Buffer.from(t).toString('hex'));
        if (!lock) return status(410, 'The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.');
        clearTimeout(lock.timer);
        lock.timer = setTimeout(() => abandon(lock, 'lock expired'), LOCK_DURATION_MS);
        out.push(Date.now() + LOCK_DURATION_MS);
      }
      return ok({ expirations: types.wrap_array(out, 0x83) });
    }
    case 'com.microsoft:update-disposition': {
      const st = body['disposition-status'];
      for (const t of body['lock-tokens'] || []) {
        const lock = locks.get(Buffer.from(t).toString('hex'));
        if (!lock) return status(410, 'The lock supplied is invalid.');
        if (st === 'completed') complete(lock);
        else if (st === 'suspended') { unlock(lock); deadLetter(lock.q, lock.entry, body['deadletter-reason'], body['deadletter-description']); }
        else abandon(lock, 'abandoned');
      }
      return ok({});
    }
    default:
      return status(501, 'operation ' + op + ' is not supported by the stand-in');
  }
}

function ok(body) { return { code: 200, description: 'OK', body: types.wrap_map(body) }; }
function status(code, description) { return { code, description, body: null }; }

// ------------------------------------------------------------------ links

const replyLinks = new Map(); // client reply address → sender link

const container = rhea.create_container({ id: 'sbstandin' });
container.sasl_server_mechanisms.enable_anonymous();

function isManagement(address) {
  return address === '$cbs' || /\/\$management$/i.test(address);
}

function mirrorSettleModes(link) {
  const remote = link.remote.attach || {};
  if (remote.snd_settle_mode !== undefined) link.local.attach.snd_settle_mode = remote.snd_settle_mode;
  if (remote.rcv_settle_mode !== undefined) link.local.attach.rcv_settle_mode = remote.rcv_settle_mode;
  link.local.attach.max_message_size = MAX_MESSAGE_SIZE;
}

container.on('sender_open', (context) => {
  const link = context.sender;
  mirrorSettleModes(link);
  const source = (link.remote.attach.source || {}).address || '';
  const target = (link.remote.attach.target || {}).address || '';
  link.set_source({ address: source });
  link.set_target({ address: target });
  if (isManagement(source)) {
    replyLinks.set(target, link);
    link.replyAddress = target;
    return;
  }
  const q = queue(source);
  link.queue = q;
  q.consumers.push(link);
});

container.on('receiver_open', (context) => {
  const link = context.receiver;
  mirrorSettleModes(link);
  const target = (link.remote.attach.target || {}).address || '';
  link.set_target({ address: target });
  link.set_source(link.remote.attach.source || {});
});

container.on('sendable', (context) => {
  if (context.sender.queue) pump(context.sender.queue);
});

container.on('sender_draining', (context) => {
  const link = context.sender;
  if (link.queue) pump(link.queue);
  // Answer every drain, also when the credit is used up already.
  link._get_drain = function () {
    if (this._draining) {
      while (this.credit) { ++this.delivery_count; --this.credit; }
      this._draining = false;
      return true;
    }
    return false;
  };
  link.set_drained(true);
});

container.on('message', (context) => {
  const address = (context.receiver.remote.attach.target || {}).address || '';
  const msg = context.message;
  if (isManagement(address)) {
    let res;
    if (address === '$cbs') {
      res = { code: 202, description: 'Accepted', body: null };
    } else {
      try {
        res = handleManagement(address, msg);
      } catch (e) {
        res = status(500, 'stand-in error: ' + e.message);
      }
    }
    const reply = replyLinks.get(msg.reply_to);
    if (!reply) return;
    const out = {
      correlation_id: msg.message_id,
      application_properties: { 'status-code': types.wrap_int(res.code), 'status-description': res.description },
    };
    if (res.body) out.body = res.body;
    reply.send(out);
    return;
  }
  enqueue(queue(entityOf(address)), msg);
});

container.on('accepted', (context) => {
  const lock = context.delivery.lock;
  if (lock) complete(lock);
  settle(context.delivery, rhea.message.accepted().described());
});

container.on('released', (context) => {
  // released, and modified (abandon): rhea reports both as released.
  const lock = context.delivery.lock;
  if (lock) abandon(lock, 'abandoned');
  settle(context.delivery, rhea.message.released().described());
});

container.on('rejected', (context) => {
  const lock = context.delivery.lock;
  if (lock && locks.has(lock.token)) {
    unlock(lock);
    const state = context.delivery.remote_state || {};
    const err = state.error || {};
    const info = err.info || {};
    deadLetter(lock.q, lock.entry, info.DeadLetterReason || err.condition, info.DeadLetterErrorDescription || err.description);
  }
  settle(context.delivery, rhea.message.rejected().described());
});

function dropLink(link) {
  if (link.queue) {
    const q = link.queue;
    q.consumers = q.consumers.filter((l) => l !== link);
    for (const lock of [...locks.values()]) {
      if (lock.link === link) abandon(lock, 'link closed');
    }
  }
  if (link.replyAddress) replyLinks.delete(link.replyAddress);
}

container.on('sender_close', (context) => dropLink(context.sender));
container.on('connection_close', (context) => {
  for (const q of queues.values()) {
    for (const l of q.consumers) if (l.connection === context.connection) dropLink(l);
  }
});
container.on('disconnected', (context) => {
  for (const q of queues.values()) {
    for (const l of [...q.consumers]) if (l.connection === context.connection) dropLink(l);
  }
  for (const [addr, l] of [...replyLinks]) if (l.connection === context.connection) replyLinks.delete(addr);
});
container.on('error', (e) => { console.error('sbstandin: error:', e && e.message); });

const server = container.listen({ port: PORT, host: HOST });
server.on('listening', () => { console.log('sbstandin listening on ' + HOST + ':' + server.address().port); });
server.on('error', (e) => { console.error('sbstandin: ' + e.message); process.exit(1); });
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
