/* The stamp viewer shared by the classify and review pages (frontend/_stamps.html): three
 * stamps centred on the detection, flipping template and science in place, and the pixel
 * readout. Plain JavaScript, no build step: loaded before the page's own script, it defines
 * `window.StampViewer`.
 *
 * - `StampViewer.load(subject, pixelsUrl)` starts fetching and decoding a subject's stamps
 *   ahead of time; `entry.decoded` settles when all three can be shown in the next frame.
 * - `StampViewer.create({...})` binds a viewer to the page's `.stamp` figures; `show(entry)`
 *   puts a loaded subject on screen (or clears it with null).
 */
window.StampViewer = (() => {
  'use strict';

  const STAMP_KINDS = ['template', 'science', 'difference'];
  const LABELS = { template: 'Template', science: 'Science', difference: 'Difference' };
  const READOUT_HINT = 'Point at or tap a stamp to read a pixel\u2019s value. The orange ticks mark the centre; blue pixels have no data.';

  function fetchPixels(url) {
    return fetch(url, {
      credentials: 'same-origin', headers: { Accept: 'application/json' },
    }).then((r) => (r.ok ? r.json() : null)).catch(() => null);
  }

  /* `subject` is {id, images: {template, science, difference}}; `pixelsUrl` has 0 in place
   * of the subject id. */
  function load(subject, pixelsUrl) {
    const entry = { id: subject.id, images: subject.images, img: {}, pixels: null, pixelValues: null };
    const decoded = STAMP_KINDS.map((kind) => {
      const img = new Image();
      img.decoding = 'async';
      img.draggable = false;
      img.width = 306;
      img.height = 306;
      img.dataset.kind = kind;
      img.src = subject.images[kind];
      entry.img[kind] = img;
      return img.decode();
    });
    // Pixel values are small and only needed for the readout: fetched alongside, not awaited.
    entry.pixels = fetchPixels(pixelsUrl.replace('/0/', `/${subject.id}/`));
    entry.decoded = Promise.all(decoded);
    return entry;
  }

  function formatValue(v) {
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(3);
    return v.toFixed(a >= 100 ? 1 : 3);
  }

  /* `stamps`: the element holding the three `.stamp` figures; `flipButton`, `readout`: the
   * stamp tools; `announce(text)`: the page's live region. */
  function create({ stamps, flipButton, readout, announce }) {
    const frames = {};
    const figures = {};
    for (const figure of stamps.querySelectorAll('.stamp')) {
      figures[figure.dataset.slot] = figure;
      frames[figure.dataset.slot] = figure.querySelector('.frame');
    }
    let current = null;
    let flipped = false;

    function place(slot, img, kind = slot) {
      const frame = frames[slot];
      const old = frame.querySelector('img');
      img.alt = `${LABELS[kind]} stamp`;
      img.dataset.kind = kind;
      if (old) old.replaceWith(img); else frame.prepend(img);
    }

    function resetFlip() {
      flipped = false;
      flipButton.setAttribute('aria-pressed', 'false');
      for (const slot of ['template', 'science']) {
        figures[slot].classList.remove('swapped');
        figures[slot].querySelector('.stamp-label').textContent = LABELS[slot];
        figures[slot].querySelector('.flip-note').hidden = true;
      }
    }

    function flip() {
      if (!current) return;
      flipped = !flipped;
      const [a, b] = flipped ? ['science', 'template'] : ['template', 'science'];
      place('template', current.img[a], a);
      place('science', current.img[b], b);
      flipButton.setAttribute('aria-pressed', String(flipped));
      for (const [slot, kind] of [['template', a], ['science', b]]) {
        figures[slot].classList.toggle('swapped', flipped);
        figures[slot].querySelector('.stamp-label').textContent = LABELS[kind];
        figures[slot].querySelector('.flip-note').hidden = !flipped;
      }
      announce(flipped ? 'Template and science swapped' : 'Template and science back in place');
    }

    /* A loaded entry on screen, or null: nothing to flip or read until the next one. */
    function show(entry) {
      current = entry;
      resetFlip();
      if (!entry) return;
      for (const kind of STAMP_KINDS) place(kind, entry.img[kind]);
      stamps.dataset.subjectId = String(entry.id);
      readout.textContent = READOUT_HINT;
      if (entry.pixels && typeof entry.pixels.then === 'function') {
        entry.pixels.then((values) => { entry.pixelValues = values; });
      }
    }

    function readPixel(slot, event) {
      if (!current) return;
      const frame = frames[slot];
      const img = frame.querySelector('img');
      if (!img) return;
      const kind = img.dataset.kind;
      const rect = frame.getBoundingClientRect();
      const values = current.pixelValues;
      /* The pixel values come in picture order (README, "Stamps: the display contract"):
       * values[kind][row][col] is drawn at that row from the top, that column from the left,
       * and values.centre[kind] is the detection's [row, col]. y counts up, as in FITS. */
      const rows = values ? values[kind].length : 51;
      const cols = values ? values[kind][0].length : rows;
      const col = Math.floor(((event.clientX - rect.left) / rect.width) * cols);
      const row = Math.floor(((event.clientY - rect.top) / rect.height) * rows);
      if (col < 0 || row < 0 || col >= cols || row >= rows) return;
      const cursor = frame.querySelector('.pixel-cursor');
      cursor.hidden = false;
      cursor.style.left = `${(col / cols) * 100}%`;
      cursor.style.top = `${(row / rows) * 100}%`;
      cursor.style.width = `${100 / cols}%`;
      cursor.style.height = `${100 / rows}%`;
      const [centreRow, centreCol] = values ? values.centre[kind] : [Math.floor(rows / 2), Math.floor(cols / 2)];
      const dx = col - centreCol;
      const dy = centreRow - row;
      const where = `${LABELS[kind]}, pixel x ${dx >= 0 ? '+' : ''}${dx}, y ${dy >= 0 ? '+' : ''}${dy} from the centre`;
      let text;
      if (!values) {
        text = `${where}: loading values…`;
        const subject = current;
        const point = { clientX: event.clientX, clientY: event.clientY };
        if (subject.pixels) {
          subject.pixels.then((v) => {
            if (!v || subject !== current) return;
            subject.pixelValues = v;
            readPixel(slot, point); // the value for where the pointer was
          });
        }
      } else {
        const value = values[kind][row][col];
        text = value === null ? `${where}: no data` : `${where}: ${formatValue(value)}`;
      }
      readout.textContent = text;
    }

    for (const slot of STAMP_KINDS) {
      const frame = frames[slot];
      frame.addEventListener('pointermove', (e) => readPixel(slot, e));
      frame.addEventListener('pointerdown', (e) => readPixel(slot, e));
      frame.addEventListener('pointerleave', () => { frame.querySelector('.pixel-cursor').hidden = true; });
    }
    flipButton.addEventListener('click', flip);

    return { show, flip };
  }

  return { STAMP_KINDS, LABELS, load, create };
})();
