"""The Ray engine (``fakedet scan --engine ray``, ``fakedet.ray.score``) and parquet output.

Ray runs locally on two CPUs, started once for the module; an S3 bucket is served on loopback by
moto's server mode, never a real cloud. Skipped where the ray extra is not installed, except
under CI (``CI=true``), where its absence fails :func:`test_ci_installs_the_ray_extra`.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import signal
import socket
import threading
import time

import pytest

from fakedet.cli import cli

from conftest import image_bytes, random_image, write_image

pytestmark = pytest.mark.slow


def test_ci_installs_the_ray_extra():
    """CI installs the test extra, so these tests run there; elsewhere they may be skipped."""
    if os.environ.get("CI", "").lower() != "true":
        pytest.skip("not under CI")
    for name in ("ray", "pyarrow", "moto", "boto3"):
        assert importlib.util.find_spec(name) is not None, f"CI must install {name} (the test extra)"


AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
           "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    """A local Ray on two CPUs for the module; its workers get fake AWS credentials and the
    folder where each scoring actor notes its PID (the killed-worker test reads it)."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    pytest.importorskip("pyarrow")
    from fakedet import ray as fray

    pid_dir = tmp_path_factory.mktemp("pids")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {**AWS_ENV, fray.PID_DIR_ENV: str(pid_dir)}})
    yield pid_dir
    ray.shutdown()


@pytest.fixture
def runner():
    from click.testing import CliRunner

    try:
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


def scan(runner, weights, *args):
    return runner.invoke(cli, ["scan", "-w", str(weights), "-j", "0", "--no-progress", *args])


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_same_records(a: list[dict], b: list[dict], tol: float = 1e-5):
    assert [r["path"] for r in a] == [r["path"] for r in b]
    for x, y in zip(a, b):
        assert set(x) == set(y), x["path"]
        for key in x:
            if key == "p_fake" and x[key] is not None and y[key] is not None:
                assert abs(x[key] - y[key]) <= tol, x["path"]
            else:
                assert x[key] == y[key], (x["path"], key)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Made-up images with broken, empty, too small, special and missing inputs among them, a
    screenshot whose picture is scored, an animation and a JPEG saved without an extension."""
    root = tmp_path_factory.mktemp("mixed")
    for i in range(8):
        write_image(root / f"img{i}.jpg", seed=i, size=(96 + i, 80))
    write_image(root / "sub" / "a.png", "PNG", seed=20)
    write_image(root / "sub" / "b.webp", "WEBP", seed=21)
    write_image(root / ".hidden.jpg", seed=22)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (root / "empty.png").write_bytes(b"")
    write_image(root / "tiny.png", "PNG", size=(20, 20))
    from PIL import Image

    screen = Image.new("RGB", (270, 585), (18, 18, 18))  # a picture inside a phone screenshot's margins
    screen.paste(random_image((200, 150), seed=23), (35, 200))
    screen.save(root / "shot.png")
    frames = [random_image((90, 70), seed=s) for s in (24, 25)]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    write_image(root / "IMG-20240502-WA0001", seed=26)  # an image by its first bytes
    (root / "notes.txt").write_text("not an image")
    os.mkfifo(root / "pipe.jpg")
    listing = root.parent / f"{root.name}-list.txt"
    listing.write_text(f"{root / 'img1.jpg'}\n{root / 'missing.jpg'}\n{root / 'sub'}\n")
    return root, listing


@pytest.mark.parametrize("kw", [{"crop": "false"}, {"provenance": "no"}])
def test_the_ray_entry_points_refuse_a_flag_that_is_no_bool(kw):
    """As Detector.load does (`crop="false"` read from a setting is true to Python), before Ray
    or the weights are touched."""
    import fakedet.ray as fray

    with pytest.raises(ValueError, match="must be True or False"):
        fray.score(None, **kw)
    with pytest.raises(ValueError, match="must be True or False"):
        fray.RayScan([], **kw)


def test_records_match_the_local_engine(ray_local, runner, tiny_weights, mixed):
    root, listing = mixed
    args = ["-f", "jsonl", str(root), "--files-from", str(listing)]
    local = scan(runner, tiny_weights, *args)
    ray_run = scan(runner, tiny_weights, "--engine", "ray", *args)
    assert local.exit_code == ray_run.exit_code == 3, ray_run.stderr  # 3: some inputs unreadable
    a, b = jsonl(local.stdout), jsonl(ray_run.stdout)
    # the folder (not its hidden file), then the list's entries not in it already (missing.jpg;
    # img1.jpg and sub's images were scored under the folder)
    assert len(a) == 17 + 1
    assert "3 images reached a second time" in ray_run.stderr
    assert_same_records(a, b)
    assert [r["cropped"] for r in b if r["cropped"]] == [[35, 200, 235, 350]]  # the picture in shot.png
    assert [os.path.basename(r["path"]) for r in b if r["animated"]] == ["anim.gif"]
    assert not any(r["framed"] for r in b)  # shot.png's picture was cut out
    nocrop = jsonl(scan(runner, tiny_weights, "--engine", "ray", "--no-crop", "-f", "jsonl", str(root)).stdout)
    assert [os.path.basename(r["path"]) for r in nocrop if r["framed"]] == ["shot.png"]  # as the local engine
    assert "IMG-20240502-WA0001" in [os.path.basename(r["path"]) for r in b]
    assert f"1 animation or file of several pages ({root / 'anim.gif'}): only its first frame or page was " \
        "scored" in ray_run.stderr
    errors = {os.path.basename(r["path"]): r["error"] for r in b if r["error"]}
    assert errors["pipe.jpg"].startswith("not a regular file")
    assert errors["missing.jpg"] == "file not found"
    assert errors["empty.png"] == "empty file"
    # tsv and csv are the same text from both engines
    for fmt in ("tsv", "csv"):
        x = scan(runner, tiny_weights, "-f", fmt, str(root))
        y = scan(runner, tiny_weights, "--engine", "ray", "-f", fmt, str(root))
        assert x.stdout == y.stdout


def _gated(paths, gates, late):
    """``paths`` in order; before path i (i >= 1) waits for ``gates[i - 1]``, at most 30 s,
    noting in ``late`` each path that had to go without its gate."""
    for i, path in enumerate(paths):
        if i and not gates[i - 1].wait(30):
            late.append(i)
        yield path


def test_a_list_still_arriving_is_scored_as_it_comes(ray_local, tiny_weights, tmp_path):
    """``--files-from -`` fed slowly: the next path comes only once the previous one's record is
    out. A scan that waited for a full chunk (50,000 paths) or the list's end would stall here."""
    from fakedet import ray as fray
    from fakedet.data.sources import Item
    from fakedet.inference.pipeline import LiveItems

    paths = [str(write_image(tmp_path / f"{i}.jpg", size=(64, 64), seed=i)) for i in range(3)]
    gates = [threading.Event() for _ in paths]
    seen, late = [], []
    scan_ = fray.scan_items(LiveItems(Item(p) for p in _gated(paths, gates, late)), tiny_weights,
                            device="cpu", workers=1)
    try:
        for batch in scan_:
            seen.extend(r.path for r in batch)
            gates[len(seen) - 1].set()
    finally:
        scan_.close()
    assert seen == paths
    assert not late, f"paths {late} came only because the scan waited for them before scoring"


