// The order ticket's keyboard: B and S choose the side, but only while the focus is outside
// text fields (typing "b" in a field types "b"); ↑/↓ in a price field step it by the pair's
// tick. Sending is never a key: it is the "Send order" button, reached with Tab. Without this
// script every part of the ticket still works.
(function () {
  "use strict";
  if (window.__deskKeyboard) return;
  window.__deskKeyboard = true;

  function isTextField(element) {
    if (!element) return false;
    if (element.isContentEditable) return true;
    const tag = element.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    if (tag !== "INPUT") return false;
    const type = (element.getAttribute("type") || "text").toLowerCase();
    return ["text", "search", "number", "email", "password", "tel", "url", "datetime-local", "date", "time"].indexOf(type) !== -1;
  }

  function chooseSide(value) {
    const ticket = document.getElementById("ticket-form");
    if (!ticket) return;
    const radio = ticket.querySelector('input[name="side"][value="' + value + '"]');
    if (!radio || radio.checked) return;
    radio.checked = true;
    radio.dispatchEvent(new Event("change", { bubbles: true }));
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if ((event.key === "ArrowUp" || event.key === "ArrowDown") && target instanceof HTMLInputElement && /^(price|price2|close_price|close_price2)$/.test(target.name)) {
      const ticket = target.closest("[data-ticket]");
      if (!ticket) return;
      const raw = target.value.trim();
      if (raw && !/^\d+(\.\d+)?$/.test(raw)) return; // a relative price is not stepped
      const tickText = ticket.getAttribute("data-tick") || ("0." + "0".repeat(Math.max(0, Number(ticket.getAttribute("data-tick-decimals") || 0) - 1)) + "1");
      const decimals = (tickText.split(".")[1] || "").length;
      const scale = Math.pow(10, decimals);
      const tick = Math.round(Number(tickText) * scale);
      const current = Math.round(Number(raw || "0") * scale);
      let next = event.key === "ArrowUp" ? current + tick : current - tick;
      next = Math.max(tick, Math.round(next / tick) * tick);
      target.value = (next / scale).toFixed(decimals);
      target.dispatchEvent(new Event("input", { bubbles: true }));
      event.preventDefault();
      return;
    }
    if (isTextField(target)) return;
    if (event.key === "b" || event.key === "B") { chooseSide("buy"); event.preventDefault(); }
    else if (event.key === "s" || event.key === "S") { chooseSide("sell"); event.preventDefault(); }
  });
})();
