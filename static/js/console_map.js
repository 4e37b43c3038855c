/*
 * CivicGrid dispatch console: the map of the open cases beside the list.
 *
 * The list is server-rendered and reloaded by htmx when a filter changes; the
 * map asks the console's GeoJSON endpoint for the cases inside its view with
 * the same filters whenever the view or a filter changes. The server sends
 * one point per case up to its cap and clusters past it (a count and the
 * worst light of the cell), so the map stays light with thousands of cases.
 * Text shown here comes translated from the page's JSON config.
 */
(function () {
  "use strict";

  const cfgEl = document.getElementById("console-map-config");
  const mapEl = document.getElementById("console-map");
  if (!cfgEl || !mapEl || typeof L === "undefined") return;

  const cfg = JSON.parse(cfgEl.textContent);
  const S = cfg.strings;
  const form = document.getElementById("console-filters");
  const wrapEl = mapEl.closest(".mapwrap");
  const statusEl = document.getElementById("console-map-status");
  const listEl = document.getElementById("console-list");
  const numberFormat = new Intl.NumberFormat(document.documentElement.lang || undefined);
  const COLORS = { red: "#d32f2f", yellow: "#e0a800", green: "#2e7d32", "": "#9aa3b2" };
  const SUPERVISED = "#6d28d9";
  const english = (document.documentElement.lang || "").toLowerCase().startsWith("en");

  // --- helpers ------------------------------------------------------------------------

  function interpolate(text, values) {
    return text.replace(/%\((\w+)\)s/g, (match, key) => (key in values ? values[key] : match));
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function debounce(fn, ms) {
    let timer = null;
    return function () {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  function detailUrl(number) {
    return cfg.detail.replace(cfg.placeholder, encodeURIComponent(number));
  }

  function showStatus(text, isError) {
    if (!text) {
      statusEl.hidden = true;
      return;
    }
    statusEl.textContent = text;
    statusEl.classList.toggle("error", !!isError);
    statusEl.hidden = false;
  }

  // The filters as the form holds them now (the same names the list uses).
  function filterParams() {
    const params = new URLSearchParams();
    if (!form) return params;
    for (const [key, value] of new FormData(form)) {
      if (typeof value === "string" && value !== "" && key !== "csrfmiddlewaretoken") {
        params.append(key, value);
      }
    }
    return params;
  }

  // --- the map ------------------------------------------------------------------------

  const map = L.map(mapEl, { zoomSnap: 0.5, minZoom: 3, maxZoom: 19 });
  if (cfg.tiles.url) {
    L.tileLayer(cfg.tiles.url, { attribution: cfg.tiles.attribution, maxZoom: 19 }).addTo(map);
  }
  L.control.scale({ imperial: false }).addTo(map);
  if (cfg.bounds) {
    const [w, s, e, n] = cfg.bounds;
    map.fitBounds([[s, w], [n, e]], { padding: [12, 12] });
  } else {
    map.setView([39.9, 116.4], 11);
  }
  const layer = L.featureGroup().addTo(map);
  const markers = new Map();

  function popupFor(p) {
    const box = el("div", "casepopup");
    const link = el("a", "mono", p.number);
    link.href = detailUrl(p.number);
    box.appendChild(link);
    const name = english && p.category_name_en ? p.category_name_en : p.category_name;
    box.appendChild(el("p", "", `${p.category} ${name || ""}`));
    const state = cfg.states[p.state] || p.state;
    const light = p.light ? ` · ${cfg.lights[p.light] || p.light}` : "";
    box.appendChild(el("p", "muted", state + light));
    if (p.supervised) box.appendChild(el("p", "", S.supervised));
    const open = el("p");
    const openLink = el("a", "", S.open);
    openLink.href = detailUrl(p.number);
    open.appendChild(openLink);
    box.appendChild(open);
    return box;
  }

  function caseMarker(lat, lng, p) {
    const marker = L.circleMarker([lat, lng], {
      radius: p.supervised ? 8 : 6.5,
      color: p.supervised ? SUPERVISED : "#fff",
      weight: p.supervised ? 3 : 1.5,
      fillColor: COLORS[p.light || ""],
      fillOpacity: 0.95,
    });
    marker.bindPopup(() => popupFor(p));
    marker.bindTooltip(p.number, { direction: "top", offset: [0, -6] });
    marker.on("click", () => focusRow(p.number, false));
    markers.set(p.number, marker);
    return marker;
  }

  function clusterMarker(lat, lng, p) {
    const size = Math.round(26 + Math.min(28, Math.log10(Math.max(p.count, 1)) * 9));
    const classes = ["case-cluster", `light-${p.light || "none"}`];
    if (p.supervised) classes.push("is-supervised");
    const icon = L.divIcon({
      className: "",
      html: `<div class="${classes.join(" ")}" style="width:${size}px;height:${size}px">${numberFormat.format(p.count)}</div>`,
      iconSize: [size, size],
      iconAnchor: [size / 2, size / 2],
    });
    const marker = L.marker([lat, lng], {
      icon,
      title: interpolate(S.cases, { count: numberFormat.format(p.count) }),
      keyboard: true,
    });
    marker.on("click", () => map.setView([lat, lng], Math.min(map.getZoom() + 2, 19)));
    return marker;
  }

  // The case whose popup should open once the map has redrawn (a row was clicked).
  let pendingPopup = null;

  function draw(data) {
    layer.clearLayers();
    markers.clear();
    for (const feature of data.features) {
      const [lng, lat] = feature.geometry.coordinates;
      const p = feature.properties;
      layer.addLayer(p.kind === "cluster" ? clusterMarker(lat, lng, p) : caseMarker(lat, lng, p));
    }
    if (pendingPopup && markers.has(pendingPopup)) markers.get(pendingPopup).openPopup();
    pendingPopup = null;
    if (data.clustered) {
      showStatus(S.clustered);
    } else if (!data.features.length) {
      showStatus(S.none);
    } else {
      showStatus(interpolate(S.shown, { count: numberFormat.format(data.features.length) }));
    }
  }

  let loadToken = 0;
  async function load() {
    const params = filterParams();
    const b = map.getBounds();
    params.set(
      "bbox",
      [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(6)).join(",")
    );
    const mine = ++loadToken;
    wrapEl.classList.add("loading");
    try {
      const response = await fetch(`${cfg.geojson}?${params}`, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json" },
      });
      if (mine !== loadToken) return;
      if (!response.ok) {
        // A refused filter leaves no stale points behind; the list names the bad fields.
        layer.clearLayers();
        markers.clear();
        let detail = "";
        if (response.status === 400) detail = (await response.json().catch(() => ({}))).detail;
        showStatus(detail || S.loadFailed, true);
        return;
      }
      draw(await response.json());
    } catch (error) {
      if (mine === loadToken) showStatus(S.loadFailed, true);
    } finally {
      if (mine === loadToken) wrapEl.classList.remove("loading");
    }
  }

  // --- list and map together ---------------------------------------------------------

  function focusRow(number, scroll) {
    if (!listEl) return;
    listEl.querySelectorAll(".caserow.is-focused").forEach((row) => row.classList.remove("is-focused"));
    const row = document.getElementById(`case-${number}`);
    if (!row) return;
    row.classList.add("is-focused");
    if (scroll !== false) row.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  // A click on a row (not on its links or its dispatch form) shows the case on the map.
  if (listEl) {
    listEl.addEventListener("click", (event) => {
      if (event.target.closest("a, button, select, input, label, form")) return;
      const row = event.target.closest(".caserow");
      if (!row) return;
      const lat = parseFloat(row.dataset.lat);
      const lng = parseFloat(row.dataset.lng);
      if (Number.isNaN(lat) || Number.isNaN(lng)) return;
      focusRow(row.dataset.number, false);
      pendingPopup = row.dataset.number;
      map.setView([lat, lng], Math.max(map.getZoom(), 16));
      // Already in view: the map does not move, so open the popup now.
      const marker = markers.get(row.dataset.number);
      if (marker) marker.openPopup();
    });
  }

  // The list's requests leave out the filters that are empty, so the address stays short.
  document.body.addEventListener("htmx:configRequest", (event) => {
    if (event.detail.elt !== form) return;
    const data = event.detail.formData;
    if (!data) return;
    for (const key of new Set(data.keys())) {
      if (data.getAll(key).every((value) => value === "")) data.delete(key);
    }
  });

  const reload = debounce(load, 250);
  map.on("moveend", reload);
  if (form) {
    form.addEventListener("change", reload);
    form.addEventListener("submit", reload);
  }
  // Back and forward restore the filters htmx pushed into the address: follow them.
  document.body.addEventListener("htmx:historyRestore", reload);
  load();
})();
