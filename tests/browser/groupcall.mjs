// A group call through the SFU: Alice rings Bob and Carol; Bob rejects, Carol accepts; Alice
// invites Dave later. Every participant decodes every other's colour, data reaches everyone with
// its sender named, and the call ends once fewer than two remain.

import { assert, waitFor } from './harness.mjs';
import { answer, callPage, expectEnded, ring, uid } from './calls.mjs';

async function expectColourFrom(page, callId, peerId, colour) {
  let last;
  try {
    await waitFor(`${page.label} to decode ${colour} from ${peerId}`, async () => {
      last = await page.evaluate(({ cid, pid }) => {
        const mc = window.ct.call(cid);
        return window.ct.colourOfStream(mc?.room?.getStream(pid));
      }, { cid: callId, pid: peerId });
      return last === colour;
    }, { timeout: 20000, interval: 300 });
  } catch {
    throw new Error(`${page.label} decodes ${last} from ${peerId} on ${callId}, expected ${colour}`);
  }
}

function view(page, callId) {
  return page.evaluate(({ cid }) => {
    const mc = window.ct.call(cid);
    return {
      state: mc.state,
      participants: [...mc.participants].sort(),
      left: mc.events.filter((e) => e[0] === 'participantLeft').map((e) => e[1]),
      received: mc.received.map((d, i) => [mc.receivedFrom[i], d]),
    };
  }, { cid: callId });
}

export async function groupCall({ browser, server, report }) {
  const [a, b, c, d] = ['alice', 'bob', 'carol', 'dave'].map((n) => uid(n));
  const alice = await callPage(browser, server.base, server.host, a);
  const bob = await callPage(browser, server.base, server.host, b);
  const carol = await callPage(browser, server.base, server.host, c);
  const dave = await callPage(browser, server.base, server.host, d);
  const pages = [alice, bob, carol, dave];
  try {
    // Ring two at once.
    const callId = await ring(alice, carol, { to: [b, c], colour: 'red', options: { media: 'sfu' } });
    await waitFor('Bob to be rung too', () => bob.evaluate((cid) => window.incoming.some((mc) => mc.id === cid && mc.state === 'ringing'), callId), { timeout: 10000 });
    await bob.evaluate((cid) => window.incoming.find((x) => x.id === cid).reject(), callId);
    await expectEnded(bob, callId, 'rejected');
    await waitFor('Alice to see Bob leave, rejected', async () => (await view(alice, callId)).left.some((l) => l.peerId === b && l.reason === 'rejected'), { timeout: 10000 });
    const ringing = (await view(alice, callId)).state;
    assert(ringing === 'ringing', `the call goes on ringing Carol after Bob's reject: ${ringing}`);

    await answer(carol, callId, { colour: 'green' });
    await expectColourFrom(alice, callId, c, 'green');
    await expectColourFrom(carol, callId, a, 'red');

    // A third joins later.
    await alice.evaluate(({ to }) => window.out.c.invite(to), { to: d });
    await waitFor('Dave to be rung', () => dave.evaluate((cid) => window.incoming.some((mc) => mc.id === cid && mc.state !== 'ended'), callId), { timeout: 10000 });
    await answer(dave, callId, { colour: 'blue' });
    const colours = { [a]: 'red', [c]: 'green', [d]: 'blue' };
    for (const [page, me] of [[alice, a], [carol, c], [dave, d]]) {
      for (const [peerId, colour] of Object.entries(colours)) {
        if (peerId !== me) await expectColourFrom(page, callId, peerId, colour);
      }
    }
    for (const [page, me] of [[alice, a], [carol, c], [dave, d]]) {
      const want = Object.keys(colours).filter((p) => p !== me).sort();
      await waitFor(`${page.label}'s participants`, async () => JSON.stringify((await view(page, callId)).participants) === JSON.stringify(want), { timeout: 10000 });
    }

    // Data over the SFU's relayed channel: each message reaches both others, sender named.
    for (const [page, me] of [[alice, a], [carol, c], [dave, d]]) {
      await waitFor(`${page.label}'s call to be open for data`, () => page.evaluate(({ cid }) => window.ct.call(cid).open, { cid: callId }), { timeout: 10000 });
      await page.evaluate(({ cid, text }) => window.ct.call(cid).send({ text }), { cid: callId, text: `hi from ${me}` });
    }
    for (const [page, me] of [[alice, a], [carol, c], [dave, d]]) {
      const want = Object.keys(colours).filter((p) => p !== me).map((p) => [p, { text: `hi from ${p}` }]);
      await waitFor(`${page.label} to get both others' messages`, async () => {
        const got = (await view(page, callId)).received;
        const sorted = (x) => JSON.stringify([...x].sort((l, r) => l[0].localeCompare(r[0])));
        if (got.length > want.length) throw new Error(`${page.label} got ${JSON.stringify(got)}`);
        return sorted(got) === sorted(want);
      }, { timeout: 10000 });
    }

    // Carol hangs up: Alice and Dave go on; then Alice hangs up and the call ends.
    await carol.evaluate(({ cid }) => window.ct.call(cid).close(), { cid: callId });
    await expectEnded(carol, callId, 'completed');
    await waitFor('Alice and Dave to see Carol leave', async () => {
      const vs = await Promise.all([alice, dave].map((p) => view(p, callId)));
      return vs.every((v) => v.left.some((l) => l.peerId === c) && v.state !== 'ended');
    }, { timeout: 10000 });
    await expectColourFrom(dave, callId, a, 'red');
    await alice.evaluate(() => window.out.c.close());
    await expectEnded(alice, callId, 'completed');
    await expectEnded(dave, callId, 'completed');
    report('group call: rang two (one rejected), third invited later; 3×2 colours decoded; data to all with senders named');
  } finally {
    for (const p of pages) await p.closeContext();
  }
}
