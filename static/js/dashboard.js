/* Admins' dashboard: the sightings map (clustered, coloured by status), the export form's dates,
   and the training runs' live progress (polling each run's progress.json). */
(function () {
  "use strict";

  function readJson(id) {
    const element = document.getElementById(id);
    if (!element) return null;
    try {
      return JSON.parse(element.textContent);
    } catch (error) {
      return null;
    }
  }

  // ---- the map ----

  function popupContent(properties, label) {
    const box = document.createElement("div");
    box.className = "dash-popup";
    const title = document.createElement("p");
    title.className = "dash-popup__title";
    if (properties.taxon) {
      const name = document.createElement("i");
      name.textContent = properties.taxon;
      title.appendChild(name);
      if (properties.taxon_source === "AI") title.appendChild(document.createTextNode(" (AI)"));
    } else {
      title.textContent = "Not identified";
    }
    box.appendChild(title);
    const meta = document.createElement("p");
    const observed = new Date(properties.observed_at);
    meta.textContent =
      label(properties.status) +
      " · " +
      properties.park +
      " · " +
      (isNaN(observed) ? "" : observed.toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric" }));
    box.appendChild(meta);
    const link = document.createElement("a");
    link.href = properties.url;
    link.textContent = "Open sighting " + properties.uuid.slice(0, 8);
    box.appendChild(link);
    return box;
  }

  /** A cluster icon: the count on a ring whose arcs are the shares of each status. */
  function clusterIcon(colours) {
    return function (cluster) {
      const counts = {};
      const markers = cluster.getAllChildMarkers();
      markers.forEach(function (marker) {
        counts[marker.options.status] = (counts[marker.options.status] || 0) + 1;
      });
      let start = 0;
      const stops = [];
      Object.keys(counts).forEach(function (status) {
        const end = start + (counts[status] / markers.length) * 360;
        const colour = colours[status] || "#555";
        stops.push(colour + " " + start.toFixed(1) + "deg " + end.toFixed(1) + "deg");
        start = end;
      });
      const size = markers.length < 10 ? 34 : markers.length < 100 ? 42 : 50;
      const ring = document.createElement("span");
      ring.className = "dash-cluster__ring";
      ring.style.background = "conic-gradient(" + stops.join(", ") + ")";
      const count = document.createElement("span");
      count.className = "dash-cluster__count";
      count.textContent = String(markers.length);
      ring.appendChild(count);
      return L.divIcon({
        html: ring.outerHTML,
        className: "dash-cluster",
        iconSize: L.point(size, size),
      });
    };
  }

  function setUpMap() {
    const element = document.getElementById("dashboard-map");
    const config = readJson("dashboard-map-config");
    const Maps = window.ParkWatchMaps;
    const status = document.getElementById("map-status");
    if (!element || !config || !window.L || !Maps || !L.markerClusterGroup) return;
    const colours = {};
    const labels = {};
    config.statuses.forEach(function (item) {
      colours[item.status] = item.colour;
      labels[item.status] = item.label;
    });
    function label(value) {
      const text = labels[value] || value;
      return text.charAt(0).toUpperCase() + text.slice(1);
    }

    const map = Maps.create(element);
    map.setView([40.4, -3.7], 5);
    const parks = L.geoJSON(null, {
      style: { color: "#1f5f3f", weight: 1.5, fillOpacity: 0.04, dashArray: "4 4" },
      interactive: false,
    }).addTo(map);
    (config.parks || []).forEach(function (park) {
      try {
        parks.addData(park.boundary);
      } catch (error) {
        /* a boundary Leaflet cannot read is left out */
      }
    });
    const clusters = L.markerClusterGroup({
      showCoverageOnHover: false,
      maxClusterRadius: 45,
      spiderfyOnMaxZoom: true,
      chunkedLoading: true,
      iconCreateFunction: clusterIcon(colours),
    });
    map.addLayer(clusters);
    const markers = [];

    function show() {
      const hidden = {};
      document.querySelectorAll("#map-legend input[type=checkbox]").forEach(function (box) {
        if (!box.checked) hidden[box.value] = true;
      });
      clusters.clearLayers();
      clusters.addLayers(
        markers.filter(function (marker) {
          return !hidden[marker.options.status];
        })
      );
    }

    fetch(config.dataUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        data.features.forEach(function (feature) {
          const properties = feature.properties;
          const point = [feature.geometry.coordinates[1], feature.geometry.coordinates[0]];
          const marker = L.marker(point, {
            status: properties.status,
            title: label(properties.status) + (properties.taxon ? ": " + properties.taxon : ""),
            alt: label(properties.status),
            icon: L.divIcon({
              className: "dash-marker",
              html: '<span style="background:' + (colours[properties.status] || "#555") + '"></span>',
              iconSize: L.point(16, 16),
            }),
          });
          marker.bindPopup(function () {
            return popupContent(properties, label);
          });
          markers.push(marker);
        });
        show();
        const bounds = markers.length ? L.latLngBounds(markers.map((m) => m.getLatLng())) : parks.getBounds();
        if (bounds.isValid()) map.fitBounds(bounds.pad(0.1), { maxZoom: 14 });
        if (status) {
          const shown = data.features.length;
          status.textContent = data.truncated
            ? "The newest " + shown + " of " + data.total + " sightings."
            : shown + " sighting" + (shown === 1 ? "" : "s") + ".";
        }
        document.querySelectorAll("#map-legend input[type=checkbox]").forEach(function (box) {
          box.disabled = false;
          box.addEventListener("change", show);
        });
      })
      .catch(function () {
        if (status) status.textContent = "The sightings could not be loaded; reload the page to try again.";
      });
  }

  // ---- the export form: "until" never before "since" ----

  function setUpExports() {
    const since = document.getElementById("id_since");
    const until = document.getElementById("id_until");
    if (!since || !until) return;
    function sync() {
      until.min = since.value || "";
      since.max = until.value || "";
    }
    since.addEventListener("change", sync);
    until.addEventListener("change", sync);
    sync();
  }

  // ---- training runs: live progress ----

  function updateRun(article, data) {
    const part = function (role) {
      return article.querySelector('[data-role="' + role + '"]');
    };
    const state = part("state");
    if (state) {
      state.textContent = data.state_display;
      state.className = "badge dash-run-state dash-run-state--" + data.state;
    }
    const bar = part("bar");
    if (bar) {
      bar.setAttribute("aria-valuenow", data.width);
      const fill = bar.querySelector(".dash-progress__fill");
      if (fill) {
        fill.style.width = data.width + "%";
        fill.className = "dash-progress__fill dash-progress__fill--" + data.state;
      }
    }
    const percent = part("percent");
    if (percent) percent.textContent = data.percent_text;
    const headline = part("headline");
    if (headline) headline.textContent = data.headline;
    const metrics = part("metrics");
    if (metrics) {
      metrics.textContent = "";
      data.metrics.forEach(function (metric) {
        const row = document.createElement("div");
        const name = document.createElement("dt");
        name.textContent = metric.name;
        const value = document.createElement("dd");
        value.textContent = metric.value;
        row.append(name, value);
        metrics.appendChild(row);
      });
    }
    const error = part("error");
    if (error) {
      error.textContent = data.error || "";
      error.hidden = !data.error;
    }
    const log = part("log");
    if (log) log.textContent = data.log_tail;
    const logBox = part("log-box");
    if (logBox) logBox.hidden = !data.log_tail;
    const cancel = part("cancel");
    if (cancel) {
      const button = cancel.querySelector("button");
      if (!data.active) cancel.hidden = true;
      else if (data.cancel_requested && button) {
        button.disabled = true;
        button.textContent = "Cancelling…";
      }
    }
    if (!data.active) {
      article.removeAttribute("data-active");
      const finished = part("finished");
      if (finished) finished.hidden = false;
    }
  }

  function setUpRuns() {
    const section = document.getElementById("runs");
    if (!section) return;
    const seconds = Number(section.dataset.pollSeconds) || 3;

    function poll() {
      const active = Array.from(section.querySelectorAll("[data-run][data-active]"));
      if (!active.length) return;
      if (document.hidden) {
        window.setTimeout(poll, seconds * 1000);
        return;
      }
      Promise.all(
        active.map(function (article) {
          return fetch(article.dataset.progressUrl, {
            credentials: "same-origin",
            headers: { Accept: "application/json" },
            cache: "no-store",
          })
            .then(function (response) {
              if (response.status === 403 || response.status === 404) {
                article.removeAttribute("data-active"); // signed out, or the run is gone
                return null;
              }
              return response.ok ? response.json() : null;
            })
            .then(function (data) {
              if (data) updateRun(article, data);
            })
            .catch(function () {
              /* the next poll tries again */
            });
        })
      ).then(function () {
        window.setTimeout(poll, seconds * 1000);
      });
    }

    window.setTimeout(poll, seconds * 1000);
  }

  setUpMap();
  setUpExports();
  setUpRuns();
})();
