"""What a run concluded, decided once, and the places a person reads it.

`verdict.conclude` turns the run's facts (the per-test results, the cause weighed against the startup
record, the gates) into one `Verdict`; its `body` is verdict.json. Everything else here only renders
that body: the terminal box (`box`), the CI job summary (`job_summary`) and Allure's launch files
(`allure_files`). The parts the verdict is made of: `coverage` (what was verified), `diagnosis` (who
must act), `cause` (a known issue at the strength of its evidence), `gates` (verify-fix's model), and
`headline` (the words).

This family uses only the known-issue catalogue, the taxonomy, the startup record, the redactor and the
text helpers; it never talks to a target.
"""
