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

  // The log viewer: numbered lines (server-rendered, #L12 links to a line), search with
  // next / previous, a lowest-level filter, wrap, top / end, and the live tail of a running
  // try (lines carry their number, "from", so a reconnect never repeats one).
  var LEVELS = ["debug", "info", "warning", "error", "critical"];
  var FORMATTED = /^\[[^\]]*\] \{[^}]*\} (DEBUG|INFO|WARNING|ERROR|CRITICAL) - /;
  var LOOSE = /\b(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\b/;

  function lineLevel(text, previous) {
    var m = FORMATTED.exec(text) || LOOSE.exec(text.slice(0, 80));
    if (!m) { return previous; }
    var word = m[1].toLowerCase();
    return word === "warn" ? "warning" : (word === "fatal" ? "critical" : word);
  }

  function LogViewer(box) {
    this.box = box;
    this.matches = [];
    this.current = -1;
    var self = this;
    var last = box.querySelector(".log-line:last-child");
    this.lastNumber = last ? parseInt(last.id.slice(1), 10) : 0;
    this.lastLevel = last ? last.getAttribute("data-level") : "info";
    function on(id, event, fn) { var el = document.getElementById(id); if (el) { el.addEventListener(event, fn); } return el; }
    this.search = on("log-search", "input", function () { self.find(); });
    on("log-search", "keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); self.step(e.shiftKey ? -1 : 1); } });
    on("log-next", "click", function () { self.step(1); });
    on("log-prev", "click", function () { self.step(-1); });
    this.level = on("log-level", "change", function () { self.filter(); self.remember(); });
    this.wrap = on("log-wrap", "change", function () { box.classList.toggle("wrap", self.wrap.checked); self.remember(); });
    on("log-end", "click", function () { self.toEnd(); });
    on("log-top", "click", function () { box.scrollTop = 0; window.scrollTo(0, box.getBoundingClientRect().top + window.scrollY - 120); });
    try {
      var saved = JSON.parse(localStorage.getItem("updraft.log") || "{}");
      if (saved.level && this.level) { this.level.value = saved.level; }
      if (saved.wrap === false && this.wrap) { this.wrap.checked = false; box.classList.remove("wrap"); }
    } catch (e) { /* no storage */ }
    this.filter();
    if (location.hash && /^#L\d+$/.test(location.hash)) {
      var target = document.getElementById(location.hash.slice(1));
      if (target) { target.scrollIntoView({block: "center"}); }
    }
  }

  LogViewer.prototype.remember = function () {
    try { localStorage.setItem("updraft.log", JSON.stringify({level: this.level ? this.level.value : "debug", wrap: this.wrap ? this.wrap.checked : true})); } catch (e) { /* no storage */ }
  };

  LogViewer.prototype.filter = function () {
    var lowest = LEVELS.indexOf(this.level ? this.level.value : "debug");
    this.box.querySelectorAll(".log-line").forEach(function (line) {
      line.hidden = LEVELS.indexOf(line.getAttribute("data-level")) < lowest;
    });
    this.find();
  };

  LogViewer.prototype.find = function () {
    var needle = this.search ? this.search.value.toLowerCase() : "";
    var matches = this.matches = [];
    this.box.querySelectorAll(".log-line").forEach(function (line) {
      var hit = !!needle && !line.hidden && line.lastChild.textContent.toLowerCase().indexOf(needle) >= 0;
      line.classList.toggle("match", hit);
      line.classList.remove("current-match");
      if (hit) { matches.push(line); }
    });
    this.current = -1;
    var counter = document.getElementById("log-matches");
    if (counter) { counter.textContent = needle ? matches.length + " match" + (matches.length === 1 ? "" : "es") : ""; }
    if (matches.length) { this.step(1); }
  };

  LogViewer.prototype.step = function (delta) {
    if (!this.matches.length) { return; }
    if (this.current >= 0) { this.matches[this.current].classList.remove("current-match"); }
    this.current = (this.current + delta + this.matches.length) % this.matches.length;
    var line = this.matches[this.current];
    line.classList.add("current-match");
    line.scrollIntoView({block: "center"});
    var counter = document.getElementById("log-matches");
    if (counter) { counter.textContent = (this.current + 1) + " of " + this.matches.length; }
  };

  LogViewer.prototype.toEnd = function () {
    this.box.scrollTop = this.box.scrollHeight;
    var last = this.box.querySelector(".log-line:last-child");
    if (last) { last.scrollIntoView({block: "end"}); }
  };

  LogViewer.prototype.add = function (texts, from) {
    var atBottom = this.box.scrollTop + this.box.clientHeight >= this.box.scrollHeight - 20;
    var empty = this.box.querySelector(".log-empty");
    if (empty) { empty.remove(); }
    var lowest = LEVELS.indexOf(this.level ? this.level.value : "debug");
    var needle = this.search ? this.search.value.toLowerCase() : "";
    var number = from ? from - 1 : this.lastNumber;
    var fragment = document.createDocumentFragment();
    for (var i = 0; i < texts.length; i++) {
      number += 1;
      if (number <= this.lastNumber) { continue; }  // already shown (a reconnect resends)
      var level = this.lastLevel = lineLevel(texts[i], this.lastLevel);
      var line = document.createElement("div");
      line.className = "log-line lvl-" + level;
      line.id = "L" + number;
      line.setAttribute("data-level", level);
      var link = document.createElement("a");
      link.className = "ln"; link.href = "#L" + number; link.textContent = String(number);
      var text = document.createElement("span");
      text.className = "lt"; text.textContent = texts[i];
      line.appendChild(link); line.appendChild(text);
      line.hidden = LEVELS.indexOf(level) < lowest;
      if (needle && text.textContent.toLowerCase().indexOf(needle) >= 0) { line.classList.add("match"); this.matches.push(line); }
      fragment.appendChild(line);
      this.lastNumber = number;
    }
    this.box.appendChild(fragment);
    if (atBottom) { this.box.scrollTop = this.box.scrollHeight; }
  };

  function liveLog(box, viewer) {
    var url = box.getAttribute("data-live-url");
    if (!url || !window.EventSource) { return; }
    var source = new EventSource(url);
    source.addEventListener("lines", function (e) {
      var body = JSON.parse(e.data);
      viewer.add(body.lines, body.from);
    });
    source.addEventListener("end", function (e) {
      source.close();
      var badge = document.getElementById("live-badge");
      if (badge) { setState(badge, "success"); badge.textContent = "ended"; }
      box.setAttribute("data-ended", JSON.parse(e.data).reason || "ended");
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
        var graphSection = document.getElementById("graph");
        if (graphSection) {
          graphSection.setAttribute("data-collapsed", new URLSearchParams(query).get("collapsed") || "");
          graphSection.dispatchEvent(new Event("updraft:svg"));
        }
        if (window.updraftLive) { window.updraftLive.taskStates = {}; window.updraftLive.sync(); }
      });
    });
  }


  // The grid: groups fold (remembered per DAG in localStorage), a click on a cell or a run
  // bar opens the side panel (the link still works without the script), and a run the grid
  // does not show yet brings the grid in again (?partial=1) when the first page is shown.
  function Grid(section) {
    this.section = section;
    this.dagId = section.getAttribute("data-dag-id");
    this.key = "updraft.grid.folded." + this.dagId;
    this.folded = {};
    this.refreshTimer = null;
    this.selected = null;
    try { JSON.parse(localStorage.getItem(this.key) || "[]").forEach(function (g) { this.folded[g] = true; }, this); } catch (e) { this.folded = {}; }
    var self = this;
    section.addEventListener("click", function (e) {
      var fold = e.target.closest("button.group-fold");
      if (fold) { self.toggle(fold.getAttribute("data-group-id")); return; }
      if (e.target.closest("#grid-expand-all")) { self.folded = {}; self.applyFolds(); return; }
      if (e.target.closest("#grid-collapse-all")) {
        section.querySelectorAll("button.group-fold").forEach(function (b) { self.folded[b.getAttribute("data-group-id")] = true; });
        self.applyFolds(); return;
      }
      var link = e.target.closest("[data-panel-url]");
      if (link && !(e.ctrlKey || e.metaKey || e.shiftKey || e.button)) {
        e.preventDefault();
        self.open(link);
      }
    });
    var close = document.getElementById("panel-close");
    if (close) { close.addEventListener("click", function () { self.close(); }); }
    document.addEventListener("keydown", function (e) {
      if (document.querySelector("dialog[open]")) { return; }
      if (e.key === "Escape") { self.close(); return; }
      var moves = {ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0]};
      if (self.selected && moves[e.key] && !(e.target.closest && e.target.closest("input, select, textarea"))) {
        e.preventDefault();
        self.move(moves[e.key][0], moves[e.key][1]);
      }
    });
    this.applyFolds();
    this.remember();
    // A run named in the address (the run picker, a calendar day) opens in the panel.
    var wanted = new URLSearchParams(location.search).get("run_id");
    var bar = wanted && section.querySelector('.run-bar[data-run-id="' + cssEscape(wanted) + '"]');
    if (bar) { this.open(bar); }
  }

  Grid.prototype.toggle = function (groupId) {
    if (this.folded[groupId]) { delete this.folded[groupId]; } else { this.folded[groupId] = true; }
    this.applyFolds();
  };

  Grid.prototype.applyFolds = function () {
    var folded = this.folded;
    try { localStorage.setItem(this.key, JSON.stringify(Object.keys(folded))); } catch (e) { /* private mode */ }
    this.section.querySelectorAll("tr.grid-row").forEach(function (row) {
      var parents = (row.getAttribute("data-parents") || "").split(" ").filter(Boolean);
      row.hidden = parents.some(function (p) { return folded[p]; });
    });
    this.section.querySelectorAll("button.group-fold").forEach(function (b) {
      var isFolded = !!folded[b.getAttribute("data-group-id")];
      b.setAttribute("aria-expanded", isFolded ? "false" : "true");
      b.innerHTML = isFolded ? "&#9656;" : "&#9662;";
    });
  };

  Grid.prototype.open = function (link) {
    var panel = document.getElementById("side-panel"), body = document.getElementById("panel-body");
    var url = link.getAttribute("data-panel-url");
    if (this.selected) { this.selected.classList.remove("selected"); }
    link.classList.add("selected");
    this.selected = link;
    this.selectedUrl = url;
    panel.hidden = false;
    body.innerHTML = '<p class="hint">Loading&hellip;</p>';
    fetch(url, {credentials: "same-origin"}).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.text();
    }).then(function (html) { body.innerHTML = html; })
      .catch(function (err) { body.innerHTML = '<p class="flash flash-error">Could not load the panel: ' + String(err.message).replace(/</g, "&lt;") + "</p>"; });
  };

  // Arrow keys move the selection: left and right through runs, up and down through the
  // rows shown (task cells and group cells; a run bar moves into the first row).
  Grid.prototype.move = function (dRow, dCol) {
    var cell = this.selected.closest("td, th");
    var row = cell && cell.parentElement;
    if (!row) { return; }
    var col = Array.prototype.indexOf.call(row.children, cell);
    var rows = Array.prototype.slice.call(this.section.querySelectorAll("tr.grid-row")).filter(function (r) { return !r.hidden; });
    var target = null;
    if (row.classList.contains("bars")) {
      if (dRow > 0 && rows.length) { target = rows[0].children[col]; }
      else if (dCol) { target = row.children[col + dCol]; }
    } else {
      var at = rows.indexOf(row);
      if (dRow < 0 && at === 0) { target = this.section.querySelector("tr.bars").children[col]; }
      else if (dRow) { target = rows[at + dRow] && rows[at + dRow].children[col]; }
      else { target = row.children[col + dCol]; }
    }
    var link = target && target.querySelector("[data-panel-url]");
    if (link) { this.open(link); link.scrollIntoView({block: "nearest", inline: "nearest"}); }
  };

  Grid.prototype.close = function () {
    var panel = document.getElementById("side-panel");
    if (panel) { panel.hidden = true; }
    if (this.selected) { this.selected.classList.remove("selected"); }
    this.selected = null; this.selectedUrl = null;
  };

  Grid.prototype.shows = function (runId) {
    return !!this.section.querySelector('.run-bar[data-run-id="' + cssEscape(runId) + '"]');
  };

  Grid.prototype.refreshSoon = function () {
    var self = this;
    if (this.refreshTimer) { return; }
    this.refreshTimer = setTimeout(function () { self.refreshTimer = null; self.refresh(); }, 300);
  };

  Grid.prototype.refresh = function () {
    var self = this;
    return fetch(this.section.getAttribute("data-partial-url"), {credentials: "same-origin"})
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
      .then(function (html) {
        self.section.innerHTML = html;
        self.applyFolds();
        self.remember();
        if (self.selectedUrl) {
          var again = self.section.querySelector('[data-panel-url="' + cssEscape(self.selectedUrl) + '"]');
          if (again) { again.classList.add("selected"); self.selected = again; }
        }
        self.section.setAttribute("data-refreshed", String(Date.now()));
      }).catch(function () {});
  };

  Grid.prototype.remember = function () {
    var known = this.known = {};
    this.section.querySelectorAll(".run-bar").forEach(function (bar) {
      var m = (bar.getAttribute("class") || "").match(/state-([a-z_]+)/);
      known[bar.getAttribute("data-run-id")] = m ? m[1] : "none";
    });
  };

  Grid.prototype.onRun = function (ev) {
    var first = this.section.getAttribute("data-offset") === "0";
    if (!this.shows(ev.run_id)) { if (first) { this.refreshSoon(); } return; }
    if (this.known[ev.run_id] === ev.new_state) { return; }
    this.known[ev.run_id] = ev.new_state;
    if (["success", "failed"].indexOf(ev.new_state) >= 0) { this.refreshSoon(); }  // bars rescale
  };

  Grid.prototype.onTi = function (ev) {
    if (!this.shows(ev.run_id)) { if (this.section.getAttribute("data-offset") === "0") { this.refreshSoon(); } return; }
    var column = '[data-run-id="' + cssEscape(ev.run_id) + '"]';
    var section = this.section;
    // A mapped task's cell shows the worst state of its copies, not the last event's.
    if (ev.map_index !== undefined && ev.map_index !== null && ev.map_index >= 0) {
      var copies = this.copies || (this.copies = {});
      var key = ev.run_id + "\u0000" + ev.task_id;
      (copies[key] = copies[key] || {})[ev.map_index] = ev.new_state || "none";
      var states = Object.keys(copies[key]).map(function (k) { return copies[key][k]; });
      section.querySelectorAll(".cell" + column + '[data-task-id="' + cssEscape(ev.task_id) + '"]')
        .forEach(function (cell) { setState(cell, aggregate(states)); });
    }
    section.querySelectorAll(".group-cell" + column).forEach(function (cell) {
      var states = [];
      (cell.getAttribute("data-task-ids") || "").split(" ").forEach(function (t) {
        var c = section.querySelector(".cell" + column + '[data-task-id="' + cssEscape(t) + '"]');
        if (c && c.getAttribute("class").match(/state-([a-z_]+)/)) { states.push(c.getAttribute("class").match(/state-([a-z_]+)/)[1]); }
      });
      if (states.length) { setState(cell, aggregate(states)); }
    });
  };


  // The clear / mark dialog: a link with data-action-dialog opens its preview (the same
  // page, ?partial=1) in a <dialog>; changing an option fetches the preview again; the
  // confirm button posts the form. Without the script the link is a page of its own.
  function actionDialog() {
    var dialog = null;
    function ensure() {
      if (dialog) { return dialog; }
      dialog = document.createElement("dialog");
      dialog.className = "action-dialog";
      dialog.id = "action-dialog";
      document.body.appendChild(dialog);
      dialog.addEventListener("click", function (e) {
        if (e.target.closest("#action-cancel")) { dialog.close(); }
      });
      dialog.addEventListener("change", function (e) {
        var form = e.target.closest("#action-options");
        if (form) { load(form.getAttribute("action") + "?" + new URLSearchParams(new FormData(form)).toString()); }
      });
      dialog.addEventListener("submit", function (e) {
        var form = e.target;
        if (form.id === "action-options") {
          e.preventDefault();
          load(form.getAttribute("action") + "?" + new URLSearchParams(new FormData(form)).toString());
        } else if (form.id === "action-apply") {
          var next = form.querySelector(".next-url");
          if (next) { next.value = location.pathname + location.search; }
          var button = form.querySelector("#action-confirm-button");
          if (button) { button.disabled = true; }
        }
      });
      return dialog;
    }
    function load(url) {
      var d = ensure();
      d.setAttribute("data-loading", "1");
      var sep = url.indexOf("?") >= 0 ? "&" : "?";
      return fetch(url + sep + "partial=1", {credentials: "same-origin"}).then(function (r) {
        return r.text().then(function (html) { return {ok: r.ok, status: r.status, html: html}; });
      }).then(function (res) {
        d.innerHTML = res.ok ? res.html : '<p class="flash flash-error">Could not load the preview (HTTP ' + res.status + ').</p><button type="button" id="action-cancel">Close</button>';
        d.removeAttribute("data-loading");
        if (!d.open) { d.showModal(); }
      });
    }
    document.addEventListener("click", function (e) {
      var link = e.target.closest ? e.target.closest("a[data-action-dialog]") : null;
      if (!link || e.ctrlKey || e.metaKey || e.shiftKey || !window.HTMLDialogElement) { return; }
      e.preventDefault();
      load(link.getAttribute("href"));
    });
  }

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
  // (?partial=1) when one changes; it polls every 10 s if the stream fails.
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
      }, 700);
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


  // The graph: zoom (buttons, Ctrl + wheel, fit to the window; remembered per DAG) and the
  // run strip, which recolours the graph with another run's states without a reload (the
  // server draws the SVG of that run; live events then follow the chosen run).
  function graphView(section) {
    var holder = document.getElementById("svg-holder");
    var dagId = document.getElementById("dag-page") && document.getElementById("dag-page").getAttribute("data-dag-id");
    var key = "updraft.graph.zoom." + dagId;
    var scale = 1;
    try { scale = parseFloat(localStorage.getItem(key)) || 1; } catch (e) { scale = 1; }
    function svg() { return holder.querySelector("svg.dag-graph"); }
    function natural(el) {
      var box = (el.getAttribute("viewBox") || "0 0 0 0").split(/\s+/).map(Number);
      return {w: box[2], h: box[3]};
    }
    function apply() {
      var el = svg();
      if (!el) { return; }
      var size = natural(el);
      el.setAttribute("width", Math.round(size.w * scale));
      el.setAttribute("height", Math.round(size.h * scale));
      var label = document.getElementById("zoom-level");
      if (label) { label.textContent = Math.round(scale * 100) + "%"; }
      section.setAttribute("data-zoom", scale.toFixed(2));
      try { localStorage.setItem(key, String(scale)); } catch (e) { /* no storage */ }
    }
    function zoom(factor) { scale = Math.min(4, Math.max(0.2, scale * factor)); apply(); }
    function fit() {
      var el = svg();
      if (!el) { return; }
      var size = natural(el);
      var width = holder.clientWidth - 4, height = Math.max(window.innerHeight * 0.7, 200);
      scale = Math.min(4, Math.max(0.2, Math.min(width / size.w, height / size.h)));
      apply();
    }
    function on(id, fn) { var el = document.getElementById(id); if (el) { el.addEventListener("click", fn); } }
    on("zoom-in", function () { zoom(1.25); });
    on("zoom-out", function () { zoom(0.8); });
    on("zoom-fit", fit);
    on("zoom-reset", function () { scale = 1; apply(); });
    holder.addEventListener("wheel", function (e) {
      if (!e.ctrlKey) { return; }
      e.preventDefault();
      zoom(e.deltaY < 0 ? 1.1 : 0.9);
    }, {passive: false});
    apply();
    section.addEventListener("updraft:svg", apply);

    function chips() { return Array.prototype.slice.call(document.querySelectorAll("#run-strip .run-chip")); }
    function show(chip) {
      var runId = chip.getAttribute("data-run-id");
      var collapsed = section.getAttribute("data-collapsed") || "";
      var query = "?run_id=" + encodeURIComponent(runId) + (collapsed ? "&collapsed=" + encodeURIComponent(collapsed) : "");
      return fetch(section.getAttribute("data-svg-url") + query, {credentials: "same-origin"})
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
        .then(function (text) {
          holder.innerHTML = text;
          section.setAttribute("data-run-id", runId);
          chips().forEach(function (c) { c.classList.toggle("current", c === chip); });
          var select = document.getElementById("run-select");
          if (select) { select.value = runId; }
          document.querySelectorAll(".run-picker .run-state").forEach(function (b) {
            b.setAttribute("data-run-id", runId);
            var m = (chip.getAttribute("class") || "").match(/state-([a-z_]+)/);
            if (m) { setState(b, m[1]); }
          });
          history.replaceState(null, "", location.pathname + query);
          apply();
          if (window.updraftLive) { window.updraftLive.taskStates = {}; window.updraftLive.sync(); }
        }).catch(function () {});
    }
    function step(delta) {
      var all = chips(), at = all.findIndex(function (c) { return c.classList.contains("current"); });
      var next = all[Math.min(all.length - 1, Math.max(0, (at < 0 ? all.length - 1 : at) + delta))];
      if (next && !next.classList.contains("current")) { show(next); }
    }
    var strip = document.getElementById("run-strip");
    if (strip) {
      strip.addEventListener("click", function (e) {
        var chip = e.target.closest(".run-chip");
        if (chip && !(e.ctrlKey || e.metaKey || e.shiftKey)) { e.preventDefault(); show(chip); }
      });
      on("run-prev", function () { step(-1); });
      on("run-next", function () { step(1); });
      document.addEventListener("keydown", function (e) {
        if (e.target.closest && e.target.closest("input, select, textarea")) { return; }
        if (e.key === "ArrowLeft") { step(-1); } else if (e.key === "ArrowRight") { step(1); }
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

  document.addEventListener("DOMContentLoaded", function () {
    formBehaviours();
    actionDialog();
    displayPrefs();
    var dagList = document.getElementById("dag-list");
    if (dagList && dagList.getAttribute("data-events-url")) { liveDagList(dagList); }
    var homePage = document.getElementById("home");
    if (homePage && homePage.getAttribute("data-events-url")) { liveDagList(homePage, "home-live"); }
    var gridSection = document.getElementById("grid");
    if (gridSection && gridSection.getAttribute("data-partial-url")) { window.updraftGrid = new Grid(gridSection); }
    var root = document.getElementById("dag-page");
    if (root && root.getAttribute("data-events-url")) {
      window.updraftLive = new LivePage(root);
      window.updraftLive.start();
    }
    var logBox = document.getElementById("log");
    if (logBox) { window.updraftLog = new LogViewer(logBox); liveLog(logBox, window.updraftLog); }
    graphToggles();
    var graphSection = document.getElementById("graph");
    if (graphSection && document.getElementById("svg-holder")) { graphView(graphSection); }
  });
})();
