// The draw-a-digit page: draw or drop an image, POST it to /predict (one digit) or
// /read (a number), show the answer.
// Plain browser JavaScript, no build step, nothing loaded from another host.
"use strict";

(() => {
  const PREDICT_URL = "/predict?include_input=true";
  // A drawing is read after every stroke: a 7's first bar alone is no digit yet, so
  // drawings are never refused (reject=false); uploads are.
  const DRAWING_URL = "/predict?include_input=true&reject=false";
  const READ_URL = "/read?include_input=true";
  const READ_DRAWING_URL = "/read?include_input=true&reject=false";
  const PAD_WIDTH = { digit: 280, number: 840 }; // a number gets a pad three digits wide
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
  const numberEl = $("number");
  const numberConfidenceEl = $("number-confidence");
  const boxesCanvas = $("boxes");
  const digitsEl = $("digits");
  const otherEl = $("other");
  let mode = "digit";

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
    numberEl.textContent = "?";
    numberConfidenceEl.textContent = "Nothing read yet.";
    digitsEl.replaceChildren();
    otherEl.hidden = true;
    boxesCanvas.getContext("2d").clearRect(0, 0, boxesCanvas.width, boxesCanvas.height);
    delete boxesCanvas.dataset.boxes;
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
    for (const box of [errorBox, $("number-error")]) {
      box.hidden = true;
      box.textContent = "";
    }
  }

  function showError(message) {
    resetResult();
    const box = mode === "number" ? $("number-error") : errorBox;
    (mode === "number" ? numberConfidenceEl : confidenceEl).textContent = "No answer for this one.";
    box.textContent = message;
    box.hidden = false;
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

  // ---- A number: the digits read, their boxes over the image, each one's probabilities -----

  function digitItem(item) {
    const li = document.createElement("li");
    const digit = document.createElement("strong");
    const confidence = document.createElement("span");
    const chart = document.createElement("span");
    digit.textContent = String(item.digit);
    confidence.textContent = ` ${percent(item.confidence)}`;
    chart.className = "mini";
    chart.setAttribute("role", "img");
    const listed = item.probabilities.map((p, d) => `${d}: ${percent(p)}`).join(", ");
    chart.setAttribute("aria-label", `Probabilities ${listed}`);
    item.probabilities.forEach((p, d) => {
      const bar = document.createElement("span");
      bar.style.height = `${Math.max(0, Math.min(1, p)) * 100}%`;
      bar.title = `${d}: ${percent(p)}`;
      bar.classList.toggle("top", d === item.digit);
      chart.append(bar);
    });
    li.dataset.digit = String(item.digit);
    li.append(digit, confidence, chart);
    return li;
  }

  async function drawBoxes(blob, answer, mine) {
    let bitmap = null;
    try {
      bitmap = await createImageBitmap(blob); // upright, as the boxes are
    } catch {
      return; // an image the browser cannot show (TIFF): the digits are listed all the same
    }
    if (mine !== sequence) return;
    const scale = Math.min(600 / bitmap.width, 300 / bitmap.height);
    boxesCanvas.width = Math.max(1, Math.round(bitmap.width * scale));
    boxesCanvas.height = Math.max(1, Math.round(bitmap.height * scale));
    const draw = boxesCanvas.getContext("2d");
    draw.fillStyle = PAPER;
    draw.fillRect(0, 0, boxesCanvas.width, boxesCanvas.height);
    draw.drawImage(bitmap, 0, 0, boxesCanvas.width, boxesCanvas.height);
    draw.lineWidth = 2;
    draw.font = "bold 14px system-ui, sans-serif";
    for (const [boxes, colour] of [[answer.digits, "#1d4ed8"], [answer.other, "#b45309"]]) {
      draw.strokeStyle = colour;
      draw.fillStyle = colour;
      for (const item of boxes) {
        const { x, y, width, height } = item.box;
        draw.strokeRect(x * scale, y * scale, width * scale, height * scale);
        const label = "digit" in item ? String(item.digit) : item.kind;
        draw.fillText(label, x * scale + 2, Math.max(12, y * scale - 3));
      }
    }
    boxesCanvas.dataset.boxes = String(answer.digits.length);
  }

  function showNumber(answer, source, blob, mine) {
    hideError();
    numberEl.textContent = answer.number;
    const unsure = answer.confidence < 0.5 ? " (unsure: try larger digits, apart)" : "";
    numberConfidenceEl.textContent = `${percent(answer.confidence)} confident, from ${source}${unsure}`;
    digitsEl.replaceChildren(...answer.digits.map(digitItem));
    otherEl.hidden = answer.other.length === 0;
    otherEl.textContent = `Not digits, left out: ${answer.other.map((m) => m.kind).join(", ")}.`;
    drawBoxes(blob, answer, mine);
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

  // ---- Calling /predict or /read: the latest request wins, older ones are cancelled ----------

  let inFlight = null;
  let sequence = 0;

  const DRAWING = "your drawing";

  async function predict(blob, filename, source) {
    if (inFlight) inFlight.abort();
    const controller = new AbortController();
    inFlight = controller;
    const mine = (sequence += 1);
    setState("busy");
    const form = new FormData();
    form.append("file", blob, filename);
    try {
      const reading = mode === "number";
      const drawn = source === DRAWING;
      const url = reading
        ? (drawn ? READ_DRAWING_URL : READ_URL)
        : (drawn ? DRAWING_URL : PREDICT_URL);
      const response = await fetch(url, {
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
      } else if (reading) {
        if (!body || typeof body.number !== "string" || !Array.isArray(body.digits)) {
          showError("The server's answer was not a reading.");
        } else {
          showNumber(body, source, blob, mine);
        }
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
      predict(blob, "drawing.png", DRAWING);
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

  // ---- One digit or a number --------------------------------------------------------------

  function setMode(next) {
    mode = next;
    document.body.dataset.mode = next;
    padReads += 1;
    cancelPrediction();
    stroke = null;
    pad.width = PAD_WIDTH[next];
    const number = next === "number";
    $("draw-title").textContent = number ? "Draw a number" : "Draw a digit";
    $("pad-help").textContent = number
      ? "A number in one line, digits large, with a mouse, pen or finger. It is read after every stroke."
      : "One digit, large, with a mouse, pen or finger. It is read after every stroke.";
    pad.setAttribute("aria-label", number ? "Drawing area for a number" : "Drawing area for one digit");
    clearPad();
    hideError();
    resetResult();
    setState("idle");
  }

  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", () => radio.checked && setMode(radio.value));
  }

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
  const checked = document.querySelector('input[name="mode"]:checked');
  if (checked && checked.value !== mode) setMode(checked.value); // a reload keeps the choice
  showModel();
})();
