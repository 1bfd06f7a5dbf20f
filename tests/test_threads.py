"""Thread choice (framecast.threads): the policy for given cores and load, the order of the
explicit count, the environment and the policy, and the command line's refusals."""

import pytest
import torch
from typer.testing import CliRunner

from framecast.cli import app
from framecast.serve.app import default_threads
from framecast.threads import ENV, busy_cores, check_threads, choose_threads, threads_for

runner = CliRunner()


@pytest.mark.parametrize(
    "cores, busy, expected",
    [
        (2, 0.0, 2),  # an idle machine: every core
        (2, 0.3, 2),  # light background load leaves both
        (2, 0.6, 1),  # a neighbour keeping a core more than half busy takes it
        (2, 1.0, 1),  # one busy process: the other core
        (2, 2.0, 1),  # a full machine: never fewer than one
        (2, 5.0, 1),
        (16, 3.2, 13),
        (1, 0.0, 1),
        (4, -0.5, 4),  # a clock hiccup is no load
    ],
)
def test_policy(cores, busy, expected):
    assert threads_for(cores, busy) == expected


def test_explicit_beats_environment_beats_policy():
    env = {ENV: "3"}
    assert choose_threads(5, environ=env, cpus={0, 1}, busy=0.0) == (5, "--threads")
    assert choose_threads(None, environ=env, cpus={0, 1}, busy=0.0) == (3, ENV)
    assert choose_threads(None, environ={ENV: " "}, cpus={0, 1}, busy=1.0) == (1, "policy")
    assert choose_threads(None, environ={}, cpus={0, 1, 2, 3}, busy=1.0) == (3, "policy")
    assert choose_threads(None, environ={}, cpus={3}, busy=0.0) == (1, "policy")  # affinity, not the CPU count


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5", ""])
def test_bad_counts_are_refused_by_name(bad):
    with pytest.raises(ValueError, match="--threads"):
        check_threads(bad)
    with pytest.raises(ValueError, match=ENV):
        choose_threads(None, environ={ENV: bad or "x"})


def test_busy_cores_reads_the_machine():
    from framecast.threads import usable_cpus

    cpus = usable_cpus()
    assert 0.0 <= busy_cores(cpus, interval_s=0.02) <= len(cpus) + 1e-6


def test_a_passing_spike_is_not_a_busy_neighbour(monkeypatch):
    """Two windows: a neighbour busy in both counts, a spike in one does not."""
    import framecast.threads as th

    def machine(busy_per_window):  # cumulative (busy, total) jiffies of 2 CPUs, 10 a window
        readings = iter([(0.0, 0.0)] + [(sum(busy_per_window[: i + 1]), 20.0 * (i + 1)) for i in range(len(busy_per_window))])
        return lambda cpus: next(readings)

    monkeypatch.setattr(th.time, "sleep", lambda s: None)
    monkeypatch.setattr(th, "_cpu_times", machine([20.0, 0.0]))  # both cores busy for the first window only
    assert th.busy_cores({0, 1}) == 0.0
    monkeypatch.setattr(th, "_cpu_times", machine([10.0, 12.0]))  # one core kept busy throughout
    assert th.busy_cores({0, 1}) == pytest.approx(1.0)
    assert choose_threads(None, environ={}, cpus={3}) == (1, "policy")  # one CPU: nothing to sample


def test_server_shares_the_policy_among_workers(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setattr("framecast.serve.app.choose_threads", lambda: (4, "policy"))
    assert default_threads(2) == 2 and default_threads(8) == 1
    monkeypatch.setattr("framecast.serve.app.choose_threads", lambda: (3, ENV))
    assert default_threads(2) == 3  # a count the user set is per worker, as --threads


@pytest.mark.parametrize("command, output", [(["generate", "a big red circle moves right"], "c.npy"), (["eval"], "e.json")])
@pytest.mark.parametrize("bad", ["0", "-1"])
def test_cli_refuses_bad_threads(tmp_path, command, output, bad):
    r = runner.invoke(app, [*command, "--threads", bad, "-o", str(tmp_path / output)])
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "--threads" in lines[0], r.output
    assert not list(tmp_path.iterdir())


def test_cli_refuses_bad_environment(tmp_path):
    r = runner.invoke(app, ["generate", "a big red circle moves right", "-o", str(tmp_path / "c.npy")], env={ENV: "many"})
    assert r.exit_code == 2 and ENV in r.output, r.output


def test_explicit_threads_reach_torch(tmp_path):
    before = torch.get_num_threads()
    try:
        r = runner.invoke(app, ["generate", "a big red circle moves right", "--threads", "1", "--steps", "1", "--frames", "2",
                                "-m", "shapes-diffusion", "-o", str(tmp_path / "c.npy")])
        assert r.exit_code == 0, r.output
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
