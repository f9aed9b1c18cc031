"""The staging system's wire contract, shared by the suite and the replica (one schema, two users).

Facts are described in docs/protocol.md; nothing here knows about tests or servers.
"""
