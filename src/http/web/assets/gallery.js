// The web gallery: the account's timeline (every family's items, newest first, grouped by
// day, a page at a time while scrolling), a viewer, uploads through tus that resume, and the
// devices page. It speaks Ferry's JSON API with the session cookie; every change carries the
// page's CSRF token.
"use strict";

const CSRF = document.querySelector('meta[name="ferry-csrf"]').content;
const PAGE = 60;
const TUS_CHUNK = 8 * 1024 * 1024;
// waits between tries of an upload whose connection dropped or whose server was briefly away
const RETRY_WAITS = [1000, 2000, 4000, 8000, 15000, 15000, 30000, 30000];
const $ = (id) => document.getElementById(id);

// `generation` counts restarts: an answer to a request made before the last one is dropped.
// The viewer remembers its item by id: a restart (an upload finished, a filter changed)
// rebuilds `items`, and a position would then name another item.
const state = { items: [], cursor: null, done: false, loading: false, openId: null, generation: 0 };

function openIndex() {
  return state.items.findIndex((i) => i.id === state.openId);
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  const method = options.method || "GET";
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = CSRF;
  const response = await fetch(path, Object.assign({}, options, { headers, credentials: "same-origin" }));
  if (response.status === 401) {
    // signed out elsewhere (revoked, expired): the page asks again
    location.reload();
    throw new Error("signed out");
  }
  return response;
}

