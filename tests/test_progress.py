"""Progress reports: plain lines without control characters off a terminal, bars on one."""

from __future__ import annotations

import io

from wangge.progress import ProgressReporter


def test_plain_lines_print_stages_and_each_tenth_of_a_count() -> None:
    stream = io.StringIO()
    with ProgressReporter(stream=stream) as reporter:  # a StringIO is no terminal
        reporter.stage("loading data.csv")
        for done in range(1, 101):
            reporter.count("scoring", done, 100)
        reporter.counter("sent")(3, 3)
        reporter.count("nothing", 0, 0)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "loading data.csv"
    scoring = [line for line in lines if line.startswith("scoring")]
    assert scoring == [f"scoring: {n}/100 ({n}%)" for n in range(10, 101, 10)]
    assert lines[-2:] == ["sent: 3/3 (100%)", "nothing: 0/0"]
    assert all(ch.isprintable() for ch in stream.getvalue().replace("\n", ""))


def test_a_count_in_uneven_steps_prints_each_tenth_once() -> None:
    stream = io.StringIO()
    with ProgressReporter(stream=stream, live=False) as reporter:
        for done in (2048, 4096, 6144, 8192, 10000):
            reporter.count("scoring", done, 10000)
    assert stream.getvalue().splitlines() == [
        "scoring: 2048/10000 (20%)",
        "scoring: 4096/10000 (41%)",
        "scoring: 6144/10000 (61%)",
        "scoring: 8192/10000 (82%)",
        "scoring: 10000/10000 (100%)",
    ]


def test_live_bars_draw_the_counts_and_keep_finished_stages() -> None:
    stream = io.StringIO()
    with ProgressReporter(stream=stream, live=True) as reporter:
        reporter.stage("segmenting")
        reporter.stage("fitting")
        reporter.count("deduplicating", 5, 10)
    output = stream.getvalue()
    assert "\x1b[" in output  # drawn with cursor control, as on a terminal
    assert "segmenting" in output and "fitting" in output
    assert "deduplicating" in output and "5/10" in output
