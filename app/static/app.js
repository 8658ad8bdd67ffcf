// The draw-a-digit page: draw or drop an image, POST it to /predict, show the answer.
// Plain browser JavaScript, no build step, nothing loaded from another host.
"use strict";

(() => {
  const PREDICT_URL = "/predict?include_input=true";
  const INK = "#111111";
  const PAPER = "#ffffff";
  const LINE_WIDTH = 22; // on the 280 px canvas: MNIST-like strokes once fitted to 20 px

  const $ = (id) => document.getElementById(id);
  const pad = $("pad");
  const ctx = pad.getContext("2d");
  const fileInput = $("file");
  const errorBox = $("error");
  const predictionEl = $("prediction");
  const confidenceEl = $("confidence");
  const preview = $("preview");
  const barsEl = $("bars");

  // ---- Ten probability bars, built once -------------------------------------------------

  const bars = [];
  for (let digit = 0; digit < 10; digit += 1) {
    const item = document.createElement("li");
    const label = document.createElement("span");
    const track = document.createElement("span");
    const fill = document.createElement("span");
    const value = document.createElement("span");
    label.className = "label";
    label.textContent = String(digit);
    track.className = "track";
    track.setAttribute("aria-hidden", "true");
    fill.className = "fill";
    value.className = "value";
    value.textContent = "–";
    track.append(fill);
    item.append(label, track, value);
    item.dataset.digit = String(digit);
    barsEl.append(item);
    bars.push({ item, fill, value });
  }

  const percent = (p) => `${(100 * p).toFixed(1)}%`;

  // ---- Showing results and errors ------------------------------------------------------

  function setState(state) {
    document.body.dataset.state = state;
    $("result").setAttribute("aria-busy", state === "busy" ? "true" : "false");
  }

  function resetResult() {
    predictionEl.textContent = "?";
    confidenceEl.textContent = "Nothing read yet.";
    preview.hidden = true;
    preview.removeAttribute("src");
    preview.alt = "";
    for (const bar of bars) {
      bar.item.classList.remove("top");
      bar.fill.style.width = "0";
      bar.value.textContent = "–";
    }
  }

  function hideError() {
    errorBox.hidden = true;
    errorBox.textContent = "";
  }

  function showError(message) {
    resetResult();
    confidenceEl.textContent = "No answer for this one.";
    errorBox.textContent = message;
    errorBox.hidden = false;
    setState("error");
  }

  function showPrediction(answer, source) {
    hideError();
    predictionEl.textContent = String(answer.digit);
    const unsure = answer.confidence < 0.5 ? " (unsure: try a larger, centred digit)" : "";
    confidenceEl.textContent = `${percent(answer.confidence)} confident, from ${source}${unsure}`;
    answer.probabilities.forEach((p, digit) => {
      const bar = bars[digit];
      bar.item.classList.toggle("top", digit === answer.digit);
      bar.fill.style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
      bar.value.textContent = percent(p);
    });
    if (answer.input_png) {
      preview.src = `data:image/png;base64,${answer.input_png}`;
      preview.alt = `The 28×28 image the network saw, read as ${answer.digit}`;
      preview.hidden = false;
    }
    setState("done");
  }

  // What went wrong, in the API's own words when it gave some.
  function describeFailure(response, body) {
    const detail = body && body.detail;
    if (typeof detail === "string" && detail) return detail;
    if (Array.isArray(detail) && detail.length) {
      return detail.map((item) => (item && item.msg) || JSON.stringify(item)).join("; ");
    }
    const text = response.statusText ? ` ${response.statusText}` : "";
    return `The server answered ${response.status}${text}.`;
  }

  // ---- Calling /predict: the latest request wins, older ones are cancelled -------------------

  let inFlight = null;
  let sequence = 0;

  async function predict(blob, filename, source) {
    if (inFlight) inFlight.abort();
    const controller = new AbortController();
    inFlight = controller;
    const mine = (sequence += 1);
    setState("busy");
    const form = new FormData();
    form.append("file", blob, filename);
    try {
      const response = await fetch(PREDICT_URL, {
        method: "POST",
        body: form,
        headers: { Accept: "application/json" },
        signal: controller.signal,
      });
      let body = null;
      try {
        body = await response.json();
      } catch {
        body = null; // not JSON (a proxy's error page): say so below
      }
      if (mine !== sequence) return;
      if (!response.ok) {
        showError(describeFailure(response, body));
      } else if (!body || typeof body.digit !== "number" || !Array.isArray(body.probabilities)) {
        showError("The server's answer was not a prediction.");
      } else {
        showPrediction(body, source);
      }
    } catch (error) {
      if (mine !== sequence || (error && error.name === "AbortError")) return;
      showError(`Could not reach the server: ${(error && error.message) || error}`);
    } finally {
      if (inFlight === controller) inFlight = null;
    }
  }

  function cancelPrediction() {
    sequence += 1;
    if (inFlight) inFlight.abort();
    inFlight = null;
  }

  // ---- The drawing pad -----------------------------------------------------------------

  function clearPad() {
    ctx.globalCompositeOperation = "source-over";
    ctx.fillStyle = PAPER;
    ctx.fillRect(0, 0, pad.width, pad.height);
    ctx.strokeStyle = INK;
    ctx.fillStyle = INK;
    ctx.lineWidth = LINE_WIDTH;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
  }

  let padReads = 0; // only the latest read of the pad is sent; Clear drops pending ones

  function readDrawing() {
    const mine = (padReads += 1);
    pad.toBlob((blob) => {
      if (mine !== padReads) return;
      if (!blob) {
        showError("This browser could not turn the drawing into an image.");
        return;
      }
      predict(blob, "drawing.png", "your drawing");
    }, "image/png");
  }

  function toPad(event) {
    const box = pad.getBoundingClientRect();
    return {
      x: ((event.clientX - box.left) * pad.width) / box.width,
      y: ((event.clientY - box.top) * pad.height) / box.height,
    };
  }

  let stroke = null; // { id, last } while a pointer is drawing

  pad.addEventListener("pointerdown", (event) => {
    if (stroke || (event.pointerType === "mouse" && event.button !== 0)) return;
    event.preventDefault();
    try {
      pad.setPointerCapture(event.pointerId); // keep the stroke when the pointer leaves the pad
    } catch {
      // a pointer that is already gone: draw without capture
    }
    const point = toPad(event);
    stroke = { id: event.pointerId, last: point };
    ctx.beginPath();
    ctx.arc(point.x, point.y, LINE_WIDTH / 2, 0, 2 * Math.PI);
    ctx.fill();
  });

  pad.addEventListener("pointermove", (event) => {
    if (!stroke || event.pointerId !== stroke.id) return;
    const coalesced = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    ctx.beginPath();
    ctx.moveTo(stroke.last.x, stroke.last.y);
    for (const each of coalesced.length ? coalesced : [event]) {
      stroke.last = toPad(each);
      ctx.lineTo(stroke.last.x, stroke.last.y);
    }
    ctx.stroke();
  });

  function endStroke(event) {
    if (!stroke || event.pointerId !== stroke.id) return;
    stroke = null;
    readDrawing(); // one request per stroke, when the pen lifts
  }

  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);
  pad.addEventListener("contextmenu", (event) => event.preventDefault());

  $("clear").addEventListener("click", () => {
    padReads += 1;
    cancelPrediction();
    stroke = null;
    clearPad();
    hideError();
    resetResult();
    setState("idle");
  });

  $("read").addEventListener("click", readDrawing);

  // ---- Images: the file picker, and drag-and-drop anywhere on the page -------------------

  function readFile(file) {
    padReads += 1; // a drawing read still being encoded must not replace this answer
    if (!file) {
      showError("That was not a file: drop or choose an image file.");
      return;
    }
    predict(file, file.name || "upload", file.name || "your image");
  }

  fileInput.addEventListener("change", () => {
    const [file] = fileInput.files;
    if (file) readFile(file);
    fileInput.value = ""; // choosing the same file again reads it again
  });

  const carriesFiles = (event) =>
    !!event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files");
  let dragDepth = 0;

  document.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    dragDepth += 1;
    document.body.classList.add("dragging");
  });
  document.addEventListener("dragleave", (event) => {
    if (!carriesFiles(event)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) document.body.classList.remove("dragging");
  });
  document.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault(); // allow the drop instead of opening the file
    event.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    dragDepth = 0;
    document.body.classList.remove("dragging");
    readFile(event.dataTransfer.files[0]);
  });

  // ---- The model in use, for the footer -------------------------------------------------

  async function showModel() {
    const info = $("model-info");
    try {
      const response = await fetch("/model", { headers: { Accept: "application/json" } });
      const body = await response.json().catch(() => null);
      if (!response.ok || !body) {
        info.textContent = `Model card unavailable: ${describeFailure(response, body)}`;
        return;
      }
      const accuracy =
        typeof body.test_accuracy === "number"
          ? `, ${percent(body.test_accuracy)} right on the 10,000 MNIST test digits`
          : "";
      const name = body.version.startsWith(body.name) ? body.version : `${body.name} ${body.version}`;
      info.textContent = `Model ${name}${accuracy}.`;
    } catch (error) {
      info.textContent = `Model card unavailable: ${(error && error.message) || error}`;
    }
  }

  clearPad();
  resetResult();
  showModel();
})();
