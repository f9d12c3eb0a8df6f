// Onboarding form: the "US state" field shows only when the United States is chosen.
// Without JavaScript the field is always there (and ignored for other countries).
(function () {
  "use strict";
  function sync() {
    const country = document.getElementById("id_country");
    const region = document.getElementById("id_region");
    const field = region && region.closest(".field");
    if (!country || !field) return;
    // CSSOM changes are allowed by the CSP (style-src 'self'); style attributes are not.
    field.style.display = country.value === "US" ? "" : "none";
  }
  document.addEventListener("DOMContentLoaded", function () {
    sync();
    const country = document.getElementById("id_country");
    if (country) country.addEventListener("change", sync);
  });
})();
