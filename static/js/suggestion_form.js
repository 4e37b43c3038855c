/*
 * The suggestion form of the residents' portal: an anonymous sender's browser
 * solves the proof-of-work challenge (static/js/challenge.js) before the form
 * is posted, and puts the counter into the hidden field.
 */
(function () {
  "use strict";
  const script = document.currentScript;
  const form = document.getElementById("suggestion-form");
  if (!form || !form.dataset.challenge || !window.CivicGridChallenge) return;
  const status = document.getElementById("challenge-status");
  const button = form.querySelector("button[type=submit]");
  let solving = false;

  form.addEventListener("submit", async function (event) {
    if (form.elements.challenge_counter.value) return;
    event.preventDefault();
    if (solving) return;
    solving = true;
    if (button) button.disabled = true;
    if (status) status.textContent = script.dataset.working;
    try {
      const bits = parseInt(form.dataset.challengeBits, 10) || 0;
      const counter = await window.CivicGridChallenge.solve(form.dataset.challenge, bits);
      form.elements.challenge.value = form.dataset.challenge;
      form.elements.challenge_counter.value = counter;
      form.submit();
    } catch (err) {
      if (status) {
        status.textContent = script.dataset.failed;
        status.classList.add("error");
      }
      if (button) button.disabled = false;
      solving = false;
    }
  });
})();
