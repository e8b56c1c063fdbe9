/* One sighting: its map, and its status polled while the classifier works (no reload needed). */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("sighting-config").textContent);
  const Maps = window.ParkWatchMaps;
  let map = null;
  let marker = null;
  let circle = null;

  function drawPosition(position) {
    const element = document.getElementById("detail-map");
    if (!element || !window.L || !position) return;
    if (!map) map = Maps.create(element);
    const point = [position.latitude, position.longitude];
    if (!marker) {
      marker = L.marker(point, { keyboard: false, alt: "Sighting position" }).addTo(map);
    } else {
      marker.setLatLng(point);
    }
    const radius = position.accuracy_m || 0;
    if (circle) circle.remove();
    circle = null;
    if (position.generalised) {
      // The 0.1 degree cell the sighting lies in, not a point: draw the cell itself.
      const half = 0.05;
      circle = L.rectangle(
        [[position.latitude - half, position.longitude - half], [position.latitude + half, position.longitude + half]],
        Object.assign({ interactive: false }, Maps.circleStyle)
      ).addTo(map);
      marker.remove();
      marker = null;
    } else if (radius > 0) {
      circle = L.circle(point, Object.assign({ radius: radius, interactive: false }, Maps.circleStyle)).addTo(map);
    }
    if (circle && (position.generalised || radius > 40)) {
      // A circle's getBounds needs a map view first; LatLng.toBounds does not.
      const bounds = position.generalised ? circle.getBounds() : L.latLng(point).toBounds(radius * 2);
      map.fitBounds(bounds, { maxZoom: 17, padding: [16, 16] });
    } else {
      map.setView(point, 16);
    }
  }

  function text(tag, content, className) {
    const element = document.createElement(tag);
    element.textContent = content;
    if (className) element.className = className;
    return element;
  }

  function badge(status, display) {
    return text("span", display, "badge badge--" + status);
  }

  function italic(content) {
    return text("i", content);
  }

  // A prediction's name as templates/observations/_prediction_name.html draws it.
  function predictionName(row) {
    const fragment = document.createDocumentFragment();
    if (row.scientific_name) {
      if (row.common_name) {
        fragment.append(row.common_name + " (", italic(row.scientific_name), ")");
      } else {
        fragment.append(italic(row.scientific_name));
      }
    } else {
      const raw = text("span", "raw label: ", "raw-label");
      raw.append(text("code", row.raw_label));
      fragment.append(raw);
    }
    if (row.is_invasive) fragment.append(" ", text("span", "invasive", "tag tag--invasive"));
    return fragment;
  }

  function reasonNote(title, reason) {
    const note = document.createElement("p");
    note.className = "note note--reason";
    note.append(text("strong", title), " " + reason);
    return note;
  }

  function headline(ai) {
    const line = document.createElement("p");
    line.id = "ai-headline";
    line.className = ai.confident ? "suggestion" : "suggestion suggestion--unsure";
    const top = ai.top;
    if (ai.confident) {
      const name = document.createElement("strong");
      name.append(predictionName(top));
      line.append(name);
      if (top.percent_text) line.append(" ", text("span", top.percent_text, "score"));
    } else {
      const unsure = document.createElement("span");
      unsure.append(text("strong", "Not sure"), " — maybe ");
      if (top.scientific_name) {
        unsure.append(italic(top.scientific_name));
      } else {
        unsure.append("raw label: ", text("code", top.raw_label));
      }
      if (top.percent_text) unsure.append(" (" + top.percent_text + ")");
      line.append(unsure);
    }
    return line;
  }

  function bars(predictions) {
    const list = document.createElement("ol");
    list.className = "ai-bars";
    list.setAttribute("aria-label", "The classifier's top " + predictions.length);
    predictions.forEach(function (row, index) {
      const item = document.createElement("li");
      item.className = index === 0 ? "ai-bar ai-bar--top" : "ai-bar";
      const name = text("span", "", "ai-bar__name");
      name.append(predictionName(row));
      const track = text("span", "", "ai-bar__track");
      track.setAttribute("aria-hidden", "true");
      const fill = text("span", "", "ai-bar__fill");
      fill.style.width = row.width + "%";
      track.append(fill);
      item.append(name, text("span", row.percent_text, "ai-bar__percent"), track);
      list.append(item);
    });
    return list;
  }

  function renderAi(ai) {
    const body = document.getElementById("ai-body");
    if (!body) return;
    body.replaceChildren();
    if (ai.state === "waiting") {
      const waiting = text("p", " Waiting for the classifier…", "waiting");
      const spinner = text("span", "", "spinner");
      spinner.setAttribute("aria-hidden", "true");
      waiting.prepend(spinner);
      body.append(waiting);
      if (ai.reason) body.append(reasonNote("Last attempt failed (curators only):", ai.reason));
    } else if (ai.state === "failed") {
      const failed = document.createElement("p");
      failed.className = "ai-failed";
      failed.append(
        text("strong", "Classification failed."),
        " The classifier could not process the photos; it will be retried automatically." +
          " An expert will still review the sighting."
      );
      body.append(failed);
      if (ai.reason) body.append(reasonNote("Reason (curators only):", ai.reason));
    } else if (ai.state === "suggested" && ai.top) {
      if (ai.demo_warning) {
        const demo = text("p", ai.demo_warning, "ai-demo");
        demo.setAttribute("role", "note");
        body.append(demo);
      }
      body.append(headline(ai));
      if (!ai.confident) {
        body.append(
          text(
            "p",
            "The classifier's confidence is below this campaign's threshold (" + ai.threshold_percent + "%).",
            "muted small"
          )
        );
      }
      body.append(bars(ai.predictions || []));
      if (ai.model) {
        body.append(
          text(
            "p",
            "Model: " + ai.model.label + " · test-time augmentation: " + ai.model.tta_display,
            "ai-model small muted"
          )
        );
      }
      body.append(text("p", "A first guess by an image classifier. An expert decides.", "muted small"));
    } else {
      body.append(text("p", "No suggestion.", "muted"));
    }
  }

  // Curators see each photo's own top-1 under its thumbnail.
  function renderPhotoTops(photos) {
    if (!photos) return;
    photos.forEach(function (photo) {
      const caption = document.querySelector('[data-photo-ai="' + photo.id + '"]');
      if (!caption) return;
      caption.replaceChildren();
      const top = photo.top;
      if (!top) return;
      caption.append(text("span", "AI top-1 for this photo: ", "visually-hidden"));
      if (top.scientific_name) {
        caption.append(italic(top.scientific_name));
      } else {
        caption.append("raw label: " + top.raw_label);
      }
      caption.append(" ", text("span", top.percent_text, "nowrap"));
    });
  }

  function renderVerdict(verdict) {
    const body = document.getElementById("verdict-body");
    if (!body) return;
    body.replaceChildren();
    if (verdict.name) {
      const line = document.createElement("p");
      line.className = "suggestion";
      line.append(text("strong", verdict.name), " ", badge(verdict.status, verdict.status_display));
      body.append(line);
    } else if (verdict.decided) {
      const line = document.createElement("p");
      line.append(badge(verdict.status, verdict.status_display));
      body.append(line);
    }
    body.append(text("p", verdict.sentence));
  }

  let lastAi = JSON.stringify(config.ai);

  function renderStatus(data) {
    const current = document.getElementById("status-badge");
    if (current) {
      const fresh = badge(data.status, data.status_display);
      fresh.id = "status-badge";
      current.replaceWith(fresh);
    }
    const sentence = document.getElementById("status-sentence");
    if (sentence) sentence.textContent = data.status_sentence;
    // Redraw the AI card only when it changed: it is a live region, read out on every change.
    const aiState = JSON.stringify(data.ai);
    if (aiState !== lastAi) {
      lastAi = aiState;
      renderAi(data.ai);
      renderPhotoTops(data.photos);
    }
    renderVerdict(data.verdict);
    const coordinates = document.getElementById("coordinates");
    if (coordinates && data.position && coordinates.textContent !== data.position.text) {
      coordinates.textContent = data.position.text;
      drawPosition(data.position);
    }
  }

  // Poll while the classifier has not answered (or failed and will retry): quickly at first,
  // then more slowly.
  function waitsForClassifier(status) {
    return status === "received" || status === "classification_failed";
  }

  let delay = 3000;
  let timer = null;
  let stopped = false;
  let inFlight = false;
  async function poll() {
    timer = null;
    if (document.hidden || inFlight) return; // resumed by visibilitychange
    inFlight = true;
    try {
      const response = await fetch(config.statusUrl, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (response.ok) {
        const data = await response.json();
        renderStatus(data);
        if (!waitsForClassifier(data.status)) {
          stopped = true;
          return;
        }
      }
    } catch (error) {
      // Offline for a moment: try again later.
    } finally {
      inFlight = false;
    }
    delay = Math.min(delay * 1.25, 30000);
    timer = setTimeout(poll, delay);
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && !stopped && timer === null && waitsForClassifier(config.status)) poll();
  });

  drawPosition(config.position);
  if (waitsForClassifier(config.status)) timer = setTimeout(poll, delay);
})();
