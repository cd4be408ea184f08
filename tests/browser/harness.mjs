// Shared pieces of the browser suite: the server process, the Chromium process, bounded waits.

import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const ARTIFACTS = path.join(ROOT, 'artifacts');
mkdirSync(ARTIFACTS, { recursive: true });

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Reject after `ms` with a message naming what was awaited. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Poll `check` until it returns a truthy value (returned) or `ms` pass (throws, with the last
 * value or error in the message).
 */
export async function waitFor(what, check, { timeout = 20000, interval = 250 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${detail})`);
    }
    await sleep(interval);
  }
}

/** A TCP port nothing listens on (bound once, then released). */
export async function freePort(ip = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, ip, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A child process whose output goes to a log file, killed by its own pid at the end. */
function start(command, args, logName) {
  const logPath = path.join(ARTIFACTS, logName);
  const log = createWriteStream(logPath);
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  child.logPath = logPath;
  child.exited.then(() => log.end());
  return child;
}

async function stop(child, ms = 5000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const done = await Promise.race([child.exited, sleep(ms).then(() => null)]);
  if (!done) {
    child.kill('SIGKILL');
    await Promise.race([child.exited, sleep(2000)]);
  }
}

/** The server binary on `ip` (HTTP and media), with `args` added to the defaults. */
export async function startServer({ logName = 'server.log', args: extra = [], ip = '127.0.0.1' } = {}) {
  const bin = process.env.SWITCHBOARD_BIN ?? path.join(ROOT, 'target/debug/switchboard');
  const port = await freePort(ip);
  const udpBase = 40000 + Math.floor(Math.random() * 1000) * 10;
  const args = [
    '--http', `${ip}:${port}`,
    '--udp-ports', `${udpBase}-${udpBase + 9}`,
    '--udp-bind', ip,
    '--log', process.env.SWITCHBOARD_LOG ?? 'info,str0m=warn,dimpl=warn',
    ...extra,
  ];
  const child = start(bin, args, logName);
  const base = `http://${ip}:${port}`;
  try {
    await waitFor('the server to answer /healthz', async () => {
      if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}; see ${child.logPath}`);
      const res = await fetch(`${base}/healthz`);
      return res.ok;
    }, { timeout: 20000, interval: 100 });
  } catch (err) {
    await stop(child);
    throw err;
  }
  return {
    base,
    host: `${ip}:${port}`,
    port,
    child,
    stop: () => stop(child),
    /** Send a signal without waiting (SIGTERM starts a drain; a second one ends it). */
    signal: (name) => child.kill(name),
    exited: child.exited,
  };
}

export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
];

/** Chromium started by us with exactly our flags, driven over CDP by playwright-core. */
export async function startBrowser() {
  const executable = process.env.CHROMIUM ?? '/usr/bin/chromium';
  const profile = mkdtempSync(path.join(os.tmpdir(), 'switchboard-chromium-'));
  const child = start(executable, [
    ...CHROMIUM_FLAGS,
    `--user-data-dir=${profile}`,
    '--remote-debugging-port=0',
    '--window-size=1280,800',
    'about:blank',
  ], 'chromium.log');
  const endpoint = await withTimeout(new Promise((resolve, reject) => {
    let text = '';
    child.stderr.on('data', (chunk) => {
      text += chunk;
      const m = text.match(/DevTools listening on (ws:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    child.exited.then(({ code, signal }) => reject(new Error(`chromium exited (${code ?? signal}); see ${child.logPath}`)));
  }), 30000, 'Chromium to start its DevTools endpoint');
  const browser = await withTimeout(chromium.connectOverCDP(endpoint), 30000, 'connecting to Chromium');
  const version = browser.version();
  return {
    browser,
    version,
    async stop() {
      await withTimeout(browser.close(), 10000, 'closing the browser').catch(() => {});
      await stop(child);
      // Chromium's last writes may race the removal: retried, never fatal.
      try {
        rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
      } catch (err) {
        console.warn(`could not remove ${profile}: ${err.message}`);
      }
    },
  };
}

const consoleLog = createWriteStream(path.join(ARTIFACTS, 'browser-console.log'));

/** A page in its own browser context (own storage, own media devices), console logged. */
export async function newPage(browser, label) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on('console', (msg) => consoleLog.write(`[${label}] ${msg.type()}: ${msg.text()}\n`));
  page.on('pageerror', (err) => consoleLog.write(`[${label}] pageerror: ${err.stack ?? err}\n`));
  page.label = label;
  page.closeContext = () => withTimeout(context.close(), 10000, `closing ${label}`).catch(() => {});
  return page;
}

export function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

export function uniqueRoom(prefix) {
  return `${prefix}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;
}
