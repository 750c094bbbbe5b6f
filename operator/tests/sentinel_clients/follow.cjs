// An ioredis client in sentinel mode, configured with nothing but Sentinel addresses: for
// each line `write <key>` on stdin it SETs the key, retrying while the client finds the new
// master, and answers `done <key>` (or `failed <key> <error>`).
//
// Usage: node follow.cjs <master name> <sentinel port>...
// ioredis is resolved through NODE_PATH (server/tests/node/node_modules).
const Redis = require('ioredis');
const readline = require('node:readline');

const [name, ...ports] = process.argv.slice(2);
const client = new Redis({
  name,
  sentinels: ports.map((port) => ({ host: '127.0.0.1', port: Number(port) })),
  sentinelRetryStrategy: () => 50,
  retryStrategy: () => 50,
  // Follow +switch-master as well as lost connections.
  failoverDetector: true,
});
client.on('error', () => {});

async function write(key) {
  const deadline = Date.now() + 30000;
  for (;;) {
    try {
      await client.set(key, '1');
      return `done ${key}`;
    } catch (e) {
      if (Date.now() > deadline) return `failed ${key} ${e.message}`;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

const lines = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
lines.on('line', (line) => {
  const key = line.split(' ')[1];
  queue = queue.then(async () => console.log(await write(key)));
});
lines.on('close', () => queue.then(() => client.disconnect()));
