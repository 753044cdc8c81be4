"""completeverify bench / plot: suite reading, one process per instance (fork and spawn), resume,
timeouts, Dask, plots."""

from __future__ import annotations

import csv
import json
import os
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from paths import REPO, SHARED_BENCHMARKS

from completeverify.bench import forkserver
from completeverify.bench.results import COLUMNS, ResultRow, ResultsWriter, read_results
from completeverify.bench.run import BenchOptions, run_bench
from completeverify.bench.runner import Launcher, make_job, run_job, run_pool
from completeverify.bench.suite import Instance, read_expected, read_instances, select
from completeverify.cli import main
from completeverify.errors import InputError

ROOT = REPO
TINY = ROOT / "benchmarks" / "suites" / "tiny.csv"
TINY_TRUTH = ROOT / "benchmarks" / "suites" / "tiny_ground_truth.csv"
SHARED = SHARED_BENCHMARKS

# A stand-in verifier: behaviour chosen by the network's file name, every call logged.
FAKE = textwrap.dedent("""
    import json, os, signal, subprocess, sys, time
    onnx, vnnlib = sys.argv[1], sys.argv[2]
    result_file = sys.argv[sys.argv.index("--result-file") + 1]
    log = os.environ["FAKE_LOG"]
    name = os.path.basename(onnx)
    with open(log, "a") as fh:  # pid, name, parent pid, whether torch was imported before we ran
        fh.write(f"{os.getpid()} {name} {os.getppid()} {int('torch' in sys.modules)}\\n")
    if "FAKE_ARGV" in os.environ:  # the command line, one JSON list per call
        with open(os.environ["FAKE_ARGV"], "a") as fh:
            fh.write(json.dumps(sys.argv[1:]) + "\\n")
    if name.startswith("slow"):
        time.sleep(float(os.environ.get("FAKE_SLOW", "1")))
    if name.startswith("killed"):
        os.kill(os.getpid(), signal.SIGKILL)
    if name.startswith("hang"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        with open(log, "a") as fh:
            fh.write(f"{child.pid} grandchild\\n")
        time.sleep(300)
    if name.startswith("crash"):
        sys.stderr.write("Traceback: boom\\n")
        sys.exit(1)
    if name.startswith("nojson"):
        print("hello")
        sys.exit(0)
    status = "sat" if name.startswith("sat") else "unsat"
    with open(result_file, "w") as fh:
        fh.write(status + "\\n" + ("((X_0 0.0) (Y_0 0.0))\\n" if status == "sat" else ""))
    print(json.dumps({"status": status, "seconds": 0.01}))
""")


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A fake verifier command and its call log."""
    script = tmp_path / "fake_verifier.py"
    script.write_text(FAKE)
    log = tmp_path / "calls.log"
    log.touch()
    monkeypatch.setenv("FAKE_LOG", str(log))
    return [sys.executable, str(script)], log


def _suite(folder: Path, names: list[str], timeout: float = 10) -> Path:
    """An instances.csv (CRLF, a blank line) over dummy files named as given."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for n in names:
        (folder / n).write_text("x")
        lines.append(f"{n},prop.vnnlib,{timeout:g}")
    (folder / "prop.vnnlib").write_text("x")
    path = folder / "instances.csv"
    path.write_bytes(("\r\n".join(lines[:1] + [""] + lines[1:]) + "\r\n").encode())
    return path


def _alive(pid: int) -> bool:
    """True if pid is a live (non-zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains text."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and text in (entry / "cmdline").read_bytes().decode(errors="replace")
                and _alive(int(entry.name))
            ):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _processes_with_env(entry: str) -> list[int]:
    """Live processes whose environment holds entry (NAME=value)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if (
                proc.name.isdigit()
                and entry.encode() in (proc / "environ").read_bytes().split(b"\0")
                and _alive(int(proc.name))
            ):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def _pids(log: Path) -> list[int]:
    """Every pid the fake verifier logged."""
    return [int(line.split()[0]) for line in log.read_text().splitlines()]


def _calls(log: Path) -> list[tuple[int, str, int, bool]]:
    """(pid, network name, parent pid, torch already imported) of every fake verifier call."""
    return [
        (int(f[0]), f[1], int(f[2]), f[3] == "1")
        for f in (line.split() for line in log.read_text().splitlines())
        if len(f) == 4
    ]


ISOLATIONS = ["fork", "spawn"]


# ---------------------------------------------------------------- reading suites


