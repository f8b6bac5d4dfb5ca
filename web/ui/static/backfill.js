/* Updraft UI: the backfill page's progress, refreshed from the API every 2 s while some of
   its runs are unfinished (states, task instances done, the overall bar). When the set of
   runs changes or the last one ends, the page is loaded again once, so the server renders
   the times in the chosen time zone. */
(function () {
  "use strict";
  var INTERVAL = 2000;

  function text(node, value) { if (node) { node.textContent = value; } }

  function setBadge(node, state) {
    if (!node) { return; }
    node.className = node.className.replace(/\bstate-[a-z_]+/g, "").trim() + " state-" + state;
    node.textContent = state;
  }

  function render(box, data) {
    var rows = box.querySelectorAll("#backfill-runs tbody tr[data-run-id]");
    if (rows.length !== data.runs.length) { return false; }
    var byId = {};
    data.runs.forEach(function (r) { byId[r.run_id] = r; });
    for (var i = 0; i < rows.length; i++) {
      var run = byId[rows[i].getAttribute("data-run-id")];
      if (!run) { return false; }
      setBadge(rows[i].querySelector("[data-cell=state]"), run.state);
      var bar = rows[i].querySelector("[data-cell=bar]");
      if (bar) { bar.max = Math.max(run.total, 1); bar.value = run.done; }
      text(rows[i].querySelector("[data-cell=count]"), run.done + " / " + run.total);
    }
    var total = document.getElementById("backfill-bar");
    if (total) { total.max = Math.max(data.total, 1); total.value = data.done; }
    text(document.getElementById("backfill-counts"), data.done + " of " + data.total +
         " task instances done; " + data.runs_done + " of " + data.runs.length +
         " runs over, " + data.failed + " failed");
    return true;
  }

  function poll(box) {
    var url = box.getAttribute("data-url");
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { window.setTimeout(function () { poll(box); }, INTERVAL * 2); return; }
        if (!render(box, data) || data.finished) { window.location.reload(); return; }
        window.setTimeout(function () { poll(box); }, INTERVAL);
      })
      .catch(function () { window.setTimeout(function () { poll(box); }, INTERVAL * 2); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("backfill-progress");
    if (box && box.getAttribute("data-finished") !== "true") {
      window.setTimeout(function () { poll(box); }, INTERVAL);
    }
  });
})();