async function json(path, options) {
  const response = await api(path, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.message || response.statusText);
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function size(bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let n = bytes;
  let unit = 0;
  while (n >= 1000 && unit < units.length - 1) {
    n /= 1000;
    unit += 1;
  }
  return `${unit ? n.toFixed(1) : n} ${units[unit]}`;
}

function duration(seconds) {
  const s = Math.round(seconds);
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, "0")}`;
}

function isVideo(item) {
  return (item.media && item.media.kind === "video") || item.content_type.startsWith("video/");
}

// When the item was stored: the order the timeline is in.
function when(item) {
  return new Date(item.created);
}

function day(date) {
  return date.toLocaleDateString(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
}

// ---- timeline ----

function query() {
  const params = new URLSearchParams({ limit: String(PAGE) });
  const source = $("filter-source").value;
  const type = $("filter-type").value;
  if (source) params.set("source", source);
  if (type) params.set("type", type);
  if (state.cursor) params.set("cursor", state.cursor);
  return params.toString();
}

async function loadMore() {
  if (state.loading || state.done) return;
  const generation = state.generation;
  state.loading = true;
  $("timeline-end").textContent = "Loading…";
  try {
    const page = await json(`/api/timeline?${query()}`);
    if (generation !== state.generation) return; // the filters changed meanwhile
    state.cursor = page.next;
    state.done = !page.next;
    for (const item of page.items) addTile(item);
    $("timeline-end").textContent = state.done ? (state.items.length ? "" : "Nothing here yet: drop files on the page to upload.") : "";
  } catch (error) {
    $("timeline-end").textContent = `Could not load the timeline: ${error.message}`;
  } finally {
    state.loading = false;
    // a restart while this page was on its way asks for the new first page now
    if (generation !== state.generation) loadMore();
  }
}

function addTile(item) {
  state.items.push(item);
  const date = when(item);
  const label = day(date);
  let group = document.querySelector(`.day[data-day="${CSS.escape(label)}"]`);
  if (!group) {
    group = el("section", { class: "day", "data-day": label }, el("h2", {}, label), el("div", { class: "grid" }));
    $("timeline").append(group);
  }
  const picture = item.urls.thumbnail
    ? el("img", { src: item.urls.thumbnail, alt: "", loading: "lazy", decoding: "async" })
    : el("div", { class: "placeholder", "aria-hidden": "true" }, (item.name.split(".").pop() || "file").slice(0, 5));
  const badge = isVideo(item)
    ? el("span", { class: "badge" }, item.duration ? `▶ ${duration(item.duration)}` : "▶")
    : "";
  const name = item.name.split("/").pop();
  const tile = el(
    "button",
    // by id, not position: deleting an item moves the ones after it
    { class: "tile", type: "button", "data-id": item.id, title: item.name, onclick: () => openViewer(state.items.findIndex((i) => i.id === item.id)) },
    picture,
    badge,
    el("span", { class: "caption" }, el("span", { class: "name" }, name), el("span", { class: "meta" }, `${size(item.size)} · ${date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`)),
  );
  group.querySelector(".grid").append(tile);
}

// Every device, volume and folder of the account, for the filter (one request).
async function loadSources() {
  const { sources } = await json("/api/sources");
  const label = (s) => (s.kind === "multipart" ? "Multipart files" : `${s.kind[0].toUpperCase()}${s.kind.slice(1)} ${s.name}`);
  $("filter-source").append(...sources.map((s) => el("option", { value: s.filter }, label(s))));
}

function restart() {
  state.generation += 1;
  state.items = [];
  state.cursor = null;
  state.done = false;
  $("timeline").replaceChildren();
  loadMore();
}

// ---- viewer ----

function browserShows(item) {
  return /^image\/(jpeg|png|gif|webp|avif|bmp|svg\+xml)$/.test(item.content_type);
}

function browserPlays(item) {
  return /^video\/(mp4|webm)$/.test(item.content_type) && !item.has_rendition;
}

function openViewer(index) {
  const item = state.items[index];
  if (!item) return;
  state.openId = item.id;
  const stage = $("viewer-stage");
  stage.replaceChildren();
  if (isVideo(item)) {
    const source = browserPlays(item) || !item.urls.rendition ? item.urls.original : item.urls.rendition;
    stage.append(el("video", { src: source, controls: "", autoplay: "", playsinline: "", preload: "metadata" }));
  } else if (browserShows(item) || item.urls.rendition) {
    stage.append(el("img", { src: browserShows(item) ? item.urls.original : item.urls.rendition, alt: item.name }));
  } else if (item.urls.thumbnail) {
    stage.append(el("img", { src: item.urls.thumbnail, alt: item.name }));
  } else {
    stage.append(el("p", { class: "muted" }, "No preview for this file."));
  }
  $("viewer-title").textContent = item.name;
  $("viewer-download").href = item.urls.original;
  $("viewer-download").setAttribute("download", item.name.split("/").pop());
  showFacts(item);
  if (!$("viewer").open) $("viewer").showModal();
}

function showFacts(item) {
  const facts = [["Size", size(item.size)], ["Stored", new Date(item.created).toLocaleString()], ["Type", item.content_type]];
  const source = item.source.kind === "multipart" ? "multipart upload" : `${item.source.kind} ${item.source.name}`;
  facts.push(["From", source]);
  if (item.captured) facts.push(["Taken", item.captured]);
  if (item.width && item.height) facts.push(["Dimensions", `${item.width} × ${item.height}`]);
  if (item.duration) facts.push(["Duration", duration(item.duration)]);
  const exif = item.exif || {};
  const camera = [exif.make, exif.model].filter(Boolean).join(" ");
  if (camera) facts.push(["Camera", camera]);
  if (exif.gps) facts.push(["Place", `${exif.gps.lat.toFixed(5)}, ${exif.gps.lon.toFixed(5)}`]);
  $("viewer-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function closeViewer() {
  const video = $("viewer-stage").querySelector("video");
  if (video) video.pause();
  $("viewer-stage").replaceChildren();
  state.openId = null;
  if ($("viewer").open) $("viewer").close();
}

function step(by) {
  const at = openIndex();
  if (at < 0) return; // the list is being reloaded: the next key press finds it
  const next = at + by;
  if (next >= 0 && next < state.items.length) openViewer(next);
  if (next >= state.items.length - 3) loadMore();
}

async function deleteOpen() {
  const item = state.items[openIndex()];
  if (!item || !confirm(`Delete ${item.name}?`)) return;
  const response = await api(`/api/timeline/${encodeURIComponent(item.id)}`, { method: "DELETE" });
  if (!response.ok && response.status !== 404) {
    alert(`Could not delete: ${(await response.json()).message}`);
    return;
  }
  const tile = document.querySelector(`.tile[data-id="${CSS.escape(item.id)}"]`);
  if (tile) {
    const grid = tile.parentElement;
    tile.remove();
    if (!grid.children.length) grid.parentElement.remove();
  }
  const at = state.items.findIndex((i) => i.id === item.id);
  if (at >= 0) state.items.splice(at, 1);
  if (state.items.length) openViewer(Math.min(Math.max(at, 0), state.items.length - 1));
  else closeViewer();
}

// ---- uploads (tus, resumable) ----

function b64(text) {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

function fingerprint(file) {
  return `ferry-tus:${file.name}:${file.size}:${file.lastModified}`;
}

// A failure worth trying again: the connection dropped or the server was briefly away.
class Interrupted extends Error {}

async function tusOffset(url) {
  const response = await api(url, { method: "HEAD", headers: { "Tus-Resumable": "1.0.0" } });
  if (response.status >= 500) throw new Interrupted(`the server answered ${response.status}`);
  if (!response.ok) return null; // gone (expired, finished, removed): start over
  return Number(response.headers.get("Upload-Offset"));
}

// One PATCH of `chunk` at `offset`; resolves with the server's new offset. XMLHttpRequest,
// not fetch: only it reports an upload's progress while its bytes leave.
function patch(url, offset, chunk, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("PATCH", url);
    request.setRequestHeader("Tus-Resumable", "1.0.0");
    request.setRequestHeader("Upload-Offset", String(offset));
    request.setRequestHeader("Content-Type", "application/offset+octet-stream");
    request.setRequestHeader("X-CSRF-Token", CSRF);
    request.upload.onprogress = (event) => onProgress(offset + event.loaded);
    request.onerror = () => reject(new Interrupted("the connection dropped"));
    request.ontimeout = request.onerror;
    request.onload = () => {
      if (request.status === 204) return resolve(Number(request.getResponseHeader("Upload-Offset")));
      if (request.status === 401) location.reload();
      let message = request.statusText;
      try {
        message = JSON.parse(request.responseText).message || message;
      } catch (_) {}
      // 409: another tab moved the offset; 423: a PATCH cut off a moment ago still holds it
      const transient = request.status >= 500 || [408, 409, 423].includes(request.status);
      reject(transient ? new Interrupted(message) : new Error(message));
    };
    request.send(chunk);
  });
}

// Sends what the server lacks of `file`: resumes its upload when this browser started one
// (remembered by name, size and date), else starts it.
async function send(file, show) {
  let url = localStorage.getItem(fingerprint(file));
  let offset = url ? await tusOffset(url) : null;
  if (offset === null) {
    const metadata = `filename ${b64(file.name)},filetype ${b64(file.type || "application/octet-stream")},folder_id ${b64("web")}`;
    const created = await api("/files/", {
      method: "POST",
      headers: { "Tus-Resumable": "1.0.0", "Upload-Length": String(file.size), "Upload-Metadata": metadata },
    });
    if (created.status >= 500) throw new Interrupted(`the server answered ${created.status}`);
    if (created.status !== 201) throw new Error((await created.json()).message || created.statusText);
    url = new URL(created.headers.get("Location"), location.href).pathname;
    localStorage.setItem(fingerprint(file), url);
    offset = 0;
  } else if (offset > 0) {
    show(offset, `resuming at ${size(offset)}`);
  }
  while (offset < file.size || file.size === 0) {
    offset = await patch(url, offset, file.slice(offset, offset + TUS_CHUNK), (sent) => show(sent));
    show(offset);
    if (file.size === 0) break;
  }
  localStorage.removeItem(fingerprint(file));
}

async function upload(file) {
  const bar = el("progress", { max: String(file.size || 1), value: "0" });
  const status = el("span", { class: "muted" }, "waiting");
  const row = el("li", {}, el("span", { class: "name" }, file.name), bar, status);
  $("uploads").append(row);
  let tries = 0;
  let best = 0;
  const show = (sent, text) => {
    // bytes that got further than any try before earn the upload its tries back
    if (sent > best) tries = 0;
    best = Math.max(best, sent);
    bar.value = sent;
    status.textContent = text || `${size(sent)} of ${size(file.size)}`;
  };
  for (;;) {
    try {
      await send(file, show);
      status.textContent = "done";
      row.classList.add("done");
      setTimeout(() => row.remove(), 4000);
      return true;
    } catch (error) {
      // fetch reports a dropped connection as a TypeError
      const interrupted = error instanceof Interrupted || error instanceof TypeError;
      if (!interrupted || tries >= RETRY_WAITS.length) {
        status.textContent = `failed: ${error.message} (choose the file again to resume)`;
        row.classList.add("failed");
        return false;
      }
      const wait = RETRY_WAITS[tries];
      tries += 1;
      status.textContent = `${error.message}: trying again in ${wait / 1000} s`;
      await new Promise((done) => setTimeout(done, wait));
    }
  }
}

async function uploadAll(files) {
  if (!files.length) return;
  // busy until the new items are listed with their thumbnails (or the look gave up)
  $("uploads").setAttribute("aria-busy", "true");
  let any = false;
  for (const file of files) any = (await upload(file)) || any;
  if (!any) {
    $("uploads").removeAttribute("aria-busy");
    return;
  }
  restart();
  // new pictures show once media processing has made their thumbnails: look again a few
  // times while the newest items still lack one
  try {
    for (const wait of [1000, 2000, 4000, 8000]) {
      await new Promise((done) => setTimeout(done, wait));
      const newest = await json(`/api/timeline?limit=${Math.min(files.length, 500)}`);
      const pending = newest.items.some((i) => !i.urls.thumbnail && i.media_status === "pending");
      if (!pending) break;
    }
  } finally {
    restart();
    $("uploads").removeAttribute("aria-busy");
  }
}

// ---- devices and usage ----

async function showDevices() {
  const [usage, devices] = await Promise.all([json("/api/usage"), json("/api/devices")]);
  const quota = usage.quota_bytes === null ? "no quota" : size(usage.quota_bytes);
  const facts = [["Items", String(usage.media_items)], ["Stored", size(usage.held_bytes)], ["Named by items", size(usage.logical_bytes)], ["Quota", quota], ["Freed after retention", size(usage.deleted_bytes_pending)]];
  $("usage").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const rows = devices.devices.map((d) =>
    el("tr", {},
      el("td", {}, d.name),
      el("td", {}, String(d.stats.total_events)),
      el("td", {}, size(d.stats.total_size)),
      el("td", {}, `${d.stats.by_type.image.count} photos, ${d.stats.by_type.video.count} videos`),
      el("td", {}, d.is_disabled ? "disabled" : d.is_upload_disabled ? "uploads off" : "active")),
  );
  const head = el("tr", {}, ...["Device", "Events", "Size", "Kinds", "State"].map((h) => el("th", { scope: "col" }, h)));
  $("devices").replaceChildren(devices.devices.length ? el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)) : el("p", { class: "muted" }, "No devices yet."));
}

function route() {
  const devices = location.hash === "#devices";
  $("timeline-view").hidden = devices;
  $("devices-view").hidden = !devices;
  $("nav-timeline").toggleAttribute("aria-current", !devices);
  $("nav-devices").toggleAttribute("aria-current", devices);
  if (devices) showDevices().catch((e) => ($("devices").textContent = `Could not load the devices: ${e.message}`));
}

// ---- wiring ----

document.addEventListener("DOMContentLoaded", () => {
  $("filter-source").addEventListener("change", restart);
  $("filter-type").addEventListener("change", restart);
  $("viewer-close").addEventListener("click", closeViewer);
  $("viewer-prev").addEventListener("click", () => step(-1));
  $("viewer-next").addEventListener("click", () => step(1));
  $("viewer-delete").addEventListener("click", deleteOpen);
  $("viewer").addEventListener("close", () => closeViewer());
  document.addEventListener("keydown", (event) => {
    if (!$("viewer").open) return;
    if (event.key === "ArrowLeft") step(-1);
    if (event.key === "ArrowRight") step(1);
  });
  // a button, not a label around the hidden input, so the keyboard reaches it
  $("upload-button").addEventListener("click", () => $("upload-input").click());
  $("upload-input").addEventListener("change", (event) => {
    uploadAll([...event.target.files]);
    event.target.value = ""; // the same file may be picked again (to resume it)
  });
  let drags = 0;
  document.addEventListener("dragenter", (event) => {
    event.preventDefault();
    drags += 1;
    $("drop-hint").hidden = false;
  });
  document.addEventListener("dragleave", () => {
    drags -= 1;
    if (drags <= 0) $("drop-hint").hidden = true;
  });
  document.addEventListener("dragover", (event) => event.preventDefault());
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    drags = 0;
    $("drop-hint").hidden = true;
    uploadAll([...event.dataTransfer.files]);
  });
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore();
  }, { rootMargin: "800px" }).observe($("timeline-end"));
  window.addEventListener("hashchange", route);
  route();
  loadSources().catch(() => {});
  loadMore();
});