def test_a_list_that_breaks_off_keeps_the_records_before_it(ray_local, tiny_weights, tmp_path):
    from fakedet import ray as fray
    from fakedet.data.sources import Item

    paths = [str(write_image(tmp_path / f"{i}.jpg", size=(64, 64), seed=i)) for i in range(3)]

    def broken():
        yield from (Item(p) for p in paths)
        raise OSError(5, "Input/output error")

    seen = []
    scan_ = fray.scan_items(broken(), tiny_weights, device="cpu", workers=1)
    with pytest.raises(OSError, match="Input/output"):
        for batch in scan_:
            seen.extend(r.path for r in batch)
    assert seen == paths


def test_parquet_round_trips_from_both_engines(ray_local, runner, tiny_weights, mixed, tmp_path):
    import pyarrow.parquet as pq

    root, _ = mixed
    records = jsonl(scan(runner, tiny_weights, "-f", "jsonl", str(root)).stdout)
    for engine in ("local", "ray"):
        out = tmp_path / f"{engine}.parquet"
        r = scan(runner, tiny_weights, "--engine", engine, "-f", "parquet", "-o", str(out), str(root))
        assert r.exit_code == 3, r.stderr
        table = pq.read_table(out)
        assert table.column_names == ["path", "p_fake", "label", "error", "cropped", "framed", "animated", "evidence",
                                      "label_by", "model_label"]
        rows = table.to_pylist()
        back = [{**row, "evidence": json.loads(row["evidence"])} for row in rows]
        assert_same_records(records, back, tol=1e-6)  # jsonl rounds to 6 decimals
    r = scan(runner, tiny_weights, "-f", "parquet", str(root))
    assert r.exit_code == 2 and "needs -o" in r.stderr


