/* CivicGrid tracking page: copy the private link. */
(function () {
  "use strict";
  const button = document.getElementById("copy-link");
  const input = document.getElementById("private-link");
  if (!button || !input) return;
  button.addEventListener("click", () => {
    input.select();
    const done = () => {
      button.textContent = button.dataset.copied || button.textContent;
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, () => {});
    } else {
      try {
        if (document.execCommand("copy")) done();
      } catch (error) {
        /* the link stays selected for copying by hand */
      }
    }
  });
})();
