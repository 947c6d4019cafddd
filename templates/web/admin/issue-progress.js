// Follows a send on the console's progress page: the server-sent events at data-events carry
// the figures the page already shows (it works without this script; the refresh link reloads).
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (!box || !window.EventSource) { return; }
  var source = new EventSource(box.getAttribute("data-events"));
  var notice = document.getElementById("send-notice");
  if (notice && window.history.replaceState) {
    // The notice is for this visit: a reload shows the figures without it.
    window.history.replaceState(null, "", window.location.pathname);
  }
  function show(name, value) {
    var cell = box.querySelector('[data-field="' + name + '"]');
    if (cell) { cell.textContent = value; }
  }
  source.addEventListener("progress", function (event) {
    var figures = JSON.parse(event.data);
    ["state", "sent", "failed", "pending", "skipped", "rate_per_minute"].forEach(function (name) {
      show(name, String(figures[name]));
    });
    var eta = figures.eta_seconds;
    show("eta", eta === null ? "\u2014" : Math.floor(eta / 60) + " min " + (eta % 60) + " s");
    if (notice && figures.state !== notice.getAttribute("data-state")) {
      notice.hidden = true;  // "Paused", "Sending again.": no longer true once the state moves on
    }
    if (figures.done) {
      source.close();
      // Sent or cancelled: pause, resume and cancel no longer apply; do not offer them.
      var controls = document.getElementById("send-controls");
      if (controls) { controls.hidden = true; }
    }
  });
}());
