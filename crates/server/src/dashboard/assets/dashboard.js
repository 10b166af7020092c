// sagebrush dashboard: live updates over the server's own event streams. Pages are rendered on
// the server; this only fetches a page again and swaps its live regions, and appends log text.
"use strict";
(function () {
  const main = document.querySelector("main");
  if (!main) return;
  // Streams are closed when the page is left: a browser keeps few connections per server, and
  // a page kept in its back-forward cache would otherwise hold on to its streams.
  const streams = [];
  const follow = (url) => { const source = new EventSource(url); streams.push(source); return source; };
  window.addEventListener("pagehide", () => { for (const source of streams) source.close(); });

  // A region the user is typing in, or whose fields they changed, waits: swapping it would lose their input.
  const changed = (field) =>
    field.type === "checkbox" || field.type === "radio" ? field.checked !== field.defaultChecked
      : field.tagName === "SELECT" ? [...field.options].some((o) => o.selected !== o.defaultSelected)
      : field.value !== field.defaultValue;
  const editing = (region) =>
    (region.contains(document.activeElement) && document.activeElement.matches("input, textarea, select"))
    || [...region.querySelectorAll("input, textarea, select")].some(changed);

  // Replaces every [data-live] element with the one of the same id in the page fetched again.
  let refreshing = false, again = false;
  async function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    try {
      const answer = await fetch(location.href, { headers: { "Accept": "text/html" }, credentials: "same-origin" });
      if (answer.ok) {
        const page = new DOMParser().parseFromString(await answer.text(), "text/html");
        for (const old of document.querySelectorAll("[data-live]")) {
          const fresh = page.getElementById(old.id);
          if (fresh && fresh.innerHTML !== old.innerHTML && !editing(old)) old.replaceWith(fresh);
        }
      }
    } catch (e) { /* the next event or poll tries again */ }
    refreshing = false;
    if (again) { again = false; setTimeout(refresh, 200); }
  }

  // Pages that show runs follow the event stream; pages that show traffic poll.
  const events = main.dataset.events;
  if (events !== undefined) {
    const url = "/live/events" + (events ? "?project=" + encodeURIComponent(events) : "");
    let timer = null;
    const source = follow(url);
    const soon = () => { if (!timer) timer = setTimeout(() => { timer = null; refresh(); }, 150); };
    // The stream starts at its connection: what changed since the page was drawn (or while a
    // dropped stream reconnected) is fetched once it is open.
    source.addEventListener("open", soon);
    for (const kind of ["run_queued", "run_started", "run_waiting", "run_finished", "stage_started",
                        "stage_finished", "model_registered", "endpoint_updated", "endpoint_deleted"]) {
      source.addEventListener(kind, soon);
    }
  }
  const poll = Number(main.dataset.poll || 0);
  if (poll > 0) setInterval(refresh, poll);

  // A run's logs: one stream for all its stages, each chunk appended to its stage's <pre>.
  const logs = main.dataset.logs;
  if (logs) {
    const source = follow(logs);
    source.addEventListener("log", (message) => {
      const chunk = JSON.parse(message.data);
      const pre = document.getElementById("log-" + chunk.stage);
      if (!pre) return;
      pre.textContent += chunk.text;
      const following = document.getElementById("follow");
      if (!following || following.checked) pre.scrollTop = pre.scrollHeight;
      const box = pre.closest(".log");
      if (box) box.hidden = false;
    });
    source.addEventListener("end", () => { source.close(); refresh(); });
    source.onerror = () => source.close();
  }
  document.addEventListener("click", (event) => {
    const jump = event.target.closest("[data-jump]");
    if (!jump) return;
    event.preventDefault();
    const pre = document.getElementById(jump.dataset.jump);
    if (pre) { pre.scrollTop = pre.scrollHeight; pre.scrollIntoView({ block: "end" }); }
  });
  // A link to a stage's log (a failed cell of the stage view) lands on the end of it.
  if (location.hash.startsWith("#log-")) {
    const id = location.hash.slice(1);
    setTimeout(() => { const pre = document.getElementById(id); if (pre) { pre.scrollTop = pre.scrollHeight; pre.scrollIntoView({ block: "center" }); } }, 800);
  }
})();
