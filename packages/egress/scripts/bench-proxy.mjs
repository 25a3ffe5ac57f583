#!/usr/bin/env node
// Measures what the egress proxy adds on loopback: per-connection latency (CONNECT, SOCKS5, plain
// HTTP) against a direct connection, 100 MB throughput against direct, and the proxy's memory with
// 50 channels. Not a test: it prints numbers and asserts nothing.
//
//   npm run bench -w @bulkhead/egress            (builds the package, then runs this)
//   node scripts/bench-proxy.mjs [--runs N] [--megabytes M]
//
// Three processes, as in real use: this one runs the clients (the sandboxes' side), one child runs
// the upstream servers, one child runs only the proxy (the caller's side), so that each figure
// counts the proxy's own work and memory. The clients talk to the channel's unix socket directly;
// the in-namespace relay is the exec shim's and is measured with it.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { connect, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

async function runUpstream() {
  const chunk = Buffer.alloc(1 << 20, 120);
  const echo = createNetServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  const bulk = createNetServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', (data) => {
      let remaining = Number(data.toString()) * chunk.length;
      const pump = () => {
        while (remaining > 0) {
          remaining -= chunk.length;
          if (!socket.write(chunk)) return void socket.once('drain', pump);
        }
        socket.end();
      };
      pump();
    });
  });
  const http = createServer((_request, response) => response.end('ok'));
  http.keepAliveTimeout = 1;
  for (const server of [echo, bulk, http]) server.listen(0, '127.0.0.1');
  await Promise.all([echo, bulk, http].map((server) => once(server, 'listening')));
  process.send({ echo: echo.address().port, bulk: bulk.address().port, http: http.address().port });
}

async function runProxy() {
  const gc = globalThis.gc ?? (() => {});
  const memory = () => {
    gc();
    const usage = process.memoryUsage();
    return { rss: usage.rss, heapUsed: usage.heapUsed, external: usage.external };
  };
  const before = memory();
  const { createEgressProxy, createStaticResolver } = await import('../dist/index.js');
  const directory = mkdtempSync(join(tmpdir(), 'bh-bench-'));
  const proxy = createEgressProxy({
    resolver: createStaticResolver(['upstream.test:127.0.0.1']),
    socketDirectory: join(directory, 's'),
  });
  process.on('message', async (message) => {
    if (message.type === 'memory') process.send({ type: 'memory', before, now: memory() });
    if (message.type === 'open') {
      const paths = [];
      for (let index = 0; index < message.count; index++) {
        const channel = await proxy.openChannel({
          sandboxId: `bench-${message.offset + index}`,
          allow: message.allow,
        });
        paths.push(channel.socketPath);
      }
      process.send({ type: 'opened', paths });
    }
    if (message.type === 'exit') {
      await proxy.close();
      rmSync(directory, { recursive: true, force: true });
      process.exit(0);
    }
  });
  process.send({ type: 'ready' });
}

function ask(child, message, type) {
  const reply = new Promise((resolve) => {
    const listener = (answer) => {
      if (answer.type === type) {
        child.off('message', listener);
        resolve(answer);
      }
    };
    child.on('message', listener);
  });
  child.send(message);
  return reply;
}

function readUntil(socket, predicate) {
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0);
    const onData = (data) => {
      received = received.length ? Buffer.concat([received, data]) : data;
      if (predicate(received)) {
        socket.off('data', onData);
        socket.off('error', reject);
        resolve(received);
      }
    };
    socket.on('data', onData);
    socket.on('error', reject);
  });
}

async function open(path) {
  const socket =
    typeof path === 'number' ? connect({ port: path, host: '127.0.0.1', noDelay: true }) : connect(path);
  await once(socket, 'connect');
  return socket;
}

async function direct(port) {
  const socket = await open(port);
  return { socket, leftover: Buffer.alloc(0) };
}

async function viaConnect(socketPath, port) {
  const socket = await open(socketPath);
  socket.write(`CONNECT upstream.test:${port} HTTP/1.1\r\n\r\n`);
  const head = await readUntil(socket, (data) => data.includes('\r\n\r\n'));
  if (!head.toString('latin1').startsWith('HTTP/1.1 200')) throw new Error(head.toString());
  return { socket, leftover: head.subarray(head.indexOf('\r\n\r\n') + 4) };
}

async function viaSocks(socketPath, port) {
  const socket = await open(socketPath);
  const name = Buffer.from('upstream.test');
  const request = Buffer.concat([
    Buffer.from([5, 1, 0, 5, 1, 0, 3, name.length]),
    name,
    Buffer.from([port >> 8, port & 255]),
  ]);
  socket.write(request);
  const reply = await readUntil(socket, (data) => data.length >= 12);
  if (reply[3] !== 0) throw new Error(`SOCKS5 reply ${reply[3]}`);
  return { socket, leftover: reply.subarray(12) };
}

async function echoRoundTrip(opener) {
  const started = process.hrtime.bigint();
  const { socket } = await opener();
  socket.write('x');
  await readUntil(socket, (data) => data.length >= 1);
  const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
  socket.destroy();
  return elapsed;
}

