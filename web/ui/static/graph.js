/* Updraft UI: the graph (group collapse in place, zoom, the run strip). */
(function (U) {
  "use strict";
  var setState = U.setState, cssEscape = U.cssEscape, aggregate = U.aggregate;

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
    // The run asked for last: steps count from it while its SVG is on its way (five quick
    // clicks on "previous" go five runs back), and only its answer is drawn (answers to
    // earlier clicks may come back later). data-loading is set until it is drawn.
    var wanted = null, asked = 0;
    function show(chip) {
      var runId = chip.getAttribute("data-run-id");
      var mine = ++asked;
      wanted = chip;
      section.setAttribute("data-loading", runId);
      var collapsed = section.getAttribute("data-collapsed") || "";
      var query = "?run_id=" + encodeURIComponent(runId) + (collapsed ? "&collapsed=" + encodeURIComponent(collapsed) : "");
      return fetch(section.getAttribute("data-svg-url") + query, {credentials: "same-origin"})
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
        .then(function (text) {
          if (mine !== asked) { return; }
          wanted = null;
          section.removeAttribute("data-loading");
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
        }).catch(function () {
          if (mine === asked) { wanted = null; section.removeAttribute("data-loading"); }
        });
    }
    function step(delta) {
      var all = chips();
      var at = wanted ? all.indexOf(wanted) : -1;
      if (at < 0) { at = all.findIndex(function (c) { return c.classList.contains("current"); }); }
      var from = at < 0 ? all.length - 1 : at;
      var next = all[Math.min(all.length - 1, Math.max(0, from + delta))];
      if (next && next !== all[from]) { show(next); }
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

  U.graphToggles = graphToggles;
  U.graphView = graphView;
})(window.Updraft);
