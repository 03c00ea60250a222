// Idle warning for staff pages (ux.md rule 28, WCAG 2.2.1): a banner two minutes before the
// session's idle timeout with "Stay signed in", which pings the server. Everything else works
// without JavaScript; the server ends idle sessions itself and returns to the page after sign-in.
(function () {
  "use strict";
  var body = document.body;
  var minutes = parseFloat(body.getAttribute("data-idle-minutes"));
  var warn = parseFloat(body.getAttribute("data-idle-warning-minutes")) || 2;
  var banner = document.getElementById("idle-warning");
  var stay = document.getElementById("idle-stay");
  if (!minutes || !banner || !stay) { return; }
  var showTimer = null, endTimer = null;

  function schedule() {
    window.clearTimeout(showTimer);
    window.clearTimeout(endTimer);
    banner.hidden = true;
    showTimer = window.setTimeout(function () { banner.hidden = false; },
                                  Math.max(0, minutes - warn) * 60000);
    // after the timeout the server has ended the session: reloading shows the sign-in page
    endTimer = window.setTimeout(function () { window.location.reload(); }, minutes * 60000 + 3000);
  }

  stay.addEventListener("click", function () {
    fetch(body.getAttribute("data-ping-url"), {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json(); })
      .then(function (d) { if (d.signed_in) { schedule(); } else { window.location.reload(); } })
      .catch(function () { window.location.reload(); });
  });
  schedule();
})();

// Print view: a button that opens the browser's print dialog (without JavaScript the browser's own
// Print menu does the same; the button stays hidden).
(function () {
  "use strict";
  var buttons = document.querySelectorAll("[data-print]");
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].hidden = false;
    buttons[i].addEventListener("click", function () { window.print(); });
  }
})();
