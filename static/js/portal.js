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
  document.addEventListener("htmx:afterSwap", function () {
    document.querySelectorAll(".toast:not([data-armed])").forEach(function (t) { t.dataset.armed = "1"; arm(t); });
  });
})();
