/* ParkWatch maps: Leaflet with the tile server from settings (MAP_TILE_URL) and nothing else. */
(function () {
  "use strict";

  function attribution() {
    const element = document.getElementById("map-attribution");
    try {
      return element ? JSON.parse(element.textContent) : "";
    } catch (error) {
      return "";
    }
  }

  /** A map in `element`; its `data-tile-url` names the XYZ tile server. */
  function create(element, options) {
    const map = L.map(element, Object.assign({ scrollWheelZoom: false, zoomSnap: 0.5 }, options || {}));
    const url = element.dataset.tileUrl;
    if (url) {
      L.tileLayer(url, { maxZoom: 19, attribution: attribution() }).addTo(map);
    }
    // Scrolling the page must not zoom the map by surprise; once the map is used, it may.
    map.once("focus click", function () {
      map.scrollWheelZoom.enable();
    });
    return map;
  }

  /** Metres covered by one screen pixel at the map's zoom, at a latitude. */
  function metresPerPixel(map, latitude) {
    return (40075016.686 * Math.abs(Math.cos((latitude * Math.PI) / 180))) / Math.pow(2, map.getZoom() + 8);
  }

  function formatPosition(latitude, longitude, accuracy, digits) {
    const places = digits === undefined ? 5 : digits;
    let text = Number(latitude).toFixed(places) + ", " + Number(longitude).toFixed(places);
    if (accuracy !== null && accuracy !== undefined && isFinite(accuracy) && accuracy !== "") {
      text += " ± " + formatDistance(Number(accuracy));
    }
    return text;
  }

  function formatDistance(metres) {
    if (metres >= 1000) {
      return (metres / 1000).toFixed(metres >= 10000 ? 0 : 1) + " km";
    }
    return Math.max(1, Math.round(metres)) + " m";
  }

  const circleStyle = { color: "#1f5f3f", weight: 1.5, fillColor: "#2f8f5f", fillOpacity: 0.15 };

  window.ParkWatchMaps = { create, metresPerPixel, formatPosition, formatDistance, circleStyle };
})();
