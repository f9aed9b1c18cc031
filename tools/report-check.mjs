// The Allure report as a reader sees it: `node tools/report-check.mjs REPORTS_DIR GATE_EXIT`.
//
// Serves REPORTS_DIR/allure-report over http://127.0.0.1 (a report opened from file:// does not load its
// data), opens it in headless Chromium (Debian's /usr/bin/chromium, a fresh profile, nothing but the
// local server reachable) at 1920x1080, and checks the rendered page against the run's own record
// (REPORTS_DIR/verdict.json, the generator's GATE_EXIT):
//   first page     the headline's label in the header; diagnosis (the whole headline), cause, owner,
//                  outcome and coverage in the Metadata block: in view without a click or a scroll
//   flaky          the report shows as many flaky tests as the verdict counts (an outage is not flaky)
//   attempts       a broken or failed test's attempt steps are drawn with their attempts' statuses
//   quality gate   the header's status and exit code are the gate's; a failed gate lists its rules
// Saves report-first-page.png (and report-diagnosis.png, report-attempts.png, report-quality-gate.png)
// in REPORTS_DIR; exits 1 if a check failed, 2 if the report could not be checked at all.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize, resolve, sep } from "node:path";
import process from "node:process";

import { chromium } from "playwright-core";

const CHROMIUM = "/usr/bin/chromium";
const VIEWPORT = { width: 1920, height: 1080 };
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".css": "text/css",
  ".json": "application/json",
  ".woff": "font/woff",
  ".woff2": "font/woff2",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".txt": "text/plain; charset=utf-8",
};

const [reportsArg, gateArg] = process.argv.slice(2);
if (!reportsArg || gateArg === undefined || !/^\d+$/.test(gateArg)) {
  console.error("usage: node tools/report-check.mjs REPORTS_DIR GATE_EXIT");
  process.exit(2);
}
const reports = resolve(reportsArg);
const reportDir = join(reports, "allure-report");
const gate = Number(gateArg);
if (!existsSync(join(reportDir, "index.html"))) {
  console.error(`report-check: no report in ${reportDir} (make report writes it)`);
  process.exit(2);
}
const verdictPath = join(reports, "verdict.json");
const verdict = existsSync(verdictPath) ? JSON.parse(readFileSync(verdictPath, "utf8")) : null;

const results = [];
const record = (name, ok, detail) => {
  results.push({ name, ok, detail });
  console.log(`${ok === null ? "SKIP" : ok ? "PASS" : "FAIL"}  ${name}: ${detail}`);
};

/** A static server for the report directory only, on an ephemeral port of 127.0.0.1. */
const serve = async (root) => {
  const server = createServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url, "http://127.0.0.1").pathname);
    const file = normalize(join(root, path.endsWith("/") ? `${path}index.html` : path));
    if (file !== root && !file.startsWith(root + sep)) {
      response.writeHead(403).end();
      return;
    }
    try {
      const body = readFileSync(file);
      response.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
      response.end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  await new Promise((done) => server.listen(0, "127.0.0.1", done));
  return server;
};

/** The report's own data for a broken/failed test with attempt steps (the one whose steps we look at). */
const retriedFailure = () => {
  const dir = join(reportDir, "data", "test-results");
  const attemptsOf = (steps = []) =>
    steps.flatMap((step) => [
      ...(/: \d+ attempts$/.test(step.name ?? "") ? [step] : []),
      ...attemptsOf(step.steps),
    ]);
  for (const name of existsSync(dir) ? readdirSync(dir) : []) {
    const tr = JSON.parse(readFileSync(join(dir, name), "utf8"));
    if (["broken", "failed"].includes(tr.status) && attemptsOf(tr.steps).length) {
      return { name: tr.name, groups: attemptsOf(tr.steps).map((s) => s.name) };
    }
  }
  return null;
};

const inView = async (locator) => {
  const box = await locator.boundingBox();
  return Boolean(box) && box.y >= 0 && box.y + box.height <= VIEWPORT.height;
};

const metadata = async (page) => {
  const items = {};
  for (const item of await page.getByTestId("metadata-item").all()) {
    const key = (await item.getByTestId("metadata-item-key").innerText()).trim();
    items[key] = { text: (await item.getByTestId("metadata-item-value").innerText()).trim(), item };
  }
  return items;
};

