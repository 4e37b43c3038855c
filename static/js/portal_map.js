/*
 * CivicGrid portal maps (Leaflet, loaded before this file), configured by the JSON
 * in #portal-map-config:
 * - mode "pick" (the report form): a pin put by a tap, by dragging, by typing into
 *   #id_lat / #id_lng, or by "use my location" (#use-location, the browser's
 *   geolocation);
 * - mode "point" (a tracking page): the case where the public sees it;
 * - mode "cases" (the public map): public cases in view as dots, open or closed.
 * With no tile layer configured the streets' outlines draw on a plain background.
 * Points are WGS-84. Text shown comes translated from the config's strings.
 */
(function () {
  "use strict";

  const cfgEl = document.getElementById("portal-map-config");
  const mapEl = document.querySelector("[data-portal-map]") || document.querySelector(".p-map");
  if (!cfgEl || !mapEl || typeof L === "undefined" || !window.CivicGridMaps) return;
  const cfg = JSON.parse(cfgEl.textContent);
  const S = cfg.strings || {};
  const hasTiles = Boolean(cfg.tiles && cfg.tiles.url);
  const AREA_STYLE = {
    color: "hsl(172, 45%, 32%)",
    weight: hasTiles ? 1.2 : 1.5,
    fillColor: "hsl(172, 45%, 60%)",
    fillOpacity: hasTiles ? 0.04 : 0.12,
  };
  const COLOURS = { open: "#d9480f", closed: "#2e7d32" };

  const { interpolate } = CivicGridMaps;

  const map = L.map(mapEl, { attributionControl: hasTiles, zoomSnap: 0.5 });
  mapEl.__portalMap = map;
  CivicGridMaps.addTiles(map, cfg.tiles);

  function fitCity() {
    if (cfg.bounds) {
      map.fitBounds(cfg.bounds, { padding: [8, 8] });
    } else {
      map.setView([35, 105], 4);
    }
  }

  function drawAreas() {
    if (!cfg.areasUrl) return Promise.resolve(null);
    return fetch(cfg.areasUrl, { headers: { Accept: "application/geo+json" } })
      .then((response) => {
        if (!response.ok) throw new Error(String(response.status));
        return response.json();
      })
      .then((data) => {
        const layer = L.geoJSON(data, { style: AREA_STYLE, interactive: false }).addTo(map);
        layer.bringToBack();
        mapEl.dataset.areas = String(data.features ? data.features.length : 0);
        return layer;
      });
  }

  // --- one case ------------------------------------------------------------------------
  if (cfg.mode === "point") {
    const point = L.latLng(cfg.point[0], cfg.point[1]);
    map.setView(point, cfg.coarse ? 15 : 17);
    if (cfg.coarse) {
      L.circle(point, { radius: 300, color: COLOURS.open, weight: 2, fillOpacity: 0.12 }).addTo(map);
    } else {
      L.circleMarker(point, {
        radius: 9, color: "#fff", weight: 3, fillColor: COLOURS.open, fillOpacity: 1,
      }).addTo(map);
    }
    if (!hasTiles) drawAreas().catch(() => {});
    return;
  }

  // --- the report form's pin ---------------------------------------------------------------
  if (cfg.mode === "pick") {
    const latInput = document.getElementById("id_lat");
    const lngInput = document.getElementById("id_lng");
    const statusEl = document.getElementById("locate-status");
    const locateButton = document.getElementById("use-location");
    let marker = null;

    const say = (text, isError) => {
      if (!statusEl) return;
      statusEl.textContent = text || "";
      statusEl.classList.toggle("error", Boolean(isError));
    };

    const setPin = (latlng, zoom) => {
      if (zoom) map.setView(latlng, zoom);
      if (!marker) {
        marker = L.marker(latlng, { draggable: true, autoPan: true, keyboard: true }).addTo(map);
        marker.on("dragend", () => setPin(marker.getLatLng()));
      } else {
        marker.setLatLng(latlng);
      }
      latInput.value = latlng.lat.toFixed(7);
      lngInput.value = latlng.lng.toFixed(7);
      say("");
    };

    const typedPoint = () => {
      const lat = parseFloat(latInput.value);
      const lng = parseFloat(lngInput.value);
      if (!Number.isFinite(lat) || !Number.isFinite(lng)) return null;
      if (Math.abs(lat) > 90 || Math.abs(lng) > 180) return null;
      return L.latLng(lat, lng);
    };

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
      fitCity();
      say(S.pinHint);
    }
    drawAreas().catch(() => say(S.areasFailed, true));

    CivicGridMaps.bindLocateButton(locateButton, S, say, setPin);
    return;
  }

  // --- the public map of cases ---------------------------------------------------------------
  if (cfg.mode === "cases") {
    const statusEl = document.getElementById("map-status");
    const dots = L.layerGroup().addTo(map);
    const dateFormat = new Intl.DateTimeFormat(document.documentElement.lang || undefined, {
      dateStyle: "medium",
    });
    let token = 0;
    let timer = null;

    const say = (text, isError) => {
      if (!statusEl) return;
      statusEl.textContent = text || "";
      statusEl.classList.toggle("error", Boolean(isError));
    };

    const day = (iso) => (iso ? dateFormat.format(new Date(iso + "T12:00:00")) : "");

    const popup = (p) => {
      const box = document.createElement("div");
      box.className = "case-popup";
      const title = document.createElement("strong");
      title.textContent = p.category;
      box.appendChild(title);
      if (p.major) {
        const major = document.createElement("span");
        major.className = "muted small";
        major.textContent = p.major;
        box.appendChild(major);
      }
      const state = document.createElement("div");
      state.className = "state " + (p.open ? "open" : "closed");
      state.textContent = p.label;
      box.appendChild(state);
      const when = document.createElement("div");
      when.className = "small";
      let text = interpolate(S.reported, { date: day(p.reported) });
      text += " (" + (p.age_days === 0 ? S.today : interpolate(S.age, { days: p.age_days })) + ")";
      if (p.closed) text += ", " + interpolate(S.closedOn, { date: day(p.closed) });
      when.textContent = text;
      box.appendChild(when);
      if (p.coarse) {
        const note = document.createElement("div");
        note.className = "muted small";
        note.textContent = S.coarse;
        box.appendChild(note);
      }
      return box;
    };

    const load = () => {
      const b = map.getBounds();
      const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
      const bbox = [
        clamp(b.getWest(), -180, 180), clamp(b.getSouth(), -90, 90),
        clamp(b.getEast(), -180, 180), clamp(b.getNorth(), -90, 90),
      ].map((v) => v.toFixed(6)).join(",");
      const mine = ++token;
      fetch(cfg.casesUrl + "?bbox=" + encodeURIComponent(bbox), {
        headers: { Accept: "application/geo+json" },
      })
        .then((response) => {
          if (!response.ok) throw new Error(String(response.status));
          return response.json();
        })
        .then((data) => {
          if (mine !== token) return;
          dots.clearLayers();
          data.features.forEach((feature) => {
            const [lng, lat] = feature.geometry.coordinates;
            const p = feature.properties;
            L.circleMarker([lat, lng], {
              radius: p.coarse ? 10 : 7,
              color: "#fff",
              weight: 2,
              fillColor: p.open ? COLOURS.open : COLOURS.closed,
              fillOpacity: p.coarse ? 0.6 : 0.95,
              className: "case-dot " + (p.open ? "case-open" : "case-closed"),
            })
              .bindPopup(() => popup(p))
              .addTo(dots);
          });
          const count = data.features.length;
          mapEl.dataset.cases = String(count);
          if (!count) say(S.none);
          else if (data.truncated) say(interpolate(S.truncated, { count }));
          else say(interpolate(S.shown, { count }));
        })
        .catch(() => {
          if (mine === token) say(S.loadFailed, true);
        });
    };

    fitCity();
    map.on("moveend", () => {
      clearTimeout(timer);
      timer = setTimeout(load, 200);
    });
    if (!hasTiles) drawAreas().catch(() => {});
    load();
  }
})();
