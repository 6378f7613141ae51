// The console's own script: the CSRF token on every htmx request, and keyboard triage in the
// review queue (j/k or arrows to move, Enter or o to open, f to file, r to reject with a
// reason, d to mark a duplicate of another case on the page, x to select for a bulk action). Nothing here is needed to read a page.
(function () {
  "use strict";
  var csrf = document.querySelector('meta[name="csrf-token"]');
  document.addEventListener("htmx:configRequest", function (e) {
    if (csrf) { e.detail.headers["X-CSRF-Token"] = csrf.content; }
  });

  function rows() { return Array.prototype.slice.call(document.querySelectorAll("tr.queue-row")); }
  function current() { return document.querySelector("tr.queue-row.selected"); }
  function select(row) {
    rows().forEach(function (r) { r.classList.remove("selected"); r.removeAttribute("aria-selected"); });
    if (row) {
      row.classList.add("selected");
      row.setAttribute("aria-selected", "true");
      row.scrollIntoView({ block: "nearest" });
      try { sessionStorage.setItem("gridline-queue-selected", row.id); } catch (_) {}
    }
  }
  function move(step) {
    var all = rows(); if (!all.length) { return; }
    var i = all.indexOf(current());
    select(all[Math.max(0, Math.min(all.length - 1, i < 0 ? 0 : i + step))]);
  }
  function restore() {
    var id = null;
    try { id = sessionStorage.getItem("gridline-queue-selected"); } catch (_) {}
    var row = id && document.getElementById(id);
    select(row || rows()[0]);
  }
  document.addEventListener("DOMContentLoaded", restore);
  document.addEventListener("htmx:afterSettle", function () { if (!current()) { restore(); } });

  document.addEventListener("keydown", function (e) {
    if (!rows().length || e.ctrlKey || e.metaKey || e.altKey) { return; }
    var tag = (e.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select") { return; }
    var row = current();
    switch (e.key) {
      case "j": case "ArrowDown": move(1); break;
      case "k": case "ArrowUp": move(-1); break;
      case "Enter": case "o":
        if (row) { window.location = row.getAttribute("data-href"); } break;
      case "f":
        if (row) { var b = row.querySelector("button[data-action=file]"); if (b) { b.click(); } } break;
      case "r":
        if (row) { var input = row.querySelector("input[name=comment]"); if (input) { input.focus(); } } break;
      case "d":
        if (row) { var original = row.querySelector("select[name=duplicate_of]"); if (original) { original.focus(); } } break;
      case "x":
        if (row) { var box = row.querySelector("input[type=checkbox]"); if (box) { box.checked = !box.checked; } } break;
      default: return;
    }
    e.preventDefault();
  });

  // A map in a form that asks for a place (`.pick-map`): a click puts the clicked position
  // into the form's latitude and longitude fields, and its datum into the datum choice,
  // inverting the projection the server drew the map with (`data-projection`, `data-inverse`).
  document.addEventListener("click", function (e) {
    var svg = e.target.closest && e.target.closest(".pick-map svg.map");
    if (!svg) { return; }
    var box = svg.closest(".pick-map");
    var p = svg.createSVGPoint(); p.x = e.clientX; p.y = e.clientY;
    var at = p.matrixTransform(svg.getScreenCTM().inverse());
    var n = (svg.getAttribute("data-inverse") || "").split(" ").map(Number);
    var lat, lon;
    if (svg.getAttribute("data-projection") === "plain") {
      lon = n[0] + at.x / (n[2] * n[3]);
      lat = n[1] - at.y / n[2];
    } else {
      var world = 256 * Math.pow(2, n[3]);
      var wx = n[0] + at.x / n[2], wy = n[1] + at.y / n[2];
      lon = wx / world * 360 - 180;
      lat = Math.atan(Math.sinh(Math.PI * (1 - 2 * wy / world))) * 180 / Math.PI;
    }
    if (!isFinite(lat) || !isFinite(lon)) { return; }
    document.querySelector(box.getAttribute("data-lat")).value = lat.toFixed(6);
    document.querySelector(box.getAttribute("data-lon")).value = lon.toFixed(6);
    var datum = document.querySelector(box.getAttribute("data-datum"));
    if (datum) { datum.value = svg.getAttribute("data-datum"); }
    var dot = svg.querySelector("circle.picked");
    if (!dot) {
      dot = document.createElementNS("http://www.w3.org/2000/svg", "circle");
      dot.setAttribute("class", "picked"); dot.setAttribute("r", "7");
      svg.appendChild(dot);
    }
    dot.setAttribute("cx", at.x); dot.setAttribute("cy", at.y);
  });
})();
