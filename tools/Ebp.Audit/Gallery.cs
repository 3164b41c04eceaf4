namespace Ebp.Audit;

/// <summary>
/// The static gallery (<c>index.html</c>): one self-contained page, plain HTML + JavaScript, no external assets. The rows
/// are embedded as JSON; the script fills a table (overlay thumbnails, sortable columns, filters by flag, class, method
/// and image name, pages of 100 rows). The view state lives in the URL fragment, e.g.
/// <c>index.html#flag=low_energy&amp;class=3&amp;method=ebp&amp;sort=energy_in_boxes&amp;dir=asc&amp;page=2&amp;size=50&amp;q=cat</c>
/// (<c>flag</c>: a flag name, <c>any</c> or <c>none</c>; <c>class</c>: a class index), so a filtered view can be bookmarked.
/// </summary>
internal static class Gallery
{
    public static string Html(string dataJson) => Template.Replace("/*AUDIT_DATA*/", dataJson);

    private const string Template = """
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Saliency audit</title>
<style>
  body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em; color: #222; }
  h1 { font-size: 1.5em; margin: 0 0 .3em; }
  h2 { font-size: 1.15em; margin: 1.4em 0 .4em; }
  .status-complete { color: #176b2c; } .status-cancelled { color: #a15c00; }
  table { border-collapse: collapse; }
  th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: middle; }
  th.sortable { cursor: pointer; user-select: none; white-space: nowrap; }
  th.sorted-asc::after { content: " \25B2"; } th.sorted-desc::after { content: " \25BC"; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  td img { width: 96px; height: auto; image-rendering: pixelated; display: block; }
  .controls { margin: .8em 0; display: flex; flex-wrap: wrap; gap: .6em 1.2em; align-items: center; }
  .flag { display: inline-block; background: #fde2e1; color: #8a1c14; border-radius: 3px; padding: 0 4px; margin: 1px; font-size: 12px; }
  .hit { color: #176b2c; } .miss { color: #b3261e; }
  .muted { color: #777; }
  #pager button { margin: 0 .3em; }
  .cards td, .cards th { border: none; padding: 1px 10px 1px 0; }
</style>
</head>
<body>
<h1>Saliency audit</h1>
<div id="overview"></div>
<div class="controls">
  <label>Flag <select id="flag"></select></label>
  <label>Class <select id="class"></select></label>
  <label>Method <select id="method"></select></label>
  <label>Image <input id="q" type="search" placeholder="name contains"></label>
  <span><span id="count">0</span> of <span id="total">0</span> rows</span>
</div>
<table id="results">
  <thead><tr id="header"></tr></thead>
  <tbody id="rows"></tbody>
</table>
<p id="pager"><button id="prev" type="button">&#8249; previous</button><span id="pageinfo"></span><button id="next" type="button">next &#8250;</button></p>
<h2>Pointing game</h2>
<div id="pointing"></div>
<h2>Skipped files</h2>
<div id="skipped"></div>
<script id="audit-data" type="application/json">/*AUDIT_DATA*/</script>
<script>
"use strict";
(function () {
  var data = JSON.parse(document.getElementById("audit-data").textContent);
  var col = {};
  data.columns.forEach(function (c, i) { col[c] = i; });
  var summary = data.summary;
  var shown = [
    { key: "overlay", title: "overlay", sortable: false },
    { key: "image", title: "image" },
    { key: "method", title: "method" },
    { key: "class", title: "class", render: function (r) { return r[col.class_name]; } },
    { key: "rank", title: "rank", num: true },
    { key: "score", title: "score", num: true },
    { key: "predicted", title: "predicted", render: function (r) { return r[col.predicted_name]; } },
    { key: "label", title: "label", render: function (r) { return r[col.label_name]; } },
    { key: "peak", title: "peak (x, y)", sortable: false },
    { key: "energy_in_boxes", title: "energy in boxes", num: true },
    { key: "pointing", title: "pointing" },
    { key: "flags", title: "flags" }
  ];
  var state = { flag: "", cls: "", method: "", q: "", sort: "", dir: "asc", page: 1, size: 100 };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function option(select, value, text) { var o = el("option", { value: value }, text); select.appendChild(o); }

  function readHash() {
    var h = location.hash.replace(/^#/, "");
    var p = {};
    h.split("&").forEach(function (kv) {
      if (!kv) return;
      var i = kv.indexOf("=");
      var k = decodeURIComponent(i < 0 ? kv : kv.slice(0, i));
      p[k] = i < 0 ? "" : decodeURIComponent(kv.slice(i + 1).replace(/\+/g, " "));
    });
    state.flag = p.flag || "";
    state.cls = p["class"] !== undefined ? p["class"] : "";
    state.method = p.method || "";
    state.q = p.q || "";
    state.sort = p.sort || "";
    state.dir = p.dir === "desc" ? "desc" : "asc";
    state.page = Math.max(1, parseInt(p.page, 10) || 1);
    state.size = Math.max(1, parseInt(p.size, 10) || 100);
  }
  function writeHash() {
    var parts = [];
    if (state.flag) parts.push("flag=" + encodeURIComponent(state.flag));
    if (state.cls !== "") parts.push("class=" + encodeURIComponent(state.cls));
    if (state.method) parts.push("method=" + encodeURIComponent(state.method));
    if (state.q) parts.push("q=" + encodeURIComponent(state.q));
    if (state.sort) parts.push("sort=" + encodeURIComponent(state.sort) + "&dir=" + state.dir);
    if (state.page > 1) parts.push("page=" + state.page);
    if (state.size !== 100) parts.push("size=" + state.size);
    var h = parts.length ? "#" + parts.join("&") : "";
    if (h !== location.hash && history.replaceState) history.replaceState(null, "", h || location.pathname + location.search);
  }

  function matches(r) {
    var flags = r[col.flags];
    if (state.flag === "any" && flags.length === 0) return false;
    if (state.flag === "none" && flags.length > 0) return false;
    if (state.flag && state.flag !== "any" && state.flag !== "none" && flags.indexOf(state.flag) < 0) return false;
    if (state.cls !== "" && String(r[col["class"]]) !== state.cls) return false;
    if (state.method && r[col.method] !== state.method) return false;
    if (state.q && r[col.image].toLowerCase().indexOf(state.q.toLowerCase()) < 0) return false;
    return true;
  }
  function sortValue(r, key) {
    if (key === "flags") return r[col.flags].length;
    return r[col[key]];
  }
  function compare(a, b) {
    var va = sortValue(a, state.sort), vb = sortValue(b, state.sort);
    if (va === null || va === undefined) return (vb === null || vb === undefined) ? 0 : 1;   // empty cells last
    if (vb === null || vb === undefined) return -1;
    var c = (typeof va === "number" && typeof vb === "number") ? va - vb : (String(va) < String(vb) ? -1 : String(va) > String(vb) ? 1 : 0);
    return state.dir === "desc" ? -c : c;
  }

  function render() {
    var selected = data.rows.filter(matches);
    if (state.sort && col[state.sort] !== undefined || state.sort === "flags") {
      selected = selected.map(function (r, i) { return [r, i]; })
        .sort(function (x, y) { return compare(x[0], y[0]) || x[1] - y[1]; })
        .map(function (x) { return x[0]; });
    }
    var pages = Math.max(1, Math.ceil(selected.length / state.size));
    if (state.page > pages) state.page = pages;
    var first = (state.page - 1) * state.size;
    var body = document.getElementById("rows");
    while (body.firstChild) body.removeChild(body.firstChild);
    selected.slice(first, first + state.size).forEach(function (r) {
      var tr = el("tr", { "class": "row", "data-flags": r[col.flags].join(" "), "data-image": r[col.image] });
      shown.forEach(function (c) {
        var td = el("td");
        if (c.key === "overlay") {
          if (r[col.overlay]) {
            var a = el("a", { href: r[col.overlay] });
            a.appendChild(el("img", { src: r[col.overlay], alt: r[col.image] + " " + r[col.method] + " " + r[col.class_name], loading: "lazy" }));
            td.appendChild(a);
          }
        } else if (c.key === "peak") {
          td.textContent = r[col.peak_x] === null ? "–" : "(" + r[col.peak_x] + ", " + r[col.peak_y] + ")";
        } else if (c.key === "flags") {
          r[col.flags].forEach(function (f) { td.appendChild(el("span", { "class": "flag" }, f)); });
        } else if (c.key === "pointing") {
          var p = r[col.pointing];
          td.textContent = p === null ? "–" : p;
          if (p) td.className = p;
        } else {
          var v = c.render ? c.render(r) : r[col[c.key]];
          td.textContent = v === null || v === undefined ? "–" : v;
          if (c.num) td.className = "num";
        }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    document.getElementById("count").textContent = selected.length;
    document.getElementById("total").textContent = data.rows.length;
    document.getElementById("pageinfo").textContent = " page " + state.page + " of " + pages + " ";
    document.getElementById("prev").disabled = state.page <= 1;
    document.getElementById("next").disabled = state.page >= pages;
    Array.prototype.forEach.call(document.querySelectorAll("#header th"), function (th) {
      th.classList.remove("sorted-asc", "sorted-desc");
      if (th.getAttribute("data-key") === state.sort) th.classList.add(state.dir === "desc" ? "sorted-desc" : "sorted-asc");
    });
    document.getElementById("flag").value = state.flag;
    document.getElementById("class").value = state.cls;
    document.getElementById("method").value = state.method;
    if (document.getElementById("q").value !== state.q) document.getElementById("q").value = state.q;
    writeHash();
  }

  function setup() {
    var header = document.getElementById("header");
    shown.forEach(function (c) {
      var th = el("th", { "data-key": c.key }, c.title);
      if (c.sortable !== false) {
        th.className = "sortable";
        th.addEventListener("click", function () {
          if (state.sort === c.key) state.dir = state.dir === "asc" ? "desc" : "asc";
          else { state.sort = c.key; state.dir = c.num ? "desc" : "asc"; }
          state.page = 1;
          render();
        });
      }
      header.appendChild(th);
    });
    var flag = document.getElementById("flag");
    option(flag, "", "all rows"); option(flag, "any", "any flag"); option(flag, "none", "no flag");
    data.flags.forEach(function (f) { option(flag, f, f + " (" + summary.flags[f] + ")"); });
    var cls = document.getElementById("class");
    option(cls, "", "all classes");
    var present = {};
    data.rows.forEach(function (r) { present[r[col["class"]]] = true; });
    data.classes.forEach(function (name, i) { if (present[i]) option(cls, String(i), name); });
    var method = document.getElementById("method");
    option(method, "", "all methods");
    data.methods.forEach(function (m) { option(method, m, m); });
    flag.addEventListener("change", function () { state.flag = flag.value; state.page = 1; render(); });
    cls.addEventListener("change", function () { state.cls = cls.value; state.page = 1; render(); });
    method.addEventListener("change", function () { state.method = method.value; state.page = 1; render(); });
    var q = document.getElementById("q");
    q.addEventListener("input", function () { state.q = q.value; state.page = 1; render(); });
    document.getElementById("prev").addEventListener("click", function () { state.page--; render(); });
    document.getElementById("next").addEventListener("click", function () { state.page++; render(); });
    window.addEventListener("hashchange", function () { readHash(); render(); });

    var ov = document.getElementById("overview");
    var p = el("p");
    p.appendChild(document.createTextNode("Status: "));
    p.appendChild(el("strong", { "class": "status-" + summary.status }, summary.status));
    var layers = summary.job.layers || {};
    p.appendChild(document.createTextNode(" — model " + summary.job.model + ", methods " +
      summary.job.methods.map(function (m) { return m + " at " + (layers[m] || "(input)"); }).join(", ") +
      ", min energy " + summary.job.min_energy + "."));
    ov.appendChild(p);
    var t = el("table", { "class": "cards" });
    var c = summary.counts;
    [["inputs", c.inputs], ["processed", c.processed], ["skipped", c.skipped], ["pending", c.pending], ["rows", c.rows],
     ["annotated images", c.annotated_images], ["label accuracy", c.label_accuracy === null ? "–" : (100 * c.label_accuracy).toFixed(1) + " %"],
     ["flagged rows", c.flagged_rows]].forEach(function (kv) {
      var tr = el("tr"); tr.appendChild(el("th", null, kv[0])); tr.appendChild(el("td", null, kv[1])); t.appendChild(tr);
    });
    ov.appendChild(t);

    var pt = el("table");
    var hr = el("tr"); hr.appendChild(el("th", null, "class"));
    data.methods.forEach(function (m) { hr.appendChild(el("th", null, m)); });
    pt.appendChild(hr);
    var classes = {};
    data.methods.forEach(function (m) { summary.pointing[m].per_class.forEach(function (e) { classes[e["class"]] = e.name; }); });
    Object.keys(classes).map(Number).sort(function (a, b) { return a - b; }).forEach(function (k) {
      var tr = el("tr"); tr.appendChild(el("td", null, classes[k]));
      data.methods.forEach(function (m) {
        var e = summary.pointing[m].per_class.filter(function (x) { return x["class"] === k; })[0];
        tr.appendChild(el("td", { "class": "num" }, e ? (100 * e.accuracy).toFixed(1) + " % (" + e.hits + "/" + e.total + ")" : "–"));
      });
      pt.appendChild(tr);
    });
    var all = el("tr"); all.appendChild(el("th", null, "all"));
    data.methods.forEach(function (m) {
      var s = summary.pointing[m];
      all.appendChild(el("th", { "class": "num" }, s.accuracy === null ? "–" : (100 * s.accuracy).toFixed(1) + " % (" + s.hits + "/" + s.total + ")"));
    });
    pt.appendChild(all);
    document.getElementById("pointing").appendChild(pt);

    var sk = document.getElementById("skipped");
    if (summary.skipped.length === 0) sk.appendChild(el("p", { "class": "muted" }, "None."));
    else {
      var ul = el("ul", { id: "skipped-list" });
      summary.skipped.forEach(function (s) { var li = el("li"); li.appendChild(el("code", null, s.image)); li.appendChild(document.createTextNode(": " + s.reason)); ul.appendChild(li); });
      sk.appendChild(ul);
    }
  }

  setup();
  readHash();
  render();
})();
</script>
</body>
</html>
""";
}
