"""The ``mdn`` command line."""

import subprocess
import sys

from mdn_snntorch.cli import main


def test_python_m_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "mdn_snntorch", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("presets", "prep", "train", "validate", "demo"):
        assert command in out


def test_presets_subcommand_prints_table_2(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "2-SDS" in out and "-0.009" in out and "decay=0.8" in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
