// ioredis against a server on TANDEM_PORT: Lua scripts through defineCommand (EVALSHA with
// the EVAL fallback on NOSCRIPT), pipelines and transactions of custom commands, a rate
// limiter, and functions. Run by server/tests/clients.rs (node_ioredis_suite), which starts
// tandem-server; point TANDEM_PORT at a redis-server to check the tests themselves.

import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import Redis from 'ioredis';

const port = Number(process.env.TANDEM_PORT);
if (!Number.isInteger(port) || port <= 0) {
  throw new Error('TANDEM_PORT must name the port of the server under test');
}

const sha1 = (text) => createHash('sha1').update(text).digest('hex');

function connect(options = {}) {
  // No reconnects and no retried commands: a refused or lost connection fails the test.
  return new Redis({
    host: '127.0.0.1',
    port,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    ...options,
  });
}

/** Polls `check` until it returns true, failing after `ms` milliseconds. */
async function waitFor(what, check, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const INCR_CAPPED = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local next = current + tonumber(ARGV[1])
if next > tonumber(ARGV[2]) then
  return redis.error_reply('CAPPED ' .. KEYS[1] .. ' would reach ' .. next)
end
redis.call('SET', KEYS[1], next)
return next
`;

// Fixed-window rate limiter: INCR the window's counter, PEXPIRE it on the first hit.
const RATE_LIMIT = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local allowed = 0
if count <= tonumber(ARGV[1]) then allowed = 1 end
return {allowed, count, redis.call('PTTL', KEYS[1])}
`;

let redis;

before(async () => {
  redis = connect();
  redis.defineCommand('incrCapped', { numberOfKeys: 1, lua: INCR_CAPPED });
  redis.defineCommand('rateLimit', { numberOfKeys: 1, lua: RATE_LIMIT });
  // Without numberOfKeys the caller passes the key count first, as for EVAL.
  redis.defineCommand('echoAll', { lua: 'return {#KEYS, #ARGV, KEYS[1], ARGV[1]}' });
});

after(async () => {
  await redis.quit();
});

beforeEach(async () => {
  await redis.flushall();
  await redis.script('FLUSH');
  await redis.function('FLUSH');
});

test('defineCommand with numberOfKeys runs the script', async () => {
  assert.equal(await redis.incrCapped('counter', 5, 10), 5);
  assert.equal(await redis.incrCapped('counter', 4, 10), 9);
  await assert.rejects(redis.incrCapped('counter', 4, 10), (err) => {
    assert.equal(err.name, 'ReplyError');
    assert.equal(err.message, 'CAPPED counter would reach 13');
    return true;
  });
  assert.equal(await redis.get('counter'), '9');
  assert.deepEqual(await redis.echoAll(2, 'k1', 'k2', 'a1'), [2, 1, 'k1', 'a1']);
  assert.deepEqual(await redis.echoAll(0), [0, 0]);
  // A Lua error names the script's line (the script starts with a newline) and its sha1.
  await redis.set('text', 'abc');
  await assert.rejects(redis.incrCapped('text', 1, 10), (err) => {
    assert.equal(
      err.message,
      `ERR user_script:3: attempt to perform arithmetic on local 'current' (a nil value) script: ${sha1(INCR_CAPPED)}, on @user_script:3.`,
    );
    return true;
  });
});

test('keyPrefix applies to the declared keys only', async () => {
  const prefixed = connect({ keyPrefix: 'app:' });
  try {
    prefixed.defineCommand('incrCapped', { numberOfKeys: 1, lua: INCR_CAPPED });
    assert.equal(await prefixed.incrCapped('counter', 3, 10), 3);
    assert.equal(await redis.get('app:counter'), '3');
    assert.equal(await redis.exists('counter'), 0);
  } finally {
    await prefixed.quit();
  }
});

test('rate limiter: INCR plus PEXPIRE on the first hit', async () => {
  const results = [];
  for (let i = 0; i < 4; i++) {
    results.push(await redis.rateLimit('rl:user1', 3, 60000));
  }
  assert.deepEqual(results.map(([allowed, count]) => [allowed, count]), [
    [1, 1],
    [1, 2],
    [1, 3],
    [0, 4],
  ]);
  for (const [, , pttl] of results) {
    assert.ok(pttl > 0 && pttl <= 60000, `pttl ${pttl}`);
  }
  // Later hits do not push the window out.
  assert.ok(results[3][2] <= results[0][2]);
  // Another key has its own window.
  assert.deepEqual((await redis.rateLimit('rl:user2', 3, 60000)).slice(0, 2), [1, 1]);

  // A short window: when the counter has expired the next hit starts a new window.
  assert.deepEqual((await redis.rateLimit('rl:short', 1, 50)).slice(0, 2), [1, 1]);
  assert.deepEqual((await redis.rateLimit('rl:short', 1, 50)).slice(0, 2), [0, 2]);
  await waitFor('the window to expire', async () => (await redis.exists('rl:short')) === 0);
  assert.deepEqual((await redis.rateLimit('rl:short', 1, 50)).slice(0, 2), [1, 1]);
});

test('EVALSHA falls back to EVAL after SCRIPT FLUSH', async () => {
  const sha = sha1(INCR_CAPPED);
  assert.deepEqual(await redis.script('EXISTS', sha), [0]);
  assert.equal(await redis.incrCapped('n', 1, 100), 1);
  // The fallback EVAL cached the script.
  assert.deepEqual(await redis.script('EXISTS', sha), [1]);
  assert.equal(await redis.incrCapped('n', 1, 100), 2);
  assert.equal(await redis.script('FLUSH'), 'OK');
  assert.deepEqual(await redis.script('EXISTS', sha), [0]);
  await assert.rejects(redis.evalsha(sha, 1, 'n', 1, 100), /^ReplyError: NOSCRIPT No matching script\. Please use EVAL\./);
  assert.equal(await redis.incrCapped('n', 1, 100), 3);
  assert.deepEqual(await redis.script('EXISTS', sha), [1]);
});

test('pipelines and transactions of custom commands', async () => {
  const sha = sha1(INCR_CAPPED);
  // A new connection sends a script's first use as EVAL and later ones as EVALSHA, so a
  // pipeline's commands run in order.
  const fresh = connect();
  try {
    fresh.defineCommand('incrCapped', { numberOfKeys: 1, lua: INCR_CAPPED });
    fresh.defineCommand('rateLimit', { numberOfKeys: 1, lua: RATE_LIMIT });
    const results = await fresh
      .pipeline()
      .incrCapped('a', 1, 10)
      .incrCapped('b', 2, 10)
      .incrCapped('a', 20, 10)
      .rateLimit('rl', 5, 60000)
      .get('a')
      .exec();
    assert.deepEqual(results[0], [null, 1]);
    assert.deepEqual(results[1], [null, 2]);
    assert.equal(results[2][0].message, 'CAPPED a would reach 21');
    assert.deepEqual(results[3][1].slice(0, 2), [1, 1]);
    assert.deepEqual(results[4], [null, '1']);
    assert.deepEqual(await fresh.script('EXISTS', sha), [1]);

    // Loaded scripts inside MULTI / EXEC.
    const tx = await fresh.multi().incrCapped('t', 2, 10).incrCapped('t', 3, 10).get('t').exec();
    assert.deepEqual(tx, [
      [null, 2],
      [null, 5],
      [null, '5'],
    ]);

    // After SCRIPT FLUSH every EVALSHA of the pipeline gets NOSCRIPT and is sent again (as
    // EVAL first): each command still gets its own result.
    await fresh.script('FLUSH');
    const many = fresh.pipeline();
    for (let i = 0; i < 50; i++) {
      many.incrCapped('many', 1, 1000);
    }
    const counted = await many.exec();
    assert.deepEqual(
      counted.map(([err, v]) => [err, v]),
      Array.from({ length: 50 }, (_, i) => [null, i + 1]),
    );
    assert.equal(await fresh.get('many'), '50');
    assert.deepEqual(await fresh.script('EXISTS', sha), [1]);
  } finally {
    await fresh.quit();
  }
});

test('eval and evalsha return every reply type', async () => {
  await redis.hset('h', 'f', 'v');
  assert.deepEqual(await redis.eval("return {1, 'two', {3}, false, 4.9}", 0), [1, 'two', [3], null, 4]);
  assert.equal(await redis.eval("return {ok='FINE'}", 0), 'FINE');
  assert.equal(await redis.eval('return nil', 0), null);
  assert.deepEqual(await redis.eval("return redis.call('HGETALL', KEYS[1])", 1, 'h'), ['f', 'v']);
  const sha = await redis.script('LOAD', 'return ARGV[1] .. ARGV[2]');
  assert.equal(sha, sha1('return ARGV[1] .. ARGV[2]'));
  assert.equal(await redis.evalsha(sha, 0, 'a', 'b'), 'ab');
  await assert.rejects(redis.eval('return', -1), /Number of keys can't be negative/);
  await assert.rejects(
    redis.call('EVAL_RO', "return redis.call('SET', 'k', 'v')", 0),
    /Write commands are not allowed from read-only scripts/,
  );
});

test('functions: FUNCTION LOAD, FCALL, FCALL_RO', async () => {
  const code = [
    '#!lua name=nodelib',
    "redis.register_function('node_incr', function(keys, args) return redis.call('INCRBY', keys[1], args[1]) end)",
    "redis.register_function{function_name='node_get', callback=function(keys) return redis.call('GET', keys[1]) end, flags={'no-writes'}}",
  ].join('\n');
  assert.equal(await redis.function('LOAD', code), 'nodelib');
  await assert.rejects(redis.function('LOAD', code), /Library 'nodelib' already exists/);
  assert.equal(await redis.fcall('node_incr', 1, 'fk', 7), 7);
  assert.equal(await redis.fcall_ro('node_get', 1, 'fk'), '7');
  await assert.rejects(redis.fcall_ro('node_incr', 1, 'fk', 1), /Can not execute a script with write flag using \*_ro command/);
  const piped = await redis.pipeline().fcall('node_incr', 1, 'fk', 1).fcall('node_get', 1, 'fk').exec();
  assert.deepEqual(piped, [
    [null, 8],
    [null, '8'],
  ]);
  const dump = await redis.functionBuffer('DUMP');
  assert.ok(Buffer.isBuffer(dump) && dump.length > 10);
  assert.equal(await redis.function('FLUSH'), 'OK');
  await assert.rejects(redis.fcall('node_get', 1, 'fk'), /Function not found/);
  assert.equal(await redis.function('RESTORE', dump), 'OK');
  assert.equal(await redis.fcall('node_get', 1, 'fk'), '8');
});
