// The demo call page: a small video call built on the SDK exactly as an application would use it.
//
// URL parameters (all optional): room, name (prefill the form), host (another Switchboard server),
// quality=low (320x180 at 15 fps, for slow machines), debug (SDK signalling log in the console),
// id and credential (a peer id and its credential as JSON, for servers with auth.mode=required).

import { Peer } from '/sdk/switchboard.js';

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

const ui = {
  form: $('join-form'),
  room: $('room'),
  name: $('name'),
  useCamera: $('use-camera'),
  useMic: $('use-mic'),
  join: $('join'),
  callBar: $('call-bar'),
  roomLabel: $('room-label'),
  memberCount: $('member-count'),
  firstFrame: $('first-frame'),
  mic: $('mic'),
  camera: $('camera'),
  leave: $('leave'),
  error: $('error'),
  notice: $('notice'),
  grid: $('grid'),
  empty: $('empty'),
  status: $('status'),
  statusText: $('status-text'),
  log: $('log'),
  template: $('tile-template'),
};

const VIDEO = params.get('quality') === 'low'
  ? { width: { ideal: 320 }, height: { ideal: 180 }, frameRate: { ideal: 15 } }
  : { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24 } };

let peer = null;
let room = null;
let localStream = null;
let myName = '';

/** Timing of the last join, for the page and for tests: ms since page load. */
const metrics = { joinClickedAt: null, openAt: null, firstFrameAt: null, firstFrameMs: null, joinedWithOthers: false };

window.switchboardDemo = {
  get peer() { return peer; },
  get room() { return room; },
  get localStream() { return localStream; },
  metrics,
};

if (params.has('room')) ui.room.value = params.get('room');
ui.name.value = params.get('name') ?? sessionStorage.getItem('switchboard-name') ?? '';

// ------------------------------------------------------------------------------- helpers

function log(text, isError = false) {
  const item = document.createElement('li');
  const time = new Date().toLocaleTimeString([], { hour12: false });
  item.textContent = `${time} ${text}`;
  if (isError) item.className = 'err';
  ui.log.append(item);
  ui.log.scrollTop = ui.log.scrollHeight;
}

function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.statusText.textContent = text;
}

function showError(err) {
  const type = err?.type ? ` [${err.type}]` : '';
  ui.error.textContent = `${err?.message ?? err}${type}`;
  ui.error.hidden = false;
  log(`error${type}: ${err?.message ?? err}`, true);
}

function clearError() {
  ui.error.hidden = true;
  ui.error.textContent = '';
}

function colorFor(text) {
  let h = 0;
  for (const c of text) h = (h * 31 + c.codePointAt(0)) % 360;
  return `hsl(${h} 55% 45%)`;
}

function initials(text) {
  const words = text.trim().split(/\s+/).filter(Boolean);
  const first = (w) => [...w][0];
  return (words.length > 1 ? first(words[0]) + first(words[1]) : first(words[0] ?? '?')).toUpperCase();
}

// --------------------------------------------------------------------------------- tiles

function tileFor(key) {
  return ui.grid.querySelector(`.tile[data-key="${CSS.escape(key)}"]`);
}

function ensureTile(key, label, local = false, person = label) {
  let tile = tileFor(key);
  if (!tile) {
    tile = ui.template.content.firstElementChild.cloneNode(true);
    tile.dataset.key = key;
    if (local) {
      tile.classList.add('local');
      tile.querySelector('video').muted = true;
      ui.grid.prepend(tile);
    } else {
      tile.dataset.peerId = key;
      ui.grid.append(tile);
    }
    tile.classList.add('no-video');
  }
  tile.querySelector('.name').textContent = label;
  const avatar = tile.querySelector('.avatar');
  avatar.textContent = initials(person);
  avatar.style.setProperty('--avatar', colorFor(person));
  updateEmpty();
  return tile;
}

function removeTile(key) {
  tileFor(key)?.remove();
  updateEmpty();
}

function updateEmpty() {
  ui.empty.hidden = ui.grid.children.length > 0;
  if (room) {
    const n = room.members.length + 1;
    ui.memberCount.textContent = `${n} ${n === 1 ? 'person' : 'people'}`;
  }
}

function setBadges(tile, badges) {
  const box = tile.querySelector('.badges');
  box.replaceChildren(...badges.map(([text, cls]) => {
    const b = document.createElement('span');
    b.className = `badge ${cls ?? ''}`;
    b.textContent = text;
    return b;
  }));
}

