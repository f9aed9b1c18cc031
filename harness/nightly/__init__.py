"""Night after night: a nightly job is an operated service.

Each run is right about itself; this package makes it know the nights before and tell someone when
the state changes. `record` is one night as the history keeps it, `history` the file of one job and
environment, `causes` the cause a tracker follows (decided in the verdict), `streak` what changed since
the nights before (decided in the verdict), `tracker` who is told (pure decisions), `github` the REST
API they go through, `store` the durable history (a file per job+environment on a branch, through the
contents API), `notify` Slack, and `cli` (`python -m harness.nightly`) the entry point the workflow uses.
"""
