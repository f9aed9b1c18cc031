"""The backend's startup record, the only outside source of how its startups went.

No endpoint of the real backend reports its startups; its logs in Cloud Logging do (docs/startup-record.md).
This family reads them, from the most concrete to the most summarised:

* `sources`: where the entries come from (`E2E_STARTUP_EVIDENCE = gcloud | file:PATH | none`), read once per
  window, bounded, never raising for an environment problem;
* `records`: the entries parsed into one `StartupRecord` per startup (pure);
* `tally`: the startups of a window counted: success rate, database-phase p95 and max, failing phases.
"""
