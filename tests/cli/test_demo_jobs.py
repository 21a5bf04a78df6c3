"""``mdn demo --jobs N --threads K``: the libraries generated in worker processes are those made one by one."""

from __future__ import annotations

import json

import pytest

from mdn_snntorch.cli import build_parser, main
from mdn_snntorch.cli.demo import DemoSettings, generate_libraries, prepare_data

TINY = DemoSettings(
    epochs=1,
    hidden=16,
    batch_size=64,
    lr=1e-2,
    lr_theta=1e-3,
    seeds=1,
    discover_seeds=1,
    discover_epochs=1,
    quick_validation=True,
)


def test_jobs_and_threads_options():
    args = build_parser("demo").parse_args(["demo", "--jobs", "3", "--threads", "2"])
    assert (args.jobs, args.threads) == (3, 2)
    args = build_parser("demo").parse_args(["demo"])
    assert (args.jobs, args.threads) == (None, 1)  # None: the usable cores / threads


@pytest.mark.parametrize("flag", ["--jobs", "--threads"])
def test_bad_counts_are_bad_input(flag, capsys):
    assert main(["demo", flag, "0"]) == 2
    assert f"{flag[2:]}=0 is out of range" in capsys.readouterr().err


@pytest.mark.slow
def test_libraries_in_workers_equal_one_by_one(tmp_path):
    data = prepare_data(tmp_path / "data", None, None)
    made = {}
    for jobs in (1, 2):
        work = tmp_path / f"jobs{jobs}"
        work.mkdir()
        libraries = generate_libraries(work, data, TINY, jobs=jobs, threads=1)
        made[jobs] = {role: json.loads(path.read_text())["neurons"] for role, path in libraries.items()}
    assert made[1] == made[2] and set(made[1]) == {"spatial", "temporal"}
