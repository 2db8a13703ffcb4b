// SPDX-License-Identifier: Apache-2.0
// pwatch's status page, live: each event from /events (Server-Sent Events)
// becomes a row on top of the history, and its service's row is fetched
// anew from the server (/row), which renders it as the page does. Without
// this script the page still shows everything as of its load.
(function () {
  'use strict';
  var main = document.getElementById('status');
  if (!main || !window.EventSource || !window.fetch) {
    return;
  }
  var filter = main.dataset.service || '';
  var last = Number(main.dataset.after || '0');
  var live = document.getElementById('live');
  var services = document.querySelector('#services tbody');
  var eventRows = document.querySelector('#events tbody');
  var maxRows = 1000;
  var pending = {};

  function stamp(iso) {
    return new Date(iso).toISOString().slice(0, 19).replace('T', ' ') + ' UTC';
  }

  function cell(tr, text, cls) {
    var td = document.createElement('td');
    td.textContent = text;
    if (cls) {
      td.className = cls;
    }
    tr.appendChild(td);
    return td;
  }

  // addEvent builds the row as the page's template does, with text
  // nodes only: nothing of the event is read as HTML.
  function addEvent(e) {
    var tr = document.createElement('tr');
    tr.dataset.seq = String(e.seq);
    var t = document.createElement('time');
    t.dateTime = e.time;
    t.textContent = stamp(e.time);
    cell(tr, '').appendChild(t);
    var svc = cell(tr, '');
    if (e.service) {
      var a = document.createElement('a');
      a.href = '/?service=' + encodeURIComponent(e.service);
      a.textContent = e.service;
      svc.appendChild(a);
    }
    cell(tr, e.event || '');
    cell(tr, e.pid ? String(e.pid) : '');
    var f = e.fields || {};
    cell(tr, f.cause || f.reason || f.error || '');
    cell(tr, e.text || '', 'text');
    eventRows.insertBefore(tr, eventRows.firstChild);
    while (eventRows.rows.length > maxRows) {
      eventRows.deleteRow(-1);
    }
    var none = document.getElementById('no-events');
    if (none) {
      none.remove();
    }
  }

  function findRow(name) {
    for (var i = 0; i < services.rows.length; i++) {
      if (services.rows[i].dataset.service === name) {
        return services.rows[i];
      }
    }
    return null;
  }

  // The row comes from the server's template (html/template escaped it).
  function putRow(name, html) {
    var old = findRow(name);
    if (html === null) {
      if (old) {
        old.remove();
      }
      return;
    }
    var t = document.createElement('template');
    t.innerHTML = html;
    var tr = t.content.querySelector('tr');
    if (!tr || tr.dataset.service !== name) {
      return;
    }
    if (old) {
      old.replaceWith(tr);
    } else {
      // A service a reload added; the "no service" line goes.
      for (var i = services.rows.length - 1; i >= 0; i--) {
        if (!services.rows[i].dataset.service) {
          services.deleteRow(i);
        }
      }
      services.appendChild(tr);
    }
  }

  // refreshRow fetches the service's row; events that come while a fetch
  // is under way ask for one more fetch after it, not one each.
  function refreshRow(name) {
    if (pending[name]) {
      pending[name] = 'again';
      return;
    }
    pending[name] = 'once';
    fetch('/row?service=' + encodeURIComponent(name), {cache: 'no-store'})
      .then(function (r) {
        if (r.status === 404) {
          return null; // no longer watched (a reload removed it)
        }
        return r.ok ? r.text() : undefined;
      })
      .then(function (html) {
        if (html !== undefined) {
          putRow(name, html);
        }
      }, function () {})
      .then(function () {
        var again = pending[name] === 'again';
        delete pending[name];
        if (again) {
          refreshRow(name);
        }
      });
  }

  function onEvent(msg) {
    // The server sends each event once (a reconnection resumes after the
    // last id); after a pcheck restart the numbers may begin again.
    var e = JSON.parse(msg.data);
    last = e.seq;
    if (!filter || e.service === filter) {
      addEvent(e);
    }
    if (e.service) {
      refreshRow(e.service);
    }
  }

  function connect() {
    var es = new EventSource('/events?after=' + encodeURIComponent(String(last)));
    es.onopen = function () {
      live.textContent = 'Live: this page updates as events happen.';
    };
    es.onmessage = onEvent;
    es.onerror = function () {
      live.textContent = 'Live updates interrupted; reconnecting.';
      if (es.readyState === EventSource.CLOSED) {
        // The server refused the stream (too many open): try again later.
        setTimeout(connect, 10000);
      }
    };
  }
  connect();
})();
