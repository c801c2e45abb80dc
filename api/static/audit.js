// The auditor's page: the instant picker asks the server who owned the buyer at that
// moment (the same replay as GET /v1/clients/{id}/ownership?at=) and shows the answer.
"use strict";
(function () {
  var open = document.getElementById("open-client");
  if (open) {
    open.addEventListener("submit", function (event) {
      event.preventDefault();
      var id = document.getElementById("client-id").value.trim();
      window.location.href = "/audit/clients/" + encodeURIComponent(id);
    });
  }
  var picker = document.getElementById("picker");
  if (!picker) { return; }
  var instants = JSON.parse(document.getElementById("instants").textContent);
  var slider = document.getElementById("instant-slider");
  var input = document.getElementById("instant");
  var asked = 0;

  function text(id, value) { document.getElementById(id).textContent = value || "—"; }

  function localValue(iso) {
    var d = new Date(iso);
    var pad = function (n) { return String(n).padStart(2, "0"); };
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  function show(answer) {
    var o = answer.owner;
    text("owner-at", answer.at);
    text("owner-status", o.status);
    text("owner-consultant", o.consultant_id);
    text("owner-partner", o.partner_id);
    text("owner-basis", o.basis);
    var d = answer.decided_by;
    text("owner-decided", d ? "v" + d.version + " " + d.type + " " + d.at : "");
    var r = answer.rule;
    text("owner-rule", r ? "政策版本 " + r.version + "：判客规则 " + r.settings.judge_rule +
      "，报备有效期 " + r.settings.report_validity + "，保护期 " + r.settings.protection : "");
    picker.dataset.state = "shown";
  }

  function ask(iso) {
    var mine = ++asked;
    picker.dataset.state = "loading";
    fetch(picker.dataset.ownership + "?at=" + encodeURIComponent(iso), {
      credentials: "same-origin", headers: { "Accept": "application/json" }
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (answer) {
      if (mine === asked) { show(answer); }  // a late answer never overwrites a newer one
    }).catch(function (error) {
      if (mine === asked) { text("owner-status", "错误：" + error.message); picker.dataset.state = "error"; }
    });
  }

  slider.addEventListener("input", function () {
    var iso = instants[Number(slider.value)];
    input.value = localValue(iso);
    ask(iso);
  });
  input.addEventListener("change", function () {
    if (input.value) { ask(new Date(input.value).toISOString()); }
  });
  if (instants.length) { input.value = localValue(instants[instants.length - 1]); }
})();
