/*
 * CivicGrid case maps (Leaflet, loaded before this file).
 *
 * One map per page, configured by the JSON in #case-map-config:
 * - mode "view" (a case's page): the case's point on its grid's boundary;
 * - mode "pick" (the report form): the grids one may report in, and a pin put by
 *   a tap, by dragging, by typing into #id_lat / #id_lng, or by "use my location"
 *   (#use-location, the browser's geolocation). Points are WGS-84.
 * Text shown here comes translated from the config's strings.
 */
(function () {
  "use strict";

  const cfgEl = document.getElementById("case-map-config");
  const mapEl = document.querySelector("[data-case-map]");
  if (!cfgEl || !mapEl || typeof L === "undefined" || !window.CivicGridMaps) return;
  const cfg = JSON.parse(cfgEl.textContent);
  const S = cfg.strings || {};
  const GRID_STYLE = {
    color: "hsl(199, 62%, 30%)",
    weight: 1.5,
    fillColor: "hsl(199, 62%, 55%)",
    fillOpacity: 0.1,
  };

  const { interpolate } = CivicGridMaps;

  const map = L.map(mapEl, { attributionControl: Boolean(cfg.tiles && cfg.tiles.url) });
  CivicGridMaps.addTiles(map, cfg.tiles);

  // --- one case ------------------------------------------------------------------
  if (cfg.mode === "view") {
    // The view is set before any layer is added: Leaflet draws vectors against it.
    const point = L.latLng(cfg.point[0], cfg.point[1]);
    const grid = cfg.grid ? L.geoJSON(cfg.grid, { style: GRID_STYLE, interactive: false }) : null;
    const bounds = grid ? grid.getBounds() : null;
    if (bounds && bounds.isValid()) {
      map.fitBounds(bounds.extend(point), { padding: [16, 16], maxZoom: 18 });
    } else {
      map.setView(point, 17);
    }
    if (grid) grid.addTo(map);
    L.circleMarker(point, {
      radius: 9, color: "#fff", weight: 3, fillColor: "#c62828", fillOpacity: 1,
    }).addTo(map);
    return;
  }

  // --- the report form's pin -------------------------------------------------------
  const latInput = document.getElementById("id_lat");
  const lngInput = document.getElementById("id_lng");
  const statusEl = document.getElementById("locate-status");
  const locateButton = document.getElementById("use-location");
  let marker = null;

  function say(text, isError) {
    if (!statusEl) return;
    statusEl.textContent = text || "";
    statusEl.classList.toggle("error", Boolean(isError));
  }

  function setPin(latlng, zoom) {
    if (zoom) map.setView(latlng, zoom);
    if (!marker) {
      marker = L.marker(latlng, { draggable: true, autoPan: true }).addTo(map);
      marker.on("dragend", () => setPin(marker.getLatLng()));
    } else {
      marker.setLatLng(latlng);
    }
    latInput.value = latlng.lat.toFixed(7);
    lngInput.value = latlng.lng.toFixed(7);
  }

  function typedPoint() {
    const lat = parseFloat(latInput.value);
    const lng = parseFloat(lngInput.value);
    if (!Number.isFinite(lat) || !Number.isFinite(lng)) return null;
    if (Math.abs(lat) > 90 || Math.abs(lng) > 180) return null;
    return L.latLng(lat, lng);
  }

  map.on("click", (event) => setPin(event.latlng));
  [latInput, lngInput].forEach((input) =>
    input.addEventListener("change", () => {
      const point = typedPoint();
      if (point) setPin(point, Math.max(map.getZoom(), 16));
    })
  );

  const typed = typedPoint();
  if (typed) {
    setPin(typed, 17);
  } else {
    map.setView([35, 105], 4);
    say(S.pinHint);
  }

  if (cfg.gridsUrl) {
    fetch(cfg.gridsUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((response) => {
        if (!response.ok) throw new Error(String(response.status));
        return response.json();
      })
      .then((data) => {
        const layer = L.geoJSON(data, { style: GRID_STYLE, interactive: false }).addTo(map);
        layer.bringToBack();
        const bounds = layer.getBounds();
        if (!marker && bounds.isValid()) map.fitBounds(bounds, { padding: [12, 12] });
      })
      .catch(() => say(S.gridsFailed, true));
  }

  CivicGridMaps.bindLocateButton(locateButton, S, say, setPin);
})();