function httpGet(options) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const outgoing = request({ ...options, agent: false }, (response) => {
      response.resume();
      response.on('end', () => resolve(Number(process.hrtime.bigint() - started) / 1e6));
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

async function download(opener, megabytes) {
  const started = process.hrtime.bigint();
  const { socket, leftover } = await opener();
  const expected = megabytes * (1 << 20);
  let received = leftover.length;
  socket.write(String(megabytes));
  socket.on('data', (data) => {
    received += data.length;
  });
  await once(socket, 'end');
  socket.destroy();
  if (received !== expected) throw new Error(`received ${received} of ${expected} bytes`);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return expected / (1 << 20) / seconds;
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const percentile = (values, fraction) =>
  [...values].sort((a, b) => a - b)[Math.floor(fraction * (values.length - 1))];
const megabytesOf = (bytes) => (bytes / (1 << 20)).toFixed(2);

async function interleave(variants, runs, warmup) {
  const samples = Object.fromEntries(Object.keys(variants).map((name) => [name, []]));
  for (let round = 0; round < warmup + runs; round++) {
    for (const [name, measure] of Object.entries(variants)) {
      const value = await measure();
      if (round >= warmup) samples[name].push(value);
    }
  }
  return samples;
}

async function runBenchmark() {
  const { values } = parseArgs({
    options: { runs: { type: 'string', default: '300' }, megabytes: { type: 'string', default: '100' } },
  });
  const runs = Number(values.runs);
  const megabytes = Number(values.megabytes);
  const script = new URL(import.meta.url).pathname;

  const upstreamProcess = fork(script, ['upstream']);
  const [ports] = await once(upstreamProcess, 'message');
  const proxyProcess = fork(script, ['proxy'], { execArgv: ['--expose-gc'] });
  await once(proxyProcess, 'message');
  const allow = Object.values(ports).flatMap((port) => [
    { host: 'upstream.test', port },
    { host: '127.0.0.1', port },
  ]);
  const {
    paths: [socketPath],
  } = await ask(proxyProcess, { type: 'open', count: 1, offset: 0, allow }, 'opened');

  console.log(`egress proxy benchmark: node ${process.version}, ${runs} runs per variant, loopback\n`);

  // Memory first, in a proxy process that has done nothing else yet.
  const oneChannel = await ask(proxyProcess, { type: 'memory' }, 'memory');
  const { paths } = await ask(proxyProcess, { type: 'open', count: 49, offset: 1, allow }, 'opened');
  const fiftyChannels = await ask(proxyProcess, { type: 'memory' }, 'memory');
  const tunnels = await Promise.all([socketPath, ...paths].map((path) => viaConnect(path, ports.echo)));
  const fiftyTunnels = await ask(proxyProcess, { type: 'memory' }, 'memory');
  for (const { socket } of tunnels) socket.destroy();
  const delta = (after, before) =>
    `RSS +${megabytesOf(after.rss - before.rss)} MB, heap +${megabytesOf(after.heapUsed - before.heapUsed)} MB`;
  console.log('Proxy process memory (after gc)');
  console.log(`node before importing @bulkhead/egress:   RSS ${megabytesOf(oneChannel.before.rss)} MB`);
  console.log(`import + proxy + 1 channel:               ${delta(oneChannel.now, oneChannel.before)}`);
  console.log(`49 more channels (50 in all):             ${delta(fiftyChannels.now, oneChannel.now)}`);
  console.log(`one open CONNECT tunnel on each of the 50: ${delta(fiftyTunnels.now, fiftyChannels.now)}`);
  console.log(`total the proxy adds for 50 channels:     ${delta(fiftyChannels.now, oneChannel.before)}\n`);

  const latency = await interleave(
    {
      direct: () => echoRoundTrip(() => direct(ports.echo)),
      connect: () => echoRoundTrip(() => viaConnect(socketPath, ports.echo)),
      socks5: () => echoRoundTrip(() => viaSocks(socketPath, ports.echo)),
      'http direct': () => httpGet({ host: '127.0.0.1', port: ports.http, path: '/' }),
      'http proxied': () =>
        httpGet({
          socketPath,
          path: `http://upstream.test:${ports.http}/`,
          headers: { host: `upstream.test:${ports.http}` },
        }),
    },
    runs,
    Math.min(50, runs),
  );
  console.log('Per-connection latency (connect + one round trip), milliseconds');
  console.log('variant        median    p95     added vs direct (median)');
  for (const [name, samples] of Object.entries(latency)) {
    const baseline = name.startsWith('http') ? latency['http direct'] : latency.direct;
    const added = median(samples) - median(baseline);
    console.log(
      `${name.padEnd(14)} ${median(samples).toFixed(3).padStart(6)}  ${percentile(samples, 0.95).toFixed(3).padStart(6)}   ${
        samples === baseline ? '(baseline)' : `+${added.toFixed(3)}`
      }`,
    );
  }

  const throughput = await interleave(
    {
      direct: () => download(() => direct(ports.bulk), megabytes),
      connect: () => download(() => viaConnect(socketPath, ports.bulk), megabytes),
      socks5: () => download(() => viaSocks(socketPath, ports.bulk), megabytes),
    },
    5,
    1,
  );
  console.log(`\n${megabytes} MB download, MB/s (median of 5, interleaved)`);
  for (const [name, samples] of Object.entries(throughput)) {
    console.log(
      `${name.padEnd(8)} ${median(samples).toFixed(0).padStart(6)} MB/s  ${((median(samples) / median(throughput.direct)) * 100).toFixed(0)}% of direct`,
    );
  }

  proxyProcess.send({ type: 'exit' });
  upstreamProcess.kill();
  await once(proxyProcess, 'exit');
}

// Children end with their parent, also when it fails.
process.on('disconnect', () => process.exit(0));

const role = process.argv[2];
if (role === 'upstream') await runUpstream();
else if (role === 'proxy') await runProxy();
else await runBenchmark();
