/* Keeps a training job's page current while the job is pending or running.
 *
 * Every few seconds it asks the API (GET /api/training-jobs/{id}/) for the job. When anything
 * moved (status, epoch, batches), it re-reads this page from the server and puts the fresh
 * parts in place (status, progress bars, loss chart, table of epochs, error, version link),
 * so that they are drawn in one place only: the page's template and training/presenters.py.
 * It says what changed through the polite live region, and stops once the job is done or
 * failed. Without scripts the page shows the state it was served with and a refresh link. */
(() => {
  'use strict';

  const LIVE = ['pending', 'running'];
  // The page's parts that change as the job moves; see training_job.html.
  const PARTS = ['job-summary', 'job-error', 'job-progress', 'refresh-note', 'epochs-so-far'];
  // Replies that polling again will not change: stop and say so.
  const FINAL_HTTP = { 401: 'you are signed out', 403: 'you may no longer see this job',
    404: 'the job no longer exists' };

  const config = JSON.parse(document.getElementById('job-config').textContent);
  const root = document.getElementById('training-job');
  const progressKey = (job) => `${job.epoch}:${job.batches_done}/${job.batches_total}`;
  // What the page shows now.
  let last = { status: config.status, epoch: config.epoch, progress: progressKey(config) };

  function plannedEpochs(job) {
    return Math.max(Number(job.options && job.options.epochs) || 0, job.epoch);
  }

  function loss(value) {
    return typeof value === 'number' ? value.toFixed(4) : 'undefined';
  }

  /* One sentence for the live region about what changed, or '' when nothing worth saying. */
  function news(job) {
    if (job.status === 'done') {
      return job.model_version
        ? `Training done: model version ${job.model_version} is registered.`
        : 'Training done.';
    }
    if (job.status === 'failed') return `Training failed: ${job.error}`;
    if (job.epoch > last.epoch) {
      const row = job.history[job.history.length - 1] || {};
      return `Epoch ${job.epoch} of ${plannedEpochs(job)} finished: training loss ` +
        `${loss(row.train_loss)}, validation loss ${loss(row.val_loss)}.`;
    }
    if (job.status !== last.status) return 'Training started.';
    return '';
  }

  async function refreshParts() {
    const response = await fetch(window.location.pathname, {
      credentials: 'same-origin', headers: { Accept: 'text/html' },
    });
    if (!response.ok) throw new Error(`the page answered ${response.status}`);
    const fresh = new DOMParser().parseFromString(await response.text(), 'text/html');
    for (const id of PARTS) {
      const current = document.getElementById(id);
      const replacement = fresh.getElementById(id);
      if (current && replacement) current.replaceWith(document.importNode(replacement, true));
      else if (current) current.remove();
    }
  }

  function stop(reason) {
    const note = document.getElementById('poll-note');
    note.textContent = `This page stopped updating: ${reason}. Refresh it to try again.`;
    note.hidden = false;
  }

  async function poll() {
    let job;
    try {
      const response = await fetch(config.api, {
        credentials: 'same-origin', headers: { Accept: 'application/json' },
      });
      if (FINAL_HTTP[response.status]) {
        stop(FINAL_HTTP[response.status]);
        return;
      }
      if (!response.ok) throw new Error(`the API answered ${response.status}`);
      job = await response.json();
      const progress = progressKey(job);
      if (job.status !== last.status || progress !== last.progress) {
        await refreshParts();
        const sentence = news(job);
        if (sentence) PageTools.announce(sentence);
        last = { status: job.status, epoch: job.epoch, progress };
        root.dataset.status = job.status;
        root.dataset.epoch = String(job.epoch);
      }
    } catch (error) {
      // A network hiccup or a busy server: the next poll may well succeed.
      root.dataset.pollError = String(error.message || error);
    }
    if (!job || LIVE.includes(job.status)) setTimeout(poll, config.interval_ms);
  }

  setTimeout(poll, config.interval_ms);
})();
