// Partial updates for the review pages, written for this project (no framework, no CDN).
// A form POST is sent with fetch and only <main> is swapped; every form still works without
// JavaScript (POST, then a 303 to the page). Focus moves to the first alert or status message.
(function () {
  "use strict";
  function swap(html, url) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var next = doc.getElementById("content");
    var main = document.getElementById("content");
    if (!next || !main) { document.open(); document.write(html); document.close(); return; }
    main.replaceWith(next);
    document.title = doc.title;
    if (url) { history.replaceState(null, "", url); }
    var target = next.querySelector("[role=alert], [role=status]") || next;
    if (!target.hasAttribute("tabindex")) { target.setAttribute("tabindex", "-1"); }
    target.focus();
  }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== "post" || form.hasAttribute("data-full-reload")) {
      return;
    }
    if (!document.getElementById("content") || !form.closest("#content")) { return; }
    event.preventDefault();
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      credentials: "same-origin",
      headers: { "X-Review-Partial": "1" }
    }).then(function (response) {
      return response.text().then(function (html) { swap(html, response.redirected ? response.url : null); });
    }).catch(function () {
      buttons.forEach(function (b) { b.disabled = false; });
      form.submit();
    });
  });
}());