def test_read_instances_crlf_blank_gz_and_header(tmp_path):
    p = tmp_path / "instances.csv"
    p.write_bytes(
        b"onnx,vnnlib,timeout\r\na.onnx.gz,p.vnnlib,116\r\n\r\n b.onnx , q.vnnlib.gz , 7.5 \r\n"
    )
    insts = read_instances(p)
    assert [(i.onnx, i.vnnlib, i.timeout) for i in insts] == [
        ("a.onnx.gz", "p.vnnlib", 116.0),
        ("b.onnx", "q.vnnlib.gz", 7.5),
    ]
    assert insts[0].onnx_path == (tmp_path / "a.onnx.gz").resolve()
    assert [i.onnx for i in select(insts, r"q\.vnnlib")] == ["b.onnx"]


@pytest.mark.parametrize(
    "text", ["a.onnx,p.vnnlib\n", "a.onnx,p.vnnlib,abc\n", "a.onnx,p.vnnlib,-1\n", "\n"]
)
def test_malformed_instances_are_input_errors(tmp_path, text):
    p = tmp_path / "instances.csv"
    p.write_text(text)
    with pytest.raises(InputError):
        read_instances(p)


def test_cli_missing_csv_is_one_error_line(tmp_path, capsys):
    assert main(["bench", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "nope.csv" in err[0]


def test_read_expected_matches_ignoring_gz(tmp_path):
    p = tmp_path / "gt.csv"
    p.write_text("onnx,vnnlib,timeout,consensus\r\nonnx/a.onnx,vnnlib/p.vnnlib,1,SAT\r\n")
    assert read_expected(p) == {("onnx/a.onnx", "vnnlib/p.vnnlib"): "sat"}
    (tmp_path / "bad.csv").write_text("onnx,vnnlib\n")
    with pytest.raises(InputError):
        read_expected(tmp_path / "bad.csv")


# ---------------------------------------------------------------- one process per instance


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_rows_for_fake_verdicts_crash_and_non_json(tmp_path, fake, isolation):
    command, log = fake
    csv_path = _suite(
        tmp_path / "s", ["sat1.onnx", "unsat1.onnx", "crash.onnx", "nojson.onnx", "killed.onnx"]
    )
    out = tmp_path / "r.csv"
    outcome = run_bench(BenchOptions(csv_path, out, command=command, isolation=isolation))
    rows = {r.onnx: r for r in read_results(out, require_all=True)}
    assert {k: r.status for k, r in rows.items()} == {
        "sat1.onnx": "sat",
        "unsat1.onnx": "unsat",
        "crash.onnx": "error",
        "nojson.onnx": "error",
        "killed.onnx": "error",
    }
    assert rows["crash.onnx"].message == "Traceback: boom"
    assert "no JSON" in rows["nojson.onnx"].message
    assert rows["killed.onnx"].message == "verifier killed by SIGKILL"
    cex = out.parent / rows["sat1.onnx"].counterexample
    assert cex.read_text().startswith("sat") and rows["unsat1.onnx"].counterexample == ""
    assert outcome.ran == 5 and outcome.summary.counts["error"] == 3
    calls = _calls(log)
    assert len(calls) == 5
    if (
        isolation == "fork"
    ):  # all forked by one server (a killed child did not take it down), torch preloaded
        assert len({ppid for _, _, ppid, _ in calls}) == 1 and os.getpid() not in {
            c[2] for c in calls
        }
        assert all(torch for *_, torch in calls)
    else:
        assert all(ppid == os.getpid() and not torch for _, _, ppid, torch in calls)


@pytest.mark.parametrize("workers", [1, 2])
def test_verifiers_side_by_side_get_one_thread_each(tmp_path, fake, monkeypatch, workers):
    """bench --workers 2 runs its verifiers with --threads 1 (two threads each would put four
    on two cores); one at a time they keep their own default (two on a CNN)."""
    command, _ = fake
    argv_log = tmp_path / "argv.log"
    monkeypatch.setenv("FAKE_ARGV", str(argv_log))
    csv_path = _suite(tmp_path / "s", ["unsat1.onnx", "unsat2.onnx", "unsat3.onnx"])
    opts = BenchOptions(csv_path, tmp_path / "r.csv", workers=workers, command=command)
    assert run_bench(opts).ran == 3
    calls = [json.loads(line) for line in argv_log.read_text().splitlines()]
    assert len(calls) == 3
    for argv in calls:
        if workers == 1:
            assert "--threads" not in argv
        else:
            assert argv[argv.index("--threads") + 1] == "1"


def test_resume_skips_done_rows_and_drops_partial_line(tmp_path, fake):
    command, log = fake
    csv_path = _suite(tmp_path / "s", ["sat1.onnx", "unsat1.onnx", "unsat2.onnx"])
    out = tmp_path / "r.csv"
    run_bench(BenchOptions(csv_path, out, command=command, filter="unsat1", isolation="spawn"))
    assert len(_pids(log)) == 1
    with open(out, "a") as fh:  # an interrupted append
        fh.write("sat1.onnx,prop.vnnlib,10,sa")
    outcome = run_bench(BenchOptions(csv_path, out, command=command, isolation="spawn"))
    assert outcome.skipped == 1 and outcome.ran == 2 and len(_pids(log)) == 3
    rows = read_results(out, require_all=True)
    assert sorted(r.onnx for r in rows) == ["sat1.onnx", "unsat1.onnx", "unsat2.onnx"]
    assert out.read_text().count("\n") == 4  # header and three complete rows
    again = run_bench(BenchOptions(csv_path, out, command=command))
    assert again.ran == 0 and again.skipped == 3 and len(_pids(log)) == 3


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_hung_instance_times_out_and_leaves_no_process(tmp_path, fake, isolation):
    command, log = fake
    csv_path = _suite(tmp_path / "s", ["hang.onnx", "unsat1.onnx"], timeout=1)
    hang, unsat = read_instances(csv_path)
    with Launcher(isolation) as launcher:
        server = launcher.server.pid if launcher.server else None
        start = time.monotonic()
        row = run_job(
            make_job(hang, 1.0, tmp_path / "files", tmp_path, command, grace=0.5), launcher
        )
        assert row.status == "timeout" and "hard timeout" in row.message
        assert time.monotonic() - start < 10
        pids = _pids(log)
        assert len(pids) == 2  # the fake verifier and its grandchild
        time.sleep(0.2)
        assert not any(_alive(p) for p in pids)
        # the server outlived its killed child and still forks
        assert (
            run_job(make_job(unsat, 5.0, tmp_path / "files", tmp_path, command), launcher).status
            == "unsat"
        )
        assert launcher.fallback is None
    parents = {c[1]: c[2] for c in _calls(log)}
    assert (
        parents["hang.onnx"]
        == parents["unsat1.onnx"]
        == (server if isolation == "fork" else os.getpid())
    )
    if server is not None:
        assert not _alive(server)  # stopped with the launcher


def test_fork_server_is_single_threaded_and_preloaded():
    with forkserver.ForkServer() as server:
        info = server.info
        assert info["python_threads"] == 1 and info["native_threads"] in (1, None)
        assert {"torch", "onnx", "highspy", "completeverify.cli", "completeverify.pipeline"} <= set(
            info["preloaded"]
        )
        assert info["failed"] == []
        assert (
            info["not_preloaded"] == []
        )  # onnxruntime stays out of the server (native thread at import)
        pid, files = server.pid, server._tmp
        assert files.is_dir()
    assert not _alive(pid) and not files.exists()


def test_fork_refused_while_threads_run():
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        with pytest.raises(forkserver.ForkServerError, match="threads alive"):
            forkserver._fork({}, ())
    finally:
        stop.set()
        t.join()


def test_fork_target_only_for_this_interpreter():
    py = sys.executable
    assert forkserver.fork_target([py, "-m", "completeverify", "verify", "a"]) == (
        ["cli"],
        ["verify", "a"],
    )
    assert forkserver.fork_target([py, "-m", "pkg.mod", "x"]) == (["module", "pkg.mod"], ["x"])
    assert forkserver.fork_target([py, "s.py", "x"]) == (["script", os.path.abspath("s.py")], ["x"])
    assert forkserver.fork_target([py, "-X", "dev", "s.py"]) is None
    assert forkserver.fork_target(["/bin/echo", "s.py"]) is None


def test_dead_fork_server_falls_back_to_spawn(tmp_path, fake, monkeypatch, caplog):
    command, log = fake
    monkeypatch.setenv("FAKE_SLOW", "1")
    csv_path = _suite(tmp_path / "s", ["slow1.onnx", "unsat1.onnx"], timeout=30)
    slow, unsat = read_instances(csv_path)

    def kill_when_started(pid: int) -> None:
        deadline = time.monotonic() + 20
        while not _calls(log) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)  # the server dies while slow1 sleeps

    with Launcher("fork") as launcher:
        server = launcher.server.pid
        threading.Thread(target=kill_when_started, args=(server,)).start()
        row = run_job(make_job(slow, 30.0, tmp_path / "files", tmp_path, command), launcher)
        assert row.status == "unsat" and launcher.fallback and "fork server" in launcher.fallback
        assert (
            run_job(make_job(unsat, 30.0, tmp_path / "files", tmp_path, command), launcher).status
            == "unsat"
        )
    calls = _calls(log)
    assert [(name, ppid == server) for _, name, ppid, _ in calls] == [
        ("slow1.onnx", True),
        ("slow1.onnx", False),
        ("unsat1.onnx", False),
    ]  # rerun, then spawn only
    assert not any(_alive(p) for p in _pids(log)) and not _alive(server)
    assert any("spawn" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_fork_server_that_cannot_start_falls_back(tmp_path, fake, monkeypatch):
    command, log = fake

    def broken(self):
        raise forkserver.ForkServerError("fork server exited with code 1: ImportError: no torch")

    monkeypatch.setattr(forkserver.ForkServer, "start", broken)
    csv_path = _suite(tmp_path / "s", ["sat1.onnx", "unsat1.onnx"])
    outcome = run_bench(
        BenchOptions(csv_path, tmp_path / "r.csv", command=command, isolation="fork")
    )
    assert [r.status for r in outcome.rows] == ["sat", "unsat"]
    assert all(ppid == os.getpid() for _, _, ppid, _ in _calls(log))


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_interrupted_pool_kills_running_children(tmp_path, fake, isolation):
    command, log = fake
    csv_path = _suite(tmp_path / "s", ["unsat1.onnx", "hang1.onnx", "hang2.onnx"], timeout=60)
    jobs = [
        make_job(i, 60.0, tmp_path / "files", tmp_path, command) for i in read_instances(csv_path)
    ]
    rows = run_pool(jobs, workers=3, isolation=isolation)
    first = next(rows)
    assert first.status == "unsat"
    deadline = time.monotonic() + 10
    while len(_pids(log)) < 5 and time.monotonic() < deadline:  # both hangs and their grandchildren
        time.sleep(0.05)
    start = time.monotonic()
    rows.close()  # what Ctrl-C does to the run
    assert time.monotonic() - start < 5
    time.sleep(0.2)
    assert not any(_alive(p) for p in _pids(log))


def test_missing_network_gives_error_row(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "instances.csv").write_text(
        f"missing.onnx,{ROOT / 'examples' / 'mlp_sat.vnnlib'},30\n"
    )
    outcome = run_bench(BenchOptions(folder / "instances.csv", tmp_path / "r.csv"))
    (row,) = outcome.rows
    assert row.status == "error" and "missing.onnx" in row.message


def test_results_writer_rejects_foreign_csv(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(InputError):
        ResultsWriter(p)
    row = ResultRow("a,b.onnx", "p.vnnlib", 3.0, "unsat", 1.25, "", "multi\nline, note")
    assert row.to_line().count("\n") == 1
    good = tmp_path / "g.csv"
    with ResultsWriter(good) as w:
        w.append(row)
    assert read_results(good, require_all=True) == [
        ResultRow("a,b.onnx", "p.vnnlib", 3.0, "unsat", 1.25, "", "multi line, note")
    ]
    assert good.read_text().splitlines()[0] == ",".join(COLUMNS)


# ------------------------------------------------------------ the real verifier on the tiny suite


@pytest.fixture(scope="module")
def tiny_sequential(tmp_path_factory):
    """One sequential CLI run over benchmarks/suites/tiny.csv (the default isolation: fork)."""
    folder = tmp_path_factory.mktemp("tiny")
    out = folder / "results.csv"
    rc = main(
        [
            "bench",
            str(TINY),
            "--out",
            str(out),
            "--expected",
            str(TINY_TRUTH),
            "--plot",
            str(folder / "cactus.png"),
        ]
    )
    return rc, out, folder


def test_tiny_suite_sequential_rows(tiny_sequential):
    rc, out, folder = tiny_sequential
    assert rc == 0
    rows = read_results(out, require_all=True)
    truth = {(r["onnx"], r["vnnlib"]): r["consensus"] for r in csv.DictReader(open(TINY_TRUTH))}
    assert {r.key: r.status for r in rows} == truth
    assert [r.key for r in rows] == [i.key for i in read_instances(TINY)]
    for r in rows:
        assert r.timeout == 30 and r.seconds > 0
        if r.status == "sat":
            assert (out.parent / r.counterexample).read_text().startswith("sat\n((X_0 ")
        else:
            assert r.counterexample == ""
    assert (folder / "cactus.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tiny_spawn_and_fork_give_the_same_table(tiny_sequential, tmp_path, capsys):
    _, fork_out, _ = tiny_sequential
    out = tmp_path / "spawn.csv"
    assert (
        main(
            [
                "bench",
                str(TINY),
                "--out",
                str(out),
                "--isolation",
                "spawn",
                "--expected",
                str(TINY_TRUTH),
            ]
        )
        == 0
    )
    assert "6 agree, 0 wrong" in capsys.readouterr().out

    def table(path):
        return [
            (r.onnx, r.vnnlib, r.timeout, r.status, bool(r.counterexample), r.message)
            for r in read_results(path, require_all=True)
        ]

    assert table(out) == table(fork_out)
    for r in read_results(out):
        if r.status == "sat":
            assert (out.parent / r.counterexample).read_text().startswith("sat\n((X_0 ")


def test_tiny_resume_and_wrong_ground_truth_exits_3(tiny_sequential, tmp_path, capsys):
    _, out, _ = tiny_sequential
    before = out.read_text()
    wrong = tmp_path / "wrong.csv"
    flip = {"sat": "unsat", "unsat": "sat"}
    with open(TINY_TRUTH) as src, open(wrong, "w", newline="") as dst:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, reader.fieldnames)
        writer.writeheader()
        for i, r in enumerate(reader):
            writer.writerow({**r, "consensus": flip[r["consensus"]] if i == 0 else r["consensus"]})
    capsys.readouterr()
    assert main(["bench", str(TINY), "--out", str(out), "--expected", str(wrong)]) == 3
    printed = capsys.readouterr().out
    assert "0 run now" in printed and "6 already in" in printed
    assert "1 wrong" in printed and "WRONG" in printed and "mlp_sat.vnnlib" in printed
    assert out.read_text() == before


def test_config_reaches_every_instance(tmp_path, capsys):
    """--config is the options file of every instance: a node limit of 1 makes each one an
    error naming the limit (so the file reached the child), and an ordinary file (MILP mode)
    still agrees with the ground truth."""
    tight = tmp_path / "tight.yaml"
    tight.write_text("limits:\n  max_nodes: 1\n")
    out = tmp_path / "tight.csv"
    assert main(["bench", str(TINY), "--out", str(out), "--config", str(tight)]) == 0
    rows = read_results(out, require_all=True)
    assert len(rows) == 6
    assert all(r.status == "error" and "max_nodes" in r.message for r in rows)
    milp = tmp_path / "milp.yaml"
    milp.write_text("mode: milp\n")
    out = tmp_path / "milp.csv"
    capsys.readouterr()
    args = ["bench", str(TINY), "--out", str(out), "--expected", str(TINY_TRUTH)]
    assert main([*args, "--config", str(milp)]) == 0
    assert "6 agree, 0 wrong" in capsys.readouterr().out


@pytest.mark.parametrize("paths", ["absolute", "relative"])
def test_expected_matches_rows_by_the_files_they_name(tmp_path, capsys, paths):
    """A subset CSV kept in another folder, with absolute paths or paths relative to its own
    folder, is still compared with the family's ground truth (the text of its paths differs
    from the ground truth's)."""
    import os

    lines = []
    for inst in read_instances(TINY):
        onnx, vnnlib = str(inst.onnx_path), str(inst.vnnlib_path)
        if paths == "relative":
            onnx, vnnlib = os.path.relpath(onnx, tmp_path), os.path.relpath(vnnlib, tmp_path)
        lines.append(f"{onnx},{vnnlib},{inst.timeout:g}")
    subset = tmp_path / "subset.csv"
    subset.write_text("\n".join(lines) + "\n")
    out = tmp_path / "r.csv"
    assert main(["bench", str(subset), "--out", str(out), "--expected", str(TINY_TRUTH)]) == 0
    text = capsys.readouterr().out
    assert "6 agree, 0 wrong" in text and "not in the file" not in text


@pytest.mark.parametrize("text", ["nonsense_key: 1\n", "bab: [1, 2\n"])
def test_bad_config_is_one_error_line_before_any_instance(tmp_path, capsys, text):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    out = tmp_path / "r.csv"
    assert main(["bench", str(TINY), "--out", str(out), "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "bad.yaml" in err[0]
    assert not out.exists()
    missing = tmp_path / "missing.yaml"
    assert main(["bench", str(TINY), "--out", str(out), "--config", str(missing)]) == 2
    assert "missing.yaml" in capsys.readouterr().err and not out.exists()


def test_dask_local_cluster_equals_sequential(tiny_sequential, tmp_path):
    distributed = pytest.importorskip("distributed")
    _, seq_out, _ = tiny_sequential
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        out = tmp_path / "dask.csv"
        rc = main(["bench", str(TINY), "--out", str(out), "--scheduler", cluster.scheduler_address])
    assert rc == 0
    seq = {r.key: r.status for r in read_results(seq_out)}
    par = {r.key: r.status for r in read_results(out)}
    assert par == seq and len(par) == 6


def test_fork_isolation_on_dask_is_input_error(tmp_path, capsys):
    rc = main(
        [
            "bench",
            str(TINY),
            "--out",
            str(tmp_path / "r.csv"),
            "--scheduler",
            "tcp://127.0.0.1:1",
            "--isolation",
            "fork",
        ]
    )
    assert rc == 2 and "--isolation fork" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_bad_scheduler_address_is_input_error(tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr("completeverify.bench.runner.CONNECT_TIMEOUT", 1.0)
    rc = main(
        [
            "bench",
            str(TINY),
            "--out",
            str(tmp_path / "r.csv"),
            "--scheduler",
            "tcp://127.0.0.1:1",
            "--filter",
            "mlp2x4_sat",
        ]
    )
    assert rc == 2 and "scheduler" in capsys.readouterr().err


def test_plot_command_overlays_and_checks_labels(tiny_sequential, tmp_path, capsys):
    _, out, _ = tiny_sequential
    other = tmp_path / "other.csv"
    other.write_text("status,seconds\nsat,0.5\nunsat,12\ntimeout,30\n")  # another tool, converted
    png = tmp_path / "overlay.png"
    assert main(["plot", str(out), str(other), "--out", str(png), "--labels", "cv", "other"]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "other: 2 of 3 decided" in capsys.readouterr().out
    assert main(["plot", str(out), "--out", str(png), "--labels", "a", "b"]) == 2


# ---------------------------------------------------------------- the competition's sanity suite


def test_vnncomp_test_family_agrees_with_ground_truth(tmp_path, capsys, shared_benchmarks):
    out = tmp_path / "r.csv"
    family = shared_benchmarks / "test"
    rc = main(
        [
            "bench",
            str(family / "instances.csv"),
            "--out",
            str(out),
            "--workers",
            "2",
            "--expected",
            str(family / "ground_truth.csv"),
            "--timeout-cap",
            "30",
        ]
    )
    assert rc == 0
    assert "0 wrong" in capsys.readouterr().out
    rows = read_results(out, require_all=True)
    assert len(rows) == 5 and all(r.timeout == 30 for r in rows)


def test_vnncomp_scripts_follow_the_calling_convention():
    folder = ROOT / "benchmarks" / "vnncomp"
    for name in ("install_tool.sh", "prepare_instance.sh", "run_instance.sh"):
        text = (folder / name).read_text()
        assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
        assert os.access(folder / name, os.X_OK)
    run = (folder / "run_instance.sh").read_text()
    assert '--result-file "$RESULTS_FILE" --timeout "$TIMEOUT"' in run


def test_instance_paths_resolve_against_csv_folder(tmp_path):
    inst = Instance("../x/a.onnx", "p.vnnlib", 1.0, tmp_path / "suite")
    assert inst.onnx_path == (tmp_path / "x" / "a.onnx").resolve()


@pytest.mark.slow
@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_cli_interrupted_by_sigterm_then_resumed_loses_nothing(tmp_path, isolation):
    import subprocess

    out = tmp_path / "r.csv"
    # inherited by the runner, the fork server and every verifier
    mark = f"CV_BENCH_TEST_MARK={tmp_path}"
    argv = [
        sys.executable,
        "-m",
        "completeverify",
        "bench",
        str(TINY),
        "--out",
        str(out),
        "--isolation",
        isolation,
    ]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CV_BENCH_TEST_MARK": str(tmp_path)},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 2):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out_text, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in err
    kept = read_results(out, require_all=True)
    assert 1 <= len(kept) < 6
    time.sleep(0.3)
    assert _processes_mentioning(out.stem + "_files") == [] and _processes_with_env(mark) == []
    assert "interrupted:" in out_text and "rerun the same command" in out_text
    assert main(["bench", str(TINY), "--out", str(out)]) == 0
    rows = read_results(out, require_all=True)
    assert len(rows) == 6 and rows[: len(kept)] == kept
