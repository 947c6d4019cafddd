// Follows a send on the console's progress page: the server-sent events at data-events carry
// the figures the page already shows (it works without this script; the refresh link reloads).
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (!box || !window.EventSource) { return; }
  var source = new EventSource(box.getAttribute("data-events"));
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
    if (figures.done) {
      source.close();
      // Sent or cancelled: pause, resume and cancel no longer apply; do not offer them.
      var controls = document.getElementById("send-controls");
      if (controls) { controls.hidden = true; }
    }
  });
}());
