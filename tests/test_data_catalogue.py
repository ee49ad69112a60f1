"""One record per dataset (harness.data.catalogue) and ``bsnn-bench datasets``."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.config import RunConfig
from harness.data import real
from harness.data.catalogue import CATALOGUE, record
from harness.data.pipeline import DATASETS, build_data
from harness.errors import ConfigError, DatasetMissingError
from tests.test_data_real import write_nmnist

SHARED_NMNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nmnist-small"


def test_every_record_is_complete_and_consistent() -> None:
    assert DATASETS is CATALOGUE
    assert set(CATALOGUE) == {"digits-dvs", "synthetic-gestures", "nmnist", "dvsgesture",
                              "cifar10dvs", "shd"}
    for name, rec in CATALOGUE.items():
        assert rec.name == name and rec.reader and rec.source and rec.split
        assert rec.preprocessing and rec.time_steps >= 1 and rec.num_classes >= 2
        if rec.embedded:
            assert rec.layout is None and rec.tonic_class is None
        else:
            assert rec.layout and rec.folder and rec.tonic_class in real._READERS
            assert real.LAYOUTS[name] == rec.layout
    assert CATALOGUE["nmnist"].input_shape == (2, 34, 34)
    assert CATALOGUE["cifar10dvs"].input_shape == (2, 48, 48)
    assert CATALOGUE["shd"].input_shape == (700,)
    with pytest.raises(ConfigError, match="unknown dataset.name 'mnist'.*nmnist"):
        record("mnist")


def test_a_record_drives_the_pipeline(tmp_path: Path) -> None:
    """The pipeline takes sizes, T and the default denoise from the record alone."""
    write_nmnist(tmp_path)
    data = build_data(RunConfig.from_dict({"dataset": {"name": "nmnist",
                                                       "root": str(tmp_path)}}))
    rec = CATALOGUE["nmnist"]
    assert data.input_shape == rec.input_shape and data.time_steps == rec.time_steps
    assert data.num_classes == rec.num_classes


def test_missing_message_comes_from_the_record(tmp_path: Path) -> None:
    with pytest.raises(DatasetMissingError) as info:
        real.open_pool("dvsgesture", "train", str(tmp_path / "none"))
    rec = CATALOGUE["dvsgesture"]
    assert rec.layout in str(info.value) and rec.source in str(info.value)


def test_datasets_command_lists_layouts_and_presence(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    write_nmnist(tmp_path)
    assert main(["datasets", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    blocks = {b.split()[0]: b for b in out.split("\n\n")[1:] if b.strip()}
    assert set(blocks) == set(CATALOGUE)
    assert f"[found in {tmp_path}]" in blocks["nmnist"]
    for name in ("dvsgesture", "cifar10dvs", "shd"):
        assert "[not found]" in blocks[name]
        assert CATALOGUE[name].layout in blocks[name].replace("\n", " ")
    assert "[embedded" in blocks["digits-dvs"]
    assert "T=18, input 2x34x34" in blocks["nmnist"]
    assert main(["datasets", "shd", "--root", str(tmp_path)]) == 0
    only = capsys.readouterr().out
    assert "shd  [not found]" in only and "nmnist" not in only
    assert main(["datasets", "mnist"]) == 2
    assert "unknown dataset.name 'mnist'" in capsys.readouterr().err


def test_datasets_command_reads_bsnn_data_dir(tmp_path: Path, capsys: pytest.CaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    write_nmnist(tmp_path)
    monkeypatch.setenv("BSNN_DATA_DIR", str(tmp_path))
    assert main(["datasets", "nmnist"]) == 0
    assert f"nmnist  [found in {tmp_path}]" in capsys.readouterr().out


@pytest.mark.skipif(not (SHARED_NMNIST / "NMNIST").is_dir(),
                    reason=f"the real N-MNIST subset is not at {SHARED_NMNIST} "
                           f"(../shared/data is not part of a clone)")
def test_datasets_command_finds_the_shared_nmnist(capsys: pytest.CaptureFixture) -> None:
    assert main(["datasets", "nmnist", "--root", str(SHARED_NMNIST)]) == 0
    assert "[found in" in capsys.readouterr().out
