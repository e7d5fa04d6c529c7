/*
 * kiln dashboard (docs/dashboard.md): plain JavaScript, no framework, no
 * build step. Talks to the API of the server that served it:
 *   GET /processes, GET /stats, GET /status/{id},
 *   GET /status/{id}/postbacks, POST /retry, POST /cancel
 * each with "Authorization: Bearer TOKEN". The token lives in this tab's
 * sessionStorage only: never localStorage, a cookie or a URL.
 *
 * Everything shown is built with textContent and attributes, never
 * innerHTML, so no value from the server is read as markup; the page's
 * Content-Security-Policy allows no inline script or style anyway.
 */
"use strict";

(function () {
    const TOKEN_KEY = "kiln.dashboard.token";
    const FINAL = ["FINISHED", "FAILED", "CANCELLED"];
    const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
    const LIST_EVERY_MS = 5000;
    const STATS_EVERY_MS = 30000;
    const DETAIL_EVERY_MS = 2000;
    const PAGE = 50;
    const SVG_NS = "http://www.w3.org/2000/svg";

    const state = {
        token: null,
        filter: { status: "", service: "" },
        rows: [], // the processes shown, newest first
        cursor: null, // next_cursor of the last page loaded
        paged: false, // "Load more" was used
        services: new Map(), // process_id -> service_id, from every list
        lookedUp: new Set(), // ids whose service serviceOf() looked for
        stats: {}, // window -> the last GET /stats body
        detailId: null,
        detail: null, // the last status body of the process open
        pausedUntil: 0, // after a 429: no call before this time
        timers: {}, // name -> {id}: the polls running
        detailService: null, // the service of the process open
    };

    const $ = (id) => document.getElementById(id);

    /* ---------------------------------------------------------- helpers */

    function el(tag, attrs, ...children) {
        const e = document.createElement(tag);
        setAttrs(e, attrs);
        for (const c of children) {
            if (c === null || c === undefined || c === false) {
                continue;
            }
            e.append(c instanceof Node ? c : String(c));
        }
        return e;
    }

    function svg(tag, attrs, ...children) {
        const e = document.createElementNS(SVG_NS, tag);
        setAttrs(e, attrs);
        for (const c of children) {
            e.append(c instanceof Node ? c : String(c));
        }
        return e;
    }

    function setAttrs(e, attrs) {
        for (const [k, v] of Object.entries(attrs || {})) {
            if (v === null || v === undefined || v === false) {
                continue;
            }
            if (k === "text") {
                e.textContent = v;
            } else {
                e.setAttribute(k, v === true ? "" : String(v));
            }
        }
    }

    function fmtMs(ms) {
        if (ms === null || ms === undefined || !Number.isFinite(ms)) {
            return "\u2014";
        }
        if (ms > 0 && ms < 1) {
            return "<1 ms";
        }
        if (ms < 1000) {
            return Math.round(ms) + " ms";
        }
        if (ms < 60000) {
            return +(ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
        }
        const m = Math.floor(ms / 60000);
        const s = Math.round((ms % 60000) / 1000);
        return m + " min" + (s ? " " + s + " s" : "");
    }

    function fmtBytes(n) {
        if (n === null || n === undefined) {
            return "\u2014";
        }
        if (n < 1024) {
            return n + " B";
        }
        if (n < 1048576) {
            return (n / 1024).toFixed(1) + " KiB";
        }
        return (n / 1048576).toFixed(1) + " MiB";
    }

    function orDash(v) {
        return v === null || v === undefined || v === "" ? "\u2014" : v;
    }

    function statusBadge(s) {
        return el("span", { class: "status " + s, text: s });
    }

    /* "YYYY-MM-DD HH:MM:SS" (UTC) -> whole seconds since the epoch */
    function epochOf(utc) {
        const t = Date.parse(String(utc).replace(" ", "T") + "Z");
        return Number.isFinite(t) ? Math.floor(t / 1000) : null;
    }

    function processHref(id) {
        return "#/process/" + encodeURIComponent(id);
    }

    /* ------------------------------------------------------------- API */

    class ApiError extends Error {
        constructor(status, message, requestId) {
            super(message);
            this.status = status;
            this.requestId = requestId || null;
        }
        describe() {
            let s = this.message;
            if (this.status) {
                s = this.status + ": " + s;
            }
            if (this.requestId) {
                s += " (request id " + this.requestId + ")";
            }
            return s;
        }
    }

    async function api(method, path, body) {
        if (!state.token) {
            throw new ApiError(0, "no token");
        }
        const wait = state.pausedUntil - Date.now();
        if (wait > 0) {
            throw new ApiError(
                429,
                "over the rate limit: waiting " + Math.ceil(wait / 1000) + " s"
            );
        }
        const init = {
            method: method,
            headers: {
                Authorization: "Bearer " + state.token,
                Accept: "application/json",
            },
            cache: "no-store",
            credentials: "omit",
            redirect: "error",
        };
        if (body !== undefined) {
            init.headers["Content-Type"] = "application/json";
            init.body = JSON.stringify(body);
        }
        let r;
        try {
            r = await fetch(path, init);
        } catch (e) {
            throw new ApiError(0, "cannot reach the server (" + e.message + ")");
        }
        let data = null;
        try {
            data = await r.json();
        } catch (e) {
            data = null;
        }
        if (r.ok) {
            return data;
        }
        let msg =
            data && typeof data.message === "string"
                ? data.message
                : r.statusText || "error";
        if (data && Array.isArray(data.errors) && data.errors.length) {
            msg +=
                ": " +
                data.errors
                    .map((e) => (e.path ? e.path + ": " : "") + e.message)
                    .join("; ");
        }
        const err = new ApiError(r.status, msg, r.headers.get("X-Request-Id"));
        if (r.status === 401) {
            tokenRefused(err);
        } else if (r.status === 429) {
            const s = parseInt(r.headers.get("Retry-After") || "1", 10);
            state.pausedUntil = Date.now() + Math.max(1, s || 1) * 1000;
        }
        throw err;
    }

    /* ---------------------------------------------------------- notices */

    function notify(text, isError) {
        const n = $("notice");
        n.textContent = text;
        n.classList.toggle("error", !!isError);
        n.hidden = false;
    }

    function clearNotice() {
        $("notice").hidden = true;
    }

    function showError(what, e) {
        if (e instanceof ApiError && e.status === 401) {
            return; /* tokenRefused() said it */
        }
        notify(
            what + ": " + (e instanceof ApiError ? e.describe() : String(e)),
            true
        );
    }

    /* ------------------------------------------------------------ token */

    function loadToken() {
        try {
            state.token = sessionStorage.getItem(TOKEN_KEY) || null;
        } catch (e) {
            state.token = null; /* storage disabled: ask each time */
        }
    }

    function setToken(t) {
        state.token = t || null;
        try {
            if (state.token) {
                sessionStorage.setItem(TOKEN_KEY, state.token);
            } else {
                sessionStorage.removeItem(TOKEN_KEY);
            }
        } catch (e) {
            /* kept in memory only */
        }
        state.rows = [];
        state.cursor = null;
        state.paged = false;
        state.services.clear();
        state.lookedUp.clear();
        state.stats = {};
        state.pausedUntil = 0;
        showToken();
    }

    function showToken() {
        $("token-form").hidden = !!state.token;
        $("token-set").hidden = !state.token;
        $("token").value = "";
    }

    /* A 401 ends every poll: each refused call counts against this
     * address's failed authentications, and would lock it out. */
    function tokenRefused(err) {
        setToken(null);
        stopTimers();
        route();
        notify(
            "The server refused this token (" +
                err.message +
                "). Paste another one.",
            true
        );
    }

    /* ----------------------------------------------------------- timers */

    function stopTimers() {
        for (const k of Object.keys(state.timers)) {
            stopTimer(k);
        }
    }

    /* Runs fn now and then every ms while the page is visible, until
     * stopTimer(name) or another every(name, ...). */
    function every(name, ms, fn) {
        stopTimer(name);
        const mine = {};
        const tick = async () => {
            if (!document.hidden) {
                try {
                    await fn();
                } catch (e) {
                    showError("Cannot show what the server said", e);
                }
            }
            if (state.timers[name] === mine) {
                mine.id = setTimeout(tick, ms);
            }
        };
        state.timers[name] = mine;
        mine.id = setTimeout(tick, 0);
    }

    function stopTimer(name) {
        if (state.timers[name]) {
            clearTimeout(state.timers[name].id);
            delete state.timers[name];
        }
    }

    /* -------------------------------------------------------- the list */

    function listPath(cursor) {
        const q = new URLSearchParams();
        if (state.filter.status) {
            q.set("status", state.filter.status);
        }
        if (state.filter.service) {
            q.set("service_id", state.filter.service);
        }
        q.set("limit", String(PAGE));
        if (cursor) {
            q.set("cursor", cursor);
        }
        return "/processes?" + q.toString();
    }

    function remember(processes) {
        for (const p of processes) {
            if (typeof p.service_id === "number") {
                state.services.set(p.process_id, p.service_id);
            }
        }
    }

    /* Newest first: created_at, then process_id, descending. */
    function isOlder(a, b) {
        if (a.created_at !== b.created_at) {
            return a.created_at < b.created_at;
        }
        return a.process_id < b.process_id;
    }

    async function loadList(more) {
        let page;
        try {
            page = await api("GET", listPath(more ? state.cursor : null));
        } catch (e) {
            showError("Cannot list the processes", e);
            return;
        }
        const got = Array.isArray(page.processes) ? page.processes : [];
        remember(got);
        if (more) {
            state.rows = state.rows.concat(got);
            state.cursor = page.next_cursor || null;
            state.paged = true;
        } else if (state.paged && page.next_cursor && got.length) {
            /* Refreshing with more pages shown: the new first page, then
             * the rows already shown that come after it. */
            const last = got[got.length - 1];
            const ids = new Set(got.map((p) => p.process_id));
            const rest = state.rows.filter(
                (p) => !ids.has(p.process_id) && isOlder(p, last)
            );
            state.rows = got.concat(rest);
        } else {
            state.rows = got;
            state.cursor = page.next_cursor || null;
            state.paged = false;
        }
        clearListError();
        renderList();
    }

    function clearListError() {
        const n = $("notice");
        if (n.classList.contains("error") && /^Cannot list/.test(n.textContent)) {
            clearNotice();
        }
    }

    function renderList() {
        const tbody = $("processes").tBodies[0];
        const rows = state.rows.map((p) => {
            const tr = el(
                "tr",
                { class: "link", "data-id": p.process_id, "data-status": p.status },
                el(
                    "td",
                    { "data-label": "Process" },
                    el("a", {
                        href: processHref(p.process_id),
                        class: "mono",
                        text: p.process_id,
                    })
                ),
                el("td", { "data-label": "Status" }, statusBadge(p.status)),
                el("td", { "data-label": "Service", class: "num", text: p.service_id }),
                el("td", { "data-label": "Attempt", class: "num", text: p.attempt }),
                el("td", { "data-label": "Created", class: "num", text: p.created_at }),
                el("td", {
                    "data-label": "Duration",
                    class: "num duration",
                    text: fmtMs(p.duration_ms),
                }),
                el("td", { "data-label": "Jobs", class: "num", text: p.jobs }),
                el("td", {
                    "data-label": "Error",
                    class: "error",
                    title: p.error || null,
                    text: p.error || "",
                })
            );
            tr.addEventListener("click", (ev) => {
                if (ev.target.closest("a") === null) {
                    location.hash = processHref(p.process_id);
                }
            });
            return tr;
        });
        tbody.replaceChildren(...rows);
        $("list-empty").hidden = state.rows.length !== 0;
        $("more").hidden = !state.cursor;
    }

    /* ---------------------------------------------------------- charts */

    async function loadStats() {
        for (const win of ["24h", "30d"]) {
            const q = new URLSearchParams({ window: win });
            if (state.filter.service) {
                q.set("service_id", state.filter.service);
            }
            try {
                state.stats[win] = await api("GET", "/stats?" + q.toString());
            } catch (e) {
                showError("Cannot read the statistics", e);
                return;
            }
        }
        renderCharts();
    }

    function renderCharts() {
        for (const win of ["24h", "30d"]) {
            const body = state.stats[win];
            const card = $("stats-" + win);
            if (!body || !Array.isArray(body.points)) {
                continue;
            }
            const pts = body.points;
            const sum = (k) => pts.reduce((a, p) => a + (p[k] || 0), 0);
            card.querySelector(".totals").textContent =
                "\u00b7 " +
                sum("finished") +
                " finished, " +
                sum("failed") +
                " failed, " +
                sum("cancelled") +
                " cancelled";
            drawCounts(card.querySelector(".counts"), pts, body.bucket, win);
            drawDurations(card.querySelector(".durations"), pts, body.bucket, win);
        }
    }

    /* The smallest 1, 2 or 5 times a power of ten at least v. */
    function niceMax(v) {
        if (!(v > 0)) {
            return 1;
        }
        const p = Math.pow(10, Math.floor(Math.log10(v)));
        for (const m of [1, 2, 5, 10]) {
            if (m * p >= v) {
                return m * p;
            }
        }
        return 10 * p;
    }

    /* For counts: an even whole number at least v (the grid's middle
     * line is half of it), 2, 4, 6, 8 or 10 times a power of ten. */
    function niceCount(v) {
        if (!(v > 2)) {
            return 2;
        }
        const p = Math.pow(10, Math.floor(Math.log10(v)));
        for (const m of [1, 2, 4, 6, 8]) {
            if (m * p >= v && (m * p) % 2 === 0) {
                return m * p;
            }
        }
        return 10 * p;
    }

    function bucketLabel(p, bucket) {
        const s = String(p.start);
        if (bucket === "day") {
            return s.slice(0, 10) + " UTC";
        }
        const end = String((+s.slice(11, 13) + 1) % 24).padStart(2, "0");
        return s.slice(0, 16) + "\u2013" + end + ":00 UTC";
    }

    function tickLabel(p, bucket) {
        const s = String(p.start);
        return bucket === "day" ? s.slice(5, 10) : s.slice(11, 16);
    }

    function bucketTitle(p, bucket) {
        return (
            bucketLabel(p, bucket) +
            ": " +
            (p.finished || 0) +
            " finished, " +
            (p.failed || 0) +
            " failed, " +
            (p.cancelled || 0) +
            " cancelled; p50 " +
            fmtMs(p.p50_ms) +
            ", p95 " +
            fmtMs(p.p95_ms)
        );
    }

    /* The frame both charts share: size, margins, the y grid and the x
     * ticks. Returns the svg and a function from bucket index to x. */
    function frame(holder, pts, bucket, name, yMax, yFmt, heading) {
        const W = Math.max(240, Math.floor(holder.clientWidth || 320));
        const H = 130;
        const m = { l: 46, r: 6, t: 16, b: 18 };
        const plotW = W - m.l - m.r;
        const plotH = H - m.t - m.b;
        const step = plotW / Math.max(1, pts.length);
        const root = svg("svg", {
            width: W,
            height: H,
            viewBox: "0 0 " + W + " " + H,
            role: "img",
            class: name,
            "data-points": pts.length,
            "aria-label": heading + " (" + pts.length + " points)",
        });
        root.append(svg("text", { x: m.l, y: 11, class: "title" }, heading));
        const axis = svg("g", { class: "axis" });
        for (const f of [0, 0.5, 1]) {
            const y = m.t + plotH - f * plotH;
            axis.append(
                svg("line", { x1: m.l, x2: W - m.r, y1: y, y2: y, class: "grid" }),
                svg(
                    "text",
                    { x: m.l - 4, y: y + 3, "text-anchor": "end" },
                    yFmt(f * yMax)
                )
            );
        }
        const every = bucket === "day" ? 7 : 6;
        pts.forEach((p, i) => {
            if (i % every === 0) {
                axis.append(
                    svg(
                        "text",
                        { x: m.l + i * step + step / 2, y: H - 5, "text-anchor": "middle" },
                        tickLabel(p, bucket)
                    )
                );
            }
        });
        root.append(axis);
        return {
            root: root,
            m: m,
            plotH: plotH,
            step: step,
            x: (i) => m.l + i * step,
            y: (v) => m.t + plotH - (v / yMax) * plotH,
        };
    }

    /* A bucket's figures: in its <title> (a tooltip where there is a
     * pointer) and, pointed at or tapped, in the card's readout line. */
    function bucketGroup(f, p, i, bucket) {
        const g = svg("g", { class: "bucket", "data-start": p.start });
        const show = () => {
            const card = f.root.closest(".chart-card");
            if (card) {
                card.querySelector(".readout").textContent = bucketTitle(p, bucket);
            }
        };
        g.addEventListener("click", show);
        g.addEventListener("mouseenter", show);
        g.append(
            svg("title", {}, bucketTitle(p, bucket)),
            svg("rect", {
                class: "hit",
                x: f.x(i),
                y: f.m.t,
                width: f.step,
                height: f.plotH,
            })
        );
        return g;
    }

    function drawCounts(holder, pts, bucket, win) {
        const total = (p) => (p.finished || 0) + (p.failed || 0) + (p.cancelled || 0);
        const yMax = niceCount(Math.max(0, ...pts.map(total)));
        const f = frame(
            holder,
            pts,
            bucket,
            "counts",
            yMax,
            (v) => String(Math.round(v)),
            "processes ended per " + (bucket === "day" ? "day" : "hour")
        );
        const bw = Math.max(1, f.step * 0.72);
        pts.forEach((p, i) => {
            const g = bucketGroup(f, p, i, bucket);
            let base = 0;
            for (const k of ["finished", "failed", "cancelled"]) {
                const v = p[k] || 0;
                if (v > 0) {
                    const y0 = f.y(base);
                    const y1 = f.y(base + v);
                    g.append(
                        svg("rect", {
                            class: "bar " + k,
                            x: (f.x(i) + (f.step - bw) / 2).toFixed(1),
                            y: y1.toFixed(1),
                            width: bw.toFixed(1),
                            height: Math.max(0.5, y0 - y1).toFixed(1),
                        })
                    );
                }
                base += v;
            }
            f.root.append(g);
        });
        f.root.id = "chart-" + win + "-counts";
        holder.replaceChildren(f.root);
    }

    function drawDurations(holder, pts, bucket, win) {
        const vals = pts.flatMap((p) => [p.p50_ms, p.p95_ms]).filter(Number.isFinite);
        const yMax = niceMax(Math.max(0, ...vals));
        const f = frame(
            holder,
            pts,
            bucket,
            "durations",
            yMax,
            (v) => (v ? fmtMs(v) : "0"),
            "duration p50 / p95"
        );
        const cx = (i) => f.x(i) + f.step / 2;
        for (const k of ["p50_ms", "p95_ms"]) {
            let d = "";
            let pen = false;
            pts.forEach((p, i) => {
                if (Number.isFinite(p[k])) {
                    d += (pen ? " L" : " M") + cx(i).toFixed(1) + " " + f.y(p[k]).toFixed(1);
                    pen = true;
                } else {
                    pen = false;
                }
            });
            if (d) {
                f.root.append(svg("path", { class: "line " + k.slice(0, 3), d: d.trim() }));
            }
        }
        pts.forEach((p, i) => {
            const g = bucketGroup(f, p, i, bucket);
            for (const k of ["p50_ms", "p95_ms"]) {
                if (Number.isFinite(p[k])) {
                    g.append(
                        svg("circle", {
                            class: "dot " + k.slice(0, 3),
                            cx: cx(i).toFixed(1),
                            cy: f.y(p[k]).toFixed(1),
                            r: 2.2,
                        })
                    );
                }
            }
            f.root.append(g);
        });
        f.root.id = "chart-" + win + "-durations";
        holder.replaceChildren(f.root);
    }

    /* ------------------------------------------------------ the detail */

    /* The service a process belongs to, which /retry and /cancel need:
     * from the status body if it says, from a list already read, else
     * from the list of processes created in the same second. */
    async function serviceOf(id, st) {
        if (st && typeof st.service_id === "number") {
            return st.service_id;
        }
        if (state.services.has(id)) {
            return state.services.get(id);
        }
        const t = st ? epochOf(st.created_at) : null;
        if (t === null || state.lookedUp.has(id)) {
            return null;
        }
        state.lookedUp.add(id); /* once: not again on every refresh */
        let cursor = null;
        for (let n = 0; n < 5; n++) {
            const q = new URLSearchParams({
                since: String(t),
                until: String(t + 1),
                limit: "200",
            });
            if (cursor) {
                q.set("cursor", cursor);
            }
            const page = await api("GET", "/processes?" + q.toString());
            remember(page.processes || []);
            if (state.services.has(id)) {
                return state.services.get(id);
            }
            cursor = page.next_cursor;
            if (!cursor) {
                break;
            }
        }
        return null;
    }

    async function loadDetail() {
        const id = state.detailId;
        const path = "/status/" + encodeURIComponent(id);
        let st;
        try {
            st = await api("GET", path);
        } catch (e) {
            if (id !== state.detailId) {
                return;
            }
            if (e.status === 404) {
                renderMissing(id);
                stopTimer("detail");
            } else {
                showError("Cannot read process " + id, e);
            }
            return;
        }
        let pb = null;
        let pbError = null;
        try {
            pb = await api("GET", path + "/postbacks");
        } catch (e) {
            pbError = e;
        }
        let sid = null;
        try {
            sid = await serviceOf(id, st);
        } catch (e) {
            sid = null;
        }
        if (id !== state.detailId) {
            return; /* another process was opened meanwhile */
        }
        state.detail = st;
        state.detailService = sid;
        renderDetail(id, st, sid);
        renderPostbacks(pb, pbError);
    }

    function renderMissing(id) {
        $("d-id").textContent = id;
        $("d-status").replaceChildren();
        $("d-status").className = "status";
        $("d-error").hidden = false;
        $("d-error").textContent =
            "No such process, or not one of the services this token may use.";
        for (const k of ["d-service", "d-attempt", "d-created", "d-updated"]) {
            $(k).textContent = "\u2014";
        }
        $("d-jobs").tBodies[0].replaceChildren();
        $("d-postbacks").tBodies[0].replaceChildren();
        $("d-retry").disabled = true;
        $("d-cancel").disabled = true;
    }

    function renderDetail(id, st, sid) {
        $("d-id").textContent = id;
        const badge = $("d-status");
        badge.className = "status " + st.status;
        badge.textContent = st.status;
        $("detail").setAttribute("data-status", st.status);
        $("d-service").textContent = orDash(sid);
        $("d-attempt").textContent = orDash(st.attempt);
        $("d-created").textContent = orDash(st.created_at);
        $("d-updated").textContent = orDash(st.updated_at);
        const err = $("d-error");
        err.hidden = !st.error;
        err.textContent = st.error || "";

        const jobs = Array.isArray(st.jobs) ? st.jobs : [];
        const rows = jobs.map((j) => {
            const size = j.width && j.height ? j.width + "\u00d7" + j.height : null;
            const out = [j.format, size, j.backend].filter(Boolean).join(", ");
            const warnings = Array.isArray(j.warnings) ? j.warnings : [];
            return el(
                "tr",
                { class: "job", "data-status": j.status },
                el("td", { "data-label": "Destination", class: "mono", text: j.destination }),
                el("td", { "data-label": "Status" }, statusBadge(j.status)),
                el("td", { "data-label": "Output", text: orDash(out) }),
                el("td", { "data-label": "Bytes", class: "num", text: fmtBytes(j.bytes) }),
                el("td", { "data-label": "Duration", class: "num", text: fmtMs(j.duration_ms) }),
                el(
                    "td",
                    { "data-label": "Warnings" },
                    warnings.length
                        ? el(
                              "ul",
                              { class: "warnings" },
                              ...warnings.map((w) =>
                                  el("li", {
                                      text: typeof w === "string" ? w : JSON.stringify(w),
                                  })
                              )
                          )
                        : "\u2014"
                ),
                el("td", { "data-label": "Error", class: "error-text", text: j.error || "" })
            );
        });
        $("d-jobs").tBodies[0].replaceChildren(...rows);
        $("d-jobs-empty").hidden = rows.length !== 0;

        const final = FINAL.includes(st.status);
        $("d-retry").disabled = !final || sid === null;
        $("d-cancel").disabled = final || sid === null;
    }

    function renderPostbacks(pb, pbError) {
        const tbody = $("d-postbacks").tBodies[0];
        if (pbError) {
            tbody.replaceChildren();
            $("d-postbacks-empty").hidden = false;
            $("d-postbacks-empty").textContent =
                "Cannot read the postbacks: " + pbError.describe();
            return;
        }
        const list = pb && Array.isArray(pb.postbacks) ? pb.postbacks : [];
        tbody.replaceChildren(
            ...list.map((p) =>
                el(
                    "tr",
                    { class: "postback" },
                    el("td", { "data-label": "#", class: "num", text: p.id }),
                    el("td", { "data-label": "State" }, statusBadge(p.state)),
                    el("td", { "data-label": "Attempt", class: "num", text: p.attempt }),
                    el("td", {
                        "data-label": "Last answer",
                        class: "num",
                        text: orDash(p.last_status),
                    }),
                    el("td", { "data-label": "Next at", class: "num", text: orDash(p.next_at) }),
                    el("td", { "data-label": "Created", class: "num", text: orDash(p.created_at) }),
                    el("td", { "data-label": "Last error", class: "error-text", text: p.last_error || "" })
                )
            )
        );
        $("d-postbacks-empty").hidden = list.length !== 0;
        $("d-postbacks-empty").textContent =
            "No postbacks (the request has no callback, or none is owed yet).";
    }

    /* POST /retry or /cancel for the process open; shows the answer. */
    async function act(path, verb) {
        const id = state.detailId;
        const sid = state.detailService;
        const out = $("d-action");
        if (sid === null || sid === undefined) {
            out.textContent = "Cannot " + verb + ": its service is not known.";
            return;
        }
        $("d-retry").disabled = true;
        $("d-cancel").disabled = true;
        out.textContent = verb + "\u2026";
        try {
            const res = await api("POST", path, { service_id: sid, process_ids: [id] });
            const r = Array.isArray(res) && res.length ? res[0] : null;
            out.textContent = r
                ? r.status + ": " + r.description
                : "unexpected answer";
            out.setAttribute("data-result", r ? String(r.status) : "");
        } catch (e) {
            out.textContent = verb + " failed: " + (e.describe ? e.describe() : e);
            out.setAttribute("data-result", "error");
        }
        if (id === state.detailId) {
            await loadDetail();
            every("detail", DETAIL_EVERY_MS, loadDetail);
        }
    }

    /* ----------------------------------------------------------- views */

    function route() {
        const m = /^#\/process\/(.+)$/.exec(location.hash);
        const authed = !!state.token;
        $("welcome").hidden = authed;
        stopTimers();
        if (!authed) {
            $("list-view").hidden = true;
            $("detail-view").hidden = true;
            return;
        }
        if (m) {
            let id;
            try {
                id = decodeURIComponent(m[1]);
            } catch (e) {
                id = m[1];
            }
            $("list-view").hidden = true;
            $("detail-view").hidden = false;
            if (id !== state.detailId) {
                state.detailId = id;
                state.detail = null;
                state.detailService = null;
                $("d-action").textContent = "";
                $("d-action").removeAttribute("data-result");
                $("d-jobs").tBodies[0].replaceChildren();
                $("d-postbacks").tBodies[0].replaceChildren();
                $("d-id").textContent = id;
            }
            window.scrollTo(0, 0);
            every("detail", DETAIL_EVERY_MS, loadDetail);
            return;
        }
        state.detailId = null;
        $("detail-view").hidden = true;
        $("list-view").hidden = false;
        every("list", LIST_EVERY_MS, () =>
            $("auto-refresh").checked || !state.rows.length ? loadList(false) : null
        );
        every("stats", STATS_EVERY_MS, loadStats);
    }

    function readFilter() {
        const service = $("filter-service").value.trim();
        if (service && !/^[0-9]+$/.test(service)) {
            notify("Service: a whole number, or empty for all services", true);
            return false;
        }
        state.filter.status = $("filter-status").value;
        state.filter.service = service;
        return true;
    }

    function wire() {
        $("token-form").addEventListener("submit", (ev) => {
            ev.preventDefault();
            const t = $("token").value.trim();
            if (!t) {
                notify("Paste a token first.", true);
                return;
            }
            clearNotice();
            setToken(t);
            route();
        });
        $("token-forget").addEventListener("click", () => {
            setToken(null);
            clearNotice();
            route();
        });
        $("filter-form").addEventListener("submit", (ev) => {
            ev.preventDefault();
            if (readFilter()) {
                clearNotice();
                state.paged = false;
                state.cursor = null;
                loadList(false);
                loadStats();
            }
        });
        $("filter-status").addEventListener("change", () => {
            if (readFilter()) {
                state.paged = false;
                loadList(false);
            }
        });
        $("lookup-form").addEventListener("submit", (ev) => {
            ev.preventDefault();
            const id = $("lookup-id").value.trim();
            if (!ID_RE.test(id)) {
                notify(
                    "A process id is 1 to 64 of the characters A-Z a-z 0-9 _ -",
                    true
                );
                return;
            }
            clearNotice();
            location.hash = processHref(id);
        });
        $("refresh").addEventListener("click", () => {
            loadList(false);
            loadStats();
        });
        $("more").addEventListener("click", () => loadList(true));
        $("d-retry").addEventListener("click", () => act("/retry", "retry"));
        $("d-cancel").addEventListener("click", () => {
            if (window.confirm("Cancel process " + state.detailId + "?")) {
                act("/cancel", "cancel");
            }
        });
        $("home").addEventListener("click", (ev) => {
            ev.preventDefault();
            location.hash = "";
        });
        window.addEventListener("hashchange", route);
        let resize = null;
        window.addEventListener("resize", () => {
            clearTimeout(resize);
            resize = setTimeout(renderCharts, 150);
        });
        document.addEventListener("visibilitychange", () => {
            if (!document.hidden && state.token) {
                route();
            }
        });
    }

    document.addEventListener("DOMContentLoaded", () => {
        loadToken();
        showToken();
        wire();
        route();
    });
})();
