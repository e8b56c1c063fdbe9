/* The upload form: photo previews, EXIF position and time read in the browser, the position
   from the device or the map, and a client UUID so a repeated submit stores one sighting. */
(function () {
  "use strict";

  const form = document.getElementById("sighting-form");
  if (!form) return;
  const config = JSON.parse(document.getElementById("upload-config").textContent);
  const Maps = window.ParkWatchMaps;

  const fields = {
    latitude: document.getElementById("id_latitude"),
    longitude: document.getElementById("id_longitude"),
    accuracy: document.getElementById("id_accuracy_m"),
    source: document.getElementById("id_position_source"),
    observedAt: document.getElementById("id_observed_at"),
    clientUuid: document.getElementById("id_client_uuid"),
  };
  const chooser = document.getElementById("id_photos");
  const camera = document.getElementById("photo-camera");
  const previews = document.getElementById("photo-previews");
  const photoCount = document.getElementById("photo-count");
  const exifReadout = document.getElementById("exif-readout");
  const positionStatus = document.getElementById("position-status");
  const locateButton = document.getElementById("use-location");
  const useExifButton = document.getElementById("use-exif");
  const observedAtHelp = document.getElementById("observed-at-help");
  const submitButton = document.getElementById("submit-sighting");
  const SOURCE_TEXT = { exif: "from your photo", device: "from your device", map: "picked on the map" };

  /* ---- client UUID: one per set of photos, so a double submit is the same sighting ---- */

  function newUuid() {
    if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16)); // randomUUID needs https; this does not
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }
  function refreshUuid() {
    fields.clientUuid.value = newUuid();
  }
  refreshUuid();

  /* ---- position: EXIF, device or map ---- */

  let map = null;
  let marker = null;
  let circle = null;
  let exifPosition = null;

  function number(value) {
    const parsed = parseFloat(value);
    return isFinite(parsed) ? parsed : null;
  }

  function currentPosition() {
    const latitude = number(fields.latitude.value);
    const longitude = number(fields.longitude.value);
    if (latitude === null || longitude === null) return null;
    if (Math.abs(latitude) > 90 || Math.abs(longitude) > 180) return null;
    return { latitude, longitude, accuracy: number(fields.accuracy.value) };
  }

  function setPosition(latitude, longitude, accuracy, source, options) {
    fields.latitude.value = latitude.toFixed(6).replace(/\.?0+$/, "");
    fields.longitude.value = longitude.toFixed(6).replace(/\.?0+$/, "");
    fields.accuracy.value = accuracy === null || accuracy === undefined ? "" : String(Math.max(1, Math.round(accuracy)));
    fields.source.value = source;
    drawPosition(!(options && options.keepView));
    describePosition();
  }

  function clearPosition() {
    fields.latitude.value = fields.longitude.value = fields.accuracy.value = fields.source.value = "";
    drawPosition(false);
    describePosition();
  }

  function describePosition(problem) {
    const position = currentPosition();
    positionStatus.classList.toggle("is-error", Boolean(problem));
    positionStatus.classList.toggle("is-set", Boolean(position) && !problem);
    if (problem) {
      positionStatus.textContent = problem;
    } else if (position && fields.source.value === "exif" && exifPosition) {
      positionStatus.textContent = "Using the position from your photo. To change it, tap the map or use your location.";
    } else if (position) {
      const source = SOURCE_TEXT[fields.source.value] || "";
      positionStatus.textContent =
        "Position " + source + ": " + Maps.formatPosition(position.latitude, position.longitude, position.accuracy);
    } else {
      positionStatus.textContent = "No position yet.";
    }
    useExifButton.hidden = !exifPosition || fields.source.value === "exif";
  }

  function drawPosition(pan) {
    if (!map) return;
    const position = currentPosition();
    if (!position) {
      if (marker) marker.remove();
      if (circle) circle.remove();
      marker = circle = null;
      return;
    }
    const point = [position.latitude, position.longitude];
    if (!marker) {
      marker = L.marker(point, { draggable: true, autoPan: true, title: "Where you saw it", alt: "Sighting position" }).addTo(map);
      marker.on("dragend", function () {
        const where = marker.getLatLng();
        setPosition(where.lat, where.lng, pickAccuracy(where.lat), "map", { keepView: true });
      });
    } else {
      marker.setLatLng(point);
    }
    const radius = position.accuracy || 0;
    if (radius > 0) {
      if (!circle) circle = L.circle(point, Object.assign({ radius: radius, interactive: false }, Maps.circleStyle)).addTo(map);
      circle.setLatLng(point).setRadius(radius);
    } else if (circle) {
      circle.remove();
      circle = null;
    }
    if (pan) {
      if (circle && radius > 30) {
        map.fitBounds(circle.getBounds(), { maxZoom: 17, padding: [20, 20] });
      } else {
        map.setView(point, Math.max(map.getZoom(), 16));
      }
    }
  }

  /** A point picked on the map is as good as a few pixels at the zoom it was picked at. */
  function pickAccuracy(latitude) {
    return Math.min(5000, Math.max(3, Maps.metresPerPixel(map, latitude) * 8));
  }

  function setupMap() {
    const element = document.getElementById("pick-map");
    if (!element || !window.L) return;
    map = Maps.create(element);
    let bounds = null;
    (config.parks || []).forEach(function (park) {
      const layer = L.geoJSON(park.boundary, {
        interactive: false,
        style: { color: "#8a5a00", weight: 2, dashArray: "6 4", fill: false },
      }).addTo(map);
      bounds = bounds ? bounds.extend(layer.getBounds()) : layer.getBounds();
    });
    if (bounds && bounds.isValid()) {
      map.fitBounds(bounds, { padding: [10, 10] });
    } else {
      map.setView([46, 5], 4);
    }
    map.on("click", function (event) {
      setPosition(event.latlng.lat, event.latlng.lng, pickAccuracy(event.latlng.lat), "map", { keepView: true });
    });
    drawPosition(true);
  }

  ["latitude", "longitude"].forEach(function (name) {
    fields[name].addEventListener("change", function () {
      if (currentPosition()) fields.source.value = "map"; // typed by hand: the visitor picked it
      drawPosition(true);
      describePosition();
    });
  });
  fields.accuracy.addEventListener("change", function () {
    drawPosition(false);
    describePosition();
  });

  if ("geolocation" in navigator) {
    locateButton.hidden = false;
    locateButton.addEventListener("click", function () {
      locateButton.disabled = true;
      positionStatus.textContent = "Finding your location…";
      navigator.geolocation.getCurrentPosition(
        function (found) {
          locateButton.disabled = false;
          setPosition(found.coords.latitude, found.coords.longitude, found.coords.accuracy, "device");
        },
        function (error) {
          locateButton.disabled = false;
          const reasons = {
            1: "Your browser did not share your location (it needs your permission and a secure https connection).",
            2: "Your location could not be found. Tap the map instead.",
            3: "Finding your location took too long. Try again, or tap the map.",
          };
          describePosition(reasons[error.code] || "Your location could not be found. Tap the map instead.");
        },
        { enableHighAccuracy: true, timeout: 20000, maximumAge: 30000 }
      );
    });
  }

  useExifButton.addEventListener("click", function () {
    if (exifPosition) setPosition(exifPosition.latitude, exifPosition.longitude, exifPosition.accuracy, "exif");
  });

  /* ---- date and time ---- */

  let observedAtTouched = Boolean(fields.observedAt.value);
  function localInputValue(date) {
    const pad = (n) => String(n).padStart(2, "0");
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + "T" + pad(date.getHours()) + ":" + pad(date.getMinutes());
  }
  if (!fields.observedAt.value) {
    fields.observedAt.value = localInputValue(new Date());
    observedAtHelp.textContent = "Set to now; change it if you saw it earlier. Local time where you saw it.";
  }
  fields.observedAt.addEventListener("input", function () {
    observedAtTouched = true;
  });

  /** "2025:05:12 10:30:00" (EXIF, the camera's local time) -> "2025-05-12T10:30". */
  function exifTime(value) {
    const match = /^(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2})/.exec(String(value || ""));
    if (!match || match[1] === "0000") return null;
    return match[1] + "-" + match[2] + "-" + match[3] + "T" + match[4] + ":" + match[5];
  }

  /* ---- photos ---- */

  const selected = []; // {file, url, exif: Promise<object>}

  function fileKey(file) {
    return [file.name, file.size, file.lastModified].join("/");
  }

  function problemOf(file) {
    const isImage = /^image\//.test(file.type) || /\.(heic|heif)$/i.test(file.name);
    if (!isImage) return "This does not look like a photo.";
    if (file.size > config.maxBytes) return "Too large: at most " + Math.round(config.maxBytes / 1048576) + " MB.";
    return "";
  }

  function addFiles(files) {
    let skipped = 0;
    files.forEach(function (file) {
      if (selected.some((entry) => fileKey(entry.file) === fileKey(file))) return;
      if (selected.length >= config.maxPhotos) {
        skipped += 1;
        return;
      }
      selected.push({ file: file, url: URL.createObjectURL(file), exif: null, problem: problemOf(file) });
    });
    photosChanged(skipped);
  }

  function removePhoto(index) {
    const [entry] = selected.splice(index, 1);
    if (entry) URL.revokeObjectURL(entry.url);
    photosChanged(0);
    const buttons = previews.querySelectorAll(".thumb__remove");
    (buttons[Math.min(index, buttons.length - 1)] || chooser).focus();
  }

  function photosChanged(skipped) {
    syncInputs();
    renderPreviews(skipped);
    refreshUuid(); // other photos: another sighting
    readExif();
  }

  /** Every chosen photo travels in the file chooser's input (the camera's is emptied). */
  function syncInputs() {
    try {
      const transfer = new DataTransfer();
      selected.forEach((entry) => transfer.items.add(entry.file));
      chooser.files = transfer.files;
      camera.value = "";
    } catch (error) {
      // An old browser: each input keeps what it was given, and both are sent.
    }
  }

  function renderPreviews(skipped) {
    previews.replaceChildren();
    selected.forEach(function (entry, index) {
      const item = document.createElement("li");
      item.className = "thumb" + (entry.problem ? " thumb--problem" : "");
      const label = "Photo " + (index + 1) + ": " + entry.file.name;
      const image = document.createElement("img");
      image.src = entry.url;
      image.alt = label;
      image.addEventListener("error", function () {
        const name = document.createElement("span"); // HEIC cannot be previewed in most browsers
        name.className = "thumb__name";
        name.textContent = entry.file.name;
        image.replaceWith(name);
      });
      item.appendChild(image);
      if (entry.problem) {
        const problem = document.createElement("span");
        problem.className = "thumb__problem";
        problem.textContent = entry.problem;
        item.appendChild(problem);
      }
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "thumb__remove";
      remove.setAttribute("aria-label", "Remove " + label);
      remove.textContent = "×";
      remove.addEventListener("click", () => removePhoto(index));
      item.appendChild(remove);
      previews.appendChild(item);
    });
    const count = selected.length;
    photoCount.hidden = count === 0 && !skipped;
    let text = count + " of " + config.maxPhotos + " photos chosen.";
    if (skipped) text += " " + skipped + " more not added: one sighting has at most " + config.maxPhotos + " photos.";
    photoCount.textContent = text;
  }

  function exifOf(entry) {
    if (!entry.exif) {
      entry.exif = window.exifr
        ? exifr
            .parse(entry.file, {
              tiff: true, exif: true, gps: true, xmp: false, icc: false, iptc: false, jfif: false, ihdr: false,
              reviveValues: false,
            })
            .then((tags) => tags || {})
            .catch(() => ({}))
        : Promise.resolve({});
    }
    return entry.exif;
  }

  let exifRun = 0;
  async function readExif() {
    const run = ++exifRun;
    const results = await Promise.all(selected.map(exifOf));
    if (run !== exifRun) return; // the photos changed meanwhile
    let gps = null;
    let taken = null;
    results.forEach(function (tags) {
      const latitude = number(tags.latitude);
      const longitude = number(tags.longitude);
      if (!gps && latitude !== null && longitude !== null && !(latitude === 0 && longitude === 0)) {
        gps = { latitude: latitude, longitude: longitude, accuracy: number(tags.GPSHPositioningError) };
      }
      taken = taken || exifTime(tags.DateTimeOriginal) || exifTime(tags.CreateDate);
    });
    showExif(gps);
    if (taken && !observedAtTouched) {
      fields.observedAt.value = taken;
      observedAtHelp.textContent = "Taken from your photo. Local time where you saw it.";
    }
  }

  function showExif(gps) {
    const previous = exifPosition;
    exifPosition = gps;
    if (gps) {
      exifReadout.hidden = false;
      exifReadout.classList.remove("is-missing");
      exifReadout.textContent = "Position from photo: " + Maps.formatPosition(gps.latitude, gps.longitude, gps.accuracy);
      if (!fields.source.value || fields.source.value === "exif") {
        setPosition(gps.latitude, gps.longitude, gps.accuracy, "exif");
      } else {
        describePosition();
      }
      return;
    }
    if (previous && fields.source.value === "exif") clearPosition();
    exifReadout.hidden = selected.length === 0;
    exifReadout.classList.add("is-missing");
    exifReadout.textContent = "Your photos carry no GPS position: use your location or tap the map where you saw it.";
    describePosition();
  }

  [chooser, camera].forEach(function (input) {
    input.addEventListener("change", function () {
      addFiles(Array.from(input.files || []));
    });
  });

  /* ---- sending ---- */

  let sending = false;
  form.addEventListener("submit", function (event) {
    if (sending) {
      event.preventDefault(); // the first request is on its way; the UUID would make it idempotent anyway
      return;
    }
    if (selected.length === 0 && !(chooser.files && chooser.files.length) && !(camera.files && camera.files.length)) {
      event.preventDefault();
      photoCount.hidden = false;
      photoCount.textContent = "Choose at least one photo of the organism.";
      photoCount.classList.add("is-error");
      chooser.focus();
      return;
    }
    sending = true;
    submitButton.setAttribute("aria-disabled", "true");
    submitButton.classList.add("is-busy");
    submitButton.textContent = "Sending…";
  });

  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return; // back from the sighting page: this form is a new sighting
    sending = false;
    submitButton.removeAttribute("aria-disabled");
    submitButton.classList.remove("is-busy");
    submitButton.textContent = "Send sighting";
    refreshUuid();
  });

  setupMap();
  describePosition();
  const errors = document.getElementById("form-errors");
  if (errors) errors.focus();
})();
