"""What the SDK and the server share, so the SDK can ship on its own: the error hierarchy and its one
mapping to gRPC statuses, the MODELOG_* settings, client TLS, the hash chain's rule, and the formats
both sides read and write (artifact references and manifests, blob seals, audit bundles and cursors).

The rule of this package: it imports nothing of the server (`eventlog`, `modelog_platform`,
`modelog_services`) and nothing of the rest of the SDK; the server imports from here, never the
other way round (tests/unit/test_sdk_standalone.py checks it).
"""
