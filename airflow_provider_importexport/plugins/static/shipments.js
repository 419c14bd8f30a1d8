// The Import/Export page's only script: row filters and a periodic reload (the server caches reads,
// so a reload costs the service nothing until the cache expires).
"use strict";

function applyFilter(name) {
  for (const row of document.querySelectorAll("tr.job")) {
    const shown = name === "all" || row.dataset[name] === "yes";
    row.classList.toggle("hidden", !shown);
  }
  for (const button of document.querySelectorAll("[data-filter]")) {
    button.setAttribute("aria-pressed", String(button.dataset.filter === name));
  }
  sessionStorage.setItem("importexport-filter", name);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("[data-filter]")) {
    button.addEventListener("click", () => applyFilter(button.dataset.filter));
  }
  applyFilter(sessionStorage.getItem("importexport-filter") || "all");
  const seconds = Number(document.body.dataset.refreshSeconds || 0);
  if (seconds > 0) {
    setTimeout(() => window.location.reload(), seconds * 1000);
  }
});
