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


def test_a_scale_run_of_another_size_keeps_the_millions_table(tmp_path):
    """`bench scale --subscribers 20000` once replaced the million-reader table in BENCHMARKS.md
    (one pair of markers for every size); each size other than the million now has its own."""
    from bench.report import write_section
    from bench.scale import MILLION, markers

    path = tmp_path / "BENCHMARKS.md"
    for size, text in ((MILLION, "the million"), (20_000, "twenty thousand"), (20_000, "again"),
                       (MILLION, "the million, again")):
        start, end = markers(size)
        write_section(start, end, f"{start}\n{text}\n{end}", path)
    written = path.read_text()
    assert "the million, again" in written and "\nagain\n" in written  # both sections kept
    assert "twenty thousand" not in written and written.count("the million") == 1


def test_send_pair_takes_the_median_of_the_rounds_ratios():
    """`bench send_pair`'s figure is the median of per-round ratios (this checkout / the base), not
    the ratio of the medians: each round's two processes saw the same machine, other rounds did not."""
    from bench.send_pair import summary

    result = summary([(90.0, 100.0), (120.0, 100.0), (50.0, 100.0), (80.0, 40.0), (60.0, 100.0)])
    assert result["ratio"] == 0.9  # ratios 0.9, 1.2, 0.5, 2.0, 0.6
    assert (result["ours_us"], result["base_us"]) == (80.0, 100.0)
    with pytest.raises(ValueError):
        summary([])
