'use strict';

// Every call to the app's own API is a same-origin fetch: the browser sends
// the HttpOnly session cookie, the server adds the access token.
async function api(path, options = {}) {
  const res = await fetch(path, {credentials: 'same-origin', ...options});
  const type = res.headers.get('Content-Type') || '';
  const body = type.includes('application/json') ? await res.json() : await res.text();
  return {status: res.status, ok: res.ok, body};
}

function echo(value) {
  return api('/api/echo', {
    method: 'POST',
    credentials: 'same-origin',
    headers: {'Content-Type': 'application/json'},
    body: JSON.stringify(value),
  });
}

const $ = (id) => document.getElementById(id);

// What a failed sign-in or sign-out brought back in ?error=, in words. An
// unknown code is not shown: the address bar is anyone's to write.
const failures = {
  access_denied: 'Sign-in was cancelled, or the identity provider refused it.',
  login_expired: 'The sign-in took too long or was already used. Please sign in again.',
  login_failed: 'The sign-in could not be completed. Please try again.',
  login_refused: 'This account may not use the application.',
  temporarily_unavailable: 'Signing in or out is not possible right now. Please try again shortly.',
  invalid_request: 'The sign-in or sign-out request was not valid. Please try again.',
  cross_origin: 'A sign-out from another site was refused.',
  login_required: 'Please sign in at the identity provider.',
  consent_required: 'The identity provider needs your consent first.',
  interaction_required: 'The identity provider needs you to act first.',
};

// Why a session ended, from the ended event of /auth/events.
const endings = {
  logout: 'You signed out in another tab or window.',
  backchannel: 'You were signed out at the identity provider.',
  revoked: 'Your session was ended.',
  expired: 'Your session expired.',
  refresh_failed: 'Your session could not be renewed. Please sign in again.',
  limit: 'You signed in on too many devices, so this session was ended.',
};

function showFailure() {
  const code = new URLSearchParams(location.search).get('error');
  if (code) {
    $('failure').textContent = failures[code] || 'Signing in or out failed.';
    $('failure').hidden = false;
  }
}

// returnTo is this page (path and query), without a failure's ?error=.
function returnTo() {
  const params = new URLSearchParams(location.search);
  if (!params.has('error')) {
    return location.pathname + location.search;
  }
  params.delete('error');
  const q = params.toString();
  return location.pathname + (q ? '?' + q : '');
}

// The session's live events: the page learns at once that the session
// ended (sign-out in another tab, at the provider, expiry), with no
// request of its own.
let events = null;

function listen() {
  if (events) {
    return;
  }
  events = new EventSource('/auth/events');
  events.addEventListener('expiring', (e) => {
    const {endsAt} = JSON.parse(e.data);
    $('notice').textContent = `Your session ends at ${new Date(endsAt).toLocaleTimeString()} unless you use the app.`;
    $('notice').hidden = false;
  });
  events.addEventListener('session', () => { $('notice').hidden = true; });
  events.addEventListener('ended', (e) => {
    const {reason} = JSON.parse(e.data);
    stopListening();
    window.example.signedOutAt = Date.now();
    showSignedOut();
    $('notice').textContent = endings[reason] || 'Your session has ended.';
    $('notice').hidden = false;
  });
}

function stopListening() {
  if (events) {
    events.close();
    events = null;
  }
}

function setState(state) {
  document.body.dataset.state = state;
  $('signin').hidden = state !== 'signed-out';
  $('signout-form').hidden = state !== 'signed-in';
  $('api').hidden = state !== 'signed-in';
}

function showSignedOut() {
  stopListening();
  $('status').textContent = 'Signed out';
  // Come back to this very page (path and query) after signing in.
  $('signin').href = '/auth/login?returnTo=' + encodeURIComponent(returnTo());
  $('me-result').textContent = '';
  $('echo-result').textContent = '';
  $('token-expires').textContent = '–';
  setState('signed-out');
}

function showSignedIn(name) {
  const span = document.createElement('span');
  span.id = 'name';
  span.textContent = name;
  $('status').replaceChildren('Signed in as ', span);
  setState('signed-in');
  listen();
}

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = false;
  if (document.body.dataset.state === 'loading') {
    $('status').textContent = 'Unavailable';
    setState('error');
  }
}

// me calls GET /api/me and shows the result. An expired access token is
// refreshed by the server: this call just succeeds.
async function me() {
  const r = await api('/api/me');
  if (r.status === 401) {
    showSignedOut();
  } else if (!r.ok) {
    showError(`GET /api/me answered ${r.status}`);
  } else {
    $('me-result').textContent = JSON.stringify(r.body, null, 2);
    $('token-expires').textContent = r.body.tokenExpiresAt;
    $('token-expires').dateTime = r.body.tokenExpiresAt;
    showSignedIn(r.body.name || r.body.email || r.body.sub);
  }
  return r;
}

async function sendEcho() {
  const r = await echo({message: $('echo-input').value, sentAt: new Date().toISOString()});
  if (r.status === 401) {
    showSignedOut();
  }
  $('echo-result').textContent = `${r.status}\n` + (typeof r.body === 'string' ? r.body : JSON.stringify(r.body, null, 2));
  return r;
}

// A sign-in that came back without the sign-in asked for (a silent sign-in
// the provider could not do: login_required; a step-up it did not honour:
// insufficient_user_authentication) says so in ?error=. Show it; do not
// start another sign-in.
function showReturnedError() {
  const code = new URLSearchParams(location.search).get('error');
  if (code) {
    $('error').textContent = 'The sign-in came back with: ' + code;
    $('error').hidden = false;
  }
}

async function update() {
  $('error').hidden = true;
  showReturnedError();
  try {
    const session = await api('/auth/session');
    if (session.status === 401) {
      showSignedOut();
      return;
    }
    if (!session.ok) {
      showError(`GET /auth/session answered ${session.status}`);
      return;
    }
    $('signout-form').action = session.body.logoutUrl;
    await me();
  } catch (e) {
    showError(String(e));
  }
}

$('me').addEventListener('click', () => me().catch((e) => showError(String(e))));
$('echo').addEventListener('click', () => sendEcho().catch((e) => showError(String(e))));
// A page restored from the back/forward cache asks the server again.
window.addEventListener('pageshow', (e) => { if (e.persisted) update(); });

// For the browser console and the end-to-end tests.
window.example = {api, echo, me, update, streaming: () => events !== null && events.readyState === EventSource.OPEN};

showFailure();
update();
