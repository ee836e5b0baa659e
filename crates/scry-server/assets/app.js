// scry workbench: the few things pages cannot do without a script. The indicator graph
// (cytoscape, vendored), live notifications of new high-priority indicators (server-sent events),
// and "select all" in the queue. Everything else is plain HTML forms and links.
"use strict";

(function () {
  // Deferred scripts (this one, then cytoscape) all run before DOMContentLoaded.
  function ready(fn) {
    document.addEventListener("DOMContentLoaded", fn);
  }

  function selectAll() {
    var all = document.getElementById("select-all");
    if (!all) return;
    all.addEventListener("change", function () {
      document.querySelectorAll("#queue tbody input[type=checkbox]").forEach(function (box) { box.checked = all.checked; });
    });
  }

  function live() {
    if (!window.EventSource || !document.getElementById("live")) return;
    var list = document.getElementById("live");
    var count = document.getElementById("live-count");
    var seen = 0;
    count.textContent = "";
    var source = new EventSource("/ui/events");
    // Let go of the connection when the page goes, so a browser's few connections per host are
    // never all held by pages left behind.
    window.addEventListener("pagehide", function () { source.close(); });
    source.addEventListener("high-priority", function (event) {
      var item = JSON.parse(event.data);
      seen += 1;
      count.textContent = String(seen);
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.href = "/indicator/" + encodeURIComponent(item.indicator);
      a.textContent = item.indicator;
      li.appendChild(document.createTextNode("Priority " + item.priority + " (" + item.severity + "): "));
      li.appendChild(a);
      list.prepend(li);
      while (list.children.length > 5) list.removeChild(list.lastChild);
      if (window.Notification && Notification.permission === "granted") {
        new Notification("scry: priority " + item.priority, { body: item.indicator });
      }
    });
  }

  var colours = { critical: "#b42318", high: "#dc6803", medium: "#b38600", low: "#2e7d32", info: "#667085" };

  function graph() {
    var box = document.getElementById("graph");
    if (!box || !window.cytoscape) return;
    var cy = cytoscape({
      container: box,
      wheelSensitivity: 0.3,
      style: [
        { selector: "node", style: { "label": "data(label)", "font-size": 10, "text-valign": "bottom", "text-margin-y": 3, "width": 18, "height": 18, "background-color": "data(colour)" } },
        { selector: "node[kind = 'shared']", style: { "shape": "round-rectangle", "width": 14, "height": 14 } },
        { selector: "node.root", style: { "width": 30, "height": 30, "border-width": 3, "border-color": "#111827" } },
        { selector: "node.expanded", style: { "border-width": 2, "border-color": "#2f5bea" } },
        { selector: "edge", style: { "width": 1, "line-color": "#c5cad3", "curve-style": "bezier" } }
      ]
    });
    window.scryGraph = cy;
    function add(data, root) {
      data.nodes.forEach(function (n) {
        if (cy.getElementById(n.id).length) return;
        var label = n.kind === "indicator" ? n.label + " (" + n.priority + ")" : n.label + (n.others ? " · " + n.others : "");
        cy.add({ group: "nodes", data: { id: n.id, label: label, kind: n.kind, facet: n.facet, value: n.value, others: n.others || 0, indicator: n.kind === "indicator" ? n.label : null, colour: n.kind === "indicator" ? (colours[n.severity] || "#667085") : "#98a2b3" } });
      });
      data.edges.forEach(function (e) {
        var id = e.source + "->" + e.target;
        if (!cy.getElementById(id).length) cy.add({ group: "edges", data: { id: id, source: e.source, target: e.target } });
      });
      if (root) cy.getElementById(root).addClass("root");
      cy.layout({ name: "cose", animate: false, nodeRepulsion: 9000, idealEdgeLength: 70 }).run();
      box.dataset.nodes = String(cy.nodes().length);
    }
    function expand(node) {
      if (node.hasClass("expanded")) return;
      node.addClass("expanded");
      var url = node.data("kind") === "shared"
        ? "/api/v1/graph?facet=" + encodeURIComponent(node.data("facet")) + "&value=" + encodeURIComponent(node.data("value"))
        : "/api/v1/graph?indicator=" + encodeURIComponent(node.id());
      fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (data) { add(data); });
    }
    cy.on("tap", "node", function (event) { expand(event.target); });
    cy.on("dbltap", "node[kind = 'indicator']", function (event) {
      window.location.href = "/indicator/" + encodeURIComponent(event.target.data("indicator"));
    });
    var root = box.dataset.indicator;
    fetch("/api/v1/graph?indicator=" + encodeURIComponent(root), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (data) { add(data, root); cy.getElementById(root).addClass("expanded"); });
  }

  ready(function () { selectAll(); live(); graph(); });
})();
