// The operator dashboard in a real browser, for tests/exec/dashboard.sh:
// Debian's chromium, headless, driven by playwright-core (installed by
// tests/browser/install.sh; run with NODE_PATH at its node_modules).
//
//   node dashboard_browser.js URL TOKEN OUTDIR
//
// URL is a running `kiln serve` whose service 1 reads /in/a.png and whose
// TOKEN may use services 1 and 2. The same flows run on a desktop window
// (1280x800) and a phone (390x844, touch): paste the token, watch a
// process submitted through the API appear and finish, open it, retry
// it, look a failing one up by id and read its error, filter the list,
// cancel a process, read the charts (24 and 30 points), forget the
// token. On the phone, nothing may stick out sideways at any step.
// Prints "ok dashboard/NAME" or "FAIL dashboard/NAME: WHY" per check and
// keeps a screenshot per step in OUTDIR; exits 1 when a check failed.
"use strict";
const fs = require("fs");
const path = require("path");
const { chromium } = require("playwright-core");

const [base, token, outDir] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const WAIT_MS = 40000; // a process to finish, a poll to show it
let failures = 0;
// Processes the flows ended so far, by outcome: the charts must count
// exactly these (the server's job store is new).
const ended = { finished: 0, failed: 0, cancelled: 0 };

function ok(name) {
    console.log("ok dashboard/" + name);
}

function fail(name, why) {
    const text = String(why && why.message ? why.message : why);
    console.log("FAIL dashboard/" + name + ": " + text.replace(/\s+/g, " ").slice(0, 500));
    failures++;
}

// Runs one check; a failed one is reported and the flow goes on.
async function check(name, fn) {
    try {
        await fn();
        ok(name);
        return true;
    } catch (e) {
        fail(name, e);
        return false;
    }
}

// A check the rest of a flow needs: when it fails, the flow stops.
class Stop extends Error {}
async function must(name, fn) {
    if (!(await check(name, fn))) {
        throw new Stop(name);
    }
}

function expect(cond, why) {
    if (!cond) {
        throw new Error(why);
    }
}

