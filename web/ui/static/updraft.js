/* Updraft UI: the shared helpers (window.Updraft), live state over server-sent events
   (polling as a fallback), the live DAG list and home page, display choices, and the start
   of every page. grid.js, graph.js, logview.js and dialog.js add their parts to
   window.Updraft; all are deferred, so they are loaded when DOMContentLoaded fires.
   Plain JavaScript, no dependencies. */
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
    if (window.updraftGrid) { window.updraftGrid.onTi(ev); }
    refreshParts(ev);
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
    if (window.updraftGrid) { window.updraftGrid.onRun(ev); }
    refreshParts(ev);
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

  // Parts of a page that redraw themselves (data-refresh-url) when a state event of their
  // run arrives: the Gantt chart.
  function refreshers() {
    var timers = {};
    function refresh(el) {
      var key = el.id;
      if (timers[key]) { return; }
      timers[key] = setTimeout(function () {
        timers[key] = null;
        fetch(el.getAttribute("data-refresh-url"), {credentials: "same-origin"})
          .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
          .then(function (html) { el.innerHTML = html; el.setAttribute("data-refreshed", String(Date.now())); })
          .catch(function () {});
      }, 500);
    }
    return function (ev) {
      document.querySelectorAll("[data-refresh-url]").forEach(function (el) {
        var runId = el.getAttribute("data-run-id");
        if (!runId || runId === ev.run_id) { refresh(el); }
      });
    };
  }
  var refreshParts = refreshers();


  // The DAG list follows every DAG's run states (/events/dags) and swaps in its table
  // (?partial=1) when one changes, at most every 2 s; it polls every 10 s if the stream fails.
  function liveDagList(section, statusId) {
    var status = document.getElementById(statusId || "dag-list-live");
    var timer = null, polling = null;
    function refresh() {
      if (timer) { return; }
      timer = setTimeout(function () {
        timer = null;
        fetch(section.getAttribute("data-partial-url"), {credentials: "same-origin"})
          .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
          .then(function (html) { section.innerHTML = html; section.setAttribute("data-refreshed", String(Date.now())); })
          .catch(function () {});
      }, 2000);  // at most one redraw every 2 s, however busy the DAGs are
    }
    function poll(why) {
      if (polling) { return; }
      if (status) { status.textContent = "polling (" + why + ")"; }
      polling = setInterval(refresh, 10000);
    }
    if (!window.EventSource) { poll("no EventSource"); return; }
    var source = new EventSource(section.getAttribute("data-events-url"));
    var failures = 0;
    source.addEventListener("hello", function (e) {
      failures = 0;
      var body = JSON.parse(e.data);
      if (!body.bus) { poll(body.error || "the bus is down"); }
      else if (status) { status.textContent = "live"; status.setAttribute("data-live", "1"); }
    });
    source.addEventListener("run", refresh);
    source.onerror = function () {
      failures += 1;
      if (failures >= 3 || source.readyState === EventSource.CLOSED) { source.close(); poll("live stream unavailable"); }
    };
  }


  // Display choices, kept in cookies so the server renders them right the first time: the
  // time zone of every time shown (UTC, the browser's own, or a named zone) and the theme.
  function displayPrefs() {
    function setCookie(name, value) {
      // Zone names and themes are letters, digits and / _ + - only: stored as they are.
      document.cookie = name + "=" + String(value).replace(/[^A-Za-z0-9\/_+-]/g, "") + "; path=/; max-age=31536000; SameSite=Lax";
    }
    var tz = document.getElementById("tz-picker");
    if (tz) {
      tz.addEventListener("change", function () {
        var zone = tz.value;
        if (zone === "local") {
          try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { zone = "UTC"; }
        }
        setCookie("updraft_tz", zone);
        location.reload();
      });
    }
    var theme = document.getElementById("theme-toggle");
    if (theme) {
      var labels = {auto: "\u25d0 auto", light: "\u2600 light", dark: "\u263e dark"};
      theme.addEventListener("click", function () {
        var order = ["auto", "light", "dark"];
        var next = order[(order.indexOf(theme.getAttribute("data-theme")) + 1) % order.length];
        theme.setAttribute("data-theme", next);
        theme.textContent = labels[next];
        document.documentElement.setAttribute("data-theme", next);
        setCookie("updraft_theme", next);
      });
    }
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

  var U = window.Updraft = window.Updraft || {};
  U.setState = setState;
  U.cssEscape = cssEscape;
  U.aggregate = aggregate;


  document.addEventListener("DOMContentLoaded", function () {
    formBehaviours();
    if (U.actionDialog) { U.actionDialog(); }
    displayPrefs();
    var dagList = document.getElementById("dag-list");
    if (dagList && dagList.getAttribute("data-events-url")) { liveDagList(dagList); }
    var homePage = document.getElementById("home");
    if (homePage && homePage.getAttribute("data-events-url")) { liveDagList(homePage, "home-live"); }
    var gridSection = document.getElementById("grid");
    if (gridSection && gridSection.getAttribute("data-partial-url") && U.Grid) { window.updraftGrid = new U.Grid(gridSection); }
    var root = document.getElementById("dag-page");
    if (root && root.getAttribute("data-events-url")) {
      window.updraftLive = new LivePage(root);
      window.updraftLive.start();
    }
    var logBox = document.getElementById("log");
    if (logBox && U.LogViewer) { window.updraftLog = new U.LogViewer(logBox); U.liveLog(logBox, window.updraftLog); }
    if (U.graphToggles) { U.graphToggles(); }
    var graphSection = document.getElementById("graph");
    if (graphSection && document.getElementById("svg-holder") && U.graphView) { U.graphView(graphSection); }
  });
})();
