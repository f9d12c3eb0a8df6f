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

  var series = null;
  function candleFrom(el) {
    var raw = el && el.getAttribute("data-candle");
    if (!raw) return null;
    var p = raw.split(",");
    return { time: Number(p[0]), open: Number(p[1]), high: Number(p[2]), low: Number(p[3]), close: Number(p[4]) };
  }

  function setUpChart() {
    var box = document.getElementById("chart");
    var data = document.getElementById("candles-data");
    if (!box || !data || !window.LightweightCharts) return;
    var LC = window.LightweightCharts;
    var dark = document.documentElement.dataset.theme !== "light";
    var chart = LC.createChart(box, {
      autoSize: true,
      // The built-in logo injects a <style> element, which the strict CSP blocks; the page
      // carries the attribution as a plain link under the chart instead.
      layout: {
        background: { color: "transparent" },
        textColor: dark ? "#c9d1d9" : "#24292f",
        attributionLogo: false,
      },
      grid: { vertLines: { visible: false }, horzLines: { color: dark ? "#21262d" : "#eaeef2" } },
      timeScale: { timeVisible: true, secondsVisible: false },
    });
    series = chart.addSeries(LC.CandlestickSeries, {});
    var candles = JSON.parse(data.textContent).map(function (c) {
      return { time: c.time, open: Number(c.open), high: Number(c.high), low: Number(c.low), close: Number(c.close) };
    });
    series.setData(candles);
    box.dataset.points = String(candles.length);
  }

  function updateCandle() {
    var box = document.getElementById("chart");
    if (!series || !box) return;
    var candle = candleFrom(document.getElementById(box.getAttribute("data-chart")));
    if (!candle) return;
    try {
      series.update(candle);
      box.dataset.last = String(candle.close);
    } catch (e) { /* an older candle than the chart's last one: ignore */ }
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
  // own socket speaks for the feed.
  function fromMarket(evt) {
    return evt.target instanceof Element && evt.target.closest("[data-market-live]") !== null;
  }
  document.addEventListener("htmx:wsOpen", function (evt) {
    if (!fromMarket(evt)) return;
    closed = false;
    var stale = markStale();
    badge(stale ? "Stale" : "Live", stale);
  });
  document.addEventListener("htmx:wsClose", function (evt) {
    if (!fromMarket(evt)) return;
    var code = evt.detail && evt.detail.event ? evt.detail.event.code : 0;
    closed = true;
    badge(CLOSED_BECAUSE[code] || "Disconnected — reconnecting", true);
  });
  document.addEventListener("htmx:wsAfterMessage", function (evt) {
    if (!fromMarket(evt)) return;
    readPulse();
    localTimes(document);
    updateCandle();
  });
  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    setUpChart();
    badge("Connecting…", true);
    setInterval(function () {
      if (closed) return;
      var stale = markStale();
      badge(stale ? "Stale" : "Live", stale);
    }, 2000);
  });
})();