const checkFirstPage = async (page) => {
  if (!verdict) {
    record("first page", false, `no verdict at ${verdictPath}: nothing to compare the report with`);
    return;
  }
  // The header names the verdict: its body's label (harness/report/allure_files.py report_name renders it),
  // in view on load.
  const expectedWords = [String(verdict.label)];
  const title = page.getByTestId("report-title");
  const titleText = (await title.innerText()).replace(/\s+/g, " ").trim();
  const titleInView = await inView(title);
  const missing = expectedWords.filter((word) => !titleText.includes(word));
  record(
    "first page: the diagnosis in the header",
    missing.length === 0 && titleInView,
    `"${titleText}" (${titleInView ? "in view" : "NOT in view"}` +
      `${missing.length ? `; missing ${missing.map((w) => `"${w}"`).join(", ")}` : ""})`,
  );
  const items = await metadata(page);
  const titles = (state) => (verdict.coverage ?? []).filter((c) => c.state === state).map((c) => c.title);
  const expected = {
    diagnosis: (text) => text === verdict.headline,
    cause: (text) => text.length > 0 && (!verdict.known_issue || text.includes(verdict.known_issue)),
    owner: (text) => text.length > 0,
    outcome: (text) => text.startsWith(`${String(verdict.outcome).toUpperCase()} (exit ${verdict.exit_status})`),
    verified: (text) => titles("verified").every((t) => text.includes(t)),
    failed: (text) => titles("failed").every((t) => text.includes(t)),
    "not verified": (text) => titles("not_verified").every((t) => text.includes(t)),
  };
  const problems = [];
  for (const [key, ok] of Object.entries(expected)) {
    const entry = items[key];
    if (!entry) problems.push(`${key}: missing`);
    else if (!ok(entry.text)) problems.push(`${key}: "${entry.text}"`);
    else if (!(await entry.item.isVisible()) || !(await inView(entry.item))) problems.push(`${key}: not in view`);
  }
  record(
    "first page: diagnosis, cause, owner, outcome, coverage in the Metadata block, in view",
    problems.length === 0,
    problems.length
      ? problems.join("; ")
      : `owner "${items.owner.text}"; cause "${items.cause.text.slice(0, 80)}"; outcome "${items.outcome.text}"`,
  );
  // A value is cut to one line on the page; one click on it shows the whole of it.
  if (items.diagnosis) {
    await items.diagnosis.item.getByTestId("metadata-item-value").click();
    const whole = page.getByText(verdict.headline, { exact: true }).last();
    const shown = (await whole.count()) > 0 && (await whole.isVisible());
    await page.screenshot({ path: join(reports, "report-diagnosis.png") });
    await page.keyboard.press("Escape");
    record(
      "first page: the whole headline one click away",
      shown,
      shown ? `"${verdict.headline.slice(0, 100)}…"` : "clicking the diagnosis did not show the whole headline",
    );
  }
};

const checkFlaky = async (page) => {
  const expected = verdict?.counts?.flaky ?? 0;
  const summary = page.getByTestId("metadata-item-flaky");
  const shown = (await summary.count()) ? Number((await summary.getByTestId("metadata-value").innerText()).trim()) : 0;
  const badges = await page.getByTestId("tree-leaf-flaky").count();
  const ok = shown === expected && (expected > 0 || badges === 0);
  record(
    "flaky",
    ok,
    `the report shows ${shown} flaky (summary) and ${badges} flaky badge(s) in the tree; the verdict counts ${expected}` +
      (verdict?.known_issue ? ` (a ${verdict.known_issue} run)` : ""),
  );
};

