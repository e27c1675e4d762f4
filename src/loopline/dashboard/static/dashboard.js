// loopline dashboard: live parts refresh themselves; actions ask before they act.
// No library, no request to any other host.
(function () {
  "use strict";
  var EVERY = 2000;
  function refresh(el) {
    var url = el.getAttribute("data-live");
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) { el.innerHTML = html; } })
      .catch(function () { /* the next round tries again */ })
      .finally(function () { setTimeout(function () { refresh(el); }, EVERY); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(function (el) {
      setTimeout(function () { refresh(el); }, EVERY);
    });
    // A sign-in form shown in place of a page comes back to that page.
    document.querySelectorAll("form[action='/login'] input[name=next]").forEach(function (input) {
      if (location.pathname !== "/login") { input.value = location.pathname + location.search; }
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  });
})();