async function api(method, p, body) {
    const r = await fetch(base + p, {
        method: method,
        headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    if (!r.ok) {
        throw new Error(method + " " + p + ": " + r.status + " " + text);
    }
    return JSON.parse(text);
}

async function submit(service, source, dest, extra) {
    const req = Object.assign(
        {
            service_id: service,
            source: source,
            jobs: [{ destination: dest, transformations: [{ type: "resize", width: 32 }] }],
        },
        extra || {}
    );
    return (await api("POST", "/request", req)).process_id;
}

// Elements that stick out of the viewport sideways, and the page's own
// horizontal overflow; [] when everything fits.
function overflowing() {
    const vw = document.documentElement.clientWidth;
    const bad = [];
    if (document.documentElement.scrollWidth > vw) {
        bad.push("page scrollWidth " + document.documentElement.scrollWidth + " > " + vw);
    }
    for (const e of document.querySelectorAll("body *")) {
        const r = e.getBoundingClientRect();
        if (r.width === 0 && r.height === 0) {
            continue;
        }
        if (r.right > vw + 0.5 || r.left < -0.5) {
            bad.push(
                e.tagName.toLowerCase() +
                    (e.id ? "#" + e.id : "") +
                    (e.getAttribute("class") ? "." + e.getAttribute("class") : "") +
                    " " + Math.round(r.left) + ".." + Math.round(r.right)
            );
        }
    }
    return bad.slice(0, 6);
}

async function flows(browser, label, contextOptions) {
    const ctx = await browser.newContext(contextOptions);
    try {
        await steps(ctx, label);
    } catch (e) {
        if (!(e instanceof Stop)) {
            throw e;
        }
        fail(label + "/flow", "the rest was not run: " + e.message + " failed");
    } finally {
        await ctx.close();
    }
}

async function steps(ctx, label) {
    const isPhone = label === "phone";
    const page = await ctx.newPage();
    const consoleErrors = [];
    const foreign = [];
    const unauthorized = [];
    const origin = new URL(base).origin;
    page.on("console", (m) => {
        // The API's 4xx answers the flows ask for (an unknown id, a wrong
        // token) are logged by the browser itself; anything else, a CSP
        // violation above all, is an error of the page.
        if (m.type() === "error" && !/^Failed to load resource: the server responded with a status of 4/.test(m.text())) {
            consoleErrors.push(m.text());
        }
    });
    page.on("pageerror", (e) => consoleErrors.push(String(e)));
    page.on("dialog", (d) => d.accept());
    page.on("request", (r) => {
        if (!r.url().startsWith(origin + "/") && !r.url().startsWith("data:")) {
            foreign.push(r.url());
        }
    });
    page.on("response", (r) => {
        if (r.status() === 401) {
            unauthorized.push(r.url());
        }
    });
    let n = 0;
    // A screenshot per step; on the phone, also the check that it fits.
    const step = async (name) => {
        n++;
        const file = path.join(outDir, label + "-" + String(n).padStart(2, "0") + "-" + name + ".png");
        await page.screenshot({ path: file, fullPage: true });
        if (isPhone) {
            await check(label + "/fits-" + name, async () => {
                const bad = await page.evaluate(overflowing);
                expect(bad.length === 0, "sticks out sideways: " + bad.join("; "));
            });
        }
    };
    const L = (s) => label + "/" + s;
    const rowSel = (id) => '#processes tbody tr[data-id="' + id + '"]';

    await must(L("opens-without-token"), async () => {
        const r = await page.goto(base + "/dashboard");
        expect(r.status() === 200, "GET /dashboard: " + r.status());
        await page.waitForSelector("#welcome:visible", { timeout: 5000 });
        await page.waitForSelector("#token:visible", { timeout: 5000 });
        expect(await page.isHidden("#list-view"), "the list shows before a token is given");
    });
    await step("welcome");

    await must(L("token-in-session-storage"), async () => {
        await page.fill("#token", token);
        await page.click("#token-use");
        await page.waitForSelector("#list-view:visible", { timeout: 5000 });
        const st = await page.evaluate(() => ({
            session: Object.keys(sessionStorage).map((k) => sessionStorage.getItem(k)),
            local: localStorage.length,
            cookie: document.cookie,
        }));
        expect(st.session.includes(token), "the token is not in sessionStorage");
        expect(st.local === 0, "localStorage holds " + st.local + " items");
        expect(st.cookie === "", "document.cookie is " + JSON.stringify(st.cookie));
        expect((await ctx.cookies()).length === 0, "the context has cookies");
        expect(!page.url().includes(token), "the token is in the URL");
    });

    // One process through the API: it shows in the list and finishes
    // there, with its duration, by the page's own polling.
    const id = await submit(1, "/in/a.png", "/out/" + label + "/a.png");
    ended.finished++;
    await must(L("list-shows-finished"), async () => {
        await page.waitForSelector(rowSel(id), { timeout: WAIT_MS });
        await page.waitForSelector(rowSel(id) + '[data-status="FINISHED"]', { timeout: WAIT_MS });
        const dur = await page.textContent(rowSel(id) + " td.duration");
        expect(/\d/.test(dur), "no duration: " + JSON.stringify(dur));
    });
    await step("list");

    await must(L("detail-jobs"), async () => {
        await page.click(rowSel(id) + " td.duration"); // the row opens it
        await page.waitForSelector('#detail[data-status="FINISHED"]', { timeout: WAIT_MS });
        expect((await page.textContent("#d-id")) === id, "another process is open");
        const jobs = await page.$$eval("#d-jobs tbody tr", (rows) =>
            rows.map((r) => ({ status: r.dataset.status, text: r.textContent }))
        );
        expect(jobs.length === 1, jobs.length + " job rows");
        expect(jobs[0].status === "FINISHED", "job " + jobs[0].status);
        expect(jobs[0].text.includes("/out/" + label + "/a.png"), "no destination: " + jobs[0].text);
        expect(jobs[0].text.includes("32\u00d724"), "no output size: " + jobs[0].text);
        expect(page.url().endsWith("#/process/" + id), "the URL is " + page.url());
    });
    await step("detail");

    await check(L("retry-attempt-2"), async () => {
        await page.waitForSelector("#d-retry:enabled", { timeout: 5000 });
        await page.click("#d-retry");
        await page.waitForSelector('#d-action[data-result="200"]', { timeout: 10000 });
        await page.waitForFunction(() => document.getElementById("d-attempt").textContent === "2", null, {
            timeout: WAIT_MS,
        });
        await page.waitForSelector('#detail[data-status="FINISHED"]', { timeout: WAIT_MS });
    });
    await step("retried");

    await check(L("list-shows-attempt-2"), async () => {
        await page.click("#detail-view .back");
        await page.waitForSelector("#list-view:visible", { timeout: 5000 });
        await page.waitForFunction(
            (sel) => {
                const r = document.querySelector(sel);
                return r && r.children[3].textContent === "2" && r.dataset.status === "FINISHED";
            },
            rowSel(id),
            { timeout: WAIT_MS }
        );
    });

    // A process that fails (its source does not exist), on service 2:
    // looked up by id, its error shown; retry and cancel must name
    // service 2 for it.
    const bad = await submit(2, "/in/missing-" + label + ".png", "/out/" + label + "/never.png");
    ended.failed++;
    await check(L("lookup-failed-error"), async () => {
        await page.fill("#lookup-id", bad);
        await page.click("#lookup-form button");
        await page.waitForSelector('#detail[data-status="FAILED"]', { timeout: WAIT_MS });
        const err = await page.textContent("#d-error");
        expect(await page.isVisible("#d-error"), "the error is not shown");
        expect(err.includes("missing-" + label), "the error does not name the source: " + err);
        await page.waitForFunction(() => document.getElementById("d-service").textContent === "2", null, {
            timeout: 10000,
        });
    });
    await step("failed");

    await check(L("filter-failed"), async () => {
        await page.click("#detail-view .back");
        await page.selectOption("#filter-status", "FAILED");
        await page.waitForFunction(
            (id) => {
                const rows = [...document.querySelectorAll("#processes tbody tr")];
                return (
                    rows.length > 0 &&
                    rows.every((r) => r.dataset.status === "FAILED") &&
                    rows.some((r) => r.dataset.id === id && r.querySelector("td.error").textContent !== "")
                );
            },
            bad,
            { timeout: WAIT_MS }
        );
    });
    await step("filtered");

    await check(L("filter-finished"), async () => {
        await page.selectOption("#filter-status", "FINISHED");
        await page.waitForFunction(
            (id) => {
                const rows = [...document.querySelectorAll("#processes tbody tr")];
                return rows.some((r) => r.dataset.id === id) && rows.every((r) => r.dataset.status === "FINISHED");
            },
            id,
            { timeout: WAIT_MS }
        );
        await page.selectOption("#filter-status", "");
    });

    // Cancel: a dynamic process waits INCOMPLETE until it is cancelled.
    const inc = await submit(1, "/in/a.png", "/out/" + label + "/later.png", { process: false });
    ended.cancelled++;
    await check(L("cancel"), async () => {
        await page.fill("#lookup-id", inc);
        await page.press("#lookup-id", "Enter");
        await page.waitForSelector('#detail[data-status="INCOMPLETE"]', { timeout: WAIT_MS });
        await page.waitForSelector("#d-cancel:enabled", { timeout: 10000 });
        expect(await page.isDisabled("#d-retry"), "retry is offered for an INCOMPLETE process");
        await page.click("#d-cancel"); // confirm() is accepted
        await page.waitForSelector('#d-action[data-result="200"]', { timeout: 10000 });
        await page.waitForSelector('#detail[data-status="CANCELLED"]', { timeout: WAIT_MS });
        await page.waitForSelector("#d-retry:enabled", { timeout: 5000 });
        expect(await page.isDisabled("#d-cancel"), "cancel is still offered");
    });
    await step("cancelled");

    await check(L("lookup-unknown"), async () => {
        await page.fill("#lookup-id", "nosuchprocess" + label);
        await page.click("#lookup-form button");
        await page.waitForFunction(
            () => /No such process/.test(document.getElementById("d-error").textContent),
            null,
            { timeout: 10000 }
        );
    });

    await check(L("charts-24-and-30-points"), async () => {
        await page.click("#home");
        await page.waitForSelector("#list-view:visible", { timeout: 5000 });
        await page.click("#refresh");
        const want = ended.finished + " finished, " + ended.failed + " failed, " + ended.cancelled + " cancelled";
        await page
            .waitForFunction(
                (want) =>
                    ["24h", "30d"].every((w) =>
                        document.querySelector("#stats-" + w + " .totals").textContent.endsWith(want)
                    ),
                want,
                { timeout: WAIT_MS }
            )
            .catch(async () => {
                const got = await page.$$eval(".totals", (t) => t.map((e) => e.textContent).join(" / "));
                throw new Error("the charts count " + got + ", not " + want);
            });
        const counts = await page.evaluate(() => {
            const c = (sel) => document.querySelectorAll(sel).length;
            return {
                c24: c("#chart-24h-counts g.bucket"),
                d24: c("#chart-24h-durations g.bucket"),
                c30: c("#chart-30d-counts g.bucket"),
                d30: c("#chart-30d-durations g.bucket"),
                bars: c("#chart-24h-counts rect.bar.finished"),
                dots: c("#chart-24h-durations circle.dot"),
            };
        });
        expect(counts.c24 === 24 && counts.d24 === 24, "24h chart points: " + JSON.stringify(counts));
        expect(counts.c30 === 30 && counts.d30 === 30, "30d chart points: " + JSON.stringify(counts));
        expect(counts.bars >= 1 && counts.dots >= 1, "nothing drawn: " + JSON.stringify(counts));
        // The last hour's figures, tapped on the phone, clicked elsewhere.
        const last = page.locator("#chart-24h-counts g.bucket").last();
        await (isPhone ? last.tap() : last.click());
        const readout = await page.textContent("#stats-24h .readout");
        const start = await last.getAttribute("data-start");
        expect(
            readout.startsWith(start.slice(0, 16)) && /\d+ finished, \d+ failed, \d+ cancelled; p50 /.test(readout),
            "readout: " + readout
        );
    });
    await step("charts");

    await check(L("token-stays-in-tab"), async () => {
        await page.reload();
        await page.waitForSelector("#list-view:visible", { timeout: 5000 });
        const other = await ctx.newPage();
        await other.goto(base + "/dashboard");
        await other.waitForSelector("#welcome:visible", { timeout: 5000 });
        expect(await other.isHidden("#list-view"), "a new tab has the token");
        await other.close();
    });

    await check(L("forget-token"), async () => {
        await page.click("#token-forget");
        await page.waitForSelector("#welcome:visible", { timeout: 5000 });
        const left = await page.evaluate(() => sessionStorage.length);
        expect(left === 0, "sessionStorage still holds " + left + " items");
    });
    await step("forgotten");

    if (!isPhone) {
        await check(L("wrong-token-refused"), async () => {
            await page.fill("#token", "not-" + token);
            await page.click("#token-use");
            await page.waitForSelector("#notice.error:visible", { timeout: 10000 });
            await page.waitForSelector("#welcome:visible", { timeout: 5000 });
            const text = await page.textContent("#notice");
            expect(/refused/.test(text), "notice: " + text);
            const left = await page.evaluate(() => sessionStorage.length);
            expect(left === 0, "the refused token is kept");
            // one refusal; the page stops polling after it
            const seen = unauthorized.length;
            await page.waitForTimeout(6000);
            expect(unauthorized.length === seen, "the page went on calling with a refused token");
            unauthorized.length = 0;
        });
        await step("refused");
    }

    await check(L("no-console-errors"), async () => {
        expect(consoleErrors.length === 0, consoleErrors.slice(0, 3).join(" | "));
    });
    await check(L("same-origin-only"), async () => {
        expect(foreign.length === 0, "requests elsewhere: " + foreign.slice(0, 3).join(" "));
        expect(unauthorized.length === 0, "401 answers: " + unauthorized.slice(0, 3).join(" "));
    });
}

(async () => {
    fs.mkdirSync(outDir, { recursive: true });
    let browser;
    try {
        browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
    } catch (e) {
        fail("launch", e);
        process.exit(1);
    }
    try {
        await flows(browser, "desktop", { viewport: { width: 1280, height: 800 } });
        await flows(browser, "phone", {
            viewport: { width: 390, height: 844 },
            deviceScaleFactor: 3,
            isMobile: true,
            hasTouch: true,
        });
    } catch (e) {
        fail("flows", e);
    } finally {
        await browser.close();
    }
    process.exit(failures ? 1 : 0);
})();
