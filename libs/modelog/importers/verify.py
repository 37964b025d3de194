"""The check at the end of an import: counts per kind, a sample of full metric histories and of file
digests, read from the source again and compared with what Modelog holds."""

from __future__ import annotations

import hashlib
import random
from typing import Any

from modelog._gen.artifacts.v1 import artifacts_pb2 as apb
from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from modelog.errors import NotFound
from modelog.importers.context import ImportContext
from modelog.importers.source import Experiment, Run


class Verification(ImportContext):
    def _verify(self, plan: list[tuple[Experiment, str, list[Run]]]) -> dict[str, Any]:
        """Counts per kind, a sample of full metric histories and of file digests, source vs Modelog."""
        out: dict[str, Any] = {}
        exp_ok = sum(1 for _, eid, _ in plan if eid)
        out["experiments"] = {"source": len(plan), "modelog": exp_ok}
        runs = list(self._imported_runs)
        found = 0
        for _, run_id in runs:
            try:
                self.tracking.GetRun(tpb.GetRunRequest(run_id=run_id))
                found += 1
            except NotFound:
                pass
        out["runs"] = {"source": self.summary.seen.runs, "modelog": found}
        out["models"] = {"source": self.summary.seen.models, "modelog": self.state.count("model")}
        out["versions"] = {"source": self.summary.seen.versions, "modelog": self.state.count("version")}
        rng = random.Random(0)
        sample = rng.sample(runs, min(self.verify_sample, len(runs)))
        checked = mismatched = 0
        for r, run_id in sample:
            for key in r.metric_keys[:3]:
                src = self.source.history(r, key)
                got = self.tracking.GetMetricHistory(tpb.GetMetricHistoryRequest(run_id=run_id, key=key))
                checked += 1
                if sorted(zip(src.steps, src.timestamps_ms, map(repr, src.values), strict=True)) != sorted(
                    zip(got.steps, got.timestamps_ms, map(repr, got.values), strict=True)
                ):
                    mismatched += 1
        out["metric_histories"] = {"checked": checked, "mismatched": mismatched}
        files_checked = files_bad = 0
        for r, path, art in self._files[: self.verify_sample]:
            h = hashlib.sha256()
            with self.source.open(r, path) as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
            got = self.artifacts.GetVersion(
                apb.GetVersionRequest(ref=apb.VersionRef(name=art), include_entries=True)
            )
            digests = {e.path: e.digest for e in got.version.entries}
            files_checked += 1
            if digests.get(path, "").removeprefix("sha256:") != h.hexdigest():
                files_bad += 1
        out["file_digests"] = {"checked": files_checked, "mismatched": files_bad}
        out["ok"] = (
            mismatched == 0
            and files_bad == 0
            and out["runs"]["source"] == out["runs"]["modelog"] + self._failed_runs()
        )
        return out

    def _failed_runs(self) -> int:
        return sum(1 for f in self.summary.failures if f.startswith("run "))
