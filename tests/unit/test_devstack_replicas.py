"""`REPLICAS=2 make run`: where each replica listens, what it is called, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.devstack.run import SERVICES, Stack, StackConfig, StackError, main


def test_replica_k_listens_ten_ports_above_the_first_and_logs_under_its_own_name(tmp_path: Path) -> None:
    stack = Stack(StackConfig(data_dir=tmp_path, port_base=8000, replicas=2), environ={})
    where = {(s.label, s.port, s.log_path.name) for s in stack.replicas}
    assert where == {
        *((name, 8001 + n, f"{name}.log") for n, name in enumerate(SERVICES)),
        *((f"{name}-2", 8011 + n, f"{name}-2.log") for n, name in enumerate(SERVICES)),
    }
    # The others are told the first replica's address.
    assert stack.services["survey"].url == "http://127.0.0.1:8002"


def test_one_replica_is_the_stack_as_it_always_was(tmp_path: Path) -> None:
    stack = Stack(StackConfig(data_dir=tmp_path), environ={})
    assert [(s.label, s.port) for s in stack.replicas] == [(n, 8001 + i) for i, n in enumerate(SERVICES)]


@pytest.mark.parametrize("replicas", [0, 10])
def test_a_replica_count_whose_ports_would_collide_is_refused(tmp_path: Path, replicas: int) -> None:
    with pytest.raises(StackError, match="replicas must be 1 to 9"):
        Stack(StackConfig(data_dir=tmp_path, replicas=replicas), environ={})


def test_the_replica_count_comes_from_REPLICAS_as_make_run_passes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[StackConfig] = []

    async def run(config: StackConfig) -> int:
        seen.append(config)
        return 0

    monkeypatch.setenv("REPLICAS", "2")
    monkeypatch.setattr("libs.devstack.run.run", run)
    with pytest.raises(SystemExit):
        main(["--data-dir", str(tmp_path)])
    assert seen[0].replicas == 2


def test_a_replica_count_out_of_range_is_refused_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REPLICAS", "12")
    with pytest.raises(SystemExit) as exited:
        main(["--data-dir", str(tmp_path)])
    assert exited.value.code == 2
    assert "must be 1 to 9" in capsys.readouterr().err
