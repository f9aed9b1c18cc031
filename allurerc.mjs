// Allure 3 configuration for `make report` (tools/allure-report.mjs reads it). What the suite wrote into
// the results is the one source of truth: categories (categories.json, from the known-issue catalogue
// and harness/taxonomy.py) and the report's name (executor.json's reportName: the run's headline,
// written by harness/report/allure_files.py). Allure 3.14.3 reads reportName there but shows it only as an
// executor label; the header, the first thing a reader sees, takes the name from this config.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

const reports = process.env.REPORTS ?? "reports";
const results = join(reports, "allure-results");
const readJson = (name, fallback) => {
  const file = join(results, name);
  return existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : fallback;
};
const categories = readJson("categories.json", []);
const reportName = readJson("executor.json", {}).reportName || "Staging validation";

export default {
  name: reportName,
  output: join(reports, "allure-report"),
  // 3.14.3 ignores `appendHistory` (it appends whenever historyPath is set): an empty run, which must
  // add no history entry (make report decides, ALLURE_APPEND_HISTORY=0), gets no historyPath at all.
  historyPath: process.env.ALLURE_APPEND_HISTORY === "0" ? undefined : join(reports, "history.jsonl"),
  historyLimit: 60,
  categories: { rules: categories },
  qualityGate: {
    rules: [{ minTestsCount: 1, maxFailures: 0 }],
  },
  plugins: {
    awesome: { options: { reportName, singleFile: false, groupBy: ["epic", "feature", "story"] } },
  },
};
