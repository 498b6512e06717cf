// Progressive enhancement only: every flow works without this file.
// "Add header" adds an empty row in place instead of re-sending the form.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const template = document.getElementById("header-row-template");
  const rows = document.querySelector("[data-header-rows]");
  const button = document.querySelector("[data-add-header]");
  if (!template || !rows || !button) {
    return;
  }
  button.addEventListener("click", (event) => {
    event.preventDefault();
    let next = 0;
    rows.querySelectorAll("input[id^='header_name_']").forEach((input) => {
      const index = Number(input.id.slice("header_name_".length));
      if (Number.isInteger(index) && index >= next) {
        next = index + 1;
      }
    });
    const html = template.innerHTML
      .replaceAll("__i__", String(next))
      .replaceAll("__n__", String(next + 1));
    rows.insertAdjacentHTML("beforeend", html);
    const added = document.getElementById("header_name_" + next);
    if (added) {
      added.focus();
    }
  });
});
