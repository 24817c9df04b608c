"""The alert monitor's decisions, without Docker, SMTP or a database."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import logging
import math
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest

MONITOR_PATH = Path(__file__).resolve().parents[2] / "alerts" / "monitor.py"


def load_monitor() -> ModuleType:
    """alerts/monitor.py is a script, not a package module: load it from its path."""
    name = "riemann_alerts_monitor"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, MONITOR_PATH)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


monitor = load_monitor()

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
HEADER = "n,divisor_sum,witness_value,log_n,strategy,level,exponents,block_id\n"
PROJECT = monitor.ContainerSelection(
    compose_project="riemann", name_prefix="", include_clean_exits=False
)


def record(n: str, witness_value: str, divisor_sum: str = "1") -> object:
    return monitor.WitnessRecord(
        n=n,
        divisor_sum=divisor_sum,
        witness_value=Decimal(witness_value),
        strategy="superabundant",
        level="3",
        exponents="2 1",
        block_id="7",
    )


def container_exit(
    name: str = "riemann-worker-1",
    exit_code: int = 3,
    second: int = 0,
    container_id: str = "c1",
) -> object:
    finished_at = f"2026-06-01T11:59:{second:02d}.5Z"
    return monitor.ContainerExit(
        container_id=container_id,
        name=name,
        labels={"com.docker.compose.project": "riemann"},
        exit_code=exit_code,
        finished_at=finished_at,
        finished_ns=monitor.engine_time_ns(finished_at),
        oom_killed=False,
        tty=False,
        keys=(f"{container_id}@{finished_at}",),
    )


# --- Counterexamples ------------------------------------------------------------------


def test_witness_value_at_e_gamma_above_5040_is_a_counterexample():
    assert monitor.is_counterexample(
        record("5041", "1.7810724179901979852365041031071795491696")
    )


def test_n_of_5040_is_not_a_counterexample_even_above_e_gamma():
    # W(5040) = 1.7909..., the last n for which Robin's inequality fails.
    assert not monitor.is_counterexample(record("5040", "1.7909733665"))


def test_value_equal_to_e_gamma_as_a_float_but_below_it_is_not_a_counterexample():
    just_below = "1.78107241799019798"
    assert float(just_below) == float(monitor.E_GAMMA)
    assert not monitor.is_counterexample(record("55440", just_below))


def test_counterexamples_are_reported_smallest_n_first_and_once():
    records = [
        record("720720", "1.79"),
        record("55440", "1.70"),
        record("10080", "1.80"),
        record("720720", "1.79"),
    ]
    state = monitor.MonitorState(reported_counterexamples=frozenset({"10080"}))

    found = monitor.counterexamples_to_report(records, state)

    assert [finding.n for finding in found] == ["720720"]
    assert [
        finding.n
        for finding in monitor.counterexamples_to_report(
            records, monitor.MonitorState()
        )
    ] == ["10080", "720720"]


def test_parse_export_keeps_n_and_divisor_sum_as_exact_text():
    huge_n = "9" * 5000  # beyond Python's default limit for int() of text
    records = monitor.parse_export(
        HEADER + f"{huge_n},{huge_n}1,1.8000000000000000000001,11.5,superabundant,9,"
        "3 1,42\n"
    )

    assert records[0].n == huge_n
    assert records[0].witness_value == Decimal("1.8000000000000000000001")


@pytest.mark.parametrize(
    "exported",
    [
        "n,witness_value\n5041,1.9\n",
        HEADER + "5041.5,1,1.9,1,exhaustive,,,1\n",
        HEADER + "5041,1,NaN,1,exhaustive,,,1\n",
        HEADER + "5041,1,1.9,1,exhaustive\n",
    ],
)
def test_parse_export_refuses_malformed_output(exported):
    with pytest.raises(ValueError, match=r"header|line 2"):
        monitor.parse_export(exported)


def test_empty_export_has_no_records():
    assert monitor.parse_export("") == []
    assert monitor.parse_export(HEADER) == []


def test_recomputed_witness_value_of_5040_matches_robin():
    # sigma(5040) = 19344; checked against double precision to 12 digits.
    recomputed = monitor.recomputed_witness_value("5040", "19344")

    assert float(recomputed) == pytest.approx(
        19344 / (5040 * math.log(math.log(5040))), rel=1e-12
    )


def test_counterexample_email_puts_the_finding_in_subject_and_first_line():
    alert = monitor.counterexample_alert(
        [record("10080", "1.80", divisor_sum="39312"), record("720720", "1.79")],
        "db-host",
    )

    assert "COUNTEREXAMPLE" in alert.subject
    assert "n = 10080" in alert.subject
    first_line = alert.body.splitlines()[0]
    assert first_line.startswith("COUNTEREXAMPLE TO ROBIN'S INEQUALITY: n = 10080")
    assert "and 1 more" in first_line
    assert alert.keys == ("10080", "720720")


def test_counterexample_email_shortens_a_huge_n_in_the_subject_only():
    huge_n = "1" + "0" * 999
    alert = monitor.counterexample_alert([record(huge_n, "1.9")], "db-host")

    assert "(1000 digits)" in alert.subject
    assert huge_n in alert.body


# --- Stalls ---------------------------------------------------------------------------


def status(last_finished_at: dt.datetime | None) -> object:
    return monitor.SearchStatus(
        last_finished_at=last_finished_at,
        strategies=(
            monitor.StrategyProgress(
                "superabundant", {"FINISHED": 12, "IN_PROGRESS": 2}, 3400
            ),
        ),
    )


def test_no_stall_before_the_stall_time():
    alert = monitor.stall_alert(
        status(NOW - HOUR + dt.timedelta(seconds=1)),
        NOW,
        HOUR,
        NOW - 10 * HOUR,
        monitor.MonitorState(),
        "db-host",
    )

    assert alert is None


def test_stall_is_reported_once_per_last_finish():
    last_finish = NOW - 2 * HOUR
    alert = monitor.stall_alert(
        status(last_finish), NOW, HOUR, NOW, monitor.MonitorState(), "db-host"
    )
    assert alert is not None
    assert "no block finished for 2 h 0 min" in alert.subject
    assert "FINISHED 12" in alert.body

    reported = monitor.MonitorState().settled(alert, NOW)
    later = NOW + 5 * HOUR
    assert (
        monitor.stall_alert(status(last_finish), later, HOUR, NOW, reported, "db-host")
        is None
    )
    next_stall = monitor.stall_alert(
        status(NOW + HOUR), later, HOUR, NOW, reported, "db-host"
    )
    assert next_stall is not None


def test_stall_before_any_finish_counts_from_when_watching_began():
    assert (
        monitor.stall_alert(
            status(None), NOW, HOUR, NOW - HOUR / 2, monitor.MonitorState(), "h"
        )
        is None
    )
    alert = monitor.stall_alert(
        status(None), NOW, HOUR, NOW - 2 * HOUR, monitor.MonitorState(), "h"
    )
    assert alert is not None
    assert alert.keys == ("never",)


def test_status_unreadable_is_reported_after_the_stall_time():
    assert (
        monitor.status_unreadable_alert(NOW - HOUR / 2, NOW, HOUR, "refused", "h")
        is None
    )
    alert = monitor.status_unreadable_alert(NOW - 2 * HOUR, NOW, HOUR, "refused", "h")
    assert alert is not None
    assert "refused" in alert.body


def test_engine_unreadable_is_reported_after_its_own_time_once_settled():
    ten_minutes = dt.timedelta(minutes=10)
    early = monitor.engine_unreadable_alert(
        NOW - ten_minutes / 2, NOW, ten_minutes, "unix:///x.sock", "denied", "h"
    )
    alert = monitor.engine_unreadable_alert(
        NOW - ten_minutes, NOW, ten_minutes, "unix:///x.sock", "denied", "h"
    )

    assert early is None
    assert alert is not None
    assert "unix:///x.sock" in alert.body
    assert "denied" in alert.body
    assert monitor.MonitorState().settled(alert, NOW).engine_unreadable_reported


def test_parse_status_reads_utc_times_with_or_without_zone():
    with_zone = monitor.parse_status(
        json.dumps({"last_finished_at": "2026-06-01T10:00:00Z", "strategies": []})
    )
    naive = monitor.parse_status(
        json.dumps({"last_finished_at": "2026-06-01T10:00:00", "strategies": []})
    )

    assert with_zone.last_finished_at == naive.last_finished_at
    assert with_zone.last_finished_at.tzinfo is not None


@pytest.mark.parametrize(
    "printed",
    [
        "not json",
        "{}",
        '{"last_finished_at": 5}',
        '{"last_finished_at": null, "strategies": [{"blocks": [1]}]}',
    ],
)
def test_parse_status_refuses_what_the_contract_does_not_allow(printed):
    with pytest.raises(ValueError, match=r"JSON|last_finished_at|block counts"):
        monitor.parse_status(printed)


# --- Exits ----------------------------------------------------------------------------


def test_containers_are_selected_by_project_or_name_prefix():
    by_project = PROJECT
    by_prefix = monitor.ContainerSelection("", "riemann-", False)
    everything = monitor.ContainerSelection("", "", False)
    labels = {"com.docker.compose.project": "riemann"}

    assert monitor.belongs_to_search("anything", labels, by_project)
    assert not monitor.belongs_to_search("riemann-worker-1", {}, by_project)
    assert monitor.belongs_to_search("riemann-worker-1", {}, by_prefix)
    assert not monitor.belongs_to_search("postgres", {}, by_prefix)
    assert monitor.belongs_to_search("postgres", {}, everything)


def test_new_failure_is_emailed_and_a_clean_exit_is_not():
    failure = container_exit(exit_code=3)
    clean = container_exit(name="riemann-migrate-1", exit_code=0, container_id="c2")

    decision = monitor.decide_exits(
        [failure, clean], PROJECT, monitor.MonitorState(), NOW, HOUR
    )

    assert decision.to_email == [(failure,)]
    assert decision.to_log == []


def test_clean_exit_is_emailed_when_asked_for():
    clean = container_exit(exit_code=0)
    selection = monitor.ContainerSelection("riemann", "", include_clean_exits=True)

    decision = monitor.decide_exits(
        [clean], selection, monitor.MonitorState(), NOW, HOUR
    )

    assert decision.to_email == [(clean,)]


def test_failure_whose_key_was_reported_is_not_emailed_again():
    failure = container_exit()
    alert = monitor.exit_alert([failure], "boom", "host-a", 0)
    state = monitor.MonitorState().settled(alert, NOW)

    decision = monitor.decide_exits([failure], PROJECT, state, NOW + 2 * HOUR, HOUR)

    assert decision.to_email == []
    assert decision.to_log == []


def test_exits_of_one_container_in_one_round_make_one_email_latest_last():
    late = container_exit(second=30)
    early = container_exit(second=10)

    decision = monitor.decide_exits(
        [late, early], PROJECT, monitor.MonitorState(), NOW, HOUR
    )

    assert decision.to_email == [(early, late)]


def test_exits_within_the_quiet_period_are_only_logged_then_counted():
    first = container_exit(second=1)
    state = monitor.MonitorState().settled(
        monitor.exit_alert([first], "", "host-a", 0), NOW
    )
    again = container_exit(second=40)

    quiet = monitor.decide_exits([again], PROJECT, state, NOW + HOUR / 2, HOUR)
    assert quiet.to_email == []
    assert quiet.to_log == [again]

    state = state.with_exits_logged(quiet.to_log)
    third = container_exit(second=50)
    after = monitor.decide_exits([third], PROJECT, state, NOW + 2 * HOUR, HOUR)
    assert after.to_email == [(third,)]
    alert = monitor.exit_alert(
        after.to_email[0], "", "host-a", state.exits_logged_since_email[third.name]
    )
    assert "exited 1 more times since the last email" in alert.body
    assert state.settled(alert, NOW).exits_logged_since_email == {}


def test_exit_email_names_host_container_code_and_log_lines():
    alert = monitor.exit_alert(
        [container_exit(exit_code=3)], "step 1\nboom\n", "host-a", 0
    )

    assert alert.subject == (
        "[riemann] container riemann-worker-1 exited with code 3 on host-a"
    )
    assert alert.body.startswith(
        "Container riemann-worker-1 on host host-a exited with code 3."
    )
    assert alert.body.rstrip().endswith("step 1\nboom")


def test_exit_code_of_a_kill_is_explained():
    assert "lack of memory" in monitor.describe_exit_code(137, oom_killed=True)
    assert "SIGKILL" in monitor.describe_exit_code(137, oom_killed=False)
    assert monitor.describe_exit_code(3, oom_killed=False) == "3"


def test_latest_die_event_is_also_keyed_by_the_engine_finish_time():
    details = monitor.ContainerDetails(
        exit_code=0, finished_at="2026-06-01T11:00:02.000000123Z", oom_killed=True,
        tty=False,
    )  # fmt: skip
    deaths = [
        monitor.ContainerDeath("c1", "riemann-worker-1", {}, 4, 1_000_000_000),
        monitor.ContainerDeath("c1", "riemann-worker-1", {}, 137, 2_000_000_000),
    ]

    earlier, latest = monitor.exits_from_deaths(deaths, {"c1": details})

    assert earlier.keys == ("c1@1970-01-01T00:00:01.000000000Z",)
    assert latest.keys == (
        "c1@1970-01-01T00:00:02.000000000Z",
        "c1@2026-06-01T11:00:02.000000123Z",
    )
    assert (earlier.exit_code, latest.exit_code) == (4, 137)
    assert latest.oom_killed
    assert latest.log_until == "2.000000000"


def test_die_event_of_a_removed_container_has_only_its_event_key():
    deaths = [monitor.ContainerDeath("c9", "riemann-worker-9", {}, 1, 5)]

    (gone,) = monitor.exits_from_deaths(deaths, {"c9": None})

    assert gone.keys == ("c9@1970-01-01T00:00:00.000000005Z",)


def test_removed_containers_are_forgotten():
    state = monitor.MonitorState(reported_exits=frozenset({"c1@t1", "c2@t2"}))

    assert state.forget_removed_containers(frozenset({"c2"})).reported_exits == {
        "c2@t2"
    }


def test_state_survives_its_file_format():
    state = monitor.MonitorState(
        reported_exits=frozenset({"c1@t"}),
        exit_emailed_at={"riemann-worker-1": NOW},
        exits_logged_since_email={"riemann-worker-1": 2},
        events_until_ns=123,
        reported_counterexamples=frozenset({"10080"}),
        reported_stall="never",
        watching_since=NOW,
        status_unreadable_since=NOW - HOUR,
        status_unreadable_reported=True,
        engine_unreadable_since=NOW - 2 * HOUR,
        engine_unreadable_reported=True,
        monitor_failure_emailed="KeyError: 'Id'",
        monitor_failure_emailed_at=NOW - 3 * HOUR,
    )

    assert monitor.MonitorState.from_json(state.to_json()) == state


def test_monitor_failure_emailed_is_remembered_by_type_and_message():
    alert = monitor.monitor_failed_alert("host-1", KeyError("Id"))

    state = monitor.MonitorState().settled(alert, NOW)

    assert state.monitor_failure_emailed == "KeyError: 'Id'"
    assert state.monitor_failure_emailed_at == NOW


def test_same_monitor_failure_is_not_emailed_again_within_the_repeat_period():
    state = monitor.MonitorState().settled(
        monitor.monitor_failed_alert("host-1", KeyError("Id")), NOW
    )

    assert monitor.monitor_failure_emailed_recently(
        state, "KeyError: 'Id'", NOW + HOUR / 2, HOUR
    )


def test_same_monitor_failure_is_emailed_again_after_the_repeat_period():
    state = monitor.MonitorState().settled(
        monitor.monitor_failed_alert("host-1", KeyError("Id")), NOW
    )

    assert not monitor.monitor_failure_emailed_recently(
        state, "KeyError: 'Id'", NOW + HOUR, HOUR
    )


def test_different_monitor_failure_is_emailed_within_the_repeat_period():
    state = monitor.MonitorState().settled(
        monitor.monitor_failed_alert("host-1", KeyError("Id")), NOW
    )

    assert not monitor.monitor_failure_emailed_recently(
        state, "KeyError: 'Names'", NOW + HOUR / 2, HOUR
    )
    assert not monitor.monitor_failure_emailed_recently(
        state, "TypeError: 'Id'", NOW + HOUR / 2, HOUR
    )


def test_state_of_an_older_monitor_reads_as_nothing_unreadable():
    older = json.dumps({"reported_exits": [], "watching_since": NOW.isoformat()})

    state = monitor.MonitorState.from_json(older)

    assert state.status_unreadable_since is None
    assert state.engine_unreadable_since is None
    assert not state.engine_unreadable_reported
    assert state.monitor_failure_emailed is None


@pytest.mark.parametrize(
    ("stamp", "nanoseconds"),
    [
        ("1970-01-01T00:00:01Z", 1_000_000_000),
        ("1970-01-01T00:00:01.5Z", 1_500_000_000),
        ("1970-01-01T00:00:01.000000007Z", 1_000_000_007),
        ("1970-01-01T01:00:01+01:00", 1_000_000_000),
    ],
)
def test_engine_times_are_read_to_the_nanosecond(stamp, nanoseconds):
    assert monitor.engine_time_ns(stamp) == nanoseconds


def test_log_stream_frames_are_joined():
    frames = (
        b"\x01\x00\x00\x00\x00\x00\x00\x05hello" + b"\x02\x00\x00\x00\x00\x00\x00\x01!"
    )

    assert monitor.demultiplex_log_stream(frames) == b"hello!"


# --- Settings and logging -------------------------------------------------------------

MAIL_ENVIRONMENT = {
    "RIEMANN_SMTP_HOST": "smtp.example.org",
    "RIEMANN_SMTP_TO": "ops@example.org, oncall@example.org",
    "RIEMANN_SMTP_USER": "alerts@example.org",
    "RIEMANN_SMTP_PASSWORD": "s3cret",
}


def test_settings_come_from_the_environment_with_mail_defaults():
    settings = monitor.load_settings([], MAIL_ENVIRONMENT)

    assert settings.mail.security is monitor.SmtpSecurity.STARTTLS
    assert settings.mail.port == 587
    assert settings.mail.sender == "alerts@example.org"
    assert settings.mail.recipients == ("ops@example.org", "oncall@example.org")
    assert settings.checks == frozenset(monitor.Check)
    assert "s3cret" not in repr(settings)


def test_port_465_means_implicit_tls():
    settings = monitor.load_settings(
        [], {**MAIL_ENVIRONMENT, "RIEMANN_SMTP_PORT": "465"}
    )

    assert settings.mail.security is monitor.SmtpSecurity.TLS


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"RIEMANN_SMTP_HOST": ""}, "RIEMANN_SMTP_HOST"),
        ({"RIEMANN_SMTP_TO": " , "}, "RIEMANN_SMTP_TO"),
        ({"RIEMANN_SMTP_PASSWORD": ""}, "RIEMANN_SMTP_PASSWORD"),
        ({"RIEMANN_SMTP_SECURITY": "plain"}, "loopback"),
        ({"RIEMANN_SMTP_SECURITY": "ssl"}, "RIEMANN_SMTP_SECURITY"),
        ({"RIEMANN_ALERT_CHECKS": "exits,disk"}, "RIEMANN_ALERT_CHECKS"),
    ],
)
def test_wrong_settings_are_named(changes, reason):
    with pytest.raises(monitor.ConfigurationError, match=reason):
        monitor.load_settings([], {**MAIL_ENVIRONMENT, **changes})


def test_plain_smtp_is_accepted_on_loopback():
    settings = monitor.load_settings(
        ["--smtp-host", "127.0.0.1", "--smtp-security", "plain"], MAIL_ENVIRONMENT
    )

    assert settings.mail.port == 25


def test_env_file_is_read_and_the_environment_wins(tmp_path):
    env_file = tmp_path / "alerts.env"
    env_file.write_text(
        "RIEMANN_SMTP_HOST=from-file\nRIEMANN_ALERT_INTERVAL=5\nRIEMANN_DSN=\n"
    )

    environ = monitor.settings_environment(
        ["--env-file", str(env_file)], {"RIEMANN_SMTP_HOST": "from-environment"}
    )

    assert environ["RIEMANN_SMTP_HOST"] == "from-environment"
    assert environ["RIEMANN_ALERT_INTERVAL"] == "5"
    assert "RIEMANN_DSN" not in environ


def test_env_lines_without_python_dotenv():
    assert monitor.parse_env_lines(
        "# comment\nexport A=1\nB='two words'\nC=3 # note\n\nD\n"
    ) == {"A": "1", "B": "two words", "C": "3"}


def test_riemann_commands_do_not_get_the_mail_credentials():
    environ = monitor.command_environment({**MAIL_ENVIRONMENT, "RIEMANN_DSN": "x"})

    assert "RIEMANN_SMTP_PASSWORD" not in environ
    assert "RIEMANN_SMTP_USER" not in environ
    assert environ["RIEMANN_DSN"] == "x"


def test_log_line_carries_the_extra_fields():
    record = logging.LogRecord(
        "riemann.alerts", logging.WARNING, "", 0, "container exited", None, None
    )
    record.container = "riemann-worker-1"
    record.error = "two words"

    text = monitor.FieldsFormatter(as_json=False).format(record)
    event = json.loads(monitor.FieldsFormatter(as_json=True).format(record))

    assert text.endswith(
        'container exited container=riemann-worker-1 error="two words"'
    )
    assert event["message"] == "container exited"
    assert event["container"] == "riemann-worker-1"
