/*
 * CivicGrid report form: choosing the class in two steps (major, then minor),
 * showing the chosen class's filing and closing criteria, and keeping to the
 * number of photos a report may carry. Without this script the minor class
 * list still holds every class, grouped by major class.
 */
(function () {
  "use strict";

  const dataEl = document.getElementById("category-data");
  const majorSelect = document.getElementById("id_major");
  const minorSelect = document.getElementById("id_category");
  const criteriaBox = document.getElementById("category-criteria");
  if (!dataEl || !majorSelect || !minorSelect) return;
  const majors = JSON.parse(dataEl.textContent);
  const minorsById = new Map();
  majors.forEach((major) => major.minors.forEach((minor) => minorsById.set(String(minor.id), { major, minor })));
  const emptyLabel = minorSelect.options.length ? minorSelect.options[0].textContent : "—";

  function option(value, label, selected) {
    const node = document.createElement("option");
    node.value = value;
    node.textContent = label;
    if (selected) node.selected = true;
    return node;
  }

  function fillMinors() {
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
  }

  function showCriteria() {
    if (!criteriaBox) return;
    const found = minorsById.get(minorSelect.value);
    criteriaBox.hidden = !found;
    if (!found) return;
    criteriaBox.querySelector('[data-criteria="filing"]').textContent = found.minor.filing || "—";
    criteriaBox.querySelector('[data-criteria="closing"]').textContent = found.minor.closing || "—";
  }

  majorSelect.addEventListener("change", () => {
    fillMinors();
    showCriteria();
  });
  minorSelect.addEventListener("change", () => {
    const found = minorsById.get(minorSelect.value);
    if (found && majorSelect.value !== String(found.major.id)) majorSelect.value = String(found.major.id);
    showCriteria();
  });
  if (majorSelect.value) fillMinors();
  showCriteria();

  // Photos: at most data-max between the gallery and the camera inputs.
  const form = document.getElementById("report-form");
  const photoInputs = form ? Array.from(form.querySelectorAll('input[type=file][name="photos"]')) : [];
  const max = form ? parseInt(form.dataset.maxPhotos || "9", 10) : 9;
  photoInputs.forEach((input) =>
    input.addEventListener("change", () => {
      const total = photoInputs.reduce((n, each) => n + (each.files ? each.files.length : 0), 0);
      const message = total > max ? (form.dataset.tooManyPhotos || "") : "";
      photoInputs.forEach((each) => each.setCustomValidity(message));
      if (message) input.reportValidity();
    })
  );
})();
