/*
 * CivicGrid map page: the area tree in the sidebar (server-rendered, loaded
 * with htmx) kept in step with a Leaflet map drawn from the GeoJSON API.
 *
 * Every navigation loads the sidebar panel of an area; the map then draws the
 * children of that area (or, for a grid, its siblings with the grid
 * highlighted). Text shown here comes translated from the page's JSON config.
 */
(function () {
  "use strict";

  const cfg = JSON.parse(document.getElementById("map-config").textContent);
  const S = cfg.strings;
  const LEVELS = ["city", "district", "street", "community", "grid"];
  const HUE = { city: 222, district: 214, street: 172, community: 262, grid: 199 };
  const TOPOLOGY_STYLE = {
    overlap: { color: "#b91c1c", fillColor: "url(#cg-hatch-overlap)", fillOpacity: 1 },
    gap: { color: "#c2410c", fillColor: "#f97316", fillOpacity: 0.55 },
    outside: { color: "#7e22ce", fillColor: "#a855f7", fillOpacity: 0.5, dashArray: "5 4" },
  };

  const panelEl = document.getElementById("panel");
  const mapEl = document.getElementById("map");
  const wrapEl = mapEl.closest(".mapwrap");
  const statusEl = document.getElementById("map-status");
  const searchInput = document.getElementById("area-search");
  const resultsEl = document.getElementById("search-results");
  const topologyToggle = document.getElementById("toggle-topology");
  const labelsToggle = document.getElementById("toggle-labels");
  const numberFormat = new Intl.NumberFormat(document.documentElement.lang || undefined);

  const state = { mapCode: null, mapLevel: null, selected: null, hovered: null };
  let loadToken = 0;

  // --- helpers ----------------------------------------------------------------

  function interpolate(text, values) {
    return text.replace(/%\((\w+)\)s/g, (match, key) => (key in values ? values[key] : match));
  }

  function urlFor(name, code) {
    return cfg.urls[name].replace(cfg.placeholder, encodeURIComponent(code));
  }

  function parentLevel(level) {
    const i = LEVELS.indexOf(level);
    return i > 0 ? LEVELS[i - 1] : null;
  }

  function childLevel(level) {
    const i = LEVELS.indexOf(level);
    return i >= 0 && i < LEVELS.length - 1 ? LEVELS[i + 1] : null;
  }

  function codeHash(code) {
    let h = 0;
    for (let i = 0; i < code.length; i++) h = (h * 31 + code.charCodeAt(i)) >>> 0;
    return h;
  }

  // Neighbours get different shades of their level's hue, so borders read at a glance.
  function fillFor(level, code) {
    return `hsl(${HUE[level] || 210}, 58%, ${46 + (codeHash(code) % 6) * 5}%)`;
  }

  function strokeFor(level) {
    return `hsl(${HUE[level] || 210}, 62%, 26%)`;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function csrfToken() {
    const cookie = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
    if (cookie) return decodeURIComponent(cookie.split("=")[1]);
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (e) {
      return "";
    }
  }

  async function getJSON(url, params) {
    const u = new URL(url, window.location.origin);
    Object.entries(params || {}).forEach(([key, value]) => {
      if (value !== undefined && value !== null && value !== "") u.searchParams.set(key, value);
    });
    const response = await fetch(u, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) throw new Error(`${response.status} ${u.pathname}`);
    return response.json();
  }

  async function postJSON(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        Accept: "application/json",
        "Content-Type": "application/json",
        "X-CSRFToken": csrfToken(),
      },
      body: JSON.stringify(body),
    });
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    return { ok: response.ok, status: response.status, data };
  }

  function errorText(data, fallback) {
    if (!data) return fallback;
    const parts = [];
    if (data.detail) parts.push(data.detail);
    Object.entries(data.errors || {}).forEach(([field, messages]) => {
      (Array.isArray(messages) ? messages : [messages]).forEach((m) => {
        if (m !== data.detail) parts.push(field === "non_field_errors" ? m : `${field}: ${m}`);
      });
    });
    return parts.length ? parts.join(" ") : fallback;
  }

  function setStatus(text, isError) {
    statusEl.textContent = text || "";
    statusEl.hidden = !text;
    statusEl.classList.toggle("error", Boolean(isError));
  }

  function emptyCollection() {
    return { type: "FeatureCollection", features: [] };
  }

  // --- the map ------------------------------------------------------------------

  const map = L.map(mapEl, { zoomSnap: 0.25, zoomDelta: 0.5, minZoom: 3, maxZoom: 19 });
  if (cfg.tiles.url) {
    L.tileLayer(cfg.tiles.url, { attribution: cfg.tiles.attribution, maxZoom: 19 }).addTo(map);
  }
  L.control.scale({ imperial: false }).addTo(map);
  map.setView([34.5, 108.9], 4); // all of China until the first areas arrive

  const info = L.control({ position: "bottomleft" });
  info.onAdd = function () {
    const box = L.DomUtil.create("div", "mapinfo");
    box.hidden = true;
    return box;
  };
  info.addTo(map);

  function showInfo(p) {
    const box = info.getContainer();
    box.replaceChildren(
      el("div", `mapinfo-level level-${p.level}`, cfg.levels[p.level] || p.level),
      el("div", "mapinfo-name", p.name),
      el("div", "mapinfo-code", p.code)
    );
    if (p.households || p.population) {
      box.append(
        el(
          "div",
          "mapinfo-figures",
          `${interpolate(S.householdsCount, { count: numberFormat.format(p.households || 0) })} · ${interpolate(S.peopleCount, { count: numberFormat.format(p.population || 0) })}`
        )
      );
    }
    box.hidden = false;
  }

  function hideInfo() {
    info.getContainer().hidden = true;
  }

  const byCode = new Map();

  function styleArea(feature) {
    const p = feature.properties;
    const selected = p.code === state.selected;
    const hovered = p.code === state.hovered;
    return {
      // Read once, when the path is created: lets pages and tests find an area's shape.
      className: `area-path area-${p.code}`,
      color: selected ? "#f59e0b" : strokeFor(p.level),
      weight: selected ? 3.5 : hovered ? 2.6 : p.level === "grid" ? 1 : 1.6,
      opacity: 0.95,
      fillColor: selected ? "#fbbf24" : fillFor(p.level, p.code),
      fillOpacity: selected ? 0.5 : hovered ? 0.55 : 0.34,
    };
  }

  const outlineLayer = L.geoJSON(null, {
    interactive: false,
    style: () => ({ color: "#0b1d33", weight: 3, opacity: 0.9, fill: false }),
  }).addTo(map);

  const areaLayer = L.geoJSON(null, {
    style: styleArea,
    onEachFeature(feature, layer) {
      const p = feature.properties;
      byCode.set(p.code, layer);
      const label = el("span", "area-label-text");
      label.append(el("b", null, p.name), el("small", null, p.code));
      layer.bindTooltip(label, {
        permanent: true,
        direction: "center",
        className: `area-label level-${p.level}`,
        interactive: false,
        opacity: 1,
      });
      layer.on({
        mouseover() {
          setHovered(p.code);
          showInfo(p);
        },
        mouseout() {
          setHovered(null);
          hideInfo();
        },
        click(event) {
          L.DomEvent.stopPropagation(event);
          navigate(p.code, { push: true });
        },
      });
    },
  }).addTo(map);

  const topologyLayer = L.geoJSON(null, {
    style(feature) {
      const kind = feature.properties.kind;
      return Object.assign({ weight: 1.5, opacity: 1 }, TOPOLOGY_STYLE[kind] || TOPOLOGY_STYLE.gap);
    },
    onEachFeature(feature, layer) {
      const p = feature.properties;
      const box = el("div", "topology-popup");
      box.append(
        el("strong", null, S[p.kind] || p.kind),
        el("div", null, interpolate(S.areaM2, { area: numberFormat.format(Math.round(p.area_m2 || 0)) })),
        el("div", "muted", `${S.codes}: ${(p.codes || []).join(", ")}`)
      );
      layer.bindPopup(box);
      // Slivers are too thin to see at district scale: mark each with a ring.
      const style = TOPOLOGY_STYLE[p.kind] || TOPOLOGY_STYLE.gap;
      L.circleMarker(layer.getBounds().getCenter(), {
        radius: 9,
        color: style.color,
        weight: 2,
        fillOpacity: 0,
        className: `topology-marker topology-${p.kind}`,
      })
        .bindPopup(box)
        .addTo(topologyMarkers);
    },
  });
  const topologyMarkers = L.layerGroup();

  const previewLayer = L.geoJSON(null, {
    style: () => ({
      color: "#92400e",
      weight: 2,
      dashArray: "6 4",
      fillColor: "#fbbf24",
      fillOpacity: 0.28,
    }),
    onEachFeature(feature, layer) {
      // Each proposed grid is labelled with its households: the figure being balanced.
      const p = feature.properties || {};
      if (p.households !== undefined) {
        layer.bindTooltip(interpolate(S.householdsCount, { count: numberFormat.format(p.households) }), {
          permanent: true,
          direction: "center",
          className: "preview-label",
          interactive: false,
        });
      }
    },
  });

  function setHovered(code) {
    const previous = state.hovered;
    state.hovered = code;
    [previous, code].forEach((c) => {
      const layer = c && byCode.get(c);
      if (layer) {
        areaLayer.resetStyle(layer);
        if (c === code) layer.bringToFront();
      }
    });
    const selected = state.selected && byCode.get(state.selected);
    if (selected) selected.bringToFront();
  }

  function restyle() {
    areaLayer.eachLayer((layer) => areaLayer.resetStyle(layer));
    const selected = state.selected && byCode.get(state.selected);
    if (selected) selected.bringToFront();
  }

  // Labels only where they fit, and never over one another: larger areas first.
  function updateLabels() {
    const on = labelsToggle.checked;
    const sized = [];
    areaLayer.eachLayer((layer) => {
      const bounds = layer.getBounds();
      const sw = map.latLngToContainerPoint(bounds.getSouthWest());
      const ne = map.latLngToContainerPoint(bounds.getNorthEast());
      sized.push({ layer, width: ne.x - sw.x, height: sw.y - ne.y });
    });
    sized.sort((a, b) => b.width * b.height - a.width * a.height);
    const shown = [];
    const overlaps = (a, b) =>
      a.left < b.right + 2 && b.left < a.right + 2 && a.top < b.bottom + 2 && b.top < a.bottom + 2;
    sized.forEach(({ layer, width, height }) => {
      if (!on || width < 70 || height < 34) {
        layer.closeTooltip();
        return;
      }
      layer.openTooltip();
      const node = layer.getTooltip().getElement();
      const box = node && node.getBoundingClientRect();
      if (box && shown.some((other) => overlaps(box, other))) layer.closeTooltip();
      else if (box) shown.push(box);
    });
  }

  function fitView() {
    const bounds = areaLayer.getBounds().isValid() ? areaLayer.getBounds() : outlineLayer.getBounds();
    if (bounds.isValid()) map.fitBounds(bounds, { padding: [24, 24], maxZoom: 17 });
  }

  function focusSelected() {
    const layer = state.selected && byCode.get(state.selected);
    if (!layer) return;
    const bounds = layer.getBounds();
    if (!map.getBounds().contains(bounds) || map.getZoom() < 14) {
      map.fitBounds(bounds, { padding: [90, 90], maxZoom: 16 });
    }
  }

  async function loadMapArea(code, level, body) {
    const token = ++loadToken;
    wrapEl.classList.add("loading");
    let outline = emptyCollection();
    let children = emptyCollection();
    try {
      if (code) {
        const below = childLevel(level);
        [outline, children] = await Promise.all([
          getJSON(cfg.urls.geojson, { level, under: code }),
          below ? getJSON(cfg.urls.geojson, { level: below, under: code }) : emptyCollection(),
        ]);
      } else {
        // The top of the tree: the areas the sidebar lists, whatever their level.
        const rows = Array.from(body.querySelectorAll(".arealist a[data-area]"));
        const codes = new Set(rows.map((a) => a.dataset.area));
        const levels = Array.from(new Set(rows.map((a) => a.dataset.level)));
        const collections = await Promise.all(levels.map((l) => getJSON(cfg.urls.geojson, { level: l })));
        children.features = collections.flatMap((fc) =>
          fc.features.filter((f) => codes.has(f.properties.code))
        );
      }
    } catch (error) {
      if (token === loadToken) {
        wrapEl.classList.remove("loading");
        setStatus(S.loadFailed, true);
      }
      return false;
    }
    if (token !== loadToken) return false; // a later navigation won
    wrapEl.classList.remove("loading");
    setStatus("");
    state.mapCode = code;
    state.mapLevel = level;
    byCode.clear();
    outlineLayer.clearLayers().addData(outline);
    areaLayer.clearLayers().addData(children);
    clearPreview();
    fitView();
    updateLabels();
    if (topologyToggle.checked) loadTopology();
    return true;
  }

  // --- the sidebar ------------------------------------------------------------------

  function panelURL(code) {
    return code ? urlFor("panel", code) : cfg.urls.rootPanel;
  }

  function pageURL(code) {
    return `${cfg.urls.map}?area=${encodeURIComponent(code || "")}`;
  }

  async function navigate(code, opts) {
    await htmx.ajax("GET", panelURL(code), { target: "#panel", swap: "innerHTML" });
    await syncFromPanel(Object.assign({ focus: true }, opts));
  }

  async function syncFromPanel(opts) {
    const body = panelEl.querySelector(".panel-body");
    if (!body) return;
    const code = body.dataset.code;
    const level = body.dataset.level;
    const isGrid = level === "grid";
    const mapCode = isGrid ? body.dataset.parent : code;
    const mapLevel = isGrid ? parentLevel(level) : level;
    state.selected = isGrid ? code : null;
    if (opts.push) history.pushState({ code }, "", pageURL(code));
    if (opts.replace) history.replaceState({ code }, "", pageURL(code));
    if (mapCode !== state.mapCode || opts.reload) {
      const loaded = await loadMapArea(mapCode, mapLevel, body);
      if (!loaded) return;
    } else {
      restyle();
    }
    if (opts.focus) focusSelected();
  }

  panelEl.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-area]");
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    navigate(link.dataset.area, { push: true });
  });

  panelEl.addEventListener("mouseover", (event) => {
    const link = event.target.closest(".arealist a[data-area]");
    const code = link ? link.dataset.area : null;
    if (code !== state.hovered) setHovered(code && byCode.has(code) ? code : null);
  });
  panelEl.addEventListener("mouseleave", () => setHovered(null));

  window.addEventListener("popstate", (event) => {
    const code = (event.state && event.state.code) || new URLSearchParams(location.search).get("area") || "";
    navigate(code, { focus: true });
  });

  document.body.addEventListener("htmx:responseError", () => setStatus(S.loadFailed, true));

  // --- search -------------------------------------------------------------------------

  let searchTimer = null;
  let searchToken = 0;
  let activeIndex = -1;

  function hideResults() {
    resultsEl.hidden = true;
    resultsEl.replaceChildren();
    activeIndex = -1;
    searchInput.setAttribute("aria-expanded", "false");
  }

  function showResultsMessage(text) {
    resultsEl.replaceChildren(el("li", "search-message", text));
    resultsEl.hidden = false;
  }

  function setActive(index) {
    const items = resultsEl.querySelectorAll("[data-code]");
    if (!items.length) return;
    activeIndex = (index + items.length) % items.length;
    items.forEach((item, i) => item.setAttribute("aria-selected", String(i === activeIndex)));
    items[activeIndex].scrollIntoView({ block: "nearest" });
  }

  function pick(code) {
    hideResults();
    searchInput.value = "";
    searchInput.blur();
    navigate(code, { push: true });
  }

  async function runSearch() {
    const q = searchInput.value.trim();
    if (!q) {
      hideResults();
      return;
    }
    const token = ++searchToken;
    let data;
    try {
      data = await getJSON(cfg.urls.list, { q, limit: 12 });
    } catch (error) {
      if (token === searchToken) showResultsMessage(S.searchFailed);
      return;
    }
    if (token !== searchToken) return;
    const results = Array.isArray(data) ? data : data.results || [];
    if (!results.length) {
      showResultsMessage(S.searchEmpty);
      return;
    }
    resultsEl.replaceChildren(
      ...results.map((a) => {
        const item = el("li", "search-result");
        item.setAttribute("role", "option");
        item.dataset.code = a.code;
        const top = el("div", "search-result-top");
        top.append(el("span", `badge level-${a.level}`, cfg.levels[a.level] || a.level), el("span", "search-result-name", a.name));
        const bottom = el("div", "search-result-bottom");
        bottom.append(el("code", null, a.code));
        if (a.name_en) bottom.append(el("span", null, a.name_en));
        item.append(top, bottom);
        return item;
      })
    );
    resultsEl.hidden = false;
    activeIndex = -1;
    searchInput.setAttribute("aria-expanded", "true");
  }

  searchInput.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(runSearch, 200);
  });
  searchInput.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      setActive(activeIndex + (event.key === "ArrowDown" ? 1 : -1));
    } else if (event.key === "Enter") {
      event.preventDefault();
      const items = resultsEl.querySelectorAll("[data-code]");
      const item = items[activeIndex >= 0 ? activeIndex : 0];
      if (item) pick(item.dataset.code);
      else runSearch();
    } else if (event.key === "Escape") {
      hideResults();
    }
  });
  resultsEl.addEventListener("mousedown", (event) => {
    // mousedown, not click: it comes before the input's blur hides the list.
    const item = event.target.closest("[data-code]");
    if (item) {
      event.preventDefault();
      pick(item.dataset.code);
    }
  });
  searchInput.addEventListener("blur", () => setTimeout(hideResults, 150));

  // --- topology -----------------------------------------------------------------------

  async function loadTopology() {
    topologyLayer.clearLayers();
    topologyMarkers.clearLayers();
    if (!topologyToggle.checked) {
      map.removeLayer(topologyLayer);
      map.removeLayer(topologyMarkers);
      wrapEl.classList.remove("show-topology");
      setStatus("");
      return;
    }
    wrapEl.classList.add("show-topology");
    let fc;
    try {
      fc = await getJSON(cfg.urls.topology, state.mapCode ? { under: state.mapCode } : {});
    } catch (error) {
      setStatus(S.loadFailed, true);
      return;
    }
    if (!topologyToggle.checked) return;
    topologyLayer.clearLayers().addData(fc);
    topologyLayer.addTo(map);
    topologyMarkers.addTo(map);
    topologyLayer.bringToFront();
    const count = (fc.features || []).length;
    setStatus(count ? interpolate(S.topologyCount, { count }) : S.topologyNone, count > 0);
  }

  topologyToggle.addEventListener("change", loadTopology);
  labelsToggle.addEventListener("change", updateLabels);
  document.getElementById("fit-view").addEventListener("click", fitView);
  map.on("zoomend", updateLabels);

  // --- partition (admins, on a community) ------------------------------------------

  let lastPartition = null;

  function clearPreview() {
    previewLayer.clearLayers();
    map.removeLayer(previewLayer);
    wrapEl.classList.remove("previewing");
    lastPartition = null;
  }

  function partitionStatus(text, isError) {
    const node = document.getElementById("partition-status");
    if (!node) return;
    node.textContent = text || "";
    node.classList.toggle("error", Boolean(isError));
  }

  function showSpread(spread) {
    const dl = document.getElementById("partition-spread");
    const entries = [
      [S.spreadMin, spread.min],
      [S.spreadMedian, spread.median],
      [S.spreadMax, spread.max],
      [S.spreadTotal, spread.total],
    ];
    dl.replaceChildren(
      ...entries.map(([label, value]) => {
        const item = el("div");
        item.append(el("dt", null, label), el("dd", null, numberFormat.format(Math.round(value || 0))));
        return item;
      })
    );
  }

  async function requestPartition(code, body) {
    const response = await postJSON(urlFor("partition", code), body);
    if (!response.ok) {
      partitionStatus(errorText(response.data, S.partitionFailed), true);
      return null;
    }
    return response.data;
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (form.id !== "partition-form") return;
    event.preventDefault();
    const code = form.closest("#partition").dataset.code;
    const value = parseInt(form.elements.value.value, 10);
    const body = { [form.elements.mode.value]: value, accept: false };
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    partitionStatus(S.previewing);
    try {
      const data = await requestPartition(code, body);
      if (!data) return;
      previewLayer.clearLayers().addData(data.preview);
      previewLayer.addTo(map).bringToFront();
      wrapEl.classList.add("previewing");
      const count = (data.preview.features || []).length;
      showSpread(data.spread || {});
      document.getElementById("partition-result").hidden = false;
      partitionStatus(interpolate(S.previewReady, { count }));
      lastPartition = { code, body };
      if (previewLayer.getBounds().isValid()) map.fitBounds(previewLayer.getBounds(), { padding: [24, 24] });
    } finally {
      button.disabled = false;
    }
  });

  document.addEventListener("click", async (event) => {
    if (event.target.id === "partition-discard") {
      clearPreview();
      document.getElementById("partition-result").hidden = true;
      partitionStatus("");
    }
    if (event.target.id === "partition-accept" && lastPartition) {
      const { code, body } = lastPartition;
      event.target.disabled = true;
      partitionStatus(S.accepting);
      const data = await requestPartition(code, Object.assign({}, body, { accept: true }));
      event.target.disabled = false;
      if (!data) return;
      clearPreview();
      await navigate(code, { reload: true });
      partitionStatus(S.accepted);
    }
  });

  // --- start ---------------------------------------------------------------------------

  syncFromPanel({ replace: true, focus: true });
})();
