/*
 * CivicGrid portal report form: the class in two steps (kind, then problem) with
 * the help text for residents, the photo limit, and, for an anonymous report, the
 * proof-of-work challenge (challenge.js) solved before the form is sent.
 *
 * The challenge in the page starts solving at once; if it is too old by the time
 * the form is sent, a fresh one is fetched and solved. Without this script the
 * class list holds every class, and an anonymous report is refused with a note
 * that it needs JavaScript.
 */
(function () {
  "use strict";

  const form = document.getElementById("report-form");
  if (!form) return;

  // --- the class and its help ------------------------------------------------------------
  const dataEl = document.getElementById("category-help-data");
  const majorSelect = document.getElementById("id_major");
  const minorSelect = document.getElementById("id_category");
  const helpBox = document.getElementById("category-help");
  if (dataEl && majorSelect && minorSelect) {
    const majors = JSON.parse(dataEl.textContent);
    const byMinor = new Map();
    majors.forEach((major) => major.minors.forEach((minor) => byMinor.set(String(minor.id), { major, minor })));
    const emptyLabel = minorSelect.options.length ? minorSelect.options[0].textContent : "—";

    const option = (value, label, selected) => {
      const node = document.createElement("option");
      node.value = value;
      node.textContent = label;
      if (selected) node.selected = true;
      return node;
    };

    const fillMinors = () => {
      const chosen = minorSelect.value;
      const majorId = majorSelect.value;
      minorSelect.replaceChildren(option("", emptyLabel, false));
      majors.forEach((major) => {
        if (majorId && String(major.id) !== majorId) return;
        const group = document.createElement("optgroup");
        group.label = major.label;
        major.minors.forEach((minor) => group.appendChild(option(minor.id, minor.label, String(minor.id) === chosen)));
        minorSelect.appendChild(group);
      });
    };

    const showHelp = () => {
      if (!helpBox) return;
      const found = byMinor.get(minorSelect.value);
      const major = majors.find((m) => String(m.id) === majorSelect.value);
      helpBox.textContent = found ? found.minor.help || "" : major ? major.help || "" : "";
    };

    majorSelect.addEventListener("change", () => {
      fillMinors();
      showHelp();
    });
    minorSelect.addEventListener("change", () => {
      const found = byMinor.get(minorSelect.value);
      if (found && majorSelect.value !== String(found.major.id)) majorSelect.value = String(found.major.id);
      showHelp();
    });
    if (majorSelect.value) fillMinors();
    showHelp();
  }

  // --- photos: at most data-max-photos ---------------------------------------------------------
  const photoInput = form.querySelector('input[type=file][name="photos"]');
  const maxPhotos = parseInt(form.dataset.maxPhotos || "9", 10);
  if (photoInput) {
    photoInput.addEventListener("change", () => {
      const count = photoInput.files ? photoInput.files.length : 0;
      photoInput.setCustomValidity(count > maxPhotos ? form.dataset.tooManyPhotos || "" : "");
      if (count > maxPhotos) photoInput.reportValidity();
    });
  }

  // --- the challenge of an anonymous report -------------------------------------------------------
  const submit = document.getElementById("report-submit");
  const statusEl = document.getElementById("challenge-status");
  const challengeInput = document.getElementById("id_challenge");
  const counterInput = document.getElementById("id_challenge_counter");
  const challengeUrl = form.dataset.challengeUrl;
  let sending = false;

  const say = (text, isError) => {
    if (!statusEl) return;
    statusEl.textContent = text || "";
    statusEl.classList.toggle("error", Boolean(isError));
  };

  if (!challengeUrl || !challengeInput || !counterInput || !window.CivicGridChallenge) {
    form.addEventListener("submit", (event) => {
      if (sending) event.preventDefault();
      sending = true;
      if (submit) submit.disabled = true;
    });
    return;
  }

  // A challenge is used well before it expires: a minute of margin for the upload.
  const MARGIN_MS = 60000;
  let current = {
    token: challengeInput.value,
    bits: parseInt(challengeInput.dataset.bits || "16", 10),
    expires: Date.now() + parseInt(challengeInput.dataset.ttl || "900", 10) * 1000,
  };
  let solving = null;

  const solveCurrent = () => {
    const mine = current;
    mine.solution = window.CivicGridChallenge.solve(mine.token, mine.bits);
    return mine.solution;
  };

  const fresh = () =>
    fetch(challengeUrl, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then((response) => {
        if (!response.ok) throw new Error(String(response.status));
        return response.json();
      })
      .then((data) => {
        current = { token: data.challenge, bits: data.bits, expires: Date.now() + data.ttl * 1000 };
        return solveCurrent();
      });

  const ready = () => {
    if (current.token && current.expires - Date.now() > MARGIN_MS) {
      return (current.solution || solveCurrent()).then((counter) => ({ token: current.token, counter }));
    }
    return fresh().then((counter) => ({ token: current.token, counter }));
  };

  // Start at once, so the answer is usually ready when the form is sent.
  if (current.token) solving = solveCurrent();
  if (solving) solving.catch(() => {});

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (sending) return;
    if (!form.checkValidity()) {
      form.reportValidity();
      return;
    }
    sending = true;
    if (submit) submit.disabled = true;
    say(statusEl ? statusEl.dataset.working : "");
    ready()
      .then(({ token, counter }) => {
        challengeInput.value = token;
        counterInput.value = counter;
        form.dataset.solved = "1";
        form.submit();
      })
      .catch(() => {
        sending = false;
        if (submit) submit.disabled = false;
        say(statusEl ? statusEl.dataset.failed : "", true);
      });
  });
})();
