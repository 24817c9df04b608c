"""Terminal output of the command line: log formats, errors, progress, validation."""

import argparse
import io
import json
import logging
from decimal import Decimal

import pytest
from rich.console import Console

from riemann.cli import main as cli_main
from riemann.cli import output
from riemann.cli.progress import ProgressDisplay, RateMeter, Snapshot, short_number
from riemann.store import Search, StrategyProgress
from riemann.strategies import strategy_named


def record(message="block finished", **fields):
    log_record = logging.LogRecord(
        "riemann.jobs.worker", logging.INFO, "", 0, message, None, None
    )
    log_record.__dict__.update(fields)
    return log_record


def test_text_log_lines_carry_the_structured_fields():
    line = output.TextFormatter().format(record(block_id=7, strategy="superabundant"))
    assert line.endswith(
        "riemann.jobs.worker: block finished block_id=7 strategy=superabundant"
    )
    assert line[:4].isdigit()


def test_json_log_lines_are_one_object_with_the_fields():
    event = json.loads(output.JsonFormatter().format(record(block_id=7, rate=1.5)))
    assert event["message"] == "block finished"
    assert event["block_id"] == 7
    assert event["rate"] == 1.5
    assert event["level"] == "INFO"
    assert event["time"].endswith("Z")


def test_logging_goes_to_standard_error_in_the_chosen_format(capsys):
    output.configure_logging("INFO", "json")
    logging.getLogger("riemann.test").info("hello", extra={"n": 5040})
    assert json.loads(capsys.readouterr().err)["n"] == 5040
    output.configure_logging("WARNING", "text")
    logging.getLogger("riemann.test").info("hidden")
    assert capsys.readouterr().err == ""


def test_a_crash_report_names_the_version_and_keeps_the_traceback(capsys):
    try:
        raise RuntimeError("a bug")
    except RuntimeError as bug:
        output.crash_report(bug)
    err = capsys.readouterr().err
    assert "internal error" in err
    assert "riemann 0.1.0" in err
    assert "RuntimeError: a bug" in err


@pytest.mark.parametrize(
    ("convert", "text", "message"),
    [
        (cli_main.positive_int, "0", "at least 1"),
        (cli_main.positive_int, "x", "not a whole number"),
        (cli_main.non_negative_int, "-1", "must not be negative"),
        (cli_main.non_negative_int, "1.5", "not a whole number"),
        (cli_main.positive_seconds, "0", "more than 0"),
        (cli_main.positive_seconds, "soon", "not a number of seconds"),
        (cli_main.non_negative_seconds, "-2", "must not be negative"),
        (cli_main.non_negative_seconds, "never", "not a number of seconds"),
        (cli_main.decimal_number, "1.7.6", "not a decimal number"),
        (cli_main.decimal_number, "nan", "not a finite number"),
        (cli_main.decimal_number, "\u0661.\u0667", "not a decimal number"),
        (cli_main.decimal_number, "1e400000", "out of range"),
        (cli_main.decimal_number, "1e-1001", "out of range"),
    ],
)
def test_option_values_are_validated_with_a_clear_message(convert, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        convert(text)


def test_validated_option_values_come_back_as_numbers():
    assert cli_main.positive_int("3") == 3
    assert cli_main.non_negative_seconds("0") == 0.0
    assert cli_main.decimal_number(" 1.767 ") == "1.767"
    assert cli_main.decimal_number("0") == "0"
    assert cli_main.decimal_number("1e1000") == "1e1000"


def test_the_rate_meter_measures_over_its_window():
    meter = RateMeter(window_seconds=10)
    assert meter.observe(0.0, 0) == 0.0
    assert meter.observe(5.0, 500) == 100.0
    assert meter.observe(12.0, 1200) == 100.0  # the first sample has left the window


def snapshot(segments, best_n=None):
    search = Search("superabundant", "1.767", 2, None, 10**6)
    progress = StrategyProgress(
        search=search,
        blocks={"FINISHED": 3},
        candidates_by_state={},
        first_unfinished=5000,
        issued_through=9000,
        candidates_checked=4998,
        last_finished_at=None,
        recent_candidates=0,
        recent_seconds=300.0,
        best_n=best_n,
        best_witness_value=None if best_n is None else Decimal("1.7437"),
        best_block_id=1,
    )
    return Snapshot(progress, "level 19", segments, 1234.0)


def test_progress_bars_show_each_active_level_and_the_headline():
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=100)
    strategy = strategy_named("superabundant")
    with ProgressDisplay(strategy, draw_bars=True, console=console) as display:
        display.show(
            snapshot([("level 20", 300, 627), ("level 21", 400, 792)], best_n=55440)
        )
    drawn = stream.getvalue()
    assert "level 20" in drawn
    assert "400/792" in drawn
    assert "complete through level 19" in drawn
    assert "best above 5040: W = 1.7437 at n = 55440" in drawn


def test_long_numbers_are_shortened_for_the_headline():
    assert short_number(55440) == "55440"
    assert short_number(5 * 10**173 + 3) == "5.000000e173 (174 digits)"


def test_without_a_terminal_progress_becomes_log_lines(caplog):
    caplog.set_level(logging.INFO)
    with ProgressDisplay(strategy_named("superabundant"), draw_bars=False) as display:
        display.show(snapshot([("level 20", 300, 627)]))
        display.show(snapshot([("level 20", 310, 627)]))  # within 10 s: not repeated
    lines = [r for r in caplog.records if r.getMessage() == "progress"]
    assert len(lines) == 1
    assert lines[0].completed_through == "level 19"
