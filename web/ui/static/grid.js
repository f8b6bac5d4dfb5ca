/* Updraft UI: the grid (folding groups, the side panel, arrow keys, live refresh). */
(function (U) {
  "use strict";
  var setState = U.setState, cssEscape = U.cssEscape, aggregate = U.aggregate;

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

  U.Grid = Grid;
})(window.Updraft);
