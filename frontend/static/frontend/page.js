/* Helpers every page script needs (classify, review). Plain JavaScript, no build step:
 * loaded before the page's own script, it defines `window.PageTools`. */
window.PageTools = (() => {
  'use strict';

  /* Django's CSRF token from its cookie, for the JSON writes a session-authenticated page makes. */
  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : '';
  }

  /* Says `text` through the page's polite live region (#announce). */
  function announce(text) {
    const region = document.getElementById('announce');
    region.textContent = '';
    // A fresh text node after a tick makes screen readers read a repeated message again.
    setTimeout(() => { region.textContent = text; }, 30);
  }

  return { csrfToken, announce };
})();