def test_score_a_dataset_the_ray_way(ray_local, tiny_weights, tmp_path):
    import ray.data

    import fakedet
    import fakedet.ray

    for i in range(5):
        write_image(tmp_path / f"{i}.jpg", seed=40 + i)
    (tmp_path / "5.jpg").write_bytes(b"broken")
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ds = ray.data.read_binary_files(str(tmp_path), include_paths=True)
    rows = fakedet.ray.score(ds, tiny_weights, concurrency=1, batch_size=4).take_all()
    assert [os.path.basename(r["path"]) for r in rows] == [f"{i}.jpg" for i in range(6)]
    det = fakedet.Detector.load(tiny_weights, device="cpu", workers=0)
    want = det.predict(sorted(str(p) for p in tmp_path.iterdir()))
    for row, res in zip(rows, want):
        assert row["error"] == res.error and row["label"] == res.label and row["label_by"] == res.label_by
        assert (row["p_fake"] is None) == (res.p_fake is None)
        if res.p_fake is not None:
            assert abs(row["p_fake"] - res.p_fake) < 1e-5
        assert json.loads(row["evidence"]) == res.evidence


def test_a_killed_scoring_worker_is_replaced_and_no_record_is_lost(ray_local, runner, tiny_weights, tmp_path):
    folder = tmp_path / "sixty"
    for i in range(60):
        write_image(folder / f"{i:02d}.jpg", seed=100 + i, size=(64, 64))
    pids = ray_local / "scorer.pids"
    pids.write_text("")
    killed = []

    def kill_the_first_actor():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            seen = [int(x) for x in pids.read_text().split()]
            if seen:
                os.kill(seen[0], signal.SIGKILL)
                killed.append(seen[0])
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_the_first_actor, daemon=True)
    killer.start()
    out = tmp_path / "out.jsonl"
    r = scan(runner, tiny_weights, "--engine", "ray", "-b", "2", "-f", "jsonl", "-o", str(out), str(folder))
    killer.join(5)
    assert killed, "the scoring actor never started"
    assert r.exit_code == 0, r.stderr
    records = jsonl(out.read_text())
    assert [os.path.basename(x["path"]) for x in records] == [f"{i:02d}.jpg" for i in range(60)]
    assert all(x["error"] is None for x in records)
    later = [int(x) for x in pids.read_text().split()]
    assert any(p != killed[0] for p in later), "no batch ran after the kill: the kill came too late"
    local = jsonl(scan(runner, tiny_weights, "-f", "jsonl", str(folder)).stdout)
    assert_same_records(local, records)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_s3_uris_are_read_from_a_local_endpoint(ray_local, runner, tiny_weights, tmp_path, monkeypatch):
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="imgs")
        local = tmp_path / "same"
        files = {"set/a.jpg": image_bytes(seed=60), "set/b/c.png": image_bytes("PNG", seed=61),
                 "set/broken.jpg": b"\xff\xd8\xff garbage", "set/notes.txt": b"text"}
        for key, data in files.items():
            s3.put_object(Bucket="imgs", Key=key, Body=data)
            (local / key).parent.mkdir(parents=True, exist_ok=True)
            (local / key).write_bytes(data)
        r = scan(runner, tiny_weights, "--engine", "ray", "--ray-s3-endpoint", endpoint, "-f", "jsonl",
                 "s3://imgs/set/", "s3://imgs/set/a.jpg", "s3://imgs/missing.jpg")
        assert r.exit_code == 3, r.stderr
        got = jsonl(r.stdout)
        # a.jpg, named after the folder that gave it, is scored once, as a local file is
        assert [x["path"] for x in got] == ["s3://imgs/set/a.jpg", "s3://imgs/set/b/c.png",
                                             "s3://imgs/set/broken.jpg", "s3://imgs/missing.jpg"]
        assert "1 image reached a second time" in r.stderr
        assert got[-1]["error"] == "file not found"
        want = jsonl(scan(runner, tiny_weights, "-f", "jsonl", str(local / "set"), str(local / "set" / "a.jpg"),
                          str(local / "missing.jpg")).stdout)
        for x in got + want:
            x["path"] = x["path"].replace("s3://imgs/", "").replace(str(local) + "/", "")
        assert_same_records(want, got)
    finally:
        server.stop()


def test_without_ray_the_engine_says_how_to_install_it(runner, tiny_weights, tmp_path, monkeypatch):
    import fakedet.ray

    monkeypatch.setattr(fakedet.ray, "available", lambda: False)
    write_image(tmp_path / "a.jpg")
    r = scan(runner, tiny_weights, "--engine", "ray", str(tmp_path / "a.jpg"))
    assert r.exit_code == 2
    assert r.stderr.strip() == "fakedet: the ray engine needs Ray: pip install 'fakedet[ray]'"


