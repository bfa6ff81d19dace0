// Live box score: each new document arrives over a push connection (server-sent events) and is
// rendered in place; without EventSource, or while that connection is down, the page polls the
// JSON endpoint instead. It keeps following after a final: a correction or a replay changes the
// document again. Renders the same markup as game.html,
// text only through textContent (never innerHTML), and computes nothing the document does not hold.
(function () {
  "use strict";
  var root = document.getElementById("boxscore");
  if (!root) return;
  var api = root.dataset.api;
  var every = parseInt(root.dataset.pollMs, 10) || 2000;
  var push = root.dataset.push;
  var final = root.dataset.final === "true";
  var shown = null; // the JSON text of the document on screen (null: the server-rendered one)

  function el(tag, attrs) {
    var node = document.createElement(tag);
    var children = Array.prototype.slice.call(arguments, 2);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (attrs[k] !== null && attrs[k] !== undefined) node.setAttribute(k, attrs[k]);
      });
    }
    children.forEach(function (c) {
      if (c === null || c === undefined) return;
      node.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    });
    return node;
  }
  function pct(x) { return Number(x).toFixed(2); }

  function teamCard(side, t) {
    return el("section", { "class": "team " + side, id: side + "-team" },
      el("div", { "class": "side" }, side),
      el("h2", { "class": "name" }, t.name),
      el("div", { "class": "conference" }, t.conference),
      el("div", { "class": "record" }, "Record ", el("span", { "class": "wins-losses" }, t.wins + "-" + t.losses)),
      el("div", { "class": "score" }, t.score),
      el("div", { "class": "status status-" + t.status }, t.status));
  }

  function playerTable(side, t) {
    var body = el("tbody");
    t.players.forEach(function (p) {
      var who = p.on_roster ? p.name : el("span", {
        "class": "flag",
        title: "This jersey is not on the team's roster: the shots and goals count, and the feed should be checked."
      }, "not on roster");
      body.appendChild(el("tr", { "data-number": p.number, "class": p.on_roster ? null : "off-roster" },
        el("td", { "class": "number" }, p.number),
        el("td", { "class": "player" }, who),
        el("td", { "class": "num shots" }, p.shots),
        el("td", { "class": "num goals" }, p.goals),
        el("td", { "class": "num pct" }, pct(p.pct))));
    });
    var head = el("thead", null, el("tr", null, el("th", null, "#"), el("th", null, "player"),
      el("th", { "class": "num" }, "shots"), el("th", { "class": "num" }, "goals"), el("th", { "class": "num" }, "pct")));
    var foot = el("tfoot", null, el("tr", { "class": "totals" }, el("td"), el("td", null, "Team"),
      el("td", { "class": "num shots" }, t.shots), el("td", { "class": "num goals" }, t.score),
      el("td", { "class": "num pct" }, pct(t.pct))));
    return el("section", { "class": "players" }, el("h3", null, t.name),
      el("table", { id: side + "-players" }, head, body, foot));
  }

  function render(doc) {
    var state = doc.final
      ? el("div", { id: "game-state" }, el("span", { "class": "badge final", id: "final-badge" }, "Final"))
      : el("div", { id: "game-state" }, el("span", { "class": "badge live", id: "live-badge" }, "Live"), " ",
          el("span", { "class": "clock-label" }, "Clock"), " ", el("span", { id: "clock" }, doc.timestamp));
    var board = el("div", { "class": "scoreboard" }, teamCard("home", doc.home),
      el("div", { "class": "versus" }, "-"), teamCard("away", doc.away));
    var qbody = el("tbody");
    ["home", "away"].forEach(function (side) {
      var row = el("tr", { "data-side": side }, el("th", null, doc[side].name));
      (doc[side].score_by_quarter || []).forEach(function (g) { row.appendChild(el("td", { "class": "num" }, g)); });
      row.appendChild(el("td", { "class": "num total" }, doc[side].score));
      qbody.appendChild(row);
    });
    var quarters = el("table", { "class": "quarters", id: "quarters" },
      el("thead", null, el("tr", null, el("th"), el("th", null, "Q1"), el("th", null, "Q2"), el("th", null, "Q3"),
        el("th", null, "Q4"), el("th", null, "Total"))), qbody);
    var tables = el("div", { "class": "player-tables" }, playerTable("home", doc.home), playerTable("away", doc.away));
    var meta = el("footer", { "class": "meta" },
      el("span", null, "game ", el("code", null, doc.game_id)),
      el("span", null, "event ", el("span", { id: "event-id" }, doc.event_id)),
      el("span", null, el("span", { id: "seq" }, doc.seq), " stream lines"),
      doc.final_reason ? el("span", null, "over: " + doc.final_reason) : null,
      doc.updated_at ? el("span", null, "updated ", el("span", { id: "updated-at" }, doc.updated_at)) : null);
    var rejected = (doc.issues && doc.issues.rejected_lines) || [];
    var rejectedCount = (doc.issues && doc.issues.rejected_count) || rejected.length;
    if (rejected.length) {
      var list = el("ul");
      rejected.forEach(function (r) {
        list.appendChild(el("li", null, "line " + r.line + ": ", el("code", null, r.text), " (" + r.reason + ")"));
      });
      meta.appendChild(el("details", { "class": "rejected" },
        el("summary", null, rejectedCount + " stream line(s) rejected" +
          (rejectedCount > rejected.length ? " (the first " + rejected.length + " shown)" : "")), list));
    }
    meta.appendChild(el("span", { id: "refresh-state", "class": "muted" }, stateText(doc.final)));
    root.replaceChildren(state, board, quarters, tables, meta);
    root.dataset.seq = doc.seq;
    root.dataset.final = doc.final ? "true" : "false";
    document.title = doc.home.name + " " + doc.home.score + " - " + doc.away.score + " " + doc.away.name + " · Sidearm";
  }

  var mode = "push"; // or "poll" while there is no push connection
  function stateText(isFinal) {
    if (mode === "poll") return "polling every " + every / 1000 + " s";
    return isFinal ? "final (a correction would still show here)" : "live: updates as they happen";
  }

  function note(text) {
    var s = document.getElementById("refresh-state");
    if (s) s.textContent = text;
  }

  function show(text) {
    if (text === shown) return;
    var doc = JSON.parse(text);
    shown = text;
    final = !!doc.final;
    render(doc);
    window.sidearmRendered = { seq: doc.seq, at: Date.now() }; // read by bench/page_push.py
  }

  var pollTimer = null;
  function poll() {
    pollTimer = null;
    fetch(api, { cache: "no-cache", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 503) throw new Error("box-score store unavailable, retrying");
        if (r.status === 404) throw new Error("no box score for this game any more, retrying");
        if (!r.ok) throw new Error("HTTP " + r.status + ", retrying");
        return r.text();
      })
      .then(function (text) { show(text); note(stateText(final)); })
      .catch(function (e) { note(e.message); })
      .then(function () {
        // after a final, look less often: a correction or a replay is rare
        if (mode === "poll") pollTimer = window.setTimeout(poll, final ? every * 5 : every);
      });
  }
  function startPolling() {
    if (mode === "poll") return;
    mode = "poll";
    note(stateText(final));
    poll();
  }

  if (!push || typeof window.EventSource !== "function") {
    startPolling();
    return;
  }
  var source = new EventSource(push);
  source.addEventListener("open", function () {
    if (mode === "poll") {
      mode = "push";
      if (pollTimer !== null) { window.clearTimeout(pollTimer); pollTimer = null; }
    }
    note(stateText(final));
  });
  source.addEventListener("boxscore", function (e) { show(e.data); note(stateText(final)); });
  source.addEventListener("missing", function () { note("no box score for this game any more, waiting"); });
  source.addEventListener("unavailable", function () { note("box-score store unavailable, retrying"); });
  // EventSource reconnects by itself; poll meanwhile so the page never goes stale.
  source.addEventListener("error", function () { startPolling(); });
})();
