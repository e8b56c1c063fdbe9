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
      map.fitBounds(circle.getBounds(), { maxZoom: 17, padding: [16, 16] });
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
    } else if (ai.state === "suggested") {
      const line = document.createElement("p");
      line.className = "suggestion";
      line.append(text("strong", ai.name));
      if (ai.percent !== null && ai.percent !== undefined) line.append(" ", text("span", ai.percent + "%", "score"));
      body.append(line);
      if (!ai.confident) body.append(text("p", "Not sure: the classifier's confidence is low.", "muted"));
      if (ai.alternatives && ai.alternatives.length) {
        body.append(text("p", "Other possibilities", "small muted alternatives-title"));
        const list = document.createElement("ul");
        list.className = "alternatives";
        ai.alternatives.forEach(function (other) {
          const item = document.createElement("li");
          item.append(text("span", other.name), " ", text("span", other.percent + "%", "muted"));
          list.append(item);
        });
        body.append(list);
      }
      body.append(text("p", "A first guess by an image classifier. An expert decides.", "muted small"));
    } else if (ai.state === "failed") {
      body.append(text("p", "The classifier could not process the photos yet; it will try again."));
    } else {
      body.append(text("p", "No suggestion.", "muted"));
    }
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

  function renderStatus(data) {
    const current = document.getElementById("status-badge");
    if (current) {
      const fresh = badge(data.status, data.status_display);
      fresh.id = "status-badge";
      current.replaceWith(fresh);
    }
    const sentence = document.getElementById("status-sentence");
    if (sentence) sentence.textContent = data.status_sentence;
    renderAi(data.ai);
    renderVerdict(data.verdict);
    const coordinates = document.getElementById("coordinates");
    if (coordinates && data.position && coordinates.textContent !== data.position.text) {
      coordinates.textContent = data.position.text;
      drawPosition(data.position);
    }
  }

  // Poll while the classifier has not answered: quickly at first, then more slowly.
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
        if (data.status !== "received") {
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
    if (!document.hidden && !stopped && timer === null && config.status === "received") poll();
  });

  drawPosition(config.position);
  if (config.status === "received") timer = setTimeout(poll, delay);
})();
