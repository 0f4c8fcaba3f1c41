// cors-proxy inspector. Standard DOM APIs only (Chromium, Firefox, WebKit); no framework,
// no external assets. Everything from the network becomes text nodes, never markup:
// the page is served with `require-trusted-types-for 'script'`, so an innerHTML would throw.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const state = {
    byId: new Map(), // id -> exchange (the JSON API's shape)
    rowOf: new Map(), // id -> <tr>
    selected: null,
    keep: 500,
    generation: 0,
    configGeneration: -1,
    summary: null,
    skipped: 0,
  };

  // h("p", {class: "x"}, "text", child...): elements with text children only.
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  // -- formatting --------------------------------------------------------------------
  const GLYPH = { 1: "·", 2: "✓", 3: "↪", 4: "▲", 5: "✕" };
  function statusClass(status) {
    const c = Math.floor(status / 100);
    return c >= 1 && c <= 5 ? "s" + c : "s0";
  }
  function statusText(status) {
    return (GLYPH[Math.floor(status / 100)] || "·") + " " + (status || "—");
  }
  function relative(seconds) {
    const ago = Math.max(0, Date.now() / 1000 - seconds);
    if (ago < 5) return "now";
    if (ago < 60) return Math.floor(ago) + " s ago";
    if (ago < 3600) return Math.floor(ago / 60) + " min ago";
    if (ago < 86400) return Math.floor(ago / 3600) + " h ago";
    return new Date(seconds * 1000).toLocaleDateString();
  }
  function absolute(seconds) {
    return new Date(seconds * 1000).toLocaleString();
  }
  function corsText(ex) {
    return ex.cors + (ex.rule ? "[" + ex.rule + "]" : "");
  }
  function originText(origin) {
    return origin === null ? "(no Origin)" : origin;
  }

  // -- the list ----------------------------------------------------------------------
  function makeRow(ex) {
    const pair = ex.pair
      ? h("span", { class: "pair-tag", title: ex.preflight ? "its request: #" + ex.pair : "its preflight: #" + ex.pair },
          ex.preflight ? "⇢ #" + ex.pair : "⇠ #" + ex.pair)
      : null;
    const tr = h("tr", {
      class: [ex.blocked ? "blocked" : "", ex.error ? "error" : ""].join(" ").trim(),
      tabindex: "-1",
      "aria-selected": "false",
      "data-id": ex.id,
    },
      h("td", { class: "time", title: absolute(ex.time) }, relative(ex.time)),
      h("td", { class: "method" }, ex.method, pair),
      h("td", { class: "path", title: ex.path }, ex.path),
      h("td", { class: "status " + statusClass(ex.status) }, statusText(ex.status)),
      h("td", { class: "origin", title: originText(ex.origin) }, originText(ex.origin)),
      h("td", { class: "cors", title: corsText(ex) },
        ex.blocked ? [h("span", { class: "badge blocked" }, "⊘ BLOCKED"), " "] : null,
        h("span", { class: "decision" }, corsText(ex))),
      h("td", { class: "num" }, ex.ms.toFixed(1)));
    tr.addEventListener("click", () => select(ex.id, true));
    return tr;
  }

  function addExchanges(list) {
    const rows = $("rows");
    // oldest first, so that each new one goes on top
    for (let i = list.length - 1; i >= 0; i--) {
      const ex = list[i];
      const old = state.rowOf.get(ex.id);
      state.byId.set(ex.id, ex);
      const tr = makeRow(ex);
      tr.hidden = !matches(ex);
      if (old) {
        if (state.selected === ex.id) {
          tr.setAttribute("aria-selected", "true");
          tr.tabIndex = 0;
        }
        old.replaceWith(tr);
      } else {
        let before = rows.firstElementChild;
        while (before && Number(before.dataset.id) > ex.id) before = before.nextElementSibling;
        rows.insertBefore(tr, before);
      }
      state.rowOf.set(ex.id, tr);
      if (ex.pair && state.byId.has(ex.pair)) {
        const partner = state.byId.get(ex.pair);
        if (partner.pair !== ex.id) {
          partner.pair = ex.id;
          const row = makeRow(partner);
          row.hidden = !matches(partner);
          const was = state.rowOf.get(partner.id);
          if (state.selected === partner.id) {
            row.setAttribute("aria-selected", "true");
            row.tabIndex = 0;
          }
          was.replaceWith(row);
          state.rowOf.set(partner.id, row);
        }
      }
    }
    trim();
    if (state.selected !== null && list.some((ex) => ex.pair === state.selected || ex.id === state.selected)) {
      renderDetail(state.byId.get(state.selected));
    }
    refreshOrigins();
    updateShown();
  }

  function trim() {
    const rows = $("rows");
    while (rows.childElementCount > state.keep) {
      const last = rows.lastElementChild;
      const id = Number(last.dataset.id);
      last.remove();
      state.rowOf.delete(id);
      state.byId.delete(id);
    }
  }

  function clearAll() {
    state.skipped = 0;
    $("skipped").hidden = true;
    $("rows").replaceChildren();
    state.byId.clear();
    state.rowOf.clear();
    state.selected = null;
    $("detail").replaceChildren(h("p", { class: "hint" }, "Cleared. New exchanges appear as they happen."));
    updateShown();
  }

  // -- filters -----------------------------------------------------------------------
  const filters = { blocked: false, errors: false, origin: "", path: "", search: "" };
  function haystack(ex) {
    return [ex.method, ex.path, String(ex.status), originText(ex.origin), corsText(ex), ex.browser,
      ex.cause.join(" "), ex.fix ? ex.fix.text : "", ex.upstream_error, ex.note].join("\n").toLowerCase();
  }
  function matches(ex) {
    if (filters.blocked && !ex.blocked) return false;
    if (filters.errors && !ex.error) return false;
    if (filters.origin && originText(ex.origin) !== filters.origin) return false;
    if (filters.path && !ex.path.includes(filters.path)) return false;
    if (filters.search && !haystack(ex).includes(filters.search)) return false;
    return true;
  }
  function applyFilters() {
    filters.blocked = $("f-blocked").checked;
    filters.errors = $("f-errors").checked;
    filters.origin = $("f-origin").value;
    filters.path = $("f-path").value.trim();
    filters.search = $("f-search").value.trim().toLowerCase();
    for (const [id, tr] of state.rowOf) tr.hidden = !matches(state.byId.get(id));
    for (const b of $("origins").querySelectorAll("button")) {
      b.setAttribute("aria-pressed", String(b.dataset.origin === filters.origin));
    }
    updateShown();
  }
  function updateShown() {
    const total = state.rowOf.size;
    let shown = 0;
    for (const tr of state.rowOf.values()) if (!tr.hidden) shown++;
    $("shown").textContent = shown === total ? total + " shown" : shown + " of " + total + " shown";
    $("empty").hidden = total > 0;
  }

  // -- summary -----------------------------------------------------------------------
  function setCount(id, n) {
    const dd = $(id);
    dd.textContent = n.toLocaleString();
    dd.classList.toggle("nonzero", n > 0);
  }
  function renderSummary(s) {
    state.summary = s;
    state.keep = s.keep;
    setCount("n-requests", s.requests);
    setCount("n-blocked", s.blocked);
    setCount("n-errors", s.errors);
    $("n-kept").textContent = s.kept + " / " + s.keep;
    const ul = $("origins");
    ul.replaceChildren(...s.origins.map((o) => {
      const name = originText(o.origin);
      return h("li", {}, h("button", {
        type: "button", "data-origin": name, "aria-pressed": String(filters.origin === name),
        title: "Show only " + name,
        onclick: () => {
          $("f-origin").value = filters.origin === name ? "" : name;
          refreshOrigins();
          applyFilters();
        },
      }, h("span", { class: "o-name" }, name), " " + o.requests,
      o.blocked ? h("span", { class: "o-blocked" }, " · " + o.blocked + " blocked") : null,
      o.errors ? " · " + o.errors + " 5xx" : null));
    }));
    refreshOrigins();
    if (s.generation !== state.generation) {
      state.generation = s.generation;
      configChanged();
    }
  }
  function refreshOrigins() {
    const select = $("f-origin");
    const known = new Set([""]);
    if (state.summary) for (const o of state.summary.origins) known.add(originText(o.origin));
    for (const ex of state.byId.values()) known.add(originText(ex.origin));
    if (filters.origin) known.add(filters.origin);
    const current = select.value;
    const have = [...select.options].map((o) => o.value);
    const want = [...known].sort();
    if (have.join("\n") !== want.join("\n")) {
      select.replaceChildren(...want.map((v) => h("option", { value: v }, v === "" ? "all origins" : v)));
      select.value = current;
    }
  }

  // -- detail ------------------------------------------------------------------------
  async function copy(text, button) {
    let ok = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        ok = true;
      }
    } catch (e) { /* fall back below */ }
    if (!ok) {
      const area = h("textarea", { class: "offscreen", "aria-hidden": "true" });
      area.value = text;
      area.style.position = "fixed";
      area.style.left = "-9999px";
      document.body.append(area);
      area.select();
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      area.remove();
    }
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = ok ? "Copied ✓" : "Copy failed: select the text";
    setTimeout(() => { button.textContent = label; }, 2000);
  }
  function copyBlock(text, cls, label) {
    return h("div", { class: "copy-row" },
      h("pre", { class: cls }, text),
      h("button", { type: "button", "aria-label": label, onclick: (e) => copy(text, e.currentTarget) }, "Copy"));
  }
  function headerTable(rows, caption) {
    if (!rows) return h("p", { class: "hint" }, "No response was sent (the client went away first).");
    if (!rows.length) return h("p", { class: "hint" }, "none");
    return h("table", { class: "headers", "aria-label": caption },
      h("tbody", {}, rows.map((r) => h("tr", { class: r.cors ? "cors" : "" },
        h("td", { class: "name" }, r.name),
        h("td", {}, r.value,
          r.masked ? [" ", h("span", { class: "badge masked", title: "the value is not shown" }, "masked")] : null,
          r.cors ? [" ", h("span", { class: "badge cors" }, "CORS")] : null)))));
  }
  function section(title, ...body) {
    return h("section", {}, h("h3", {}, title), ...body);
  }
  function exchangeButton(ex, label) {
    return h("button", { type: "button", onclick: () => select(ex.id, true) },
      label + ": " + ex.method + " " + ex.path + " → " + ex.status + " (" + corsText(ex) + ", #" + ex.id + ")");
  }
  function verdictSection(ex) {
    if (ex.blocked) {
      return section("Browser verdict",
        h("p", {}, h("span", { class: "badge blocked" }, "⊘ BLOCKED"), " Chromium's console says:"),
        h("pre", { class: "console" }, ex.browser || "(blocked)"));
    }
    if (ex.origin === null) {
      return section("Browser verdict", h("p", {}, "No Origin header: not a cross-origin request from a page, so CORS does not apply."));
    }
    if (ex.verdict === "allowed" || ex.cors === "allowed" || ex.cors === "preflight-ok") {
      return section("Browser verdict", h("p", {}, h("span", { class: "badge allowed" }, "✓ ALLOWED"),
        " The browser lets the page read this response."));
    }
    return section("Browser verdict", h("p", {}, "No verdict: " + corsText(ex) + " (same-origin, or no rule applies)."));
  }
  function renderDetail(ex) {
    const d = $("detail");
    if (!ex) {
      d.replaceChildren(h("p", { class: "hint" }, "This exchange is no longer kept."));
      return;
    }
    const parts = [
      h("h2", { tabindex: "-1", id: "detail-title" }, ex.method + " " + ex.path + " → " + ex.status),
      h("p", { class: "meta" }, "#" + ex.id + " · " + originText(ex.origin) + " · " + corsText(ex) + " · " +
        ex.ms.toFixed(1) + " ms · ", h("time", { title: absolute(ex.time) }, absolute(ex.time))),
    ];
    if (ex.pair && state.byId.has(ex.pair)) {
      const partner = state.byId.get(ex.pair);
      parts.push(section(ex.preflight ? "Preflight and the request it let through" : "Preflight and request",
        h("div", { class: "pair" }, ex.preflight
          ? [h("strong", {}, "this preflight"), " → ", exchangeButton(partner, "request")]
          : [exchangeButton(partner, "preflight"), " → ", h("strong", {}, "this request")])));
    }
    if (ex.preflight && ex.preflight_for) {
      parts.push(h("p", {}, "Preflight for ", h("code", {}, ex.preflight_for.method),
        ex.preflight_for.headers ? [" with headers ", h("code", {}, ex.preflight_for.headers)] : null));
    }
    parts.push(verdictSection(ex));
    if (ex.cause.length) parts.push(section("Cause", h("ul", {}, ex.cause.map((c) => h("li", {}, c)))));
    if (ex.fix) {
      const fix = [h("p", {}, ex.fix.text)];
      if (ex.fix.yaml) {
        const y = ex.fix.yaml;
        fix.push(h("p", {}, y.key === "rules"
          ? ["Add this item under ", h("code", {}, "rules:"), " in the config file:"]
          : ["In ", h("code", {}, y.where), ", replace the ", h("code", {}, y.key + ":"), " line with:"]));
        fix.push(copyBlock(y.line, "yaml", "Copy the YAML fix"));
        fix.push(h("p", { class: "hint" }, y.applied
          ? "The running config has this already (reloaded since)."
          : "Save the file: the proxy reloads it within a second."));
      }
      parts.push(section("Fix", ...fix));
    }
    if (ex.upstream_error) parts.push(section("Upstream error", h("pre", {}, ex.upstream_error)));
    if (ex.cookies.length) parts.push(section("Cookies", h("ul", {}, ex.cookies.map((c) => h("li", {}, c)))));
    if (ex.note) parts.push(section("Note", h("p", {}, ex.note)));
    parts.push(section("Reproduce with curl", ex.curl.map((c) => copyBlock(c, "", "Copy the curl command"))));
    parts.push(section("Request headers", headerTable(ex.request_headers, "Request headers")));
    parts.push(section("Response headers", headerTable(ex.response_headers, "Response headers")));
    d.replaceChildren(...parts);
  }

  function visibleRows() {
    return [...$("rows").children].filter((tr) => !tr.hidden);
  }
  function select(id, focus) {
    const old = state.rowOf.get(state.selected);
    if (old) {
      old.setAttribute("aria-selected", "false");
      old.tabIndex = -1;
    }
    state.selected = id;
    const tr = state.rowOf.get(id);
    if (tr) {
      tr.setAttribute("aria-selected", "true");
      tr.tabIndex = 0;
      if (focus) tr.focus({ preventScroll: false });
      tr.scrollIntoView({ block: "nearest" });
    }
    renderDetail(state.byId.get(id));
  }
  function move(step) {
    const rows = visibleRows();
    if (!rows.length) return;
    let i = rows.findIndex((tr) => Number(tr.dataset.id) === state.selected);
    i = i < 0 ? 0 : Math.min(rows.length - 1, Math.max(0, i + step));
    select(Number(rows[i].dataset.id), true);
  }

  // -- keyboard ----------------------------------------------------------------------
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    const typing = t instanceof HTMLInputElement || t instanceof HTMLSelectElement || t instanceof HTMLTextAreaElement;
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.key === "Escape") {
      if (typing) t.blur();
      const tr = state.rowOf.get(state.selected) || visibleRows()[0];
      if (tr) tr.focus();
      e.preventDefault();
      return;
    }
    if (typing) return;
    const inList = t instanceof HTMLElement && t.closest("#rows");
    switch (e.key) {
      case "/": $("f-search").focus(); e.preventDefault(); break;
      case "ArrowDown": case "j": move(+1); e.preventDefault(); break;
      case "ArrowUp": case "k": move(-1); e.preventDefault(); break;
      case "Home": if (inList) { move(-Infinity); e.preventDefault(); } break;
      case "End": if (inList) { move(Infinity); e.preventDefault(); } break;
      case "Enter":
        if (inList) {
          select(Number(t.closest("tr").dataset.id), false);
          const title = $("detail-title");
          if (title) title.focus();
          e.preventDefault();
        }
        break;
      case "b": $("f-blocked").click(); break;
      case "e": $("f-errors").click(); break;
      default: break;
    }
  });
  for (const id of ["f-blocked", "f-errors", "f-origin"]) $(id).addEventListener("change", applyFilters);
  for (const id of ["f-path", "f-search"]) $(id).addEventListener("input", applyFilters);

  $("clear").addEventListener("click", async () => {
    const r = await fetch("clear", { method: "POST", headers: { "X-Cors-Proxy-Inspector": "clear" } });
    if (r.ok) clearAll();
  });

  // -- config ------------------------------------------------------------------------
  function configChanged() {
    if ($("config").open) loadConfig();
    else $("config-brief").textContent = "· generation " + state.generation;
  }
  async function loadConfig() {
    let c;
    try {
      const r = await fetch("config", { cache: "no-store" });
      c = await r.json();
    } catch (e) {
      $("config-body").replaceChildren(h("p", { class: "hint" }, "Could not load the config."));
      return;
    }
    state.configGeneration = c.generation;
    const up = c.upstream;
    $("config-brief").textContent = "· generation " + c.generation + " · upstream " +
      (up.reachable ? "reachable" : "NOT reachable");
    const reload = c.last_reload;
    $("config-body").replaceChildren(
      h("div", {},
        h("h3", {}, "Generation " + c.generation),
        reload
          ? h("p", {}, "Last reload: ", h("time", { title: absolute(reload.time) }, relative(reload.time)),
              " (" + reload.why + "): " + (reload.applied ? "applied" : "rejected, generation " + reload.generation + " stays"))
          : h("p", { class: "hint" }, "Not reloaded since the start."),
        reload && reload.messages.length ? h("ul", {}, reload.messages.map((m) => h("li", {}, m))) : null,
        h("h3", {}, "Upstream"),
        h("p", {}, h("code", {}, up.url), " · ", up.reachable ? "✓ reachable" : "✕ not reachable", " (checked now)"),
        up.last_failure
          ? h("p", {}, "Last failure ", h("time", { title: absolute(up.last_failure.time) }, relative(up.last_failure.time)),
              ": " + up.last_failure.reason, h("br"), h("span", { class: "hint" }, up.last_failure.detail))
          : h("p", { class: "hint" }, "No failure since the start.")),
      h("div", {}, h("h3", {}, "Active rules (as cors-proxy check prints them)"),
        h("pre", {}, c.check.join("\n"))));
  }
  $("config").addEventListener("toggle", () => { if ($("config").open) loadConfig(); });

  // -- learned rules (cors-proxy learn) ----------------------------------------------
  // Fetched when the panel is open and an event said new exchanges arrived: one request
  // at a time, then a pause of at least a second (longer when writing them took long).
  const learned = { on: false, stale: false, busy: false, timer: null, next: 0 };
  function setLearning(on) {
    if (on === learned.on) return;
    learned.on = on;
    $("learned").hidden = !on;
    if (on) $("learned").open = true; // open by default while the proxy learns
  }
  function learnedChanged() {
    learned.stale = true;
    if (!learned.on || !$("learned").open || learned.busy || learned.timer !== null) return;
    learned.timer = setTimeout(loadLearned, Math.max(0, learned.next - Date.now()));
  }
  async function loadLearned() {
    learned.timer = null;
    learned.stale = false;
    learned.busy = true;
    const started = Date.now();
    try {
      const r = await fetch("learned", { cache: "no-store" });
      if (!r.ok) throw new Error(String(r.status));
      const text = await r.text();
      const pre = $("learned-yaml");
      if (pre.textContent !== text) pre.textContent = text;
      $("learned-brief").textContent = "· updated " + new Date().toLocaleTimeString();
    } catch (e) {
      $("learned-brief").textContent = "· could not load them (" + e.message + ")";
    } finally {
      learned.busy = false;
      learned.next = Date.now() + Math.max(1000, 5 * (Date.now() - started));
      if (learned.stale) learnedChanged();
    }
  }
  $("learned").addEventListener("toggle", () => { if ($("learned").open && learned.stale) learnedChanged(); });
  $("learned-copy").addEventListener("click", (e) => copy($("learned-yaml").textContent, e.currentTarget));

  // -- live updates ------------------------------------------------------------------
  function connect() {
    const live = $("live");
    const source = new EventSource("events");
    source.addEventListener("open", () => {
      live.textContent = "● live";
      live.className = "live on";
    });
    source.addEventListener("error", () => {
      live.textContent = "○ reconnecting…";
      live.className = "live off";
    });
    source.addEventListener("exchanges", (e) => {
      const data = JSON.parse(e.data);
      renderSummary(data.summary);
      addExchanges(data.exchanges);
      if ("learning" in data) setLearning(data.learning); // a stream's first event
      if ("learning" in data || data.exchanges.length || data.skipped) learnedChanged();
      if (data.skipped) {
        state.skipped += data.skipped;
        $("skipped").textContent = state.skipped.toLocaleString() +
          " exchanges came too fast to list (the page gets the newest 200 a second; all are counted above)";
        $("skipped").hidden = false;
      }
    });
    source.addEventListener("clear", (e) => {
      clearAll();
      renderSummary(JSON.parse(e.data).summary);
    });
    source.addEventListener("config", (e) => {
      const data = JSON.parse(e.data);
      renderSummary(data.summary);
      configChanged();
    });
  }

  setInterval(() => {
    for (const [id, tr] of state.rowOf) {
      const ex = state.byId.get(id);
      tr.firstElementChild.textContent = relative(ex.time);
    }
  }, 5000);
  updateShown();
  connect();
})();
