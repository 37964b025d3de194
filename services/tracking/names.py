"""Run names for runs started without one, MLflow-style (`brave-otter-417`), stable for a run id.

Derived from the id rather than drawn at random so that a retried StartRun, a replay and a rebuild all
agree on the name.
"""

from __future__ import annotations

import hashlib

ADJECTIVES = (
    "able", "agile", "amber", "ancient", "autumn", "bold", "brave", "bright", "brisk", "calm",
    "clever", "cosmic", "crisp", "curious", "daring", "dapper", "eager", "early", "fancy", "fearless",
    "gentle", "gifted", "glossy", "golden", "graceful", "happy", "hazy", "honest", "humble", "icy",
    "jolly", "keen", "kind", "lively", "loyal", "lucky", "mellow", "merry", "mighty", "misty",
    "nimble", "noble", "polite", "proud", "quick", "quiet", "rapid", "rare", "silent", "sleek",
    "smooth", "snowy", "solar", "spry", "steady", "stellar", "sunny", "swift", "tidy", "vivid",
    "warm", "wise", "witty", "zesty",
)  # fmt: skip
NOUNS = (
    "ant", "badger", "bat", "bear", "bee", "bison", "boar", "carp", "cat", "colt",
    "crab", "crane", "cricket", "crow", "deer", "dingo", "dove", "eagle", "eel", "elk",
    "falcon", "ferret", "finch", "fox", "frog", "gecko", "goat", "goose", "hare", "hawk",
    "heron", "horse", "ibis", "jay", "koala", "lark", "lemur", "lion", "lynx", "mink",
    "mole", "moose", "moth", "newt", "otter", "owl", "panda", "perch", "pika", "puffin",
    "quail", "raven", "robin", "seal", "shrew", "skunk", "sloth", "snail", "swan", "tapir",
    "toad", "trout", "wolf", "wren",
)  # fmt: skip


def run_name_for(run_id: str) -> str:
    """`<adjective>-<noun>-<0..999>` chosen by the SHA-256 of the run id."""
    h = int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:8], "big")
    adjective = ADJECTIVES[h % len(ADJECTIVES)]
    noun = NOUNS[(h // len(ADJECTIVES)) % len(NOUNS)]
    number = (h // (len(ADJECTIVES) * len(NOUNS))) % 1000
    return f"{adjective}-{noun}-{number}"
