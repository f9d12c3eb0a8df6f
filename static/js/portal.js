// Small progressive enhancements; every page works without this file.
(function () {
  "use strict";
  // Styles that only make sense with this script (the folded menu) key on this class.
  document.documentElement.classList.add("js");
  document.addEventListener("click", function (event) {
    const toggle = event.target.closest && event.target.closest("[data-menu-toggle]");
    if (!toggle) return;
    const menu = document.getElementById(toggle.getAttribute("aria-controls"));
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    if (menu) menu.classList.toggle("open", open);
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    const toggle = document.querySelector("[data-menu-toggle][aria-expanded='true']");
    if (!toggle) return;
    toggle.click();
    toggle.focus();
  });
  // Member sockets receive every live part of the member (the header's counts, a request's
  // timeline); a page shows only some. Drop the parts this page has no element for, rather
  // than let htmx report a missing out-of-band target. Sockets opt in with hx-ext="ws,live-parts".
  if (window.htmx) {
    window.htmx.defineExtension("live-parts", {
      transformResponse: function (text, xhr) {
        if (xhr) return text; // an ordinary htmx request, not a socket message
        const box = document.createElement("template");
        box.innerHTML = text;
        Array.prototype.slice.call(box.content.children).forEach(function (part) {
          if (part.id && !document.getElementById(part.id)) part.remove();
        });
        return box.innerHTML;
      },
    });
  }
  document.addEventListener("change", function (event) {
    const target = event.target;
    if (target instanceof HTMLSelectElement && target.hasAttribute("data-autosubmit")) {
      target.form.submit();
    }
  });
  // Destructive forms (remove a member, revoke an invitation, reject an application) ask first.
  // Without JavaScript they submit directly, as every form must work without it.
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    const question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-theme-toggle]");
    if (!button) return;
    const root = document.documentElement;
    root.dataset.theme = root.dataset.theme === "light" ? "dark" : "light";
    try { localStorage.setItem("portal-theme", root.dataset.theme); } catch (e) { /* private mode */ }
  });
  // The profile page marks a just-saved theme: the saved choice beats the toggle's memory.
  if (document.querySelector("[data-theme-reset]")) {
    try { localStorage.removeItem("portal-theme"); } catch (e) { /* private mode */ }
  }
  try {
    const saved = localStorage.getItem("portal-theme");
    if (saved) document.documentElement.dataset.theme = saved;
  } catch (e) { /* private mode */ }
  // Toasts fade after a few seconds; errors stay until clicked.
  function arm(toast) {
    if (!toast.classList.contains("toast-error")) setTimeout(function () { toast.remove(); }, 6000);
    toast.addEventListener("click", function () { toast.remove(); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".toast").forEach(arm);
  });
  // Public market sockets (ws-connect elements marked data-public-feed) carry fragments that
  // anyone able to publish to a market group could shape. hx-disable on the live slots stops a
  // fragment from making requests, but htmx's ws extension swaps every top-level element of a
  // message out of band, to any "#id" on the page or to "beforeend:body". So while such a
  // socket's message is being swapped, only targets strictly inside an hx-disable slot (replacing
  // the slot itself would drop its hx-disable) of the socket's element, or inside a
  // `.live-slot[hx-disable]` elsewhere (the exchange banner sits above the live area), are
  // swapped; anything else is dropped. The ws extension swaps a message synchronously between
  // these two events.
  var publicFeed = null;
  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    var socket = event.target;
    publicFeed = socket instanceof Element && socket.hasAttribute("data-public-feed") ? socket : null;
  });
  document.addEventListener("htmx:wsAfterMessage", function () { publicFeed = null; });
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    if (!publicFeed) return;
    var target = event.detail.target;
    var parent = target instanceof Element ? target.parentElement : null;
    var slot = parent ? parent.closest("[hx-disable]") : null;
    if (!slot || !(publicFeed.contains(slot) || slot.classList.contains("live-slot"))) {
      event.detail.shouldSwap = false;
      event.preventDefault();
    }
  });
  // What changed between the page being drawn and its live socket opening was published to
  // nobody: when the member's socket opens, the page's live regions ([data-live-region] with an
  // id) are read again once and replaced. A region that a live message touched meanwhile is left
  // as it is (the message is newer than the page that was read).
  var touched = null;
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var target = event.detail.target;
    if (touched && target instanceof Element && target.id) touched.push(target.id);
  });
  document.addEventListener("htmx:wsOpen", function (event) {
    var socket = event.target;
    if (!(socket instanceof Element) || !socket.hasAttribute("data-live-header")) return;
    var regions = Array.prototype.slice.call(document.querySelectorAll("[data-live-region][id]"));
    if (!regions.length) return;
    touched = [];
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Live-Resync": "1" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        var since = touched || [];
        touched = null;
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        regions.forEach(function (region) {
          var newer = fresh.getElementById(region.id);
          if (!newer || !region.isConnected) return;
          if (since.some(function (id) {
            return id === region.id || region.querySelector("#" + CSS.escape(id)) !== null;
          })) return;
          var adopted = document.importNode(newer, true);
          region.replaceWith(adopted);
          if (window.htmx) window.htmx.process(adopted);
        });
      })
      .catch(function () { touched = null; });
  });
  document.addEventListener("htmx:afterSwap", function () {
    document.querySelectorAll(".toast:not([data-armed])").forEach(function (t) { t.dataset.armed = "1"; arm(t); });
  });
})();
