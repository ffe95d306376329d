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

function setState(state) {
  document.body.dataset.state = state;
  $('signin').hidden = state !== 'signed-out';
  $('signout-form').hidden = state !== 'signed-in';
  $('api').hidden = state !== 'signed-in';
}

function showSignedOut() {
  $('status').textContent = 'Signed out';
  // Come back to this very page (path and query) after signing in.
  $('signin').href = '/auth/login?returnTo=' + encodeURIComponent(location.pathname + location.search);
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
window.example = {api, echo, me, update};

update();
