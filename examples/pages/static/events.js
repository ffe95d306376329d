'use strict';

// The only script of the pages: it listens to the session's live events,
// to warn before the session times out and to show at once that it ended
// (signed out in another tab, at the identity provider, expired), without
// a request of its own.

const $ = (id) => document.getElementById(id);

const events = new EventSource('/auth/events');

events.addEventListener('session', (e) => {
  const {expiresAt, idleExpiresAt} = JSON.parse(e.data);
  document.body.dataset.expiresAt = expiresAt;
  document.body.dataset.idleExpiresAt = idleExpiresAt;
  if ($('idle-warning')) {
    $('idle-warning').hidden = true; // used again: the deadline moved
  }
});

events.addEventListener('expiring', (e) => {
  const warning = $('idle-warning');
  if (!warning) {
    return;
  }
  const {endsAt, cause} = JSON.parse(e.data);
  $('idle-ends').dateTime = endsAt;
  $('idle-ends').textContent = new Date(endsAt).toLocaleTimeString();
  $('idle-cause').textContent = cause === 'idle' ? 'unless you use the app' : '(the longest a session lasts)';
  warning.dataset.shownAt = String(Date.now());
  warning.hidden = false;
});

events.addEventListener('ended', (e) => {
  events.close();
  const {reason} = JSON.parse(e.data);
  document.body.dataset.state = 'signed-out';
  document.body.dataset.signedOutAt = String(Date.now());
  $('status').textContent = 'Signed out';
  // Why, in the words the page came with (#endings).
  const ending = document.querySelector(`#endings [data-reason="${CSS.escape(reason)}"]`);
  $('notice').textContent = ending ? ending.textContent : 'Your session has ended.';
  $('notice').hidden = false;
  for (const el of document.querySelectorAll('.signed-in-only, #idle-warning')) {
    el.hidden = true;
  }
});