def test_importing_fakedet_and_a_local_scan_import_no_ray(tmp_path, tiny_weights):
    import subprocess
    import sys

    write_image(tmp_path / "a.jpg")
    code = ("import sys; from fakedet.cli import cli\n"
            "try:\n    cli(['scan', '-w', sys.argv[1], '-q', sys.argv[2]])\n"
            "except SystemExit:\n    pass\n"
            "print('ray' in sys.modules, 'pyarrow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tiny_weights), str(tmp_path / "a.jpg")],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "False False"


@pytest.mark.parametrize("hidden,exclude", [(False, ()), (True, ()), (False, ("skip/", "*.gif", "notes*"))])
def test_a_folder_uri_is_listed_and_counted_as_the_local_walk(tmp_path, hidden, exclude):
    """A folder URI gives the local walk's images in its order, and counts what it skips as the
    local walk does: a skipped folder once, whatever it holds; files not named as images."""
    pytest.importorskip("pyarrow")
    from fakedet.data.sources import WalkFilter, walk
    from fakedet.ray import expand_uri

    root = tmp_path / "tree"
    write_image(root / "a.jpg", seed=1)
    write_image(root / "b" / "c.png", "PNG", seed=2)
    write_image(root / "anim.gif", "GIF", seed=3)
    (root / "notes.txt").write_text("no image")
    (root / "b" / "clip.mp4").write_bytes(b"\0" * 8)
    (root / ".cache.txt").write_text("hidden, no image")
    for d in (".git", "skip"):  # two images each: a skipped folder counts once
        write_image(root / d / "x.jpg", seed=4)
        write_image(root / d / "y.jpg", seed=5)
        (root / d / "z.txt").write_text("")
    write_image(root / ".hidden.jpg", seed=6)
    (root / ".empty").mkdir()  # an empty hidden folder counts as the local walk counts it
    (root / "b" / "skip").mkdir()
    # an image by its first bytes, and one gzipped: its stored bytes are no image's (the tasks
    # read them as stored; pyarrow would unpack a .gz, which is not opened at all)
    write_image(root / "IMG-20240502-WA0001", seed=7)
    (root / "photo.jpg.gzip").write_bytes(gzip.compress((root / "a.jpg").read_bytes()))
    local, remote = WalkFilter(hidden, exclude), WalkFilter(hidden, exclude)
    want = [os.path.relpath(i.path, root) for i in walk(str(root), filt=local)]
    got = [i.path[len(root.as_uri()) + 1:] for i in expand_uri(root.as_uri(), filt=remote)]
    assert got == want
    assert remote.counts() == local.counts()
    assert "IMG-20240502-WA0001" in got and "photo.jpg.gzip" not in got
    # clip.mp4, notes.txt, photo.jpg.gzip and skip/z.txt; with --hidden also .cache.txt and .git/z.txt
    assert local.skipped_other == (2 if exclude else 4) + (2 if hidden else 0)


def _fakedet_child(*args, **kw):
    import subprocess
    import sys

    def interruptible():  # SIGINT as in a terminal's foreground job, even under a background test run
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local Ray of its own
    return subprocess.Popen([sys.executable, "-m", "fakedet", *args], env=dict(env, PYTHONUNBUFFERED="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=interruptible, **kw)


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_sigterm_ends_a_ray_scan_as_it_ends_a_local_one(tiny_weights, tmp_path, fmt):
    """ray.init put its own SIGTERM handler (sys.exit(15)) in place of fakedet's: a persona's
    `timeout`-ended ray scan exited 15, with no summary and a parquet file of 0 bytes. It must
    end as a local scan does: 143, its summary, and a whole output file of the records made."""
    pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    pyarrow_parquet = pytest.importorskip("pyarrow.parquet")
    import select
    import subprocess

    for i in range(2):
        write_image(tmp_path / f"{i:03d}.jpg", seed=40 + i)
    out = tmp_path / f"scores.{fmt}"
    p = _fakedet_child("scan", "--engine", "ray", "--workers", "1", "-w", str(tiny_weights), "-f", fmt,
                       "-o", str(out), "--progress", "--files-from", "-", stdin=subprocess.PIPE)
    try:
        p.stdin.write("".join(f"{tmp_path / f'{i:03d}.jpg'}\n" for i in range(2)).encode())
        p.stdin.flush()  # and the list stays open: the scan waits for more paths
        err, deadline = b"", time.monotonic() + 180
        while b"2img" not in err and time.monotonic() < deadline and p.poll() is None:
            if select.select([p.stderr], [], [], 1.0)[0]:
                err += os.read(p.stderr.fileno(), 65536)
        assert b"2img" in err, err.decode()  # both records made (the progress bar says so)
        p.send_signal(signal.SIGTERM)  # as timeout, kill, docker stop and systemd send
        err += p.communicate(timeout=120)[1]
        assert p.returncode == 143, err.decode()
        assert b"terminated after 2 records" in err and b"SIGTERM received" not in err, err.decode()
        if fmt == "json":
            records = json.loads(out.read_text())
        else:
            records = pyarrow_parquet.read_table(out).to_pylist()
        assert sorted(os.path.basename(r["path"]) for r in records) == ["000.jpg", "001.jpg"]
    finally:
        p.kill()
        p.wait(60)
