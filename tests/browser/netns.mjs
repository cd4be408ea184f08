// A member on a network of its own, to cut and move: a second Chromium in a network namespace of
// its own (inside the suite's namespace), joined to the suite's by a veth pair. The server
// listens on SERVER_IP (on the suite's loopback); the member reaches it through the veth, so
// nftables rules on the member's address cut its WebSocket or its media without touching anybody
// else, and a second veth pair gives it another address to move to (Wi-Fi → cellular).
//
//   suite netns:  lo 127.0.0.1, 10.99.0.1 (server) │ sbX0 10.10.0.1 │ sbY0 10.10.1.1
//   member netns:                                   │ sbX1 10.10.0.2 │ sbY1 10.10.1.2 (after move)

import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM_FLAGS, withTimeout } from './harness.mjs';

export const SERVER_IP = '10.99.0.1';
export const FIRST_ADDRESS = '10.10.0.2';
export const SECOND_ADDRESS = '10.10.1.2';

let launches = 0;

/** Run a command; reject with its stderr when it fails. */
function run(command, args, input) {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { timeout: 10000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin.end(input);
  });
}

/** nftables and the server address on the suite's loopback; false (with why) when not possible. */
export function networkTools() {
  for (const tool of ['nft', 'nsenter', 'unshare', 'ip']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed`;
  }
  const probe = spawnSync('ip', ['-br', 'addr', 'show', 'dev', 'lo'], { encoding: 'utf8' });
  if (!probe.stdout.includes(SERVER_IP)) {
    const add = spawnSync('ip', ['addr', 'add', `${SERVER_IP}/32`, 'dev', 'lo'], { encoding: 'utf8' });
    if (add.status !== 0) return `cannot add ${SERVER_IP} to lo: ${add.stderr.trim()}`;
  }
  return true;
}

/**
 * Launch the member's Chromium in a new network namespace and wire it to ours. Returns
 * { browser, cut(kind), lose(percent), police(kbytes), restore(), moveToSecondAddress(), address, stop() }.
 */
export async function isolatedBrowser(serverPort) {
  launches += 1;
  const tag = `${process.pid % 1000}${launches}`;
  const [hostA, memberA, hostB, memberB] = [`sbX${tag}a`, `sbX${tag}b`, `sbY${tag}a`, `sbY${tag}b`];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchboard-netns-'));
  const wrapper = path.join(dir, 'chromium-in-netns.sh');
  const executable = process.env.CHROMIUM ?? '/usr/bin/chromium';
  const pidFile = path.join(dir, 'pid');
  // The shell's pid stays the browser's through both execs: that names the namespace.
  writeFileSync(wrapper, `#!/bin/sh\necho $$ > ${JSON.stringify(pidFile)}\nexec unshare -n ${JSON.stringify(executable)} "$@"\n`);
  chmodSync(wrapper, 0o755);
  const browser = await withTimeout(chromium.launch({
    executablePath: wrapper,
    headless: true,
    args: CHROMIUM_FLAGS.filter((f) => f !== '--headless'),
  }), 30000, 'launching the member\'s Chromium in its own network namespace');
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  const inMember = (command, args) => run('nsenter', ['-t', String(pid), '-n', command, ...args]);
  const table = `sbt${tag}`;
  let cutting = false;
  try {
    await run('ip', ['link', 'add', hostA, 'type', 'veth', 'peer', 'name', memberA, 'netns', String(pid)]);
    await run('ip', ['addr', 'add', '10.10.0.1/24', 'dev', hostA]);
    await run('ip', ['link', 'set', hostA, 'up']);
    await inMember('ip', ['link', 'set', 'lo', 'up']);
    await inMember('ip', ['addr', 'add', `${FIRST_ADDRESS}/24`, 'dev', memberA]);
    await inMember('ip', ['link', 'set', memberA, 'up']);
    await inMember('ip', ['route', 'add', 'default', 'via', '10.10.0.1']);
    // The route works before the browser is asked to use it.
    const probe = `require('net').connect(${serverPort}, '${SERVER_IP}').on('connect', () => process.exit(0)).on('error', () => process.exit(1))`;
    for (let attempt = 1; ; attempt += 1) {
      try {
        await inMember(process.execPath, ['-e', probe]);
        break;
      } catch (err) {
        if (attempt >= 20) throw new Error(`the member's namespace cannot reach ${SERVER_IP}:${serverPort}: ${err.message}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  } catch (err) {
    await browser.close().catch(() => {});
    for (const link of [hostA, hostB]) await run('ip', ['link', 'del', link]).catch(() => {});
    throw err;
  }
  const addresses = `{ ${FIRST_ADDRESS}, ${SECOND_ADDRESS} }`;
  return {
    browser,
    address: FIRST_ADDRESS,
    /** Drop the member's packets both ways: 'ws' (its TCP to the server's port) or 'udp' (all UDP). */
    async cut(kind) {
      const match = kind === 'ws' ? ['tcp dport', 'tcp sport'].map((m) => `${m} ${serverPort}`) : ['meta l4proto udp', 'meta l4proto udp'];
      const script = `table inet ${table} {
  chain input { type filter hook input priority 0; ip saddr ${addresses} ${match[0]} drop; }
  chain output { type filter hook output priority 0; ip daddr ${addresses} ${match[1]} drop; }
}
`;
      await run('nft', ['-f', '-'], script);
      cutting = true;
    },
    /** Lose `percent` % of the UDP datagrams that reach the member, at random. */
    async lose(percent) {
      const script = `table inet ${table} {
  chain output { type filter hook output priority 0; ip daddr ${addresses} meta l4proto udp numgen random mod 100 < ${percent} drop; }
}
`;
      await run('nft', ['-f', '-'], script);
      cutting = true;
    },
    /** Police what reaches the member over UDP (its media) to `kbytes` a second; the rest drops. */
    async police(kbytes) {
      const script = `table inet ${table} {
  chain output { type filter hook output priority 0; ip daddr ${addresses} meta l4proto udp limit rate over ${kbytes} kbytes/second drop; }
}
`;
      await run('nft', ['-f', '-'], script);
      cutting = true;
    },
    async restore() {
      if (!cutting) return;
      await run('nft', ['delete', 'table', 'inet', table]);
      cutting = false;
    },
    /** Give the member its second address and route, then take the first one away. */
    async moveToSecondAddress() {
      await run('ip', ['link', 'add', hostB, 'type', 'veth', 'peer', 'name', memberB, 'netns', String(pid)]);
      await run('ip', ['addr', 'add', '10.10.1.1/24', 'dev', hostB]);
      await run('ip', ['link', 'set', hostB, 'up']);
      await inMember('ip', ['addr', 'add', `${SECOND_ADDRESS}/24`, 'dev', memberB]);
      await inMember('ip', ['link', 'set', memberB, 'up']);
      await inMember('ip', ['addr', 'flush', 'dev', memberA]);
      await inMember('ip', ['link', 'set', memberA, 'down']);
      await inMember('ip', ['route', 'replace', 'default', 'via', '10.10.1.1']);
      this.address = SECOND_ADDRESS;
    },
    async stop() {
      await this.restore().catch(() => {});
      await withTimeout(browser.close(), 10000, 'closing the member\'s browser').catch(() => {});
      // The namespace goes with its last process, but its veth pairs may linger a while with our
      // addresses on them: delete them now (one end takes the other along), so the next member
      // gets the addresses and routes.
      for (const link of [hostA, hostB]) await run('ip', ['link', 'del', link]).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Load `base`'s health page, the in-page helpers at `inpage` and the SDK module in the member's
 * page. A browser that has just come up in a new network may still be taking it in: it aborts a
 * navigation or a module fetch with ERR_NETWORK_CHANGED (or hangs) for a moment, so each failed
 * step starts again from a fresh navigation (a fresh document has no failed module cached).
 */
export async function loadInMember(page, base, inpage, attempts = 6) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      await page.goto(`${base}/healthz`, { timeout: 5000 });
      await page.addScriptTag({ path: inpage });
      await withTimeout(page.evaluate(() => import('/sdk/switchboard.js').then(() => true)), 5000, 'loading the SDK module');
      return;
    } catch (err) {
      if (attempt >= attempts) throw new Error(`the member's browser could not load ${base} (${attempt} attempts): ${err.message}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