const checkAttempts = async (page, url) => {
  const target = retriedFailure();
  if (!target) {
    record("attempts", null, "no broken or failed test retried in this run: nothing to look at");
    return;
  }
  await page.goto(url, { waitUntil: "networkidle" }); // every widget's data fetched
  await page.getByTestId("search-input").fill(target.name);
  const leaf = page.getByTestId("tree-leaf-title").filter({ hasText: target.name }).first();
  await leaf.click();
  const group = page.getByTestId("test-result-step").filter({
    has: page.getByTestId("test-result-step-title").filter({ hasText: target.groups[0] }),
  });
  await group.first().waitFor();
  const header = group.first().getByTestId("test-result-step-header").first();
  if (!(await group.first().getByTestId("test-result-step-content").count())) await header.click();
  const attempts = group.first().getByTestId("test-result-step-content").getByTestId("test-result-step-header");
  await attempts.first().waitFor();
  const drawn = [];
  for (const attempt of await attempts.all()) {
    const title = (await attempt.getByTestId("test-result-step-title").innerText()).trim();
    const icons = attempt.locator("[data-testid^='tree-leaf-status-']");
    const icon = (await icons.count()) ? await icons.first().getAttribute("data-testid") : "no status icon";
    drawn.push({ title, status: icon.replace("tree-leaf-status-", "") });
  }
  await group.first().scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(reports, "report-attempts.png") });
  const wrong = drawn.filter(({ title, status }) => (/: passed$/.test(title) ? status !== "passed" : status === "passed"));
  record(
    "attempts",
    drawn.length > 0 && wrong.length === 0,
    `"${target.name}": ${drawn.length} attempt step(s) drawn ${[...new Set(drawn.map((d) => d.status))].join("/")}` +
      (wrong.length ? `; drawn wrongly: ${wrong.map((w) => `${w.title.slice(0, 60)} -> ${w.status}`).join("; ")}` : ""),
  );
};

const checkQualityGate = async (page, url) => {
  await page.goto(url, { waitUntil: "networkidle" }); // every widget's data fetched
  await page.getByTestId("report-title").waitFor();
  const expectedStatus = gate === 0 ? "passed" : "failed";
  const header = page.getByTestId("report-header");
  const badges = header.locator("[data-testid^='test-result-status-']");
  await badges.first().waitFor({ timeout: 5000 }).catch(() => {}); // absent when no gate ran: a failure
  const badge = (await badges.count()) ? await badges.first().getAttribute("data-testid") : "no status";
  const date = (await page.getByTestId("report-data").innerText()).trim();
  const headerOk = badge === `test-result-status-${expectedStatus}` && date.includes(`exit code ${gate}`);
  await page.locator("button", { hasText: "Quality Gates" }).first().click();
  await page.waitForTimeout(300);
  const rules = await page.getByTestId("quality-gate-result-rule").allInnerTexts();
  await page.screenshot({ path: join(reports, "report-quality-gate.png") });
  const tabOk = gate === 0 ? rules.length === 0 : rules.length > 0;
  record(
    "quality gate",
    headerOk && tabOk,
    `gate exit ${gate}; header: ${badge?.replace("test-result-status-", "")}, "${date}"; ` +
      `Quality Gates tab: ${rules.length ? rules.join(", ") : "no failed rule"}`,
  );
};

const server = await serve(reportDir);
const url = `http://127.0.0.1:${server.address().port}/index.html`;
const profile = mkdtempSync(join(tmpdir(), "report-check-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: ARGS,
    viewport: VIEWPORT,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const origin = new URL(url).origin;
  await page.route((target) => target.origin !== origin, (route) => route.abort()); // analytics, fonts: off
  await page.goto(url, { waitUntil: "networkidle" }); // every widget's data fetched
  await page.getByTestId("report-title").waitFor();
  await page.getByTestId("metadata-item-total").waitFor();
  const tree = "[data-testid='tree-leaf'], [data-testid='tree-section-title'], [data-testid='tree-arrow']";
  await page.locator(tree).first().waitFor({ timeout: 5000 }).catch(() => {}); // an empty run has no tree
  await page.waitForTimeout(500); // the tree's first focus settles (it scrolls its pane on a short screen)
  await page.screenshot({ path: join(reports, "report-first-page.png") });
  await checkFirstPage(page);
  await checkFlaky(page);
  await checkAttempts(page, url);
  await checkQualityGate(page, url);
} catch (error) {
  record("report-check", false, `could not check the report: ${error.message.split("\n")[0]}`);
  await context?.pages()[0]?.screenshot({ path: join(reports, "report-check-failure.png") }).catch(() => {});
} finally {
  await context?.close();
  server.close();
  rmSync(profile, { recursive: true, force: true });
}

const failed = results.filter((r) => r.ok === false);
console.log(
  `report-check: ${failed.length ? `${failed.length} check(s) failed` : "every check passed"}` +
    ` (screenshot: ${join(reportsArg, "report-first-page.png")})`,
);
process.exit(failed.length ? 1 : 0);
