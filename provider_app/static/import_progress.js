// Live progress for a bulk CSV upload: polls the job's JSON and reloads when it settles.
(function () {
  "use strict";
  var box = document.getElementById("import-progress");
  if (!box) { return; }
  var active = { queued: true, validating: true, importing: true };
  var bar = document.getElementById("import-bar");
  var done = document.getElementById("import-done");
  var total = document.getElementById("import-total");
  var phase = document.getElementById("import-phase");

  function poll() {
    fetch(box.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (job) {
        if (!job) { setTimeout(poll, 5000); return; }
        if (!active[job.status]) { window.location.reload(); return; }
        bar.max = job.total || 1;
        bar.value = job.done;
        bar.textContent = job.done + " / " + job.total;
        done.textContent = job.done;
        total.textContent = job.total || "?";
        phase.textContent = job.status === "importing" ? "Importing…" : "Checking rows…";
        setTimeout(poll, 1000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 500);
}());
