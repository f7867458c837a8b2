// Notebook 09's rho / m explorer in the course site: the sliders pick a setting and the
// page shows what vmtlib.widgets' callbacks returned for it (vmtlib.explorer.explorer_table,
// embedded as JSON by scripts/build_site.py). No number is computed here.
(function () {
  "use strict";
  function setup(root) {
    var data = JSON.parse(root.querySelector("script.vmt-data").textContent);
    var kind = data.start.kind;
    var sliders = {}, shown = {}, values = {};
    data.kinds.forEach(function (k) {
      sliders[k.kind] = root.querySelector('input[type="range"][data-kind="' + k.kind + '"]');
      shown[k.kind] = root.querySelector('output[data-kind="' + k.kind + '"]');
      values[k.kind] = k.values;
    });
    function render() {
      data.kinds.forEach(function (k) {
        sliders[k.kind].disabled = k.kind !== kind;
        shown[k.kind].textContent = values[k.kind][Number(sliders[k.kind].value)];
      });
      var value = values[kind][Number(sliders[kind].value)];
      var setting = data.settings[kind + "=" + value];
      root.querySelector(".vmt-count").textContent = setting.encoder.toLocaleString("en-US");
      root.querySelector(".vmt-info").textContent = setting.text;
      root.setAttribute("data-selected", kind + "=" + value);
    }
    root.querySelectorAll('input[name="vmt-kind"]').forEach(function (radio) {
      radio.addEventListener("change", function () { kind = radio.value; render(); });
    });
    Object.keys(sliders).forEach(function (k) { sliders[k].addEventListener("input", render); });
    render();
  }
  document.querySelectorAll("[data-vmt-explorer]").forEach(setup);
})();
