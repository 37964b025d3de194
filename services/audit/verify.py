"""The offline verifier moved to modelog.shared.audit.verify (the SDK verifies bundles with no server).

Kept only so that tests/bench/bench_audit.py, which imports it from here, still runs; delete it once
that import names the new home.
"""

from __future__ import annotations

from modelog.shared.audit.verify import BundleVerifier, Outcome, verify_bytes, verify_file, verify_lines

__all__ = ["BundleVerifier", "Outcome", "verify_bytes", "verify_file", "verify_lines"]
