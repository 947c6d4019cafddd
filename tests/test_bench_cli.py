"""`python -m bench` hands each benchmark its arguments: every registered module must take them
(`make bench` once crashed because one main() took none)."""

import pytest

from bench.__main__ import BENCHMARKS, main


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_benchmark_takes_its_arguments(name, capsys):
    with pytest.raises(SystemExit) as stopped:
        main([name, "--help"])
    assert stopped.value.code == 0
    assert f"python -m bench {name}" in capsys.readouterr().out  # its own usage line, not the dispatcher's
