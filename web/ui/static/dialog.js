/* Updraft UI: the clear / mark dialog with its preview. */
(function (U) {
  "use strict";
  var setState = U.setState, cssEscape = U.cssEscape, aggregate = U.aggregate;

  // The clear / mark dialog: a link with data-action-dialog opens its preview (the same
  // page, ?partial=1) in a <dialog>; changing an option fetches the preview again; the
  // confirm button posts the form. Without the script the link is a page of its own.
  function actionDialog() {
    var dialog = null;
    var loads = 0;  // each preview asked for; only the last one asked is shown
    function ensure() {
      if (dialog) { return dialog; }
      dialog = document.createElement("dialog");
      dialog.className = "action-dialog";
      dialog.id = "action-dialog";
      document.body.appendChild(dialog);
      dialog.addEventListener("click", function (e) {
        if (e.target.closest("#action-cancel")) { dialog.close(); }
      });
      // Closed (Cancel, Esc): a preview still on its way must not open it again.
      dialog.addEventListener("close", function () { loads += 1; dialog.removeAttribute("data-loading"); });
      dialog.addEventListener("change", function (e) {
        var form = e.target.closest("#action-options");
        if (form && dialog.open) { load(form.getAttribute("action") + "?" + new URLSearchParams(new FormData(form)).toString(), false); }
      });
      dialog.addEventListener("submit", function (e) {
        var form = e.target;
        if (form.id === "action-options") {
          e.preventDefault();
          load(form.getAttribute("action") + "?" + new URLSearchParams(new FormData(form)).toString(), false);
        } else if (form.id === "action-apply") {
          var next = form.querySelector(".next-url");
          if (next) { next.value = location.pathname + location.search; }
          var button = form.querySelector("#action-confirm-button");
          if (button) { button.disabled = true; }
        }
      });
      return dialog;
    }
    // Option changes fetch previews one after the other; their answers may come back in any
    // order (or after the dialog was closed): only the answer to the newest one is shown, and
    // only opening a link opens the dialog. data-loading stays until that answer is shown.
    function load(url, opening) {
      var d = ensure();
      var mine = ++loads;
      d.setAttribute("data-loading", "1");
      var sep = url.indexOf("?") >= 0 ? "&" : "?";
      return fetch(url + sep + "partial=1", {credentials: "same-origin"}).then(function (r) {
        return r.text().then(function (html) { return {ok: r.ok, status: r.status, html: html}; });
      }).then(function (res) {
        if (mine !== loads || !(opening || d.open)) { return; }
        d.innerHTML = res.ok ? res.html : '<p class="flash flash-error">Could not load the preview (HTTP ' + res.status + ').</p><button type="button" id="action-cancel">Close</button>';
        d.removeAttribute("data-loading");
        if (!d.open) { d.showModal(); }
      });
    }
    document.addEventListener("click", function (e) {
      var link = e.target.closest ? e.target.closest("a[data-action-dialog]") : null;
      if (!link || e.ctrlKey || e.metaKey || e.shiftKey || !window.HTMLDialogElement) { return; }
      e.preventDefault();
      load(link.getAttribute("href"), true);
    });
  }

  U.actionDialog = actionDialog;
})(window.Updraft);
