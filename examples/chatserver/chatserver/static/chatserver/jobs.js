/* Background jobs: start one with an ordinary POST, follow its progress over the `jobs` facility (user audience),
 * on ws4redis.js' modern API. Progress of jobs started in another tab shows up here too: it is addressed to the
 * user, not to the page. */
(function () {
  'use strict';
  var demo = window.demo;
  var rows = {};

  function row(id, title) {
    if (rows[id]) return rows[id];
    var item = demo.el('li', 'job');
    item.dataset.job = id;
    item.dataset.state = 'queued';
    var top = demo.el('div', 'job-top');
    top.appendChild(demo.el('span', 'job-title', title));
    top.appendChild(demo.el('span', 'pill', 'queued'));
    var bar = demo.el('div', 'bar');
    bar.setAttribute('role', 'progressbar');
    bar.setAttribute('aria-valuemin', '0');
    bar.setAttribute('aria-valuemax', '100');
    bar.setAttribute('aria-valuenow', '0');
    bar.appendChild(demo.el('span'));
    var meta = demo.el('div', 'job-meta');
    meta.appendChild(demo.el('span', 'stage', 'Waiting for a worker…'));
    meta.appendChild(demo.el('span', 'percent', '0 %'));
    item.appendChild(top);
    item.appendChild(bar);
    item.appendChild(meta);
    var list = document.getElementById('jobs');
    document.getElementById('jobs-empty').hidden = true;
    list.insertBefore(item, list.firstChild);
    rows[id] = item;
    return item;
  }

  function progress(update) {
    var item = row(update.job, update.title);
    item.dataset.state = update.state;
    item.querySelector('.pill').textContent = update.state;
    var bar = item.querySelector('.bar');
    bar.setAttribute('aria-valuenow', String(update.percent));
    bar.firstChild.style.width = update.percent + '%';
    item.querySelector('.percent').textContent = update.percent + ' %';
    item.querySelector('.stage').textContent =
      update.stage + (update.state === 'done' && update.elapsed ? ' · finished in ' + update.elapsed + ' s' : '');
  }

  document.getElementById('job-form').addEventListener('submit', function (event) {
    event.preventDefault();
    var error = document.getElementById('job-error');
    demo.post('/jobs/start/', { title: document.getElementById('job-title').value }).then(function (answer) {
      row(answer.job, answer.title);
      error.hidden = true;
    }, function (err) {
      error.textContent = 'Could not start: ' + err.message;
      error.hidden = false;
    });
  });

  var socket = new WS4Redis({ facility: 'jobs', subscribe: 'user', base: demo.websocketUri });
  socket.on('state', demo.setLink);
  socket.on('message', function (message) {
    var update;
    try { update = JSON.parse(message.data); } catch (e) { return; }
    if (update && update.job) progress(update);
  });
  window.jobsSocket = socket;
})();
