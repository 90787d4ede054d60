// The SLA countdowns keep running while the page is open. Without this script each due time is
// still shown, with how long was left when the page was made.
(function () {
  "use strict";
  function span(ms) {
    var minutes = Math.floor(Math.abs(ms) / 60000);
    var days = Math.floor(minutes / 1440), hours = Math.floor((minutes % 1440) / 60), mins = minutes % 60;
    if (days) { return days + " d " + hours + " h"; }
    return hours ? hours + " h " + mins + " min" : mins + " min";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-due]").forEach(function (element) {
      var left = Date.parse(element.getAttribute("data-due")) - now;
      element.textContent = left >= 0 ? "in " + span(left) : span(left) + " ago";
    });
  }
  tick();
  window.setInterval(tick, 30000);
})();