function remoteBadges(tile, stream) {
  const badges = [];
  if (tile.dataset.hostMutedAudio) badges.push(['muted by host']);
  if (stream && !stream.getVideoTracks().length) badges.push(['voice only', 'info']);
  return badges;
}

function showNotice(text) {
  log(text);
  ui.notice.textContent = text;
  ui.notice.hidden = false;
}

/** Show a stream in a tile; the avatar stands in while there is no live video. */
function attach(tile, stream) {
  const video = tile.querySelector('video');
  const refresh = () => {
    const track = stream?.getVideoTracks()[0];
    const live = Boolean(track && track.readyState === 'live' && !track.muted && track.enabled);
    tile.classList.toggle('no-video', !live);
  };
  for (const track of stream?.getTracks() ?? []) {
    track.addEventListener('mute', refresh);
    track.addEventListener('unmute', refresh);
  }
  video.srcObject = stream;
  refresh();
  if (!stream) return;
  video.play().catch(() => {
    // Autoplay with sound was refused: play muted and let a click unmute.
    video.muted = true;
    video.play().catch(() => {});
    tile.title = 'Click to hear this participant';
    tile.addEventListener('click', () => { video.muted = false; tile.title = ''; }, { once: true });
  });
  if (!tile.classList.contains('local') && metrics.firstFrameAt === null && 'requestVideoFrameCallback' in video) {
    video.requestVideoFrameCallback(() => {
      if (metrics.firstFrameAt !== null || metrics.joinClickedAt === null) return;
      metrics.firstFrameAt = performance.now();
      metrics.firstFrameMs = Math.round(metrics.firstFrameAt - metrics.joinClickedAt);
      // Only meaningful when somebody was already there to be seen.
      if (metrics.joinedWithOthers) ui.firstFrame.textContent = `· first video after ${metrics.firstFrameMs} ms`;
      log(`first remote video frame ${metrics.firstFrameMs} ms after join`);
    });
  }
}

function refreshLocalTile() {
  const tile = ensureTile('local', `${myName} (you)`, true, myName);
  const audio = localStream?.getAudioTracks()[0];
  const video = localStream?.getVideoTracks()[0];
  tile.classList.toggle('no-video', !(video && video.enabled));
  const badges = [];
  if (!audio || !audio.enabled) badges.push(['mic off']);
  if (tile.dataset.hostMutedAudio) badges.push(['muted by host']);
  setBadges(tile, badges);
  ui.mic.textContent = !audio ? 'Turn mic on' : audio.enabled ? 'Mute mic' : 'Unmute mic';
  ui.mic.setAttribute('aria-pressed', String(!audio || !audio.enabled));
  ui.camera.textContent = video && video.enabled ? 'Camera off' : 'Camera on';
  ui.camera.setAttribute('aria-pressed', String(!video || !video.enabled));
}

// ----------------------------------------------------------------------------- the call

function getPeer() {
  if (peer && !peer.destroyed) return peer;
  const options = { host: params.get('host') || location.host, debug: params.has('debug') };
  if (params.get('id')) options.id = params.get('id');
  if (params.get('credential')) options.credential = JSON.parse(params.get('credential'));
  peer = new Peer(options);
  peer.on('open', (id) => log(`connected to the server as ${id}`));
  peer.on('error', (err) => {
    showError(err);
    setStatus('error', 'Server unreachable');
  });
  peer.on('disconnected', () => log('signalling connection lost'));
  peer.on('close', () => log('peer closed'));
  peer.on('expiresIn', (s) => showNotice(`Your credential expires in ${s} s.`));
  return peer;
}

async function getMedia(audio, video) {
  if (!audio && !video) return null;
  return navigator.mediaDevices.getUserMedia({ audio, video: video ? VIDEO : false });
}

async function join(event) {
  event.preventDefault();
  clearError();
  const roomName = ui.room.value.trim();
  myName = ui.name.value.trim();
  if (!myName) {
    showError(new Error('Please enter your name'));
    return;
  }
  sessionStorage.setItem('switchboard-name', myName);
  metrics.joinClickedAt = performance.now();
  metrics.openAt = null;
  metrics.firstFrameAt = null;
  metrics.firstFrameMs = null;
  ui.join.disabled = true;
  setStatus('connecting', 'Connecting…');
  try {
    localStream = await getMedia(ui.useMic.checked, ui.useCamera.checked);
  } catch (err) {
    ui.join.disabled = false;
    setStatus('error', 'No camera or microphone');
    showError(new Error(`Camera/microphone unavailable: ${err.message}`));
    return;
  }
  try {
    room = getPeer().joinRoom(roomName, { stream: localStream, name: myName });
  } catch (err) {
    stopLocal();
    ui.join.disabled = false;
    setStatus('error', 'Could not join');
    showError(err);
    return;
  }
  wireRoom(room);
}

