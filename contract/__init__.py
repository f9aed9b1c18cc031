"""The staging system's wire contract, shared by the suite and the replica (one schema, two users).

Facts come from `shared/reference/staging-system.md`; nothing here knows about tests or servers.
"""
