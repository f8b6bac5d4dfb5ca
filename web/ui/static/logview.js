/* Updraft UI: the log viewer and the live tail of a running try. */
(function (U) {
  "use strict";
  var setState = U.setState, cssEscape = U.cssEscape, aggregate = U.aggregate;

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

  U.LogViewer = LogViewer;
  U.liveLog = liveLog;
})(window.Updraft);