function wireRoom(r) {
  r.on('open', () => {
    if (r !== room) return;
    metrics.openAt = performance.now();
    metrics.joinedWithOthers = r.members.length > 0;
    log(`joined room ${r.name}${r.members.length ? ` with ${r.members.map((id) => r.getPeerName(id)).join(', ')}` : ''}`);
    ui.form.hidden = true;
    ui.callBar.hidden = false;
    ui.roomLabel.textContent = r.name;
    ui.firstFrame.textContent = '';
    setStatus('connecting', `In ${r.name} · media connecting`);
    refreshLocalTile();
    attach(tileFor('local'), localStream);
    for (const id of r.members) ensureTile(id, r.getPeerName(id));
  });
  r.on('connectionState', (state) => {
    if (r !== room) return;
    const text = { connected: 'media connected', connecting: 'media connecting', disconnected: 'media interrupted', failed: 'media failed' }[state] ?? state;
    setStatus(state === 'connected' ? 'connected' : state === 'failed' ? 'error' : 'connecting', `In ${r.name} · ${text}`);
    log(`media ${state}`);
  });
  r.on('state', (state, { cause }) => {
    if (r !== room) return;
    if (state === 'reconnecting') setStatus('connecting', `In ${r.name} · reconnecting (${cause})`);
    else if (state === 'connected') setStatus('connected', `In ${r.name} · media connected`);
    log(`room ${state} (${cause})`);
  });
  r.on('peerReconnecting', (id) => log(`${r.getPeerName(id) ?? id} is reconnecting`));
  r.on('peerReconnected', (id) => log(`${r.getPeerName(id) ?? id} is back`));
  r.on('peerJoin', (id) => {
    log(`${r.getPeerName(id)} joined`);
    ensureTile(id, r.getPeerName(id));
  });
  r.on('peerLeave', (id) => {
    log(`${tileFor(id)?.querySelector('.name').textContent ?? id} left`);
    removeTile(id);
  });
  r.on('stream', (stream) => {
    const name = r.getPeerName(stream.peerId) ?? stream.peerId;
    const kinds = stream.getTracks().map((t) => t.kind).join('+');
    log(`receiving ${kinds} from ${name}`);
    const tile = ensureTile(stream.peerId, name);
    attach(tile, stream);
    setBadges(tile, remoteBadges(tile, stream));
  });
  r.on('removeStream', (stream) => {
    const tile = tileFor(stream.peerId);
    if (tile && tile.querySelector('video').srcObject === stream) {
      attach(tile, null);
      setBadges(tile, [['no media', 'info']]);
    }
  });
  r.on('error', (err) => showError(err));
  r.on('draining', (ms) => showNotice(`The server is restarting: this call ends within ${Math.round(ms / 1000)} s.`));
  r.on('data', ({ src, data }) => log(`message from ${src === null ? 'the operator' : r.getPeerName(src) ?? src}: ${JSON.stringify(data)}`));
  r.on('trackMuted', ({ peerId, kind, muted, by }) => {
    const mine = peerId === r.peer.id;
    const who = mine ? 'your' : `${r.getPeerName(peerId) ?? peerId}'s`;
    const actor = by === 'owner' ? (mine ? 'you' : r.getPeerName(peerId) ?? peerId) : 'the operator';
    log(`${actor} ${muted ? 'muted' : 'unmuted'} ${who} ${kind ?? 'track'}`);
    // The badges show operator mutes; an owner's own mute is shown by its own page.
    if (by === 'owner') return;
    const tile = tileFor(mine ? 'local' : peerId);
    if (tile) tile.dataset[`hostMuted${kind === 'video' ? 'Video' : 'Audio'}`] = muted ? '1' : '';
    if (mine) refreshLocalTile();
    else if (tile) setBadges(tile, remoteBadges(tile, r.getStream(peerId)));
  });
  r.on('close', () => {
    if (r !== room) return;
    room = null;
    log(`left room ${r.name}`);
    stopLocal();
    ui.grid.replaceChildren();
    ui.notice.hidden = true;
    ui.callBar.hidden = true;
    ui.form.hidden = false;
    ui.join.disabled = false;
    updateEmpty();
    if (ui.status.dataset.state !== 'error') setStatus('idle', 'Not connected');
  });
}

function stopLocal() {
  for (const t of localStream?.getTracks() ?? []) t.stop();
  localStream = null;
}

