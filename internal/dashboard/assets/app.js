// rollguard dashboard: live updates over server-sent events, local times. No framework, no network
// access beyond this dashboard.
(function () {
  "use strict";
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("datetime"));
      if (isNaN(t)) { return; }
      var s = Math.max(0, Math.round((Date.now() - t) / 1000));
      var rel = s < 60 ? s + "s ago" : s < 3600 ? Math.round(s / 60) + "m ago" : s < 172800 ? Math.round(s / 3600) + "h ago" : Math.round(s / 86400) + "d ago";
      el.textContent = rel;
    });
  }
  function connect(live) {
    var state = document.getElementById("live-state");
    var es = new EventSource(live.getAttribute("data-live"));
    es.addEventListener("update", function (ev) {
      // Keep keyboard focus on the same control across the update.
      var focused = document.activeElement && document.activeElement.id;
      live.innerHTML = ev.data;
      localTimes(live);
      if (focused) {
        var el = document.getElementById(focused);
        if (el) { el.focus(); }
      }
      if (state) { state.textContent = "live updates: on · updated " + new Date().toLocaleTimeString(); }
      document.body.setAttribute("data-updated", String(Date.now()));
    });
    es.onopen = function () { if (state) { state.textContent = "live updates: on"; } };
    es.onerror = function () { if (state) { state.textContent = "live updates: reconnecting…"; } };
  }
  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    var live = document.getElementById("live");
    if (live && window.EventSource) { connect(live); }
    setInterval(function () { localTimes(document); }, 15000);
  });
})();
