/* The stamp viewer shared by the classify and review pages (frontend/_stamps.html,
 * frontend/_stamp_tools.html): three stamps centred on the detection, flipping template and
 * science in place, stretch presets, zoom on the centre, and the pixel readout of all three
 * stamps. Plain JavaScript, no build step: loaded before the page's own script, it defines
 * `window.StampViewer`.
 *
 * - `StampViewer.load(subject, pixelsUrl)` starts fetching and decoding a subject's stamps
 *   ahead of time; `entry.decoded` settles when all three can be shown in the next frame.
 *   Pixel values (labeling/pixel_payload.py) are fetched on first use (a pointer over the
 *   stamps, a stretch other than the served one, or a zoom), not with every prefetched
 *   subject. They come in picture order over each stamp's native window (README, "Stamps:
 *   the display contract"), so a stamp may be non-square and the three may differ in size;
 *   `pictureValue` is the one place that maps a picture pixel to a value.
 * - `StampViewer.create({...})` binds a viewer to the page's `.stamp` figures; `show(entry)`
 *   puts a loaded subject on screen (or clears it with null); `handleKey(event)` runs the
 *   viewer's keys (F, S, Z of frontend/keymap.py) and says whether it did.
 */
window.StampViewer = (() => {
  'use strict';

  const STAMP_KINDS = ['template', 'science', 'difference'];
  const LABELS = { template: 'Template', science: 'Science', difference: 'Difference' };
  const READOUT_HINT = 'Point at or tap a stamp to read the three stamps\u2019 values at that pixel. The orange ticks mark the centre; blue pixels have no data.';
  // In the order S steps through them. "served" is the server's image (labeling/rendering.py:
  // zscale limits through an asinh); the others are drawn here from the pixel values.
  const STRETCHES = ['served', 'zscale', 'minmax', 'asinh'];
  const STRETCH_NAMES = { served: 'as served', zscale: 'zscale', minmax: 'min-max', asinh: 'asinh' };
  const ZOOMS = [1, 2, 4];
  const SETTINGS_KEY = 'realbogus:viewer:v1';

  // With a drawn stretch or a zoom chosen, upcoming subjects need their values (the zoom
  // centres on the detection pixel) before they are shown; with the served images at 1x they
  // wait for the first pointer, which keeps each prefetched subject to its three images.
  let pixelsAhead = false;

  function decodePixels(payload) {
    if (!payload || payload.encoding !== 'float32-le-base64') return null;
    const values = {};
    for (const kind of STAMP_KINDS) {
      const [rows, cols] = payload.shape[kind];
      const binary = atob(payload.stamps[kind]);
      if (binary.length !== rows * cols * 4) return null;
      const bytes = new Uint8Array(binary.length);
      for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
      // Float32Array reads the platform's byte order: little-endian on every browser platform.
      values[kind] = new Float32Array(bytes.buffer);
    }
    return {
      unit: payload.unit, values, shape: payload.shape, centre: payload.centre,
      zscale: payload.zscale, display: payload.display,
    };
  }

  function fetchPixels(url) {
    return fetch(url, {
      credentials: 'same-origin', headers: { Accept: 'application/json' },
    }).then((r) => (r.ok ? r.json() : null)).then(decodePixels).catch(() => null);
  }

  /* `subject` is {id, images: {template, science, difference}}; `pixelsUrl` has 0 in place
   * of the subject id. */
  function load(subject, pixelsUrl) {
    const entry = { id: subject.id, images: subject.images, img: {}, pixels: null, pixelValues: null, canvases: {} };
    const url = pixelsUrl.replace('/0/', `/${subject.id}/`);
    // Fetched once; a failed fetch is tried again at the next use.
    entry.getPixels = () => {
      if (!entry.pixels) {
        entry.pixels = fetchPixels(url).then((values) => {
          entry.pixelValues = values;
          if (!values) entry.pixels = null;
          return values;
        });
      }
      return entry.pixels;
    };
    const decoded = STAMP_KINDS.map((kind) => {
      const img = new Image();
      img.decoding = 'async';
      img.draggable = false;
      img.dataset.kind = kind;
      img.src = subject.images[kind];
      entry.img[kind] = img;
      return img.decode();
    });
    if (pixelsAhead) entry.getPixels();
    entry.decoded = Promise.all(decoded);
    return entry;
  }

  function formatValue(v) {
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(3);
    return v.toFixed(a >= 100 ? 1 : 3);
  }

  function signed(n) { return `${n >= 0 ? '+' : ''}${n}`; }

  /* The value of `kind` drawn `row` rows from the top and `col` columns from the left of its
   * picture; undefined outside the stamp. The server sends the values in the served picture's
   * order (labeling/rendering.py picture_of), so the canvas and the readout, which both read
   * through here, show what the served image shows and need no orientation rule of their own. */
  function pictureValue(pixels, kind, row, col) {
    const [rows, cols] = pixels.shape[kind];
    if (row < 0 || col < 0 || row >= rows || col >= cols) return undefined;
    return pixels.values[kind][row * cols + col];
  }

  /* Picture row and column <-> offset from the detection pixel: x counts right and y counts
   * up, as in FITS, so the same (x, y) names the same sky pixel in all three stamps. */
  function offsetOf(pixels, kind, row, col) {
    const [centreRow, centreCol] = pixels.centre[kind];
    return { x: col - centreCol, y: centreRow - row };
  }

  function valueAtOffset(pixels, kind, { x, y }) {
    const [centreRow, centreCol] = pixels.centre[kind];
    return pictureValue(pixels, kind, centreRow - y, centreCol + x);
  }

  // --- drawn stretches --------------------------------------------------------------------

  function finiteRange(...arrays) {
    let low = Infinity;
    let high = -Infinity;
    for (const values of arrays) {
      for (const v of values) {
        if (Number.isFinite(v)) { if (v < low) low = v; if (v > high) high = v; }
      }
    }
    return low <= high ? [low, high] : null;
  }

  /* [low, high] for a stamp. Template and science share their limits, as in the served
   * images, so that blinking between them is fair; the difference is symmetric about zero,
   * so zero is mid-grey and +v and -v look equally strong. */
  function limitsOf(pixels, kind, stretch) {
    const { values, zscale } = pixels;
    if (kind === 'difference') {
      const range = stretch === 'zscale' ? zscale.difference : finiteRange(values.difference);
      const m = range ? Math.max(Math.abs(range[0]), Math.abs(range[1])) : 0;
      return [-m, m];
    }
    if (stretch === 'zscale') {
      const both = [zscale.template, zscale.science].filter(Boolean);
      if (!both.length) return [0, 1];
      return [Math.min(...both.map((l) => l[0])), Math.max(...both.map((l) => l[1]))];
    }
    return finiteRange(values.template, values.science) || [0, 1];
  }

  function greyOf(v, [low, high], kind, stretch, softening) {
    const curve = stretch === 'asinh'
      ? (t) => Math.asinh(t / softening) / Math.asinh(1 / softening)
      : (t) => t;
    if (kind === 'difference') {
      const t = high > 0 ? Math.min(Math.abs(v), high) / high : 0;
      const step = Math.round(127 * curve(t));
      return v < 0 ? 127 - step : 127 + step;
    }
    const t = high > low ? (Math.min(Math.max(v, low), high) - low) / (high - low) : 0.5;
    return Math.round(255 * curve(t));
  }

  /* The centre marker's pixels on a (height x width) canvas whose stamp pixel [row, col] is
   * the detection: the same ticks as the served images (labeling/rendering.py
   * centre_marker_mask), from the geometry the payload carries. */
  function markerMask(height, width, [row, col], scale, gap, length) {
    const mask = new Uint8Array(height * width);
    const thickness = Math.max(1, Math.floor(scale / 3));
    const inset = Math.floor((scale - thickness) / 2);
    const spans = (position, extent) => [
      [(position + gap + 1) * scale, Math.min(extent, (position + gap + length + 1) * scale)],
      [Math.max(0, (position - gap - length) * scale), Math.max(0, (position - gap) * scale)],
    ];
    for (let t = 0; t < thickness; t += 1) {
      const y = row * scale + inset + t; // ticks left and right, along the centre row
      const x = col * scale + inset + t; // ticks above and below, along the centre column
      for (const [from, to] of spans(col, width)) {
        for (let s = from; s < to && y < height; s += 1) mask[y * width + s] = 1;
      }
      for (const [from, to] of spans(row, height)) {
        for (let s = from; s < to && x < width; s += 1) mask[s * width + x] = 1;
      }
    }
    return mask;
  }

  function draw(pixels, kind, stretch) {
    const { display } = pixels;
    const scale = display.scale;
    const [rows, cols] = pixels.shape[kind];
    const width = cols * scale;
    const height = rows * scale;
    const canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext('2d');
    const image = context.createImageData(width, height);
    const limits = limitsOf(pixels, kind, stretch);
    const mask = markerMask(height, width, pixels.centre[kind], scale, display.marker_gap,
      display.marker_length);
    for (let y = 0; y < height; y += 1) {
      const row = Math.floor(y / scale);
      for (let x = 0; x < width; x += 1) {
        const at = (y * width + x) * 4;
        let rgb;
        if (mask[y * width + x]) rgb = display.marker_colour;
        else {
          const v = pictureValue(pixels, kind, row, Math.floor(x / scale));
          if (Number.isNaN(v)) rgb = display.nan_colour;
          else { const g = greyOf(v, limits, kind, stretch, display.asinh_softening); rgb = [g, g, g]; }
        }
        image.data[at] = rgb[0];
        image.data[at + 1] = rgb[1];
        image.data[at + 2] = rgb[2];
        image.data[at + 3] = 255;
      }
    }
    context.putImageData(image, 0, 0);
    canvas.setAttribute('role', 'img');
    canvas.dataset.rows = String(rows);
    canvas.dataset.cols = String(cols);
    return canvas;
  }

  // --- the viewer -------------------------------------------------------------------------

  function readSettings() {
    try {
      const saved = JSON.parse(localStorage.getItem(SETTINGS_KEY) || '{}');
      return {
        stretch: STRETCHES.includes(saved.stretch) ? saved.stretch : 'served',
        zoom: ZOOMS.includes(saved.zoom) ? saved.zoom : 1,
      };
    } catch (err) {
      return { stretch: 'served', zoom: 1 };
    }
  }

  /* `stamps`: the element holding the three `.stamp` figures; `flipButton`, `stretchButton`,
   * `zoomButton`, `readout`: the stamp tools; `announce(text)`: the page's live region. */
  function create({ stamps, flipButton, stretchButton, zoomButton, readout, announce }) {
    const views = {};
    const figures = {};
    for (const figure of stamps.querySelectorAll('.stamp')) {
      figures[figure.dataset.slot] = figure;
      views[figure.dataset.slot] = figure.querySelector('.view');
    }
    let current = null;
    let flipped = false;
    let { stretch, zoom } = readSettings();
    pixelsAhead = stretch !== 'served' || zoom > 1;

    function saveSettings() {
      try { localStorage.setItem(SETTINGS_KEY, JSON.stringify({ stretch, zoom })); } catch (err) { /* this page only */ }
    }

    function stampElement(kind) {
      if (stretch === 'served' || !current.pixelValues) return current.img[kind];
      const drawn = current.canvases[stretch] || (current.canvases[stretch] = {});
      if (!drawn[kind]) drawn[kind] = draw(current.pixelValues, kind, stretch);
      return drawn[kind];
    }

    function place(slot, kind) {
      const view = views[slot];
      const old = view.querySelector('[data-kind]');
      const element = stampElement(kind);
      const name = `${LABELS[kind]} stamp`;
      if (element instanceof HTMLImageElement) element.alt = name;
      else element.setAttribute('aria-label', `${name}, ${STRETCH_NAMES[stretch]} stretch`);
      element.dataset.kind = kind;
      fitView(view, element, kind);
      if (old === element) return;
      if (old) old.replaceWith(element); else view.prepend(element);
    }

    /* The view takes the picture's own aspect ratio inside its square frame (a clipped stamp
     * is not square: letterboxed, never stretched), and zooms about the detection pixel once
     * the values say where it is (the middle until then, which is where it is on a whole
     * stamp). */
    function fitView(view, element, kind) {
      // A picture that failed to load has no size: the whole square, as before it arrives.
      const width = element.naturalWidth || element.width || 1;
      const height = element.naturalHeight || element.height || 1;
      const wide = width >= height;
      view.style.width = wide ? '100%' : `${(100 * width) / height}%`;
      view.style.height = wide ? `${(100 * height) / width}%` : '100%';
      const pixels = current.pixelValues;
      if (!pixels) { view.style.transformOrigin = ''; return; }
      const [rows, cols] = pixels.shape[kind];
      const [row, col] = pixels.centre[kind];
      view.style.transformOrigin = `${((col + 0.5) / cols) * 100}% ${((row + 0.5) / rows) * 100}%`;
    }

    function render() {
      if (!current) return;
      const [a, b] = flipped ? ['science', 'template'] : ['template', 'science'];
      place('template', a);
      place('science', b);
      place('difference', 'difference');
      stamps.dataset.rendered = stretch === 'served' || current.pixelValues ? stretch : 'served';
    }

    function renderCaptions() {
      const [a, b] = flipped ? ['science', 'template'] : ['template', 'science'];
      flipButton.setAttribute('aria-pressed', String(flipped));
      for (const [slot, kind] of [['template', a], ['science', b]]) {
        figures[slot].classList.toggle('swapped', flipped);
        figures[slot].querySelector('.stamp-label').textContent = LABELS[kind];
        const note = figures[slot].querySelector('.flip-note');
        note.textContent = flipped ? `(in the ${slot}\u2019s place)` : '';
        note.hidden = !flipped;
      }
    }

    function flip() {
      if (!current) return;
      flipped = !flipped;
      render();
      renderCaptions();
      announce(flipped ? 'Template and science swapped' : 'Template and science back in place');
    }

    /* Draws the current subject with the chosen stretch once its values are here. */
    function renderWhenReady() {
      render();
      if (!current || !pixelsAhead || current.pixelValues) return;
      const entry = current;
      entry.getPixels().then(() => { if (entry === current) render(); });
    }

    function setStretch(next) {
      stretch = next;
      pixelsAhead = stretch !== 'served' || zoom > 1;
      stamps.dataset.stretch = stretch;
      stretchButton.querySelector('#stretch-name').textContent = STRETCH_NAMES[stretch];
      saveSettings();
      renderWhenReady();
    }

    function nextStretch() {
      if (!current) return;
      setStretch(STRETCHES[(STRETCHES.indexOf(stretch) + 1) % STRETCHES.length]);
      announce(`Stretch: ${STRETCH_NAMES[stretch]}`);
    }

    function setZoom(next) {
      zoom = next;
      pixelsAhead = stretch !== 'served' || zoom > 1;
      stamps.dataset.zoom = String(zoom);
      stamps.style.setProperty('--zoom', String(zoom));
      zoomButton.querySelector('#zoom-level').textContent = `${zoom}\u00d7`;
      saveSettings();
      renderWhenReady();
    }

    function nextZoom() {
      if (!current) return;
      setZoom(ZOOMS[(ZOOMS.indexOf(zoom) + 1) % ZOOMS.length]);
      announce(`Zoom ${zoom} times on the centre`);
    }

    /* A loaded entry on screen, or null: nothing to flip or read until the next one. */
    function show(entry) {
      current = entry;
      flipped = false;
      renderCaptions();
      for (const view of Object.values(views)) view.querySelector('.pixel-cursor').hidden = true;
      if (!entry) return;
      stamps.dataset.subjectId = String(entry.id);
      readout.textContent = READOUT_HINT;
      renderWhenReady();
    }

    function setEnabled(ok) {
      for (const button of [flipButton, stretchButton, zoomButton]) button.disabled = !ok;
    }

    function readPixel(slot, event) {
      if (!current) return;
      const view = views[slot];
      const shown = view.querySelector('[data-kind]');
      if (!shown) return;
      const pixels = current.pixelValues;
      if (!pixels) {
        readout.textContent = 'Reading the pixel values\u2026';
        const subject = current;
        const point = { clientX: event.clientX, clientY: event.clientY };
        subject.getPixels().then((values) => {
          if (subject !== current) return;
          if (values) readPixel(slot, point); // the values where the pointer was
          else readout.textContent = 'The pixel values could not be loaded: point again to retry.';
        });
        return;
      }
      const kind = shown.dataset.kind;
      const [rows, cols] = pixels.shape[kind];
      // The view's box is the zoomed picture: zoom changes the scale, not the arithmetic.
      const rect = view.getBoundingClientRect();
      const col = Math.floor(((event.clientX - rect.left) / rect.width) * cols);
      const row = Math.floor(((event.clientY - rect.top) / rect.height) * rows);
      if (pictureValue(pixels, kind, row, col) === undefined) return;
      const cursor = view.querySelector('.pixel-cursor');
      cursor.hidden = false;
      cursor.style.left = `${(col / cols) * 100}%`;
      cursor.style.top = `${(row / rows) * 100}%`;
      cursor.style.width = `${100 / cols}%`;
      cursor.style.height = `${100 / rows}%`;
      // The same sky pixel in each stamp: the same offset from its detection pixel.
      const offset = offsetOf(pixels, kind, row, col);
      const where = `${LABELS[kind]} stamp, pixel x ${signed(offset.x)}, y ${signed(offset.y)} from the centre`;
      const unit = pixels.unit ? ` ${pixels.unit}` : '';
      const read = STAMP_KINDS.map((k) => {
        const v = valueAtOffset(pixels, k, offset);
        return `${k} ${v === undefined || Number.isNaN(v) ? 'no data' : `${formatValue(v)}${unit}`}`;
      });
      readout.textContent = `${where}: ${read.join(', ')}${pixels.unit ? '' : ' (unit not known)'}`;
    }

    for (const slot of STAMP_KINDS) {
      const view = views[slot];
      const frame = view.parentElement;
      frame.addEventListener('pointermove', (e) => readPixel(slot, e));
      frame.addEventListener('pointerdown', (e) => readPixel(slot, e));
      frame.addEventListener('pointerleave', () => { view.querySelector('.pixel-cursor').hidden = true; });
    }
    // The values are wanted as soon as a pointer comes near the stamps.
    stamps.addEventListener('pointerenter', () => { if (current) current.getPixels(); });
    flipButton.addEventListener('click', flip);
    stretchButton.addEventListener('click', nextStretch);
    zoomButton.addEventListener('click', nextZoom);

    function handleKey(event) {
      const action = { f: flip, s: nextStretch, z: nextZoom }[event.key.toLowerCase()];
      if (!action) return false;
      event.preventDefault();
      action();
      return true;
    }

    setStretch(stretch);
    setZoom(zoom);
    return { show, flip, handleKey, setEnabled };
  }

  return { STAMP_KINDS, LABELS, load, create };
})();
