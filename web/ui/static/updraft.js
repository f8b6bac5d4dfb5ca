/* Updraft UI: live state over server-sent events (polling as a fallback), live logs,
   and collapsible task groups in the graph. Plain JavaScript, no dependencies. */
(function () {
  "use strict";
  var STATE_CLASS = /\bstate-[a-z_]+\b/g;
  var PRIORITY = ["failed", "upstream_failed", "up_for_retry", "running", "queued", "deferred",
                  "up_for_reschedule", "scheduled", "removed", "skipped", "none", "success"];

  function setState(el, state) {
    state = state || "none";
    var cls = el.getAttribute("class") || "";
    var next = cls.replace(STATE_CLASS, "").replace(/\s+/g, " ").trim() + " state-" + state;
    el.setAttribute("class", next);
    el.setAttribute("data-state", state);
    if (el.classList.contains("badge")) { el.textContent = state.replace(/_/g, " "); }
  }

  function cssEscape(value) {
    return window.CSS && CSS.escape ? CSS.escape(value) : String(value).replace(/["\\]/g, "\\$&");
  }

  function aggregate(states) {
    var present = {}; states.forEach(function (s) { present[s || "none"] = true; });
    var keys = Object.keys(present);
    if (!keys.length) { return "none"; }
    if (keys.every(function (s) { return s === "success" || s === "skipped"; })) {
      return present.success ? "success" : "skipped";
    }
    for (var i = 0; i < PRIORITY.length; i++) { if (present[PRIORITY[i]]) { return PRIORITY[i]; } }
    return "none";
  }

  function LivePage(root) {
    this.root = root;
    this.dagId = root.getAttribute("data-dag-id");
    this.stateUrl = root.getAttribute("data-state-url");
    this.eventsUrl = root.getAttribute("data-events-url");
    this.pollTimer = null;
    this.taskStates = {};
    this.status = document.createElement("span");
    this.status.className = "live-status";
    this.status.id = "live-status";
    var h1 = document.querySelector("h1");
    if (h1) { h1.appendChild(this.status); }
  }

  LivePage.prototype.runId = function () {
    var graph = document.getElementById("graph");
    return (graph && graph.getAttribute("data-run-id")) || this.root.getAttribute("data-run-id");
  };

  LivePage.prototype.applyTi = function (ev) {
    var runId = ev.run_id, taskId = ev.task_id, state = ev.new_state || "none";
    var sel = '[data-task-id="' + cssEscape(taskId) + '"]';
    var mapSel = ev.map_index !== undefined && ev.map_index !== null ?
      '[data-map-index="' + ev.map_index + '"]' : "";
    if (runId === this.runId()) {
      var key = taskId;
      this.taskStates[key] = this.taskStates[key] || {};
      this.taskStates[key][ev.map_index] = state;
      var all = Object.keys(this.taskStates[key]).map(function (k) { return this.taskStates[key][k]; }, this);
      var shown = all.length > 1 ? aggregate(all) : state;
      document.querySelectorAll("svg.dag-graph .task-node" + sel).forEach(function (el) { setState(el, shown); });
      this.recolourGroups();
      document.querySelectorAll(".badge" + sel + mapSel).forEach(function (el) { setState(el, state); });
      if (ev.try_number) {
        document.querySelectorAll(".try-number" + sel + mapSel).forEach(function (el) {
          el.textContent = (el.id === "ti-try" ? "try " : "") + ev.try_number;
        });
      }
    }
    document.querySelectorAll('.cell[data-run-id="' + cssEscape(runId) + '"]' + sel).forEach(function (el) { setState(el, state); });
  };

  LivePage.prototype.recolourGroups = function () {
    var states = this.taskStates;
    document.querySelectorAll("svg.dag-graph .group-node").forEach(function (el) {
      var ids = (el.getAttribute("data-task-ids") || "").split(" ");
      var found = [];
      ids.forEach(function (id) {
        var node = states[id];
        if (node) { Object.keys(node).forEach(function (k) { found.push(node[k]); }); }
      });
      if (found.length) { setState(el, aggregate(found)); }
    });
  };

  LivePage.prototype.applyRun = function (ev) {
    document.querySelectorAll('[data-run-id="' + cssEscape(ev.run_id) + '"].run-state, .run-head[data-run-id="' + cssEscape(ev.run_id) + '"]')
      .forEach(function (el) { setState(el, ev.new_state); });
  };

  LivePage.prototype.sync = function () {
    var self = this, runId = this.runId();
    var url = this.stateUrl + "?all=1" + (runId ? "&run_id=" + encodeURIComponent(runId) : "");
    return fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (body) {
        body.runs.forEach(function (r) { self.applyRun({run_id: r.run_id, new_state: r.state}); });
        body.task_instances.forEach(function (t) {
          self.applyTi({run_id: t.run_id, task_id: t.task_id, map_index: t.map_index,
                        new_state: t.state, try_number: t.try_number});
        });
      }).catch(function () {});
  };

  LivePage.prototype.poll = function (why) {
    var self = this;
    if (this.pollTimer) { return; }
    this.status.textContent = "polling (" + why + ")";
    this.pollTimer = setInterval(function () { self.sync(); }, 3000);
    this.sync();
  };

  LivePage.prototype.start = function () {
    var self = this;
    if (!window.EventSource) { this.poll("no EventSource"); return; }
    var source = new EventSource(this.eventsUrl);
    var failures = 0;
    source.addEventListener("hello", function (e) {
      var body = JSON.parse(e.data);
      failures = 0;
      if (!body.bus) { self.poll(body.error || "the bus is down"); }
      else { self.status.textContent = "live"; self.status.setAttribute("data-live", "1"); }
      self.sync();  // catch up on what happened between the page load and the stream
    });
    source.addEventListener("bus", function (e) {
      var body = JSON.parse(e.data);
      if (!body.connected) { self.poll("the bus is down"); } else { self.sync(); }
    });
    source.addEventListener("ti", function (e) { self.applyTi(JSON.parse(e.data)); });
    source.addEventListener("run", function (e) { self.applyRun(JSON.parse(e.data)); });
    source.onerror = function () {
      failures += 1;
      if (failures >= 3 || source.readyState === EventSource.CLOSED) {
        source.close();
        self.poll("live stream unavailable");
      }
    };
  };

  function liveLog(pre) {
    var url = pre.getAttribute("data-live-url");
    if (!url || !window.EventSource) { return; }
    var source = new EventSource(url);
    var first = true;
    function append(lines) {
      var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
      if (first) { pre.textContent = ""; first = false; }
      pre.textContent += lines.join("\n") + "\n";
      if (atBottom) { pre.scrollTop = pre.scrollHeight; }
    }
    source.addEventListener("lines", function (e) { append(JSON.parse(e.data).lines); });
    source.addEventListener("hello", function () { first = false; });
    source.addEventListener("end", function (e) {
      source.close();
      var badge = document.getElementById("live-badge");
      if (badge) { badge.textContent = "ended"; setState(badge, "success"); badge.textContent = "ended"; }
      pre.setAttribute("data-ended", JSON.parse(e.data).reason || "ended");
    });
    source.onerror = function () { if (source.readyState === EventSource.CLOSED) { source.close(); } };
  }

  function graphToggles() {
    var holder = document.querySelector("#graph .svg-holder");
    if (!holder || !window.fetch) { return; }
    holder.addEventListener("click", function (e) {
      var link = e.target.closest ? e.target.closest("a.group-toggle") : null;
      if (!link) { return; }
      e.preventDefault();
      var href = link.getAttribute("href");
      var query = href.indexOf("?") >= 0 ? href.slice(href.indexOf("?")) : "";
      var svgUrl = document.getElementById("graph").getAttribute("data-svg-url") + query;
      fetch(svgUrl, {credentials: "same-origin"}).then(function (r) { return r.text(); }).then(function (svg) {
        holder.innerHTML = svg;
        history.replaceState(null, "", href);
        if (window.updraftLive) { window.updraftLive.taskStates = {}; window.updraftLive.sync(); }
      });
    });
  }

  // Behaviours set by data attributes rather than inline handlers, which the
  // Content-Security-Policy forbids: a select that submits its form when changed, and a
  // form that asks before it is sent (the question is text, never code).
  function formBehaviours() {
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (e) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { e.preventDefault(); }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    formBehaviours();
    var root = document.getElementById("dag-page");
    if (root && root.getAttribute("data-events-url")) {
      window.updraftLive = new LivePage(root);
      window.updraftLive.start();
    }
    var pre = document.getElementById("log");
    if (pre) { liveLog(pre); }
    graphToggles();
  });
})();
