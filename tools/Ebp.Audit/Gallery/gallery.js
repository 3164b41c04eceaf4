"use strict";
(function () {
  var data = JSON.parse(document.getElementById("audit-data").textContent);
  var summary = data.summary, text = data.text;
  var SVG = "http://www.w3.org/2000/svg";

  function el(tag, attrs, content) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (content !== undefined && content !== null) e.textContent = String(content);
    return e;
  }
  function svg(tag, attrs, content) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (content !== undefined) e.textContent = String(content);
    return e;
  }
  function option(select, value, label) { select.appendChild(el("option", { value: value }, label)); }
  function dash(v) { return v === null || v === undefined ? "–" : v; }

  // ---- Summary: counts, flags, pointing chart, confusion ----
  function counts() {
    var t = document.getElementById("counts"), c = summary.counts;
    [["inputs", c.inputs], ["processed", c.processed], ["skipped", c.skipped], ["pending", c.pending], ["rows (image × method × class)", c.rows],
     ["annotated images", c.annotated_images], ["labelled images", c.labelled_images], ["label accuracy (top-1)", text.label_accuracy],
     ["flagged rows", c.flagged_rows], ["flagged images", c.flagged_images]].forEach(function (kv) {
      var tr = el("tr"); tr.appendChild(el("th", null, kv[0])); tr.appendChild(el("td", { "class": "num" }, kv[1])); t.appendChild(tr);
    });
    var body = document.querySelector("#flag-counts tbody");
    data.flags.forEach(function (f) {
      var tr = el("tr", { "data-flag": f });
      var td = el("td"); var a = el("a", { href: "#flag=" + f }); a.appendChild(el("span", { "class": "flag" }, f)); td.appendChild(a); tr.appendChild(td);
      tr.appendChild(el("td", { "class": "num" }, summary.flags[f]));
      tr.appendChild(el("td", { "class": "muted" }, data.meanings[f]));
      body.appendChild(tr);
    });
  }

  function pointingChart() {
    var host = document.getElementById("pointing");
    var classes = {};
    data.methods.forEach(function (m) { summary.pointing[m].per_class.forEach(function (e) { classes[e["class"]] = e.name; }); });
    var keys = Object.keys(classes).map(Number).sort(function (a, b) { return a - b; });
    if (keys.length === 0) { host.appendChild(el("p", { "class": "muted" }, "No annotated (image, class) pairs.")); return; }
    var groups = keys.map(function (k) { return { key: String(k), name: classes[k] }; });
    groups.push({ key: "all", name: "all" });
    var bar = 13, gap = 9, left = 70, width = 260, right = 160, top = 22;
    var groupHeight = data.methods.length * bar + gap;
    var height = top + groups.length * groupHeight + 18;
    var s = svg("svg", { id: "pointing-chart", width: left + width + right, height: height, viewBox: "0 0 " + (left + width + right) + " " + height, role: "img",
                         "aria-label": "pointing accuracy per class and method" });
    data.methods.forEach(function (m, i) {
      s.appendChild(svg("rect", { x: left + i * 90, y: 4, width: 10, height: 10, "class": "m-" + m }));
      s.appendChild(svg("text", { x: left + i * 90 + 14, y: 13 }, m));
    });
    [0, 0.5, 1].forEach(function (v) {
      var x = left + v * width;
      s.appendChild(svg("line", { x1: x, x2: x, y1: top - 4, y2: height - 16, "class": "axis" }));
      s.appendChild(svg("text", { x: x, y: height - 4, "text-anchor": "middle" }, (100 * v) + " %"));
    });
    groups.forEach(function (g, gi) {
      var y0 = top + gi * groupHeight;
      s.appendChild(svg("text", { x: left - 8, y: y0 + data.methods.length * bar / 2 + 4, "text-anchor": "end", "font-weight": g.key === "all" ? "bold" : "normal" }, g.name));
      data.methods.forEach(function (m, mi) {
        var p = summary.pointing[m], acc = null, label = null;
        if (g.key === "all") { acc = p.accuracy; label = text.pointing[m]; }
        else {
          var e = p.per_class.filter(function (x) { return String(x["class"]) === g.key; })[0];
          if (e) { acc = e.accuracy; label = text.per_class[m][g.key]; }
        }
        var y = y0 + mi * bar;
        if (acc === null) { s.appendChild(svg("text", { x: left + 4, y: y + bar - 3, "class": "muted" }, "–")); return; }
        var r = svg("rect", { x: left, y: y + 1, width: Math.max(1, acc * width), height: bar - 2, "class": "bar m-" + m,
                              "data-method": m, "data-class": g.key, "data-label": label });
        r.appendChild(svg("title", {}, m + ", " + g.name + ": " + label));
        s.appendChild(r);
        s.appendChild(svg("text", { x: left + width + 6, y: y + bar - 3 }, label));
      });
    });
    host.appendChild(s);
  }

  function confusion() {
    var host = document.getElementById("confusion");
    var cells = summary.confusion;
    if (cells.length === 0) { host.appendChild(el("p", { "class": "muted" }, "No annotated images.")); return; }
    var ann = {}, pred = {}, at = {};
    cells.forEach(function (c) { ann[c.annotated] = c.annotated_name; pred[c.predicted] = c.predicted_name; at[c.annotated + "," + c.predicted] = c.images; });
    var rows = Object.keys(ann).map(Number).sort(function (a, b) { return a - b; });
    var cols = Object.keys(pred).map(Number).sort(function (a, b) { return a - b; });
    var max = Math.max.apply(null, cells.filter(function (c) { return c.annotated !== c.predicted; }).map(function (c) { return c.images; }).concat([1]));
    var t = el("table", { "class": "confusion", id: "confusion-matrix" });
    var hr = el("tr"); hr.appendChild(el("th", { "class": "corner" }, "annotated ↓ predicted →"));
    cols.forEach(function (c) { hr.appendChild(el("th", null, pred[c])); });
    t.appendChild(hr);
    rows.forEach(function (a) {
      var tr = el("tr"); tr.appendChild(el("th", null, ann[a]));
      cols.forEach(function (p) {
        var n = at[a + "," + p];
        var td = el("td", { "data-annotated": a, "data-predicted": p }, n || "");
        if (a === p) td.className = "diag";
        else if (n) td.style.background = "rgba(214, 39, 40, " + (0.15 + 0.55 * n / max).toFixed(3) + ")";
        tr.appendChild(td);
      });
      t.appendChild(tr);
    });
    host.appendChild(t);
  }

  // ---- Faithfulness (only for jobs run with --faithfulness): numbers as summary.md prints them ----
  function faithfulness() {
    var f = summary.faithfulness;
    if (!f) return;
    ["faithfulness", "faithfulness-link", "faithfulness-sep"].forEach(function (id) { document.getElementById(id).hidden = false; });
    document.getElementById("faithfulness-note").textContent =
      "Area under the curve of the " + f.score + " score of the explained class as the map's top pixels are set to zero (deletion: lower is better) " +
      "or inserted into a blurred copy (insertion: higher is better), in " + f.steps + " steps (RISE).";
    var ft = text.faithfulness;
    var body = document.querySelector("#faithfulness-methods tbody");
    data.methods.forEach(function (m) {
      var tr = el("tr", { "data-method": m });
      tr.appendChild(el("th", null, m));
      tr.appendChild(el("td", { "class": "num", "data-measure": "deletion" }, ft[m].all.deletion));
      tr.appendChild(el("td", { "class": "num", "data-measure": "insertion" }, ft[m].all.insertion));
      tr.appendChild(el("td", { "class": "num" }, f.methods[m].rows));
      body.appendChild(tr);
    });
    var classes = {};
    data.methods.forEach(function (m) { f.methods[m].per_class.forEach(function (e) { classes[e["class"]] = e.name; }); });
    var keys = Object.keys(classes).map(Number).sort(function (a, b) { return a - b; });
    var head = document.querySelector("#faithfulness-classes thead tr");
    head.appendChild(el("th", null, "class"));
    data.methods.forEach(function (m) { head.appendChild(el("th", { "class": "num" }, m)); });
    var cb = document.querySelector("#faithfulness-classes tbody");
    keys.forEach(function (k) {
      var tr = el("tr", { "data-class": String(k) });
      tr.appendChild(el("th", null, classes[k]));
      data.methods.forEach(function (m) {
        var e = f.methods[m].per_class.filter(function (x) { return x["class"] === k; })[0], t = ft[m][String(k)];
        var td = el("td", { "class": "num", "data-method": m, "data-class": String(k) });
        if (e && e.rows > 0) {
          td.appendChild(el("span", { "data-measure": "deletion" }, t.deletion));
          td.appendChild(document.createTextNode(" / "));
          td.appendChild(el("span", { "data-measure": "insertion" }, t.insertion));
          td.appendChild(document.createTextNode(" (" + e.rows + ")"));
        } else td.textContent = "–";
        tr.appendChild(td);
      });
      cb.appendChild(tr);
    });
  }

  // ---- Worst cases, side by side ----
  function cases() {
    var host = document.getElementById("cases");
    document.getElementById("worst-note").textContent = data.cases.length === 0
      ? "No (image, class) pair has a flag."
      : "The " + data.cases.length + " worst of " + data.case_count + " flagged (image, class) pairs: missed labels, then false positives, pointing misses, low energy (" +
        text.min_energy + "), peaks outside every object; each shown as the input with its boxes, then every method's map with the peak.";
    data.cases.forEach(function (c, i) {
      var sec = el("section", { "class": "case sev-" + c.severity, "data-image": c.image, "data-class": String(c["class"]), "data-severity": String(c.severity), "data-order": String(i) });
      sec.appendChild(el("h3", null, (i + 1) + ". " + c.title));
      sec.appendChild(el("p", { "class": "reason" }, c.reason));
      var panels = el("div", { "class": "panels" });
      if (c.input) {
        var f = el("figure"); f.appendChild(el("img", { src: c.input, alt: c.image + " input", loading: "lazy" }));
        f.appendChild(el("figcaption", null, "input: every annotated box")); panels.appendChild(f);
      }
      c.panels.forEach(function (p) {
        var f = el("figure", { "data-method": p.method });
        if (p.overlay) { var a = el("a", { href: p.overlay }); a.appendChild(el("img", { src: p.overlay, alt: c.image + " " + p.method, loading: "lazy" })); f.appendChild(a); }
        var cap = el("figcaption", null, p.caption);
        p.flags.forEach(function (x) { cap.appendChild(document.createTextNode(" ")); cap.appendChild(el("span", { "class": "flag" }, x)); });
        f.appendChild(cap);
        panels.appendChild(f);
      });
      sec.appendChild(panels);
      host.appendChild(sec);
    });
  }

  // ---- All rows: filters and sorting kept in the URL fragment ----
  var shown = [
    { key: "overlay", title: "overlay", sortable: false },
    { key: "image", title: "image" },
    { key: "method", title: "method" },
    { key: "class", title: "class", render: function (r) { return r.class_name; } },
    { key: "rank", title: "rank", num: true },
    { key: "score", title: "score", num: true, render: function (r) { return data.score_text[r.__i]; } },
    { key: "predicted", title: "predicted", render: function (r) { return r.predicted_name; } },
    { key: "label", title: "label", render: function (r) { return r.label_name; } },
    { key: "peak", title: "peak (x, y)", sortable: false },
    { key: "energy_in_boxes", title: "energy in boxes", num: true, render: function (r) { return r.energy_in_boxes === null ? null : r.energy_in_boxes.toFixed(4); } },
    { key: "pointing", title: "pointing" },
    { key: "flags", title: "flags" }
  ];
  var state = { flag: "", cls: "", method: "", q: "", sort: "", dir: "asc", page: 1, size: 100 };
  data.rows.forEach(function (r, i) { r.__i = i; });

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
  function filtering() { return state.flag || state.cls !== "" || state.method || state.q || state.sort; }
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
    var flags = r.flags;
    if (state.flag === "any" && flags.length === 0) return false;
    if (state.flag === "none" && flags.length > 0) return false;
    if (state.flag && state.flag !== "any" && state.flag !== "none" && flags.indexOf(state.flag) < 0) return false;
    if (state.cls !== "" && String(r["class"]) !== state.cls) return false;
    if (state.method && r.method !== state.method) return false;
    if (state.q && r.image.toLowerCase().indexOf(state.q.toLowerCase()) < 0) return false;
    return true;
  }
  function sortValue(r, key) { return key === "flags" ? r.flags.length : r[key]; }
  function compare(a, b) {
    var va = sortValue(a, state.sort), vb = sortValue(b, state.sort);
    if (va === null || va === undefined) return (vb === null || vb === undefined) ? 0 : 1;   // empty cells last
    if (vb === null || vb === undefined) return -1;
    var c = (typeof va === "number" && typeof vb === "number") ? va - vb : (String(va) < String(vb) ? -1 : String(va) > String(vb) ? 1 : 0);
    return state.dir === "desc" ? -c : c;
  }
  var sortable = {};
  shown.forEach(function (c) { if (c.sortable !== false) sortable[c.key] = true; });

  function render() {
    var selected = data.rows.filter(matches);
    if (sortable[state.sort]) {
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
      var tr = el("tr", { "class": "row", "data-flags": r.flags.join(" "), "data-image": r.image });
      shown.forEach(function (c) {
        var td = el("td");
        if (c.key === "overlay") {
          if (r.overlay) {
            var a = el("a", { href: r.overlay });
            a.appendChild(el("img", { src: r.overlay, alt: r.image + " " + r.method + " " + r.class_name, loading: "lazy" }));
            td.appendChild(a);
          }
        } else if (c.key === "peak") {
          td.textContent = r.peak_x === null ? "–" : "(" + r.peak_x + ", " + r.peak_y + ")";
        } else if (c.key === "flags") {
          r.flags.forEach(function (f) { td.appendChild(el("span", { "class": "flag" }, f)); });
        } else if (c.key === "pointing") {
          td.textContent = dash(r.pointing);
          if (r.pointing) td.className = r.pointing;
        } else {
          td.textContent = dash(c.render ? c.render(r) : r[c.key]);
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

  function setupTable() {
    var header = document.getElementById("header");
    shown.forEach(function (c) {
      var th = el("th", { "data-key": c.key }, c.title);
      if (c.num) th.classList.add("num");
      if (c.sortable !== false) {
        th.classList.add("sortable");
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
    data.rows.forEach(function (r) { present[r["class"]] = true; });
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
    window.addEventListener("hashchange", function () {
      readHash(); render();
      if (filtering()) document.getElementById("all").scrollIntoView();
    });
  }

  function skipped() {
    var sk = document.getElementById("skipped");
    if (summary.skipped.length === 0) { sk.appendChild(el("p", { "class": "muted" }, "None.")); return; }
    var ul = el("ul", { id: "skipped-list" });
    summary.skipped.forEach(function (s) { var li = el("li"); li.appendChild(el("code", null, s.image)); li.appendChild(document.createTextNode(": " + s.reason)); ul.appendChild(li); });
    sk.appendChild(ul);
  }

  counts();
  pointingChart();
  confusion();
  faithfulness();
  cases();
  setupTable();
  skipped();
  readHash();
  render();
  if (filtering()) document.getElementById("all").scrollIntoView();
})();
