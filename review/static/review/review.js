/* The expert review page. Plain JavaScript, no framework, no build step; the stamps are the
 * shared viewer of frontend/stamps.js.
 *
 * The queue comes a page at a time from the review API; the next subjects' stamps and
 * dossiers are fetched ahead. A label is saved through the reference-label endpoint, then
 * the page moves on by itself. Subjects labelled here stay in the page's list (Previous
 * goes back to them) although the server's queue no longer holds them.
 */
(() => {
  'use strict';

  const { csrfToken, announce } = window.PageTools;

  const config = JSON.parse(document.getElementById('review-config').textContent);
  const PAGE = 50;
  const AHEAD = 3; // subjects whose stamps and dossier are fetched before they are needed
  const WORDS = { real: 'Real', bogus: 'Bogus', unsure: 'Unsure' };

  const $ = (id) => document.getElementById(id);
  const root = $('review');
  const form = $('queue-form');
  const labelButtons = [...document.querySelectorAll('.actions [data-label]')];
  const viewer = window.StampViewer.create({
    stamps: $('stamps'), flipButton: $('flip'), stretchButton: $('stretch'), zoomButton: $('zoom'),
    readout: $('pixel-readout'), announce,
  });

  const queueName = form.elements.queue.value;
  const setId = form.elements.set.value ? Number(form.elements.set.value) : null;
  const setName = setId ? form.elements.set.selectedOptions[0].textContent : '';
  const params = new URLSearchParams();
  if (setId) params.set('set', String(setId));
  if (form.elements.run.value) params.set('run', form.elements.run.value);
  if (queueName === 'origin') params.set('origin', form.elements.origin.value);
  if (queueName === 'random') {
    // The seed goes into the address, so the same audit can be opened again.
    if (!/^[0-9]+$/.test(form.elements.seed.value)) {
      form.elements.seed.value = String(Math.floor(Math.random() * 1e9));
      const url = new URL(window.location.href);
      url.searchParams.set('seed', form.elements.seed.value);
      window.history.replaceState(null, '', url);
    }
    params.set('seed', form.elements.seed.value);
  }

  const items = []; // queue rows in the order met
  const labelledHere = new Map(); // subject id -> label saved on this page
  const entries = new Map(); // subject id -> stamp viewer entry
  const dossiers = new Map(); // subject id -> Promise of the dossier
  let position = -1;
  let total = null;
  let exhausted = false;
  let saving = false;
  let run = null;

  // --- small helpers ----------------------------------------------------------------------


  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function number(value, digits = 3) {
    // Significant digits without exponent notation: 240, not 2.4e+2.
    return value === null || value === undefined ? 'unknown' : String(Number(Number(value).toPrecision(digits)));
  }

  function when(iso) {
    return new Date(iso).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' });
  }

  async function getJson(url) {
    const response = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    let body = null;
    try { body = await response.json(); } catch (err) { body = null; }
    if (!response.ok) {
      const detail = body && body.detail ? body.detail : `HTTP ${response.status}`;
      throw new Error(detail);
    }
    return body;
  }

  // --- the queue --------------------------------------------------------------------------

  async function fetchMore() {
    if (exhausted) return;
    // Subjects labelled here have left the server's queue; the rest of what is held is
    // still its head, so the next page starts after those.
    const held = items.filter((row) => !labelledHere.has(row.id)).length;
    const query = new URLSearchParams(params);
    query.set('offset', String(held));
    query.set('limit', String(PAGE));
    const page = await getJson(`${config.urls.queue.replace('/queue/-/', `/queue/${queueName}/`)}?${query}`);
    run = page.run;
    total = page.total + labelledHere.size;
    const known = new Set(items.map((row) => row.id));
    const fresh = page.subjects.filter((row) => !known.has(row.id));
    items.push(...fresh);
    if (fresh.length === 0) exhausted = true;
  }

  function entryFor(row) {
    if (!entries.has(row.id)) entries.set(row.id, window.StampViewer.load(row, config.urls.pixels));
    return entries.get(row.id);
  }

  function dossierFor(id) {
    if (!dossiers.has(id)) {
      const query = new URLSearchParams({ workflow: String(config.workflow.id) });
      if (params.has('run')) query.set('run', params.get('run'));
      const promise = getJson(`${config.urls.dossier.replace('/0/', `/${id}/`)}?${query}`);
      promise.catch(() => dossiers.delete(id)); // asked again next time
      dossiers.set(id, promise);
    }
    return dossiers.get(id);
  }

  function prefetch() {
    for (const row of items.slice(position + 1, position + 1 + AHEAD)) {
      entryFor(row);
      dossierFor(row.id);
    }
  }

  async function go(step) {
    const target = position + step;
    if (target < 0) return;
    if (target >= items.length - AHEAD && !exhausted) {
      try { await fetchMore(); } catch (err) { showProblem(`The queue could not be loaded: ${err.message}`); return; }
    }
    if (target >= items.length) { showEnd(); return; }
    position = target;
    await show(items[position]);
  }

  async function show(row) {
    setState('waiting');
    $('waiting').hidden = false;
    $('waiting').textContent = 'Loading the subject…';
    setLabelling(false);
    const entry = entryFor(row);
    try { await entry.decoded; } catch (err) { /* shown without stamps: the facts still help */ }
    if (items[position] !== row) return; // the expert moved on while this loaded
    viewer.show(entry);
    root.dataset.subjectId = String(row.id);
    $('waiting').hidden = true;
    renderStatus();
    prefetch();
    let dossier;
    try {
      dossier = await dossierFor(row.id);
    } catch (err) {
      if (items[position] === row) showProblem(`The subject's details could not be loaded: ${err.message}`);
      return;
    }
    if (items[position] !== row) return;
    renderDossier(dossier);
    // What the box holds is what a label saves: it starts as this set's explanation, so
    // relabelling keeps it unless the expert changes it.
    const mine = dossier.reference_labels.find((l) => l.reference_set === setId);
    $('explanation').value = mine ? mine.explanation : '';
    setLabelling(true);
    setState('ready');
    loadHistory(row);
  }

  function setState(state) { root.dataset.state = state; }

  function setLabelling(ok) {
    for (const button of labelButtons) button.disabled = !ok || !setId;
    viewer.setEnabled(ok);
    $('previous').disabled = !ok || position <= 0;
    $('next').disabled = !ok;
  }

  function renderStatus() {
    const title = config.queues[queueName];
    const runText = run
      ? `ranked by run ${run.id} (${run.reference_name}${run.live ? ', live' : ''})`
      : 'no aggregation run yet';
    const of = total === null ? '' : ` of ${total}`;
    $('queue-status').textContent = `${title}: subject ${position + 1}${of} · ${runText}`;
  }

  function showEnd() {
    viewer.show(null);
    setLabelling(false);
    $('previous').disabled = items.length === 0;
    position = items.length;
    $('waiting').hidden = false;
    $('waiting').textContent = items.length
      ? 'End of the queue: every subject in it is labelled in this set or was passed.'
      : 'This queue is empty: nothing left to label in this set.';
    $('queue-status').textContent = `${config.queues[queueName]}: ${labelledHere.size} labelled on this page, nothing further in the queue.`;
    setState('end');
  }

  function showProblem(text) {
    setLabelling(false);
    $('previous').disabled = position <= 0;
    $('next').disabled = false;
    $('waiting').hidden = false;
    $('waiting').textContent = text;
    $('queue-status').textContent = text;
    setState('error');
  }

  // --- the dossier ------------------------------------------------------------------------

  function sexagesimal(degrees, hours) {
    // RA in hours (h m s), Dec in degrees (d ' "), as astronomers read them.
    const value = hours ? degrees / 15 : degrees;
    const sign = value < 0 ? '-' : (hours ? '' : '+');
    let rest = Math.abs(value);
    const whole = Math.floor(rest);
    rest = (rest - whole) * 60;
    const minutes = Math.floor(rest);
    const seconds = ((rest - minutes) * 60).toFixed(hours ? 2 : 1);
    const pad = (n) => String(n).padStart(2, '0');
    return `${sign}${pad(whole)}${hours ? 'h' : '\u00b0'}${pad(minutes)}${hours ? 'm' : '\u2032'}${seconds.padStart(hours ? 5 : 4, '0')}${hours ? 's' : '\u2033'}`;
  }

  function renderDossier(d) {
    const s = d.subject;
    const unit = s.unit ? ` ${s.unit}` : '';
    const position = s.ra === null || s.dec === null ? 'unknown'
      : `${s.ra.toFixed(6)}, ${s.dec >= 0 ? '+' : ''}${s.dec.toFixed(6)} (${sexagesimal(s.ra, true)} ${sexagesimal(s.dec, false)})`;
    const facts = [
      ['External id', s.external_id],
      ['Origin', s.origin || 'none'],
      ['RA, Dec (deg)', position],
      ['Band', s.band || 'unknown'],
      ['Observed (UTC)', s.observed_at ? s.observed_at.replace('T', ' ').replace(/\.\d+/, '').replace('Z', '') : 'unknown'],
      ['SNR', number(s.snr)],
      ['psfFlux', s.psf_flux === null ? 'unknown' : `${number(s.psf_flux, 4)} \u00b1 ${number(s.psf_flux_err, 2)}${unit}`],
      ['Stamp unit', s.unit || 'not stated by the survey'],
      ['Model reliability', number(s.reliability)],
    ];
    $('facts').replaceChildren(...facts.flatMap(([term, value]) => [el('dt', term), el('dd', value)]));
    $('links').replaceChildren(...s.links.map((link) => {
      const item = el('li');
      const anchor = el('a', link.name);
      anchor.href = link.url;
      anchor.target = '_blank';
      anchor.rel = 'noopener noreferrer';
      item.append(anchor);
      return item;
    }));
    $('links-none').hidden = s.links.length > 0;

    const counted = d.votes.n_real + d.votes.n_bogus;
    $('votes-summary').textContent = counted
      ? `${d.votes.n_real} Real, ${d.votes.n_bogus} Bogus (${counted} counted of ${d.votes.classifications.length}).`
      : 'No counted votes yet.';
    $('votes').tBodies[0].replaceChildren(...d.votes.classifications.map((v) => {
      const row = el('tr');
      const skill = v.skill ? `${number(v.skill.p_real, 2)} / ${number(v.skill.p_bogus, 2)}${v.skill.contributes ? '' : ' (not counted by SWAP)'}` : 'unknown';
      row.append(el('td', when(v.created_at)), el('td', `#${v.volunteer}`),
        el('td', `${WORDS[v.answer]}${v.counted ? '' : ` (not counted: ${v.not_counted_reason})`}`), el('td', skill));
      return row;
    }));

    renderPosterior(d);
    renderTeams(d);
  }

  function renderPosterior(d) {
    const box = $('trajectory');
    if (!d.run) {
      $('posterior-summary').textContent = 'No aggregation run has finished for this workflow yet.';
      box.replaceChildren();
      return;
    }
    if (!d.posterior) {
      $('posterior-summary').textContent = `Run ${d.run.id} has no posterior for this subject (no counted vote when it ran).`;
      box.replaceChildren();
      return;
    }
    const p = d.posterior;
    const verdict = p.label ? `${WORDS[p.label]}${p.stable ? ', stable' : ', not stable'}` : 'no label';
    $('posterior-summary').textContent = `Pr(Real) = ${number(p.p_real)} after ${p.n_counted} contributing votes: ${verdict} (run ${d.run.id}).`;
    box.replaceChildren(trajectoryPlot([d.run.prior, ...p.trajectory], d.run));
  }

  /* Pr(Real) from the prior through each contributing vote, on a 0..1 axis with the
   * thresholds marked. */
  function trajectoryPlot(values, runInfo) {
    const NS = 'http://www.w3.org/2000/svg';
    const W = 320; const H = 140; const L = 34; const R = 8; const T = 8; const B = 22;
    const x = (i) => L + (values.length > 1 ? (i / (values.length - 1)) * (W - L - R) : 0);
    const y = (v) => T + (1 - v) * (H - T - B);
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svg.setAttribute('class', 'trajectory');
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', `Pr(Real) trajectory: ${values.map((v) => number(v, 2)).join(', ')}; thresholds ${runInfo.bogus_threshold} and ${runInfo.real_threshold}`);
    const add = (tag, attrs, text) => {
      const node = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
      if (text !== undefined) node.textContent = text;
      svg.append(node);
      return node;
    };
    add('rect', { x: L, y: T, width: W - L - R, height: H - T - B, class: 'plot-area' });
    for (const [v, name] of [[runInfo.real_threshold, 'real'], [runInfo.bogus_threshold, 'bogus']]) {
      add('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: `threshold threshold-${name}` });
    }
    for (const v of [0, 0.5, 1]) {
      add('text', { x: L - 4, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, String(v));
    }
    for (const v of [runInfo.bogus_threshold, runInfo.real_threshold]) {
      add('text', { x: W - 2, y: y(v) - 3, 'text-anchor': 'end', class: 'tick' }, String(v));
    }
    add('text', { x: (L + W - R) / 2, y: H - 4, 'text-anchor': 'middle', class: 'tick' }, 'votes →');
    add('polyline', { points: values.map((v, i) => `${x(i)},${y(v)}`).join(' '), class: 'path' });
    values.forEach((v, i) => add('circle', { cx: x(i), cy: y(v), r: 2.5, class: 'point' }));
    return svg;
  }

  function renderTeams(d) {
    const labels = d.reference_labels;
    const decided = new Set(labels.filter((l) => l.label !== 'unsure').map((l) => l.label));
    $('teams-summary').textContent = labels.length === 0
      ? 'No team has labelled this subject.'
      : decided.size > 1 ? 'The teams disagree on this subject.' : 'No disagreement between teams.';
    $('teams-summary').dataset.disagree = String(decided.size > 1);
    $('team-labels').tBodies[0].replaceChildren(...labels.map((l) => {
      const row = el('tr');
      if (l.reference_set === setId) row.className = 'this-set';
      const label = el('td', WORDS[l.label] || l.label);
      if (l.explanation) label.append(el('span', `: ${l.explanation}`, 'note'));
      row.append(el('td', `${l.reference_set_name} (${l.team})`), label,
        el('td', l.expert || 'imported'), el('td', when(l.updated_at)));
      return row;
    }));
    const mine = labels.find((l) => l.reference_set === setId);
    $('set-label').textContent = !setId ? 'No set chosen.'
      : mine ? `${setName}: ${WORDS[mine.label] || mine.label}${mine.expert ? ` by ${mine.expert}` : ''}.`
        : `${setName}: not labelled yet.`;
  }

  async function loadHistory(row) {
    const list = $('history');
    list.replaceChildren();
    if (!setId) return;
    const url = config.urls.history.replace('/reference-sets/0/', `/reference-sets/${setId}/`)
      .replace('/labels/0/', `/labels/${row.id}/`);
    let changes;
    try {
      changes = await getJson(url);
    } catch (err) {
      if (items[position] === row) list.replaceChildren(el('li', `The history could not be loaded: ${err.message}`));
      return;
    }
    if (items[position] !== row) return;
    list.replaceChildren(...changes.map((c) => {
      const item = el('li', `${when(c.changed_at)}: ${c.old_label ? WORDS[c.old_label] : 'unlabelled'} → ${WORDS[c.new_label]}`
        + ` by ${c.expert || 'no one (imported)'}, through ${c.source}`);
      if (c.new_explanation !== c.old_explanation) {
        item.append(el('span', `; explanation: ${c.new_explanation || '(removed)'}`, 'note'));
      }
      return item;
    }));
    if (!changes.length) list.append(el('li', 'Never labelled in this set.'));
  }

  // --- labelling --------------------------------------------------------------------------

  async function label(value) {
    const row = items[position];
    if (!row || saving || !setId || root.dataset.state !== 'ready') return;
    saving = true;
    setLabelling(false);
    const saveState = $('save-state');
    saveState.dataset.state = 'saving';
    saveState.textContent = `Saving ${WORDS[value]} for ${row.external_id}…`;
    const body = { subject: row.id, label: value, explanation: $('explanation').value.trim(), source: 'review' };
    let response = null;
    let reply = null;
    try {
      response = await fetch(config.urls.labels.replace('/0/', `/${setId}/`), {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRFToken': csrfToken() },
        body: JSON.stringify(body),
      });
      reply = await response.json();
    } catch (err) {
      reply = reply || { detail: response ? `HTTP ${response.status}` : 'the server could not be reached' };
    }
    saving = false;
    if (!response || !response.ok) {
      saveState.dataset.state = 'error';
      saveState.textContent = `Not saved: ${reply.detail || `HTTP ${response.status}`}`;
      announce(saveState.textContent);
      setLabelling(true);
      return;
    }
    labelledHere.set(row.id, value);
    dossiers.delete(row.id);
    root.dataset.labelled = String(labelledHere.size);
    $('explanation').value = '';
    saveState.dataset.state = 'saved';
    saveState.textContent = `Saved: ${row.external_id} is ${WORDS[value]} in ${setName}.`;
    logLabel(row, value);
    go(1);
  }

  function logLabel(row, value) {
    const log = $('session-log');
    const existing = log.querySelector(`[data-subject-id="${row.id}"]`);
    const item = existing || el('li');
    item.dataset.subjectId = String(row.id);
    item.dataset.label = value;
    item.textContent = `${row.external_id}: ${WORDS[value]}`;
    if (!existing) log.prepend(item);
  }

  for (const button of labelButtons) button.addEventListener('click', () => label(button.dataset.label));
  $('next').addEventListener('click', () => go(1));
  $('previous').addEventListener('click', () => go(-1));

  // --- the help dialog --------------------------------------------------------------------

  const help = $('help');
  $('open-help').addEventListener('click', () => help.showModal());
  help.addEventListener('click', (event) => { if (event.target.closest('[data-close]')) help.close(); });

  // --- the keyboard -----------------------------------------------------------------------

  document.addEventListener('keydown', (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (help.open) return; // the dialog has the keyboard (Esc closes it)
    const target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    if (event.key === '?') { event.preventDefault(); help.showModal(); return; }
    if (event.repeat) return; // holding a key down must not label a run of subjects
    if (root.dataset.state === 'ready' && viewer.handleKey(event)) return;
    const actions = {
      r: () => label('real'), b: () => label('bogus'), u: () => label('unsure'),
      n: () => go(1), arrowright: () => go(1), p: () => go(-1), arrowleft: () => go(-1),
    };
    const action = actions[event.key.toLowerCase()];
    if (!action) return;
    event.preventDefault();
    action(); // each action checks that it can run now
  });

  // --- start ------------------------------------------------------------------------------

  go(1);
})();
