// Allure 3 configuration for `make report`. Categories come from what the suite writes into the
// results (categories.json, generated from the known-issue catalogue and harness/taxonomy.py): one
// source of truth.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

const reports = process.env.REPORTS ?? "reports";
const results = join(reports, "allure-results");
const categoriesFile = join(results, "categories.json");
const categories = existsSync(categoriesFile) ? JSON.parse(readFileSync(categoriesFile, "utf8")) : [];

export default {
  name: "Staging validation",
  output: join(reports, "allure-report"),
  historyPath: join(reports, "history.jsonl"),
  historyLimit: 60,
  // The quality gate reads the same config; only the report itself adds a run to the history.
  appendHistory: process.env.ALLURE_APPEND_HISTORY !== "0",
  categories: { rules: categories },
  qualityGate: {
    rules: [{ minTestsCount: 1, maxFailures: 0 }],
  },
  plugins: {
    awesome: { options: { reportName: "Staging validation", singleFile: false, groupBy: ["epic", "feature", "story"] } },
  },
};
