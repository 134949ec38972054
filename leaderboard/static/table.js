// Sort and filter the leaderboard tables. No dependencies, works from file://.
// The table marked data-url-state keeps its view in location.hash
// (#sort=<column>&dir=asc|desc&family=<family>&q=<text>), so a view can be linked.
(function () {
  "use strict";

  function readState() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    return {
      sort: params.get("sort") || "",
      dir: params.get("dir") === "asc" ? "asc" : params.get("dir") === "desc" ? "desc" : "",
      family: params.get("family") || "",
      q: params.get("q") || "",
    };
  }

  function writeState(state) {
    var params = new URLSearchParams();
    if (state.sort) { params.set("sort", state.sort); params.set("dir", state.dir); }
    if (state.family) params.set("family", state.family);
    if (state.q) params.set("q", state.q);
    var hash = params.toString();
    var url = location.href.split("#")[0] + (hash ? "#" + hash : "");
    try { history.replaceState(null, "", url); } catch (e) { location.hash = hash; }
  }

  function sortValue(cell, numeric) {
    var raw = cell ? cell.getAttribute("data-sort") : "";
    if (raw === null || raw === "") return null;
    if (numeric) { var n = parseFloat(raw); return isNaN(n) ? null : n; }
    return raw.toLowerCase();
  }

  function setup(table) {
    var headers = Array.prototype.slice.call(table.querySelectorAll("thead th"));
    var body = table.tBodies[0];
    var urlState = table.hasAttribute("data-url-state");
    var controls = document.querySelector('.controls[data-table="' + table.id + '"]');
    var familySelect = controls && controls.querySelector(".family-filter");
    var textInput = controls && controls.querySelector(".text-filter");
    var count = controls && controls.querySelector(".count");
    var state = { sort: "", dir: "", family: "", q: "" };

    function sortBy(key, dir) {
      var index = -1;
      headers.forEach(function (th, i) {
        th.removeAttribute("aria-sort");
        if (th.getAttribute("data-key") === key) index = i;
      });
      if (index < 0) return false;
      var numeric = headers[index].getAttribute("data-type") === "num";
      var sign = dir === "asc" ? 1 : -1;
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = sortValue(a.cells[index], numeric), y = sortValue(b.cells[index], numeric);
        if (x === null && y === null) return 0;
        if (x === null) return 1;  // missing values last, whatever the direction
        if (y === null) return -1;
        return x < y ? -sign : x > y ? sign : 0;
      });
      rows.forEach(function (row) { body.appendChild(row); });
      headers[index].setAttribute("aria-sort", dir === "asc" ? "ascending" : "descending");
      return true;
    }

    function filter() {
      var q = state.q.toLowerCase().trim(), shown = 0, rows = body.rows;
      for (var i = 0; i < rows.length; i++) {
        var row = rows[i];
        var ok = (!state.family || row.getAttribute("data-family") === state.family) &&
                 (!q || (row.getAttribute("data-search") || "").indexOf(q) >= 0);
        row.hidden = !ok;
        if (ok) shown++;
      }
      if (count) count.textContent = "showing " + shown + " of " + rows.length;
    }

    function apply(next) {
      state = next;
      if (state.sort && !sortBy(state.sort, state.dir || "desc")) state.sort = "";
      if (familySelect) familySelect.value = state.family;
      if (familySelect && familySelect.value !== state.family) state.family = familySelect.value;
      if (textInput && textInput.value !== state.q) textInput.value = state.q;
      filter();
    }

    function changed() { if (urlState) writeState(state); }

    headers.forEach(function (th) {
      th.querySelector("button").addEventListener("click", function () {
        var key = th.getAttribute("data-key");
        var numeric = th.getAttribute("data-type") === "num";
        var dir = state.sort === key ? (state.dir === "asc" ? "desc" : "asc") : (numeric ? "desc" : "asc");
        state.sort = key; state.dir = dir;
        sortBy(key, dir);
        changed();
      });
    });
    if (familySelect) familySelect.addEventListener("change", function () {
      state.family = familySelect.value; filter(); changed();
    });
    if (textInput) textInput.addEventListener("input", function () {
      state.q = textInput.value; filter(); changed();
    });
    if (urlState) {
      apply(readState());
      window.addEventListener("hashchange", function () { apply(readState()); });
    } else {
      filter();
    }
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), setup);
})();
