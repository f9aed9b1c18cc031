// The Allure 3 report with its quality gate inside it: `node tools/allure-report.mjs RESULTS_DIR [VERDICT]`.
//
// Why not `allure quality-gate` then `allure generate`: in 3.14.3 the gate command writes nothing the
// report reads, and `generate` never evaluates the gate, so the report's Quality Gates tab stays empty.
// That tab (widgets/quality-gate.json) is fed only from the store's quality-gate results, which only
// `allure run` fills (commons/run.js: validate, then realtimeDispatcher.sendQualityGateResults, and
// sendGlobalExitCode for the header's status). `allure run` wraps the test process itself and ignores
// result files that exist before it starts; this does the same steps on results already written.
//
// Exit status: the quality gate's (0 passed, 1 failed), as `allure quality-gate` gives it; 2 if the
// report could not be generated. VERDICT
// (reports/verdict.json) gives the suite's own exit status, shown beside the gate's in the header.
import { existsSync, readFileSync } from "node:fs";
import process, { cwd, exit } from "node:process";

import { AllureReport, readConfig, stringifyQualityGateResults } from "@allurereport/core";

const [resultsDir, verdictPath] = process.argv.slice(2);
if (!resultsDir) {
  console.error("usage: node tools/allure-report.mjs RESULTS_DIR [VERDICT_JSON]");
  exit(2);
}

const readSuiteExit = () => {
  if (!verdictPath || !existsSync(verdictPath)) return undefined;
  try {
    const status = JSON.parse(readFileSync(verdictPath, "utf8")).exit_status;
    return Number.isInteger(status) ? status : undefined;
  } catch {
    return undefined;
  }
};

const report = new AllureReport(await readConfig(cwd()));
await report.start();
if (existsSync(resultsDir)) {
  await report.readDirectory(resultsDir);
}
const trs = await report.store.allTestResults({ includeRetries: false });
const knownIssues = await report.store.allKnownIssues();
const { results } = await report.validate({ trs, knownIssues });
const gate = results.length > 0 ? 1 : 0;
if (results.length > 0) {
  console.error(stringifyQualityGateResults(results));
  report.realtimeDispatcher.sendQualityGateResults(results);
} else {
  console.log("quality gate passed");
}
const suiteExit = readSuiteExit();
// The header shows "exit code <actual> (original <original>)" with a passed/failed badge from actual.
report.realtimeDispatcher.sendGlobalExitCode(
  suiteExit === undefined ? { original: gate } : { original: suiteExit, actual: gate },
);
// Not awaited at the top level: once it has appended to the history, 3.14.3's done() never settles
// (AllureLocalHistory.appendHistory awaits FileHandle.close() while its autoClose:false write stream
// still holds the handle; the data is written by then). The process ends when its work is done, with
// the gate's status; the allure CLI ends the same way (which is also why `allure quality-gate` passed
// whenever an old report sat in the output: its done() went on to the history and never returned).
process.exitCode = gate;
report.done().catch((error) => {
  console.error("the report could not be generated:", error);
  process.exitCode = 2;
});
