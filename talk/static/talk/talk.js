// Talk beside a one-subject-at-a-time page: keeps the thread link and the report button on
// the subject the page shows now (the data-subject-id of the page's root element).
(function () {
  'use strict';
  const box = document.getElementById('subject-talk');
  if (!box) return;
  const root = document.getElementById(box.dataset.root);
  const link = document.getElementById('talk-link');
  const button = document.getElementById('report-bad-image');
  const status = document.getElementById('report-status');
  const urlFor = (template, id) => template.replace('/0/', `/${id}/`);
  const current = () => root && root.dataset.subjectId;

  function follow() {
    const id = current();
    box.hidden = !id;
    if (!id) return;
    link.href = urlFor(box.dataset.threadUrl, id);
    if (button.dataset.subjectId !== id) {
      button.dataset.subjectId = id;
      button.disabled = false;
      status.textContent = '';
    }
  }

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : '';
  }

  button.addEventListener('click', async () => {
    const id = current();
    if (!id) return;
    button.disabled = true;
    status.textContent = 'Sending the report…';
    try {
      const response = await fetch(urlFor(box.dataset.reportUrl, id), {
        method: 'POST',
        headers: { Accept: 'application/json', 'X-CSRFToken': csrfToken() },
        credentials: 'same-origin',
      });
      const body = await response.json();
      status.textContent = response.ok
        ? 'Reported: the experts will look at this subject.'
        : `Not reported: ${body.detail}`;
      button.disabled = response.ok;
    } catch (error) {
      status.textContent = 'Not reported: the connection failed. Try again.';
      button.disabled = false;
    }
  });

  if (root) new MutationObserver(follow).observe(root, { attributes: true,
                                                          attributeFilter: ['data-subject-id'] });
  follow();
}());
