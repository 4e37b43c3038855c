/*
 * What CivicGrid's case and portal maps share (Leaflet is loaded before this file):
 * filling in the %(name)s placeholders of translated strings, the tile layer the
 * page's config names, and the "use my location" button that puts the pin at the
 * browser's position.
 */
window.CivicGridMaps = (function () {
  "use strict";

  function interpolate(text, values) {
    return String(text || "").replace(/%\((\w+)\)s/g, (m, key) => (key in values ? values[key] : m));
  }

  function addTiles(map, tiles) {
    if (tiles && tiles.url) {
      L.tileLayer(tiles.url, { attribution: tiles.attribution || "", maxZoom: 19 }).addTo(map);
    }
  }

  // strings: the page's translated texts; say(text, isError) shows a status;
  // setPin(latLng, zoom) puts the pin.
  function bindLocateButton(button, strings, say, setPin) {
    if (!button) return;
    button.addEventListener("click", () => {
      if (!("geolocation" in navigator)) {
        say(strings.locateUnsupported, true);
        return;
      }
      button.disabled = true;
      say(strings.locating);
      navigator.geolocation.getCurrentPosition(
        (position) => {
          button.disabled = false;
          const { latitude, longitude, accuracy } = position.coords;
          setPin(L.latLng(latitude, longitude), 17);
          say(interpolate(strings.located, { metres: Math.round(accuracy) }));
        },
        (error) => {
          button.disabled = false;
          say(interpolate(strings.locateFailed, { reason: error.message || error.code }), true);
        },
        { enableHighAccuracy: true, timeout: 15000, maximumAge: 30000 }
      );
    });
  }

  return { interpolate, addTiles, bindLocateButton };
})();
