"""The drift report opened in a real browser (Debian's headless Chromium): it renders without console
errors, a column named like a script stays text, and the screenshot is a real picture with the plots'
colours in it. The PNG is decoded with zlib and numpy (no imaging library)."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modelog_services.monitoring.drift import ColumnSpec, PreparedReference, Schema, detect_drift
from modelog_services.monitoring.report import CURRENT_COLOR, DRIFT_COLOR, REFERENCE_COLOR, render_report
from tests.procs import CHROMIUM, CHROMIUM_FLAGS

EVIL = "<script>alert(1)</script>"
FLAGS = CHROMIUM_FLAGS

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="chromium not installed: `apt-get install chromium` (make test tries this)",
)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(42)
    schema = Schema(
        (
            ColumnSpec("income", "numerical"),
            ColumnSpec(EVIL, "numerical"),
            ColumnSpec("tenure", "numerical"),
            ColumnSpec("plan", "categorical"),
        )
    )
    plans = np.array(["basic", "plus", "pro"])
    ref = pa.table(
        {
            "income": rng.normal(100, 15, 20_000),
            EVIL: rng.exponential(2, 20_000),
            "tenure": rng.uniform(0, 10, 20_000),
            "plan": plans[rng.choice(3, 20_000, p=[0.5, 0.3, 0.2])],
        }
    )
    cur = pa.table(
        {
            "income": rng.normal(110, 15, 5000),
            EVIL: rng.exponential(2, 5000),
            "tenure": rng.uniform(0, 10, 5000),
            "plan": plans[rng.choice(3, 5000, p=[0.2, 0.3, 0.5])],
        }
    )
    result = detect_drift(PreparedReference(ref, schema), cur)
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render_report(f"churn-prod {EVIL}", result, window={"window": 7}), encoding="utf-8")
    return path


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp,
    )


def decode_png(data: bytes) -> np.ndarray:
    """8-bit RGB/RGBA PNG to an (height, width, channels) array: the five scanline filters of the PNG
    spec, Sub and Up vectorised, Average and Paeth (which depend on the pixel to the left) in a loop."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, bytearray(), None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert header is not None
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, f"unexpected PNG format {header}"
    bpp = 3 if color == 2 else 4
    stride = width * bpp
    raw = np.frombuffer(zlib.decompress(bytes(idat)), dtype=np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:]
        if kind == 0:
            row = line.copy()
        elif kind == 1:
            row = np.cumsum(line.reshape(width, bpp), axis=0, dtype=np.uint8).reshape(stride)
        elif kind == 2:
            row = line + prev
        else:
            row = _left_dependent(kind, line.tolist(), prev.tolist(), bpp)
        out[y] = row
        prev = out[y]
    return out.reshape(height, width, bpp)


def _left_dependent(kind: int, line: list[int], prev: list[int], bpp: int) -> np.ndarray:
    row = [0] * len(line)
    for i, x in enumerate(line):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i]
        if kind == 3:
            row[i] = (x + ((a + b) >> 1)) & 0xFF
            continue
        c = prev[i - bpp] if i >= bpp else 0
        p = a + b - c
        pa_, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        pred = a if pa_ <= pb and pa_ <= pc else (b if pb <= pc else c)
        row[i] = (x + pred) & 0xFF
    return np.array(row, dtype=np.uint8)


def pixels_of(image: np.ndarray, hex_color: str) -> int:
    rgb = np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
    close = np.abs(image[:, :, :3].astype(np.int16) - rgb).max(axis=2) <= 2
    return int(close.sum())


def test_the_report_renders_with_its_plots_in_a_real_browser(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    run = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2000", report.as_uri())
    assert shot.exists(), run.stderr[-2000:]
    image = decode_png(shot.read_bytes())
    assert image.shape[:2] == (2000, 1200)
    colours = np.unique(image[:, :, :3].reshape(-1, 3), axis=0)
    assert len(colours) > 100, "the screenshot is (nearly) blank"
    assert pixels_of(image, REFERENCE_COLOR) > 5000, "no reference bars drawn"
    assert pixels_of(image, CURRENT_COLOR) > 2000, "no current-window bars drawn"
    assert pixels_of(image, DRIFT_COLOR) > 200, "drifted columns are not highlighted"


def test_the_report_has_no_console_errors_and_the_script_column_stays_text(
    report: Path, tmp_path: Path
) -> None:
    run = chromium(tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom", report.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    dom = run.stdout
    assert "Dataset drift detected" in dom  # the page really rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "<script" not in dom.lower()  # no script element was created from the column name
