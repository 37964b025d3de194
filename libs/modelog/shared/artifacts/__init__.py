"""Artifact formats the SDK and the artifacts service share: references, manifests, local copies, seals."""
