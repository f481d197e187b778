/* The volunteer classification page. Plain JavaScript, no framework, no build step.
 *
 * - A client-side queue of upcoming subjects whose stamps are fetched and decoded ahead, so
 *   the next subject is on screen in the frame after an answer.
 * - Answers go into an outbox in localStorage, each with a client-made UUID, BEFORE they are
 *   sent; the outbox is sent in the background and retried with back-off until the server
 *   acknowledges (201, 200 replay, or 409/400/404: final), survives reloads, and can never
 *   count twice: a replayed client_id is the same classification on the server.
 * - Each time a new subject is shown, a `next-subject` performance measure runs from the
 *   answer's input event to the first frame painted with the new subject.
 */
(() => {
  'use strict';

  const { csrfToken, announce } = window.PageTools;

  const config = JSON.parse(document.getElementById('classify-config').textContent);
  const WORKFLOW = config.workflow.id;
  const QUEUE_TARGET = 8; // subjects held ahead (loaded or loading)
  const QUEUE_LOW = 5; // refill below this
  const MAX_BACKOFF_MS = 30000;
  const OUTBOX_KEY = 'realbogus:outbox:v1';
  const TUTORIAL_KEY = `realbogus:tutorial-seen:${WORKFLOW}`;
  const { STAMP_KINDS, LABELS } = window.StampViewer;

  const $ = (id) => document.getElementById(id);
  const root = $('classify');
  const buttons = { real: $('answer-real'), bogus: $('answer-bogus') };

  // --- small helpers ----------------------------------------------------------------------

  function uuid() {
    if (window.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
    // Pages served over plain http from a non-local address have no randomUUID.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }


  function plural(n, word) { return `${n} ${word}${n === 1 ? '' : 's'}`; }

  // --- the outbox: localStorage first, then the network -----------------------------------

  let memoryOutbox = []; // used only when localStorage is unavailable
  let storageOk = true;

  function readOutbox() {
    if (!storageOk) return memoryOutbox.slice();
    try {
      const items = JSON.parse(localStorage.getItem(OUTBOX_KEY) || '[]');
      return Array.isArray(items) ? items : [];
    } catch (err) {
      return [];
    }
  }

  function writeOutbox(items) {
    if (storageOk) {
      try {
        localStorage.setItem(OUTBOX_KEY, JSON.stringify(items));
        return;
      } catch (err) {
        storageOk = false; // private mode or full: keep answers for this page's life
      }
    }
    memoryOutbox = items.slice();
  }

  // Read-modify-write each time, so two tabs of the page do not overwrite each other's answers.
  function outboxAdd(item) { writeOutbox([...readOutbox(), item]); }
  function outboxRemove(clientId) { writeOutbox(readOutbox().filter((i) => i.client_id !== clientId)); }

  // Answers and queue requests take turns: a queue reply then counts exactly the answers
  // stored before it, so the volunteer's count is the server's plus what is still unsent.
  let sending = false;
  let refilling = false;
  let refillAfterFlush = false;
  let flushAfterRefill = false;
  let failures = 0;
  let retryTimer = null;
  // A replayed or refused answer may already be in the server's count: ask again once sent.
  let recount = false;
  let offline = !navigator.onLine;

  async function flush() {
    if (sending) return;
    if (refilling) { flushAfterRefill = true; return; }
    sending = true;
    clearTimeout(retryTimer);
    retryTimer = null;
    try {
      for (;;) {
        const item = readOutbox().find((i) => i.workflow === WORKFLOW) || readOutbox()[0];
        if (!item) break;
        const outcome = await send(item);
        if (outcome === 'retry') {
          failures += 1;
          const delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (failures - 1));
          retryTimer = setTimeout(flush, delay * (0.75 + Math.random() / 2));
          break;
        }
        failures = 0;
        setOffline(false);
      }
    } finally {
      sending = false;
      renderSync();
      if (recount && readOutbox().length === 0) {
        recount = false;
        refillAfterFlush = false;
        refill(true);
      } else if (refillAfterFlush) { refillAfterFlush = false; refill(); }
    }
  }

  async function send(item) {
    let response;
    try {
      response = await fetch(config.urls.classifications, {
        method: 'POST',
        credentials: 'same-origin',
        headers: {
          'Content-Type': 'application/json',
          Accept: 'application/json',
          'X-CSRFToken': csrfToken(),
        },
        body: JSON.stringify({
          workflow: item.workflow, subject: item.subject, answer: item.answer,
          client_id: item.client_id, answered_at: item.answered_at, token: item.token,
        }),
      });
    } catch (err) {
      setOffline(true); // no answer at all: the network is down
      return 'retry';
    }
    if (response.status === 201 || response.status === 200) {
      let body = null;
      try { body = await response.json(); } catch (err) { body = null; }
      outboxRemove(item.client_id);
      if (response.status === 200) recount = true;
      if (body && body.feedback) showFeedback(item, body.feedback);
      return 'done';
    }
    if (response.status === 409 || response.status === 400 || response.status === 404) {
      // Final: already answered (another tab, or before a sign-in), or the subject is gone.
      outboxRemove(item.client_id);
      recount = true;
      console.warn('classification not stored', response.status, item);
      return 'done';
    }
    if (response.status === 403) {
      let body = null;
      try { body = await response.json(); } catch (err) { body = null; }
      if (body && body.error === 'not_served') {
        // Final: its served token expired or belongs to another identity (a sign-in since).
        outboxRemove(item.client_id);
        recount = true;
        console.warn('classification not stored', response.status, item);
        return 'done';
      }
      // A stale CSRF token (e.g. signed in elsewhere): a queue request sets a fresh cookie.
      try { await fetch(`${config.urls.queue}?n=1`, { credentials: 'same-origin' }); } catch (err) { /* retried */ }
    }
    return 'retry'; // 403, 429, 5xx: try again later
  }

  function setOffline(value) {
    if (offline === value) return;
    offline = value;
    announce(value ? 'You are offline. Your answers are kept on this device.' : 'Back online.');
    renderSync();
  }

  function renderSync() {
    const pending = readOutbox().length;
    const sync = $('sync');
    const text = $('sync-text');
    sync.dataset.pending = String(pending);
    if (pending === 0) {
      sync.dataset.state = 'idle';
      text.textContent = 'All answers saved';
    } else if (offline || failures > 0) {
      sync.dataset.state = 'offline';
      text.textContent = `Offline: ${plural(pending, 'answer')} kept on this device, sent when you reconnect`;
    } else {
      sync.dataset.state = 'saving';
      text.textContent = `Saving ${plural(pending, 'answer')}…`;
    }
    renderCount();
  }

  window.addEventListener('online', () => { setOffline(false); failures = 0; flush(); refill(); });
  window.addEventListener('offline', () => setOffline(true));
  window.addEventListener('storage', (event) => { if (event.key === OUTBOX_KEY) renderSync(); });

  // --- the subject queue ------------------------------------------------------------------

  const ready = []; // subjects whose stamps are decoded, in the order to show them
  const loading = new Map(); // id -> subject being fetched
  const answered = []; // ids answered on this page, most recent last
  let current = null;
  let finished = false;
  let refillTimer = null;
  let refillFailures = 0;
  let serverCount = null; // n_classified from the last queue reply
  let answersSinceCount = 0; // answers given after that request was sent

  function heldIds() {
    const ids = [...ready.map((s) => s.id), ...loading.keys()];
    if (current) ids.push(current.id);
    return ids;
  }

  function excludedIds() {
    // The server already knows what it has stored; what it may not know yet is what we hold,
    // what waits in the outbox, and what was acknowledged a moment ago.
    const pending = readOutbox().filter((i) => i.workflow === WORKFLOW).map((i) => i.subject);
    return [...new Set([...heldIds(), ...pending, ...answered.slice(-50)])];
  }

  async function refill(force = false) {
    if (refilling || finished) return;
    const held = ready.length + loading.size;
    if (held >= QUEUE_LOW && current && !force) return;
    if (sending) { refillAfterFlush = true; if (force) recount = true; return; }
    refilling = true;
    clearTimeout(refillTimer);
    const countBase = localAnswers;
    const pendingAtSend = readOutbox().filter((i) => i.workflow === WORKFLOW).length;
    try {
      const params = new URLSearchParams({ n: String(Math.max(1, QUEUE_TARGET - held)) });
      const exclude = excludedIds();
      if (exclude.length) params.set('exclude', exclude.join(','));
      const response = await fetch(`${config.urls.queue}?${params}`, {
        credentials: 'same-origin', headers: { Accept: 'application/json' },
      });
      if (!response.ok) throw new Error(`queue: HTTP ${response.status}`);
      const data = await response.json();
      refillFailures = 0;
      serverCount = data.n_classified;
      // Answers still in the outbox when the request left are not in the server's count yet.
      answersSinceCount = pendingAtSend + (localAnswers - countBase);
      renderCount();
      const known = new Set(excludedIds());
      for (const subject of data.subjects) {
        if (!known.has(subject.id)) preload(subject);
      }
      if (data.finished && data.subjects.length === 0) {
        finished = true;
        if (!current && ready.length === 0 && loading.size === 0) await showDone();
      }
    } catch (err) {
      refillFailures += 1;
      const delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (refillFailures - 1));
      refillTimer = setTimeout(refill, delay);
    } finally {
      refilling = false;
      if (flushAfterRefill) { flushAfterRefill = false; flush(); }
    }
    // Subjects dropped while loading, or a small reply: top up again.
    if (!finished && refillFailures === 0 && ready.length + loading.size < QUEUE_LOW) {
      const again = ready.length + loading.size;
      if (again > 0 || current) refillTimer = setTimeout(refill, 0);
    }
  }

  let localAnswers = 0;

  function preload(subject) {
    const entry = window.StampViewer.load(subject, config.urls.pixels);
    entry.token = subject.token;
    loading.set(subject.id, entry);
    entry.decoded.then(() => {
      if (!loading.delete(subject.id)) return;
      ready.push(entry);
      root.dataset.queued = String(ready.length);
      if (!current) showNext(waitStart);
    }, () => {
      // A stamp that does not load (offline, or gone): forget it; a later refill may offer it.
      loading.delete(subject.id);
      if (!current && ready.length === 0 && loading.size === 0) {
        if (finished) showDone(); else { setWaiting(true); refill(); }
      }
    });
  }

  // --- showing a subject ------------------------------------------------------------------

  const viewer = window.StampViewer.create({
    stamps: $('stamps'), flipButton: $('flip'), stretchButton: $('stretch'), zoomButton: $('zoom'),
    readout: $('pixel-readout'), announce,
  });
  let waitStart = null; // when an answer found no subject ready: the clock keeps running

  function showNext(startTime) {
    const next = ready.shift();
    root.dataset.queued = String(ready.length);
    current = next || null;
    viewer.show(current);
    if (!next) {
      waitStart = startTime;
      setWaiting(true);
      setAnswerable(false);
      if (finished && loading.size === 0) showDone(); else refill();
      return;
    }
    waitStart = null;
    root.dataset.subjectId = String(next.id);
    // Each subject starts at the top, with its stamps and the answers on screen (a phone
    // scrolled down to the readout would otherwise show the next one half off screen).
    if (window.scrollY > 0) window.scrollTo({ top: 0, behavior: 'instant' });
    setWaiting(false);
    setAnswerable(true);
    if (startTime !== null) {
      const id = next.id;
      // rAF runs just before the frame with the new subject is painted; a task queued from
      // there runs once that frame is out.
      requestAnimationFrame(() => setTimeout(() => {
        performance.measure('next-subject', { start: startTime, end: performance.now(), detail: { subject: id } });
      }, 0));
    }
    refill();
  }

  function setWaiting(waiting) {
    $('waiting').hidden = !waiting;
    if (waiting) {
      $('waiting').textContent = offline
        ? 'Offline: no more subjects loaded. Your answers are kept; classifying resumes when you reconnect.'
        : 'Loading the next subject…';
    }
    root.dataset.state = waiting ? 'waiting' : 'ready';
  }

  function setAnswerable(ok) {
    buttons.real.disabled = !ok;
    buttons.bogus.disabled = !ok;
    viewer.setEnabled(ok);
  }

  function renderCount() {
    if (serverCount === null) return;
    // Until the next queue reply: the server's count plus what was answered since.
    $('count').textContent = String(serverCount + answersSinceCount);
  }

  async function showDone() {
    current = null;
    viewer.show(null);
    setAnswerable(false);
    $('waiting').hidden = true;
    $('subject').hidden = true;
    let everyone = false;
    try {
      const response = await fetch(config.urls.progress, { credentials: 'same-origin' });
      if (response.ok) everyone = (await response.json()).finished;
    } catch (err) { everyone = false; }
    const count = $('count').textContent;
    if (everyone) {
      $('done-title').textContent = 'This workflow is finished';
      $('done-text').textContent = 'Every subject has had enough answers (or the project has paused it). '
        + `Thank you: your ${count} classifications are part of the results.`;
    } else {
      $('done-title').textContent = 'You have seen everything';
      $('done-text').textContent = 'You have classified every subject available to you in this workflow. '
        + 'New subjects may arrive later: check again then.';
    }
    root.dataset.state = everyone ? 'workflow-finished' : 'all-seen';
    const done = $('done');
    done.hidden = false;
    done.focus();
  }

  $('check-again').addEventListener('click', () => {
    $('done').hidden = true;
    $('subject').hidden = false;
    finished = false;
    setWaiting(true);
    refill();
  });

  // --- answering --------------------------------------------------------------------------

  function answer(value, event) {
    if (!current || anyDialogOpen()) return;
    const start = event && typeof event.timeStamp === 'number' ? event.timeStamp : performance.now();
    const item = {
      client_id: uuid(),
      workflow: WORKFLOW,
      subject: current.id,
      token: current.token, // proves the queue served this subject to us
      answer: value,
      answered_at: new Date().toISOString(),
    };
    outboxAdd(item); // stored before anything is sent
    answered.push(current.id);
    if (answered.length > 200) answered.splice(0, answered.length - 200);
    localAnswers += 1;
    answersSinceCount += 1;
    showNext(start);
    renderSync();
    flush();
  }

  buttons.real.addEventListener('click', (event) => answer('real', event));
  buttons.bogus.addEventListener('click', (event) => answer('bogus', event));

  // --- feedback after a reference subject -------------------------------------------------

  function showFeedback(item, feedback) {
    const box = $('feedback');
    const said = item.answer === 'real' ? 'Real' : 'Bogus';
    const experts = feedback.label === 'real' ? 'Real' : 'Bogus';
    const agree = item.answer === feedback.label;
    const verdict = agree ? 'You agreed with the experts.' : 'You and the experts differ: have a look at why.';
    $('feedback-text').textContent = `You said ${said}. Experts labelled this ${experts}`
      + `${feedback.explanation ? `: ${feedback.explanation}` : '.'} ${verdict}`;
    const thumb = box.querySelector('.feedback-stamps');
    thumb.replaceChildren();
    const img = new Image();
    img.alt = '';
    img.src = config.urls.difference.replace('/0/', `/${item.subject}/`);
    thumb.append(img);
    box.dataset.agree = String(agree);
    box.dataset.subject = String(item.subject);
    box.hidden = false;
    announce(`Feedback: experts labelled a subject you classified ${experts}.`);
  }

  $('feedback-dismiss').addEventListener('click', () => {
    $('feedback').hidden = true;
    buttons.real.disabled ? $('main').focus() : buttons.real.focus();
  });

  // --- dialogs: tutorial and help (modal); the field guide (beside the subject) ---------

  const dialogs = { tutorial: $('tutorial'), guide: $('guide'), help: $('help') };
  const MODAL = new Set([dialogs.tutorial, dialogs.help]);
  const openers = new Map();

  // The field guide is not modal: answering goes on while it is open beside the subject.
  function anyDialogOpen() { return [...MODAL].some((d) => d.open); }

  function focusable(container) {
    return [...container.querySelectorAll('a[href], button:not([disabled]), [tabindex]:not([tabindex="-1"])')]
      .filter((el) => !el.closest('[hidden]'));
  }

  function openDialog(name) {
    const dialog = dialogs[name];
    if (dialog.open) return;
    for (const other of Object.values(dialogs)) closeDialog(other);
    openers.set(dialog, document.activeElement);
    if (MODAL.has(dialog)) dialog.showModal(); else dialog.show();
    if (dialog === dialogs.guide) {
      document.body.classList.add('guide-open');
      $('open-guide').setAttribute('aria-expanded', 'true');
    }
    const first = focusable(dialog)[0];
    if (first) first.focus();
    if (name === 'tutorial') { showStep(1); loadTutorial(); }
  }

  // Closing restores focus at once, not in the 'close' event, which the browser dispatches
  // later: a key pressed in between would otherwise land where focus is about to leave.
  function closeDialog(dialog) {
    if (!dialog.open) return;
    dialog.close();
    const opener = openers.get(dialog);
    openers.delete(dialog);
    if (dialog === dialogs.tutorial) {
      try { localStorage.setItem(TUTORIAL_KEY, '1'); } catch (err) { /* shown again next time */ }
    }
    if (dialog === dialogs.guide) {
      document.body.classList.remove('guide-open');
      $('open-guide').setAttribute('aria-expanded', 'false');
    }
    const target = opener && opener !== document.body && document.contains(opener) && !opener.disabled
      ? opener : (buttons.real.disabled ? null : buttons.real);
    if (target) target.focus();
  }

  for (const dialog of Object.values(dialogs)) {
    dialog.addEventListener('click', (event) => {
      if (event.target.closest('[data-close]')) closeDialog(dialog);
    });
    dialog.addEventListener('cancel', (event) => {  // Esc
      event.preventDefault();
      closeDialog(dialog);
    });
    if (!MODAL.has(dialog)) continue;
    // Focus stays inside an open modal dialog: Tab from the last control goes to the first.
    dialog.addEventListener('keydown', (event) => {
      if (event.key !== 'Tab') return;
      const items = focusable(dialog);
      if (!items.length) return;
      const first = items[0];
      const last = items[items.length - 1];
      if (event.shiftKey && document.activeElement === first) { event.preventDefault(); last.focus(); }
      else if (!event.shiftKey && document.activeElement === last) { event.preventDefault(); first.focus(); }
      else if (!dialog.contains(document.activeElement)) { event.preventDefault(); first.focus(); }
    });
  }

  $('open-tutorial').addEventListener('click', () => openDialog('tutorial'));
  $('open-guide').addEventListener('click', () => toggleGuide());
  $('open-help').addEventListener('click', () => openDialog('help'));

  function toggleGuide() {
    if (dialogs.guide.open) closeDialog(dialogs.guide); else openDialog('guide');
  }

  // The tutorial's steps: one at a time, with Back, Next and Start always on screen.
  const steps = [...dialogs.tutorial.querySelectorAll('.tutorial-step')];
  let step = 1;

  function showStep(n) {
    step = Math.min(Math.max(n, 1), steps.length);
    steps.forEach((section, i) => { section.hidden = i + 1 !== step; });
    $('tutorial-progress').textContent = `Step ${step} of ${steps.length}`;
    $('tutorial-back').disabled = step === 1;
    $('tutorial-next').disabled = step === steps.length;
    dialogs.tutorial.querySelector('.dialog-body').scrollTop = 0;
  }

  $('tutorial-back').addEventListener('click', () => {
    showStep(step - 1);
    ($('tutorial-back').disabled ? $('tutorial-next') : $('tutorial-back')).focus();
  });
  $('tutorial-next').addEventListener('click', () => {
    showStep(step + 1);
    ($('tutorial-next').disabled ? $('tutorial-start') : $('tutorial-next')).focus();
  });

  let tutorialLoaded = false;
  async function loadTutorial() {
    if (tutorialLoaded) return;
    tutorialLoaded = true;
    const box = $('tutorial-examples');
    try {
      const response = await fetch(config.urls.tutorial, { credentials: 'same-origin' });
      if (!response.ok) throw new Error(String(response.status));
      const { examples } = await response.json();
      if (!examples.length) {
        box.innerHTML = '<p>No examples yet: the field guide shows what to look for.</p>';
        return;
      }
      box.replaceChildren(...examples.map((example) => {
        const figure = document.createElement('figure');
        figure.className = 'example';
        const stamps = document.createElement('div');
        stamps.className = 'example-stamps';
        for (const kind of STAMP_KINDS) {
          const img = new Image();
          img.src = example.images[kind];
          img.alt = `${LABELS[kind]} stamp`;
          img.width = 82;
          img.height = 82;
          stamps.append(img);
        }
        const caption = document.createElement('figcaption');
        const strong = document.createElement('strong');
        strong.textContent = example.label === 'real' ? 'Real' : 'Bogus';
        caption.append(strong, `: ${example.explanation}`);
        figure.append(stamps, caption);
        return figure;
      }));
    } catch (err) {
      tutorialLoaded = false;
      box.innerHTML = '<p>The examples could not be loaded; the field guide shows what to look for.</p>';
    }
  }

  // --- the keyboard -----------------------------------------------------------------------

  document.addEventListener('keydown', (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (anyDialogOpen()) return; // the dialog has the keyboard (Esc closes it)
    if (event.key === 'Escape' && dialogs.guide.open) { closeDialog(dialogs.guide); return; }
    const target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    if (event.key === '?') { event.preventDefault(); openDialog('help'); return; }
    if (event.repeat) return; // holding a key down must not answer a run of subjects
    // The key map is frontend/keymap.py: the arrow keys move between subjects on the review
    // page, so here (one subject at a time) they do nothing.
    if (viewer.handleKey(event)) return;
    switch (event.key) {
      case 'r': case 'R':
        event.preventDefault(); answer('real', event); break;
      case 'b': case 'B':
        event.preventDefault(); answer('bogus', event); break;
      case 'g': case 'G':
        event.preventDefault(); toggleGuide(); break;
      default:
    }
  });

  // --- start ------------------------------------------------------------------------------

  document.getElementById('main').setAttribute('tabindex', '-1');
  renderSync();
  setWaiting(true);
  refill();
  flush(); // whatever a previous visit left unsent
  let seenTutorial = false;
  try { seenTutorial = localStorage.getItem(TUTORIAL_KEY) === '1'; } catch (err) { seenTutorial = false; }
  if (!seenTutorial) openDialog('tutorial');
})();