/** Toggle a local track; with none of that kind yet, ask for one and publish it. */
async function toggle(kind) {
  if (!room) return;
  const track = kind === 'audio' ? localStream?.getAudioTracks()[0] : localStream?.getVideoTracks()[0];
  if (track) {
    track.enabled = !track.enabled;
    log(`${kind === 'audio' ? 'microphone' : 'camera'} ${track.enabled ? 'on' : 'off'}`);
    refreshLocalTile();
    return;
  }
  const button = kind === 'audio' ? ui.mic : ui.camera;
  button.disabled = true;
  try {
    const added = await getMedia(kind === 'audio', kind === 'video');
    const next = new MediaStream([...(localStream?.getTracks() ?? []), ...added.getTracks()]);
    await room.replaceStream(next);
    localStream = next;
    log(`publishing ${kind}`);
    refreshLocalTile();
    attach(tileFor('local'), localStream);
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
}

// ------------------------------------------------------------------------- call a peer
//
// A ringing 1:1 call on the peer connection: peer.call(id, stream, { media }) and, on the other
// tab, peer.on('call', (call) => call.answer(stream)). One call at a time.

const callUi = {
  myId: $('my-peer-id'),
  form: $('call-form'),
  callee: $('callee'),
  p2p: $('call-p2p'),
  call: $('call-peer'),
  hangup: $('hangup-call'),
  incoming: $('incoming'),
  incomingText: $('incoming-text'),
  accept: $('accept-call'),
  reject: $('reject-call'),
  state: $('call-state'),
  remote: $('call-remote'),
};
let currentCall = null;
let callStream = null;

function showCallState(text) {
  callUi.state.textContent = text;
}

function wireCall(call) {
  currentCall = call;
  callUi.call.hidden = true;
  callUi.hangup.hidden = false;
  showCallState(`call ${call.initiator ? 'to' : 'from'} ${call.remoteId}: ${call.state}`);
  call.on('stateChanged', ({ state, endReason }) => {
    showCallState(`call ${call.initiator ? 'to' : 'from'} ${call.remoteId}: ${state}${endReason ? ` (${endReason})` : ''}`);
    log(`call ${call.id}: ${state}${endReason ? ` ${endReason}` : ''}`);
  });
  call.on('stream', (stream) => {
    callUi.remote.srcObject = stream;
    callUi.remote.hidden = false;
    callUi.remote.muted = true;
    callUi.remote.play().catch(() => {});
  });
  call.on('error', (err) => showError(err));
  call.on('close', () => {
    if (currentCall !== call) return;
    currentCall = null;
    callUi.incoming.hidden = true;
    callUi.call.hidden = false;
    callUi.hangup.hidden = true;
    callUi.remote.hidden = true;
    callUi.remote.srcObject = null;
    for (const t of callStream?.getTracks() ?? []) t.stop();
    callStream = null;
  });
}

async function placeCall(event) {
  event.preventDefault();
  clearError();
  const to = callUi.callee.value.trim();
  if (!to || currentCall) return;
  try {
    callStream = await getMedia(true, true);
    wireCall(getPeer().call(to, callStream, { media: callUi.p2p.checked ? 'p2p' : 'sfu' }));
  } catch (err) {
    showError(err);
  }
}

function onIncoming(call) {
  if (currentCall) {
    call.reject();
    return;
  }
  wireCall(call);
  callUi.incomingText.textContent = `${call.remoteId} is calling (${call.callType}, ${call.media})`;
  callUi.incoming.hidden = false;
}

callUi.form.addEventListener('submit', placeCall);
callUi.hangup.addEventListener('click', () => currentCall?.close());
callUi.accept.addEventListener('click', async () => {
  const call = currentCall;
  if (!call) return;
  callUi.incoming.hidden = true;
  try {
    callStream = await getMedia(true, call.callType === 'video');
    call.answer(callStream);
  } catch (err) {
    showError(err);
    call.reject();
  }
});
callUi.reject.addEventListener('click', () => {
  callUi.incoming.hidden = true;
  currentCall?.reject();
});
{
  const p = getPeer();
  p.on('open', (id) => { callUi.myId.textContent = id; });
  p.on('call', onIncoming);
}

ui.form.addEventListener('submit', join);
ui.leave.addEventListener('click', () => room?.close());
ui.mic.addEventListener('click', () => toggle('audio'));
ui.camera.addEventListener('click', () => toggle('video'));
window.addEventListener('pagehide', () => peer?.destroy());
updateEmpty();
