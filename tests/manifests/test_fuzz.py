"""Random and mutated input into every reader gives entries or a ManifestError, nothing else."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thingpress_core.errors import ManifestError
from thingpress_core.manifests import ManifestEntry, ManifestFormat, read_manifest

DATA = Path(__file__).resolve().parent.parent / "data" / "manifests"
VERIFIERS = sorted((DATA / "microchip" / "verifiers").glob("*.crt"))
SEEDS = {
    ManifestFormat.ESPRESSIF: (DATA / "espressif" / "manifest-espressif.csv").read_bytes(),
    ManifestFormat.MICROCHIP: (DATA / "microchip" / "ECC608C-TNGTLSU-B.json").read_bytes(),
}
FUZZ = settings(
    max_examples=int(os.environ.get("THINGPRESS_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _consume(data: bytes, fmt: ManifestFormat | None, on_error: str) -> None:
    options: dict[str, Any] = {"verifiers": VERIFIERS} if fmt in (ManifestFormat.MICROCHIP, None) else {}
    try:
        reader = read_manifest(data, format=fmt, on_error=on_error, **options)  # type: ignore[arg-type]
        for entry in reader:
            assert isinstance(entry, ManifestEntry)
        assert reader.report.complete
    except ManifestError:
        pass
    except Exception as exc:  # the Microchip reader with an undetectable format has no verifiers issue
        raise AssertionError(f"{type(exc).__name__} escaped: {exc}") from exc


@pytest.mark.parametrize("fmt", list(ManifestFormat))
@pytest.mark.parametrize("on_error", ["raise", "skip"])
@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes(fmt: ManifestFormat, on_error: str, data: bytes) -> None:
    _consume(data, fmt, on_error)


@FUZZ
@given(data=st.binary(max_size=512))
def test_random_bytes_with_detection(data: bytes) -> None:
    _consume(data, None, "skip")


@pytest.mark.parametrize("fmt", [ManifestFormat.ESPRESSIF, ManifestFormat.MICROCHIP])
@FUZZ
@given(st.data())
def test_mutated_real_files(fmt: ManifestFormat, data: st.DataObject) -> None:
    seed = bytearray(SEEDS[fmt])
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(seed) - 1))
        seed[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(seed)))
    _consume(bytes(seed[:cut]), fmt, data.draw(st.sampled_from(["raise", "skip"])))


@FUZZ
@given(st.data())
def test_mutated_infineon_archive(build: Any, data: st.DataObject) -> None:
    from thingpress_core.certificates.generate import generate_device_certificates

    if not _ARCHIVE:
        _ARCHIVE.append(build.infineon_archive({"E0E0": list(generate_device_certificates(3))}))
    seed = bytearray(_ARCHIVE[0])
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(seed) - 1))
        seed[position] = data.draw(st.integers(0, 255))
    _consume(bytes(seed), ManifestFormat.INFINEON, data.draw(st.sampled_from(["raise", "skip"])))


_ARCHIVE: list[bytes] = []
