"""Audit formats the SDK and the audit service share: bundles, their signatures and verifier, cursors."""
