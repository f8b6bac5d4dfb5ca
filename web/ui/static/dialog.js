/* Updraft UI: the clear / mark dialog with its preview. */
(function (U) {
  "use strict";
  var setState = U.setState, cssEscape = U.cssEscape, aggregate = U.aggregate;

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

  U.actionDialog = actionDialog;
})(window.Updraft);
