/* Curators' pages: the queue's selection, and the review screen's map, photo viewer and keys. */
(function () {
  "use strict";

  // ---- the queue: select all, count of selected rows ----

  function setUpQueue() {
    const form = document.getElementById("bulk-form");
    if (!form) return;
    const boxes = Array.from(form.querySelectorAll('input[name="selected"]'));
    const all = document.getElementById("select-all");
    const count = document.getElementById("selected-count");

    function update() {
      const chosen = boxes.filter(function (box) {
        return box.checked;
      }).length;
      if (count) count.textContent = chosen ? "(" + chosen + " selected)" : "(none selected)";
      if (all) {
        all.checked = chosen > 0 && chosen === boxes.length;
        all.indeterminate = chosen > 0 && chosen < boxes.length;
      }
      boxes.forEach(function (box) {
        const row = box.closest("tr");
        if (row) row.classList.toggle("is-selected", box.checked);
      });
    }

    if (all) {
      all.hidden = false;
      all.addEventListener("change", function () {
        boxes.forEach(function (box) {
          box.checked = all.checked;
        });
        update();
      });
    }
    boxes.forEach(function (box) {
      box.addEventListener("change", update);
    });
    form.addEventListener("submit", function (event) {
      const chosen = boxes.some(function (box) {
        return box.checked;
      });
      if (!chosen) {
        event.preventDefault();
        if (count) count.textContent = "(select at least one sighting first)";
      }
    });
    update();
  }

  // ---- the review screen: map ----

  function setUpMap(config) {
    const element = document.getElementById("review-map");
    const Maps = window.ParkWatchMaps;
    if (!element || !window.L || !Maps || !config.position) return;
    const map = Maps.create(element);
    const point = [config.position.latitude, config.position.longitude];
    // A view first: Leaflet adds layers (and can measure them) only once the map has one.
    map.setView(point, 16);
    const bounds = L.latLngBounds([point, point]);
    L.marker(point, { keyboard: false, alt: "This sighting", zIndexOffset: 1000 })
      .addTo(map)
      .bindTooltip("This sighting");
    const accuracy = Number(config.position.accuracy_m) || 0;
    if (accuracy > 0) {
      L.circle(point, Object.assign({ radius: accuracy, interactive: false }, Maps.circleStyle)).addTo(map);
      bounds.extend(L.latLng(point).toBounds(accuracy * 2));
    }
    (config.nearby || []).forEach(function (other) {
      const where = [other.latitude, other.longitude];
      const marker = L.circleMarker(where, {
        radius: 7,
        color: "#7a1f24",
        weight: 2,
        fillColor: "#d9534f",
        fillOpacity: 0.85,
      }).addTo(map);
      const label = other.name + " · " + other.distance;
      marker.bindTooltip(label);
      const link = document.createElement("a");
      link.href = other.url;
      link.textContent = label;
      marker.bindPopup(link);
      bounds.extend(where);
    });
    if (!bounds.getNorthEast().equals(bounds.getSouthWest())) {
      map.fitBounds(bounds, { maxZoom: 17, padding: [24, 24] });
    }
  }

  // ---- the review screen: photo viewer (the public derivative, fit or actual size) ----

  function setUpLightbox() {
    const dialog = document.getElementById("lightbox");
    const links = Array.from(document.querySelectorAll(".review-photo__link"));
    if (!dialog || !links.length || typeof dialog.showModal !== "function") return;
    const image = document.getElementById("lightbox-image");
    const stage = document.getElementById("lightbox-stage");
    const caption = document.getElementById("lightbox-caption");
    const full = document.getElementById("lightbox-full");
    const zoom = document.getElementById("lightbox-zoom");
    const previous = document.getElementById("lightbox-prev");
    const next = document.getElementById("lightbox-next");
    let index = 0;

    function setZoom(on, x, y) {
      dialog.classList.toggle("is-zoomed", on);
      zoom.setAttribute("aria-pressed", on ? "true" : "false");
      zoom.textContent = on ? "Fit" : "Zoom";
      if (!on) {
        image.style.width = "";
        return;
      }
      // Twice the fitted size, or the photo's own pixels if that is more.
      const ratio = image.naturalWidth && image.naturalHeight ? image.naturalWidth / image.naturalHeight : 1;
      const fitted = Math.min(stage.clientWidth, stage.clientHeight * ratio);
      const width = Math.max(image.naturalWidth || 0, fitted * 2);
      image.style.width = Math.round(width) + "px";
      if (x !== undefined) {
        // Bring the clicked spot to the middle of the screen.
        stage.scrollLeft = x * width - stage.clientWidth / 2;
        stage.scrollTop = (y * width) / ratio - stage.clientHeight / 2;
      }
    }

    function show(newIndex) {
      index = (newIndex + links.length) % links.length;
      const link = links[index];
      image.src = link.href;
      image.alt = link.dataset.caption || "";
      caption.textContent = link.dataset.caption || "";
      full.href = link.href;
      previous.hidden = next.hidden = links.length < 2;
      setZoom(false);
    }

    links.forEach(function (link, position) {
      link.addEventListener("click", function (event) {
        if (event.metaKey || event.ctrlKey || event.shiftKey) return; // a new tab, as asked
        event.preventDefault();
        show(position);
        dialog.showModal();
      });
    });
    image.addEventListener("click", function (event) {
      if (dialog.classList.contains("is-zoomed")) {
        setZoom(false);
        return;
      }
      // Where on the photo itself (the fitted image may have bands around it).
      const box = image.getBoundingClientRect();
      const ratio = image.naturalWidth / image.naturalHeight || 1;
      const shownWidth = Math.min(box.width, box.height * ratio);
      const shownHeight = shownWidth / ratio;
      const left = box.left + (box.width - shownWidth) / 2;
      const top = box.top + (box.height - shownHeight) / 2;
      const clamp = function (value) {
        return Math.min(Math.max(value, 0), 1);
      };
      setZoom(true, clamp((event.clientX - left) / shownWidth), clamp((event.clientY - top) / shownHeight));
    });
    zoom.addEventListener("click", function () {
      setZoom(!dialog.classList.contains("is-zoomed"), 0.5, 0.5);
    });
    previous.addEventListener("click", function () {
      show(index - 1);
    });
    next.addEventListener("click", function () {
      show(index + 1);
    });
    document.getElementById("lightbox-close").addEventListener("click", function () {
      dialog.close();
    });
    dialog.addEventListener("click", function (event) {
      if (event.target === dialog) dialog.close(); // the backdrop
    });
    dialog.addEventListener("keydown", function (event) {
      if (event.key === "ArrowLeft") show(index - 1);
      else if (event.key === "ArrowRight") show(index + 1);
      else if (event.key === "z") setZoom(!dialog.classList.contains("is-zoomed"), 0.5, 0.5);
    });
  }

  // ---- the review screen: keyboard shortcuts ----

  const TYPING_TYPES = ["text", "search", "email", "number", "password", "url", "tel", "date", "datetime-local", "time"];

  function isTyping(element) {
    if (!element) return false;
    if (element.isContentEditable) return true;
    const tag = element.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    return tag === "INPUT" && TYPING_TYPES.indexOf((element.type || "text").toLowerCase()) !== -1;
  }

  function setUpShortcuts() {
    const form = document.getElementById("decision-form");
    if (!form) return;
    let sent = false;

    function press(button) {
      if (!button || button.disabled || sent) return;
      sent = true;
      button.classList.add("is-pressed");
      // requestSubmit sends the button's name and value, as a click would.
      if (button.form && typeof button.form.requestSubmit === "function") {
        button.form.requestSubmit(button);
      } else {
        button.click();
      }
    }

    form.addEventListener("submit", function () {
      sent = true;
    });

    function chosenReason() {
      return form.querySelector('input[name="reject_reason"]:checked');
    }

    document.addEventListener("keydown", function (event) {
      if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
      const lightbox = document.getElementById("lightbox");
      if (lightbox && lightbox.open) return;
      const target = event.target;
      if (isTyping(target)) {
        if (event.key === "Escape") target.blur();
        return;
      }
      const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
      if (/^[1-5]$/.test(key)) {
        const button = form.querySelector('button[name="rank"][data-shortcut="' + key + '"]');
        if (button) {
          event.preventDefault();
          press(button);
        }
      } else if (key === "r") {
        event.preventDefault();
        if (chosenReason()) {
          press(document.getElementById("reject-button"));
        } else {
          const first = form.querySelector('input[name="reject_reason"]');
          const fieldset = document.getElementById("reject-fieldset");
          if (fieldset) fieldset.classList.add("is-asking");
          if (first) first.focus();
        }
      } else if (key === "u") {
        event.preventDefault();
        press(document.getElementById("unidentifiable-button"));
      } else if (key === "i") {
        event.preventDefault();
        const message = document.getElementById("id_message_to_observer");
        if (message && !message.value.trim()) {
          message.focus();
        } else {
          press(document.getElementById("needs-info-button"));
        }
      } else if (key === "s") {
        const release = document.getElementById("release-button");
        if (release) {
          event.preventDefault();
          press(release);
        }
      } else if (key === "n") {
        event.preventDefault();
        press(document.getElementById("next-button"));
      }
    });

    // Choosing a reason after "r" asked for one: say how to go on.
    form.querySelectorAll('input[name="reject_reason"]').forEach(function (radio) {
      radio.addEventListener("change", function () {
        const fieldset = document.getElementById("reject-fieldset");
        if (fieldset) fieldset.classList.remove("is-asking");
      });
    });

    // After a refused decision, the error summary is read out first.
    const errors = document.getElementById("decision-errors");
    if (errors) errors.focus({ preventScroll: false });
  }

  // On a phone the list comes first: the filters fold away unless some are set.
  function foldFilters() {
    const filters = document.getElementById("filters");
    if (filters && !filters.hasAttribute("data-active") && window.matchMedia("(max-width: 40rem)").matches) {
      filters.open = false;
    }
  }

  foldFilters();
  setUpQueue();
  const configElement = document.getElementById("review-config");
  if (configElement) {
    setUpMap(JSON.parse(configElement.textContent));
    setUpLightbox();
    setUpShortcuts();
  }
})();
