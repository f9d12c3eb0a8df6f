// Markets: connection badge, stale marks, local trade times and the live candle chart.
// Pages work without this file; it only enhances what the server rendered.
(function () {
  "use strict";
  function staleAfterMs() {
    var live = document.querySelector("[data-market-live]");
    return Number(live && live.getAttribute("data-stale-after-ms")) || 15000;
  }

  function badge(text, stale) {
    var el = document.querySelector("[data-market-conn]");
    if (!el) return;
    el.textContent = text;
    el.classList.toggle("stale", stale);
    el.classList.toggle("badge-up", !stale);
  }

  // Kraken's system status (#exchange-status, sent by the feeder when it changes): while it
  // is not online the badge names it, so it never says "Live" during maintenance.
  var MODES = { maintenance: "Maintenance", cancel_only: "Cancel only", post_only: "Post only" };
  function exchangeMode() {
    var el = document.getElementById("exchange-status");
    var mode = (el && el.getAttribute("data-system")) || "";
    return mode && mode !== "online" ? mode : "";
  }
  function showState(stale) {
    var mode = exchangeMode();
    if (mode) badge("Kraken: " + (MODES[mode] || mode.replace(/_/g, " ")), true);
    else badge(stale ? "Stale" : "Live", stale);
  }

  // Stale is judged by the feed's pulse (#market-feed, refreshed every second by the feeder):
  // everything is stale when Kraken has not been heard from lately, and a pair is while its
  // book is being rebuilt. A pair that simply has not changed is not stale.
  // The pulse carries an age, not a time, so this clock need not agree with the server's:
  // each new pulse element is read once, against the moment it arrived.
  var pulse = null;
  var heardAt = 0;
  function readPulse() {
    var feed = document.getElementById("market-feed");
    if (feed && feed !== pulse) {
      pulse = feed;
      var age = Number(feed.getAttribute("data-age-ms"));
      heardAt = age >= 0 ? Date.now() - age : 0;
    }
    return feed;
  }

  function markStale() {
    var feed = readPulse();
    var feedStale = !heardAt || Date.now() - heardAt > staleAfterMs();
    var down = ((feed && feed.getAttribute("data-down")) || "").split(" ");
    var anyStale = feedStale;
    document.querySelectorAll("[data-market-live] [data-t]").forEach(function (el) {
      var slug = el.id.slice(el.id.indexOf("-") + 1);  // tile-BTC-USD -> BTC-USD
      var stale = feedStale || down.indexOf(slug) >= 0;
      el.classList.toggle("is-stale", stale);
      anyStale = anyStale || stale;
    });
    return anyStale;
  }

  var formatter = null;
  function localTimes(root) {
    if (!formatter) {
      var zone = document.body.getAttribute("data-time-zone") || "UTC";
      try {
        formatter = new Intl.DateTimeFormat(undefined, {
          hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false, timeZone: zone,
        });
      } catch (e) {
        formatter = new Intl.DateTimeFormat(undefined, { hour12: false, timeZone: "UTC" });
      }
    }
    root.querySelectorAll("time[data-local-time]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when)) el.textContent = formatter.format(when);
    });
  }

  function zone() { return document.body.getAttribute("data-time-zone") || "UTC"; }
  function zoneFormat(options) {
    try { return new Intl.DateTimeFormat("en-GB", Object.assign({ timeZone: zone(), hour12: false }, options)); }
    catch (e) { return new Intl.DateTimeFormat("en-GB", Object.assign({ timeZone: "UTC", hour12: false }, options)); }
  }

  // The trade tape's "Time" heading names the member's time zone once times are shown in it.
  function zoneLabels(root) {
    root.querySelectorAll("[data-zone-label]").forEach(function (el) { el.textContent = "(" + zone() + ")"; });
  }

  // The candle chart. Prices use the pair's own decimals (USDT/USD 1.0001, ADA/USD 0.447916)
  // with thousands separators; times are the member's time zone, not the browser's or UTC.
  var series = null;
  var bucketSeconds = 60;
  var lastBar = null;
  function candleFrom(el) {
    var raw = el && el.getAttribute("data-candle");
    if (!raw) return null;
    var p = raw.split(",");
    return { time: Number(p[0]), open: Number(p[1]), high: Number(p[2]), low: Number(p[3]), close: Number(p[4]) };
  }

  function priceFormatter(precision) {
    var number = new Intl.NumberFormat("en-US", {
      minimumFractionDigits: precision, maximumFractionDigits: precision, useGrouping: true,
    });
    return function (price) { return number.format(price); };
  }

  function setUpChart() {
    var box = document.getElementById("chart");
    var data = document.getElementById("candles-data");
    var format = document.getElementById("chart-format");
    if (!box || !data || !window.LightweightCharts) return;
    var LC = window.LightweightCharts;
    var spec = format ? JSON.parse(format.textContent) : { precision: 2, minMove: "0.01" };
    var formatPrice = priceFormatter(spec.precision);
    var dayMonth = zoneFormat({ day: "numeric", month: "short" });
    var clock = zoneFormat({ hour: "2-digit", minute: "2-digit" });
    var full = zoneFormat({ day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" });
    var dark = document.documentElement.dataset.theme !== "light";
    bucketSeconds = (Number(box.getAttribute("data-interval")) || 1) * 60;
    var chart = LC.createChart(box, {
      autoSize: true,
      // The built-in logo injects a <style> element, which the strict CSP blocks; the page
      // carries the attribution as a plain link under the chart instead.
      layout: {
        background: { color: "transparent" },
        textColor: dark ? "#c9d1d9" : "#24292f",
        attributionLogo: false,
      },
      localization: {
        priceFormatter: formatPrice,
        timeFormatter: function (time) { return full.format(new Date(time * 1000)) + " " + zone(); },
      },
      grid: { vertLines: { visible: false }, horzLines: { color: dark ? "#21262d" : "#eaeef2" } },
      timeScale: {
        timeVisible: true,
        secondsVisible: false,
        // Tick marks in the member's zone: days and months at day boundaries, else the clock.
        tickMarkFormatter: function (time, type) {
          var when = new Date(time * 1000);
          return type <= 2 ? dayMonth.format(when) : clock.format(when);
        },
      },
    });
    series = chart.addSeries(LC.CandlestickSeries, {
      priceFormat: { type: "custom", formatter: formatPrice, minMove: Number(spec.minMove) },
    });
    var candles = JSON.parse(data.textContent).map(function (c) {
      return { time: c.time, open: Number(c.open), high: Number(c.high), low: Number(c.low), close: Number(c.close) };
    });
    series.setData(candles);
    lastBar = candles.length ? candles[candles.length - 1] : null;
    box.dataset.points = String(candles.length);
  }

  // The live one-minute candle, merged into the current bucket of the chosen interval.
  function updateCandle() {
    var box = document.getElementById("chart");
    if (!series || !box) return;
    var candle = candleFrom(document.getElementById(box.getAttribute("data-chart")));
    if (!candle) return;
    var bucket = Math.floor(candle.time / bucketSeconds) * bucketSeconds;
    var bar;
    if (lastBar && lastBar.time === bucket && bucketSeconds > 60) {
      bar = { time: bucket, open: lastBar.open, high: Math.max(lastBar.high, candle.high),
              low: Math.min(lastBar.low, candle.low), close: candle.close };
    } else {
      bar = { time: bucket, open: candle.open, high: candle.high, low: candle.low, close: candle.close };
    }
    try {
      series.update(bar);
      lastBar = bar;
      box.dataset.last = String(candle.close);
    } catch (e) { /* an older candle than the chart's last one: ignore */ }
  }

  // Depth beside the ladder: cumulative size by price, bids left of the spread, asks right,
  // drawn from the numbers the ladder fragment carries (data-p, data-cum) after each update.
  var SVG = "http://www.w3.org/2000/svg";
  function drawDepth() {
    var svg = document.getElementById("depth-chart");
    if (!svg) return;
    var ladder = document.getElementById(svg.getAttribute("data-depth"));
    if (!ladder) return;
    function levels(selector) {
      return Array.prototype.map.call(ladder.querySelectorAll(selector + " tr[data-p]"), function (tr) {
        return { p: Number(tr.getAttribute("data-p")), c: Number(tr.getAttribute("data-cum")) };
      });
    }
    var bids = levels("tbody.bids");            // best first, price falling
    var asks = levels("tbody.asks").reverse();  // best first, price rising
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    if (!bids.length || !asks.length) return;
    var low = bids[bids.length - 1].p, high = asks[asks.length - 1].p;
    var most = Math.max(bids[bids.length - 1].c, asks[asks.length - 1].c) || 1;
    var span = high - low || 1;
    function x(p) { return ((p - low) / span * 300).toFixed(1); }
    function y(c) { return (200 - c / most * 190).toFixed(1); }
    function area(points, cls) {
      var d = "M" + x(points[0].p) + ",200";
      points.forEach(function (pt) { d += " L" + x(pt.p) + "," + y(pt.c); });
      d += " L" + x(points[points.length - 1].p) + ",200 Z";
      var path = document.createElementNS(SVG, "path");
      path.setAttribute("d", d);
      path.setAttribute("class", cls);
      svg.appendChild(path);
    }
    area(bids, "depth-bids");
    area(asks, "depth-asks");
    svg.dataset.levels = String(bids.length + asks.length);
  }

  // Set while no socket is open (from the start, until the first opens), so the stale check
  // below leaves "Connecting…" or the reason for a close on show.
  var closed = true;
  // The server's close code says why (apps/core/realtime.py); htmx reconnects by itself only
  // after 1006, 1011, 1012 and 1013, so for the others the badge tells the user what to do.
  var CLOSED_BECAUSE = {
    4401: "Signed out — reload to sign in again",
    4403: "No access to this page any more — reload",
    4404: "This pair is not traded here",
  };
  // The header's socket (notifications, approvals) fires the same events: only the market's
  // own socket speaks for the feed (and takes the overview's view choice).
  function fromMarket(evt) {
    return evt.target instanceof Element && evt.target.closest("[data-market-live]") !== null;
  }
  var socket = null;  // the market socket's htmx wrapper, to tell it which overview view shows
  document.addEventListener("htmx:wsOpen", function (evt) {
    if (!fromMarket(evt)) return;
    socket = evt.detail && evt.detail.socketWrapper;
    var live = overview();
    // After a reconnect the socket starts from the view in its address: say the current one.
    if (live && socket) socket.send(JSON.stringify({ view: currentView(live) }));
    closed = false;
    showState(markStale());
  });
  document.addEventListener("htmx:wsClose", function (evt) {
    if (!fromMarket(evt)) return;
    var code = evt.detail && evt.detail.event ? evt.detail.event.code : 0;
    closed = true;
    badge(CLOSED_BECAUSE[code] || "Disconnected — reconnecting", true);
  });
  var shownMode = null;
  // Focus survives live updates: a fragment replaced while it (or a control inside it) had
  // focus is found again by its id, and the same control inside it is focused again.
  var FOCUSABLE = "a[href], button, input, select, textarea, [tabindex]";
  function rememberFocus() {
    var active = document.activeElement;
    if (!active || active === document.body) return null;
    var holder = active.id ? active : active.closest("[id]");
    if (!holder) return null;
    var index = holder === active ? -1 : Array.prototype.indexOf.call(holder.querySelectorAll(FOCUSABLE), active);
    return { id: holder.id, index: index, element: active };
  }
  function restoreFocus(saved) {
    if (!saved || document.activeElement === saved.element) return;
    if (document.body.contains(saved.element)) { saved.element.focus({ preventScroll: true }); return; }
    var holder = document.getElementById(saved.id);
    if (!holder) return;
    var target = saved.index < 0 ? holder : holder.querySelectorAll(FOCUSABLE)[saved.index];
    if (target) target.focus({ preventScroll: true });
  }

  // The overview's search, sort and layout: the controls live outside the live fragments, and
  // what they hide or reorder are containers (tile cards, one tbody per pair) that updates never
  // replace, so a choice holds while prices change; the order is re-applied to the new values.
  function overview() { return document.querySelector("[data-market-table]") ? document.querySelector("[data-market-live]") : null; }

  function currentView(live) { return live.classList.contains("layout-table") ? "table" : "tiles"; }

  function applyFilter() {
    var live = overview();
    var input = document.querySelector("[data-market-search]");
    if (!live || !input) return;
    var needle = input.value.trim().toUpperCase();
    var shown = 0;
    live.querySelectorAll("[data-pair]").forEach(function (el) {
      var match = el.getAttribute("data-pair").toUpperCase().indexOf(needle) >= 0;
      el.hidden = !match;
      if (match && el.tagName === "TBODY") shown += 1;
    });
    var empty = live.querySelector("[data-market-empty]");
    if (empty) empty.hidden = shown > 0;
  }

  function sortValue(tbody, key) {
    if (key === "symbol") return tbody.getAttribute("data-pair");
    var row = tbody.querySelector("tr[id^='row-']");
    var raw = row ? row.getAttribute("data-k-" + key) : "";
    return raw === "" || raw === null ? null : Number(raw);
  }

  function applySort() {
    var live = overview();
    if (!live || !live.dataset.sort) return;
    var key = live.dataset.sort;
    var sign = live.dataset.dir === "desc" ? -1 : 1;
    var table = live.querySelector("[data-market-table]");
    var bodies = Array.prototype.slice.call(table.tBodies);
    var ordered = bodies.slice().sort(function (a, b) {
      var x = sortValue(a, key), y = sortValue(b, key);
      if (x === null || y === null) return x === y ? 0 : x === null ? 1 : -1;  // empty last
      return (x < y ? -1 : x > y ? 1 : 0) * sign;
    });
    if (ordered.every(function (body, i) { return body === bodies[i]; })) return;
    var saved = rememberFocus();
    ordered.forEach(function (body) { table.appendChild(body); });
    var tiles = live.querySelector("[data-view='tiles']");
    if (tiles) {
      ordered.forEach(function (body) {
        var card = tiles.querySelector("[data-pair='" + body.getAttribute("data-pair") + "']");
        if (card) tiles.appendChild(card);
      });
    }
    restoreFocus(saved);
  }

  function syncUrl() {
    var live = overview();
    var input = document.querySelector("[data-market-search]");
    if (!live) return;
    var params = new URLSearchParams();
    if (input && input.value.trim()) params.set("q", input.value.trim());
    if (live.dataset.sort) { params.set("sort", live.dataset.sort); params.set("dir", live.dataset.dir); }
    var query = params.toString();
    history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
    document.querySelectorAll("[data-market-search-form] input[type=hidden]").forEach(function (el) { el.remove(); });
  }

  document.addEventListener("input", function (event) {
    if (!event.target.matches || !event.target.matches("[data-market-search]")) return;
    applyFilter();
    syncUrl();
  });

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("[data-sort-key]");
    var live = overview();
    if (link && live) {
      event.preventDefault();
      var key = link.getAttribute("data-sort-key");
      live.dataset.dir = live.dataset.sort === key && live.dataset.dir === "desc" ? "asc" : "desc";
      live.dataset.sort = key;
      document.querySelectorAll("[data-sort-key]").forEach(function (other) {
        var th = other.closest("th");
        if (other === link) th.setAttribute("aria-sort", live.dataset.dir === "desc" ? "descending" : "ascending");
        else th.removeAttribute("aria-sort");
      });
      applySort();
      syncUrl();
      link.focus();
      return;
    }
    var choice = event.target.closest && event.target.closest("[data-layout-switch] button[name=layout]");
    if (choice && live) {
      // Switch at once; htmx posts the choice so it is remembered for next time.
      live.classList.remove("layout-tiles", "layout-table");
      live.classList.add("layout-" + choice.value);
      // The socket sends only the shown view's fragments; it answers with the new view's.
      if (socket) socket.send(JSON.stringify({ view: choice.value }));
      choice.parentNode.querySelectorAll("button[name=layout]").forEach(function (button) {
        button.setAttribute("aria-pressed", String(button === choice));
      });
    }
  });

  var focusBefore = null;
  document.addEventListener("htmx:wsBeforeMessage", function () {
    focusBefore = rememberFocus();
  });
  // Any socket's update may replace the focused element (the header's badge, too).
  document.addEventListener("htmx:wsAfterMessage", function (evt) {
    if (!fromMarket(evt)) {
      restoreFocus(focusBefore);
      focusBefore = null;
      return;
    }
    readPulse();
    if (!closed && exchangeMode() !== shownMode) {
      shownMode = exchangeMode();
      showState(markStale());
    }
    localTimes(document);
    zoneLabels(document);
    updateCandle();
    drawDepth();
    applySort();
    restoreFocus(focusBefore);
    focusBefore = null;
  });
  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    zoneLabels(document);
    setUpChart();
    drawDepth();
    badge("Connecting…", true);
    setInterval(function () {
      if (closed) return;
      showState(markStale());
    }, 2000);
  });
})();
