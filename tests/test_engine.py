import os
import time

import numpy as np
import pytest

from fakedet import Detector
from fakedet.inference.detector import CPU_SUB_BATCH
from fakedet.inference.device import DeviceError, resolve_device

from conftest import image_bytes, random_image, write_image


@pytest.fixture(scope="module")
def det(tiny_weights):
    return Detector.load(tiny_weights, device="cpu", workers=0)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    d = tmp_path_factory.mktemp("mixed")
    paths = []
    for i in range(11):
        if i % 4 == 3:
            p = d / f"{i:02d}_broken.jpg"
            p.write_bytes(b"nope")
        else:
            p = write_image(d / f"{i:02d}.png", "PNG", size=(64 + 7 * i, 90), seed=i)
        paths.append(str(p))
    return paths


def test_api_accepts_paths_bytes_pil_and_arrays(det, tmp_path):
    p = write_image(tmp_path / "x.jpg")
    inputs = [str(p), image_bytes("PNG"), random_image(), np.asarray(random_image(seed=3)), 42]
    res = det.predict(inputs)
    assert len(res) == 5
    assert all(r.error is None for r in res[:4])
    assert res[4].error and "unsupported" in res[4].error
    assert res[0].path == str(p)


def test_one_result_per_input_in_order_with_errors_in_place(det, mixed):
    res = det.predict(mixed, batch_size=4)
    assert [r.path for r in res] == mixed
    for path, r in zip(mixed, res):
        assert (r.error is not None) == ("broken" in path)
        assert (r.p_fake is None) == ("broken" in path)


def test_results_identical_across_batch_sizes_and_workers(det, mixed):
    ref = det.predict(mixed, batch_size=1, workers=0)
    # (16, 3): one batch cut into uneven slices across threads; (5, 3) and (2, 4): several
    # batches, slices of one and two inputs, more threads than a batch has inputs.
    for bs, workers in [(3, 0), (4, 2), (16, 1), (16, 3), (5, 3), (2, 4)]:
        got = det.predict(mixed, batch_size=bs, workers=workers)
        assert [r.path for r in got] == [r.path for r in ref]
        for a, b in zip(ref, got):
            assert a.error == b.error
            if a.p_fake is not None:
                assert b.p_fake == pytest.approx(a.p_fake, abs=1e-5)


@pytest.fixture
def three_threads(tiny_weights):
    """A detector loaded while torch has 3 intra-op threads (whatever the machine's cores)."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        yield torch, Detector.load(tiny_weights, device="cpu", workers=0)
    finally:
        torch.set_num_threads(before)


def _random_inputs(det, n, torch):
    pre = det.config.preprocess
    g = torch.Generator().manual_seed(0)
    views = torch.randint(0, 256, (n, 3, pre.global_size, pre.global_size), dtype=torch.uint8, generator=g)
    patches = torch.randint(0, 256, (n, pre.num_patches, 3, pre.patch_size, pre.patch_size),
                            dtype=torch.uint8, generator=g)
    return views, patches


def test_scores_do_not_depend_on_batch_split_threads_or_cores(three_threads):
    """The CPU forward's arithmetic is fixed: the same logits whether the images come in one
    batch or one at a time, whatever the calling thread's intra-op count."""
    torch, det = three_threads
    views, patches = _random_inputs(det, 21, torch)
    ref = det.forward(views, patches)
    one_by_one = torch.cat([det.forward(views[i:i + 1], patches[i:i + 1]) for i in range(21)])
    assert torch.equal(one_by_one, ref)
    torch.set_num_threads(1)  # a caller with another count
    assert torch.equal(det.forward(views, patches), ref)


def test_model_pool_threads_use_the_fixed_count_and_leave_others_alone(three_threads):
    torch, det = three_threads
    import threading

    from fakedet.inference.cpurun import threads_per_sub_batch

    seen_model = []
    real = det.model

    class Spy(torch.nn.Module):
        def forward(self, *a):
            seen_model.append((threading.current_thread().name, torch.get_num_threads()))
            return real(*a)

    det._cpu.model = Spy()
    det.forward(*_random_inputs(det, 24, torch))
    assert len(seen_model) == 24 // CPU_SUB_BATCH, seen_model  # one call per sub-batch
    assert all(name.startswith("fakedet-model") and n == threads_per_sub_batch(3)
               for name, n in seen_model), seen_model
    # the caller keeps its count, and threads started afterwards begin with it
    seen = []
    t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    t.start()
    t.join()
    assert seen == [3] and torch.get_num_threads() == 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_scores_with_its_own_model_threads(three_threads):
    """A child forked after the parent's model threads started has none of them: it must start
    its own instead of waiting for the parent's forever."""
    torch, det = three_threads
    views, patches = _random_inputs(det, 16, torch)
    ref = det.forward(views, patches)  # the parent's pool is running
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: score, report, leave without running the parent's exit handlers
        try:
            os.close(r)
            ok = torch.equal(det.forward(views, patches), ref)
            os.write(w, b"same" if ok else b"different")
        finally:
            os._exit(0)
    os.close(w)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child's forward hung")
    assert os.read(r, 100) == b"same"


@pytest.mark.parametrize("cores,per,slots", [(1, 1, 1), (2, 1, 2), (3, 1, 3), (7, 1, 7), (8, 2, 4),
                                             (16, 4, 4), (64, 16, 4)])
def test_threads_per_sub_batch(cores, per, slots):
    from fakedet.inference.cpurun import CpuRunner

    r = CpuRunner(None, cores)
    assert (r.per, r.slots) == (per, slots)


def test_threshold_decides_label(tiny_weights, mixed):
    lo = Detector.load(tiny_weights, device="cpu", threshold=0.0, workers=0).predict(mixed)
    hi = Detector.load(tiny_weights, device="cpu", threshold=1.0, workers=0).predict(mixed)
    assert {r.label for r in lo if r.ok} == {"fake"}
    assert all(r.label == "real" for r in hi if r.ok and r.p_fake < 1.0)


def test_streaming_does_not_consume_input_ahead(det):
    consumed = []

    def gen():
        for i in range(100):
            consumed.append(i)
            yield random_image(seed=i)

    it = det.predict_iter(gen(), batch_size=4, workers=0)
    next(it)
    assert len(consumed) <= 12


def test_device_resolution():
    import torch

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DeviceError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda:0")


@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs CUDA")
def test_cuda_matches_cpu(tiny_weights, mixed):
    cpu = Detector.load(tiny_weights, device="cpu", workers=0).predict(mixed)
    gpu = Detector.load(tiny_weights, device="cuda", workers=0).predict(mixed)
    for a, b in zip(cpu, gpu):
        assert a.error == b.error
        if a.ok:
            # float32 on both (PIL decoding on both); cuDNN's TF32 convolutions on recent GPUs
            assert b.p_fake == pytest.approx(a.p_fake, abs=5e-3)


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory):
    """JPEGs of several sizes and kinds, plus inputs the torch path must hand to PIL."""
    from PIL import Image

    d = tmp_path_factory.mktemp("jpegs")
    paths = [str(write_image(d / f"{i}.jpg", size=(70 + 40 * i, 60 + 25 * i), seed=i, quality=90)) for i in range(6)]
    gray = d / "gray.jpg"
    random_image((120, 90)).convert("L").save(gray, quality=90)
    cmyk = d / "cmyk.jpg"
    random_image((120, 90)).convert("CMYK").save(cmyk, quality=90)
    rot = d / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    random_image((160, 80)).save(rot, quality=90, exif=exif.tobytes())
    png = write_image(d / "x.png", "PNG", size=(100, 100))
    (d / "trunc.jpg").write_bytes(image_bytes("JPEG", (300, 300))[:700])
    (d / "small.jpg").write_bytes(image_bytes("JPEG", (20, 100)))
    return paths + [str(gray), str(cmyk), str(rot), str(png), str(d / "trunc.jpg"), str(d / "small.jpg"),
                    str(d / "missing.jpg")]


def test_torch_decoding_scores_every_screenshot_whole_whatever_its_format(tiny_weights, tmp_path):
    """decode="torch" measures no margins on the device: a screenshot's picture is not cut out,
    as a JPEG nor as a PNG (which it hands to pil), so that the format decides nothing."""
    from PIL import Image

    screen = Image.new("RGB", (270, 585), (18, 18, 18))
    screen.paste(random_image((200, 150), seed=8), (35, 200))
    screen.save(tmp_path / "shot.png")
    screen.save(tmp_path / "shot.jpg", quality=95)
    paths = [str(tmp_path / "shot.png"), str(tmp_path / "shot.jpg")]
    tch = Detector.load(tiny_weights, device="cpu", workers=0, decode="torch").predict(paths)
    assert [r.cropped for r in tch] == [None, None] and all(r.ok for r in tch)
    pil = Detector.load(tiny_weights, device="cpu", workers=0).predict(paths)
    assert pil[0].cropped == [35, 200, 235, 350] and pil[1].cropped is not None  # the JPEG's edges ring


def test_a_scan_scores_a_padded_picture_alone_from_cut_share(tiny_weights, monkeypatch):
    """White padding to 4:5 (a fifth of the image) is cut off (CUT_SHARE 0.15): the record says
    where the picture was, and it is not noted as framed; with CUT_SHARE at FRAME_SHARE (the
    scan before) and with crop=False the whole image is scored."""
    from PIL import Image

    from fakedet.data import decode

    img = Image.new("RGB", (300, 375), (255, 255, 255))
    img.paste(random_image((300, 240), seed=11), (0, 67))
    r = Detector.load(tiny_weights, device="cpu", workers=0).predict([img])[0]
    assert r.ok and r.cropped == [0, 67, 300, 307] and not r.framed, r
    monkeypatch.setattr(decode, "CUT_SHARE", decode.FRAME_SHARE)
    before = Detector.load(tiny_weights, device="cpu", workers=0).predict([img])[0]
    assert before.ok and before.cropped is None and not before.framed
    monkeypatch.undo()
    whole = Detector.load(tiny_weights, device="cpu", workers=0, crop=False).predict([img])[0]
    assert whole.ok and whole.cropped is None and whole.p_fake != r.p_fake


def test_torch_decode_path_matches_pil_path(tiny_weights, jpegs):
    pil = Detector.load(tiny_weights, device="cpu", workers=0, decode="pil").predict(jpegs, batch_size=4)
    tch = Detector.load(tiny_weights, device="cpu", workers=0, decode="torch").predict(jpegs, batch_size=4)
    assert [r.path for r in tch] == jpegs
    for a, b in zip(pil, tch):
        assert (a.error is None) == (b.error is None), (a, b)
        if a.ok:
            # different JPEG IDCT and resampling implementations: close, not bit-identical
            assert b.p_fake == pytest.approx(a.p_fake, abs=0.05), a.path
    errors = {r.path.rsplit("/", 1)[1]: r.error for r in tch if not r.ok}
    assert set(errors) == {"trunc.jpg", "small.jpg", "missing.jpg"}
    assert "too small" in errors["small.jpg"] and errors["missing.jpg"] == "file not found"


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest", "bicubic"])
def test_torch_decode_preprocessing_close_to_pil(jpegs, interpolation):
    """The whole-image view and the native patches agree with the PIL path, for every filter the
    torch path takes (PIL's NEAREST is torch's nearest-exact, not its nearest: 52 grey levels
    apart on average)."""
    import torch

    from fakedet.data import decode as imageio
    from fakedet.data.preprocess import PreprocessConfig
    from fakedet.data.sources import Item
    from fakedet.inference.gpudecode import TensorDecoder
    from fakedet.inference.pipeline import Task

    cfg = PreprocessConfig(global_size=64, patch_size=32, num_patches=4, interpolation=interpolation)
    dec = TensorDecoder(Task(cfg), torch.device("cpu"))
    try:
        out = dec.prepare(dec.read([Item(p, source=p) for p in jpegs[:6]]))
    finally:
        dec.close()
    for path, d in zip(jpegs, out):
        view, patches = d.views, d.patches
        assert d.error is None and isinstance(view, torch.Tensor)
        v, p = imageio.preprocess(imageio.load(path, cfg), cfg)
        assert np.abs(view[0].numpy().astype(int) - v.astype(int)).mean() < 3.0, path
        assert np.abs(patches[0].numpy().astype(int) - p.astype(int)).mean() < 2.0


@pytest.mark.parametrize("interpolation", ["lanczos", "box"])
def test_a_checkpoint_torch_cannot_resize_for_is_decoded_by_pil_even_when_torch_is_asked(tmp_path, jpegs,
                                                                                        interpolation):
    """torch has no Lanczos and no box filter as PIL's: such a checkpoint's scores are the PIL
    path's exactly."""
    from conftest import make_tiny_checkpoint

    pre = {"global_size": 64, "patch_size": 32, "num_patches": 4, "min_size": 32, "interpolation": interpolation}
    path = make_tiny_checkpoint(tmp_path / f"{interpolation}.safetensors", preprocess=pre)
    pil = Detector.load(path, device="cpu", workers=0, decode="pil").predict(jpegs[:6])
    tch = Detector.load(path, device="cpu", workers=0, decode="torch").predict(jpegs[:6])
    assert all(r.ok for r in pil) and [r.p_fake for r in tch] == [r.p_fake for r in pil]


@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs CUDA")
def test_cuda_torch_decode_matches_cpu(tiny_weights, jpegs):
    cpu = Detector.load(tiny_weights, device="cpu", workers=0, decode="pil").predict(jpegs)
    gpu = Detector.load(tiny_weights, device="cuda", workers=0, decode="torch").predict(jpegs)
    for a, b in zip(cpu, gpu):
        assert (a.error is None) == (b.error is None)
        if a.ok:
            assert b.p_fake == pytest.approx(a.p_fake, abs=0.05)


@pytest.mark.skipif("__import__('torch').cuda.device_count() < 2", reason="needs two GPUs")
def test_forward_moves_a_batch_from_another_gpu(tiny_weights):
    import torch

    det = Detector.load(tiny_weights, device="cuda", workers=0)  # torch.device("cuda"): no index
    cfg = det.config.preprocess
    views = torch.zeros((2, 3, cfg.global_size, cfg.global_size), dtype=torch.uint8, device="cuda:1")
    patches = torch.zeros((2, cfg.num_patches, 3, cfg.patch_size, cfg.patch_size), dtype=torch.uint8,
                          device="cuda:1")
    assert det.forward(views, patches).shape[0] == 2


def test_one_lazily_opened_image_passed_many_times_with_workers(tiny_weights, tmp_path):
    from PIL import Image

    write_image(tmp_path / "big.jpg", size=(1024, 768))
    det = Detector.load(tiny_weights, device="cpu")
    for _ in range(3):
        im = Image.open(tmp_path / "big.jpg")  # not decoded yet
        res = det.predict([im] * 8, batch_size=1, workers=2)
        assert all(r.ok for r in res), [r.error for r in res]
        assert len({r.p_fake for r in res}) == 1


def test_a_single_input_is_one_image_not_a_sequence(det, tmp_path):
    p = write_image(tmp_path / "a.png", "PNG")
    for one in (str(p), p, p.read_bytes(), random_image(), np.asarray(random_image())):
        res = det.predict(one)
        assert len(res) == 1 and res[0].ok, res


def test_iter_batches_takes_plain_inputs_too(det, tmp_path):
    p = write_image(tmp_path / "a.png", "PNG")
    (batch,) = list(det.iter_batches([str(p), p.read_bytes()]))
    assert [r.ok for r in batch] == [True, True]


def test_premultiplied_alpha_image_is_scored(det):
    im = random_image().convert("LA").convert("La")
    assert det.predict([im])[0].ok


def test_torch_device_objects_and_bad_thresholds(tiny_weights):
    import torch

    assert resolve_device(torch.device("cpu")).type == "cpu"
    assert resolve_device("cpu:0").type == "cpu"
    for bad in (5, -0.1, float("nan")):
        with pytest.raises(ValueError, match="threshold"):
            Detector.load(tiny_weights, device="cpu", threshold=bad)


def test_info_counts_the_parameters_as_trained(tiny_weights):
    from fakedet.model import checkpoint as ckpt

    model, _ = ckpt.load(tiny_weights)
    det = Detector.load(tiny_weights, device="cpu")
    assert det.info()["parameters"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("channels", [None, 4])
def test_an_array_buffer_refilled_by_the_caller_is_scored_as_it_was(det, channels):
    """Pillow wraps grayscale and RGBA arrays without copying, and inputs are read ahead of
    decoding: a generator that refills one buffer must still get each frame's own score."""
    frames = []
    for i in range(6):
        a = np.asarray(random_image((64, 64), seed=i))
        frames.append(a[..., 0].copy() if channels is None else np.dstack([a, np.full((64, 64), 255, np.uint8)]))
    buf = np.empty_like(frames[0])

    def refilled():
        for f in frames:
            buf[...] = f
            yield buf

    want = [r.p_fake for r in det.predict([f.copy() for f in frames])]
    got = [r.p_fake for r in det.predict(refilled(), batch_size=2)]
    assert np.allclose(got, want, atol=1e-6) and len(set(np.round(want, 6))) > 1


def test_a_pil_canvas_redrawn_by_the_caller_is_scored_as_it_was(det):
    """Inputs are read ahead of decoding: one PIL image the caller draws each frame into must
    still get each frame's own score (it got the last frame's, or a half-drawn one)."""
    frames = [random_image((64, 64), seed=i) for i in range(6)]
    canvas = frames[0].copy()

    def redrawn():
        for f in frames:
            canvas.paste(f)
            yield canvas

    want = [r.p_fake for r in det.predict([f.copy() for f in frames])]
    got = [r.p_fake for r in det.predict(redrawn(), batch_size=2)]
    assert np.allclose(got, want, atol=1e-6) and len(set(np.round(want, 6))) > 1


def test_one_path_is_one_input_for_iter_batches_and_load_and_score(det, mixed):
    from fakedet.inference.stream import load_and_score

    (got,) = list(det.iter_batches(mixed[0]))
    assert [r.path for r in got] == [mixed[0]] and got[0].error is None
    stream = load_and_score(mixed[0], weights=det.weights_path, device="cpu", workers=2)
    assert [r.path for batch in stream for r in batch] == [mixed[0]]


def test_overlapping_loads_leave_the_switch_interval_as_it_was(tiny_weights, mixed, monkeypatch):
    """Two threads' load_and_score, the second begun before the first's model loaded and ended
    after it: the interpreter's switch interval is the caller's again at the end (the second
    restored the first's shortened value, for the rest of the process)."""
    import sys
    import threading

    from fakedet.inference import stream as st

    first_in, first_out = threading.Event(), threading.Event()
    calls = []

    class Ordered(st._Loading):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.n = len(calls)
            calls.append(self)
            if self.n == 1:
                first_in.set()

        def result(self):
            r = super().result()
            (first_in if self.n == 0 else first_out).wait(20)
            return r
    monkeypatch.setattr(st, "_Loading", Ordered)
    before = sys.getswitchinterval()
    got = {}

    def scan(n):
        got[n] = [r.path for batch in st.load_and_score(mixed[:3], tiny_weights, device="cpu", workers=2)
                  for r in batch]
        if n == 0:
            first_out.set()
    threads = [threading.Thread(target=scan, args=(0,))]
    threads[0].start()
    while not calls:
        time.sleep(0.01)
    threads.append(threading.Thread(target=scan, args=(1,)))
    threads[1].start()
    for t in threads:
        t.join(60)
    assert got == {0: mixed[:3], 1: mixed[:3]}
    assert sys.getswitchinterval() == before


def test_an_array_of_paths_is_a_sequence_of_inputs(det, mixed):
    """``det.predict(df.path.values)``: a 1-D array of text or objects is many inputs, not one image."""
    want = [(r.path, r.p_fake) for r in det.predict(mixed)]
    for arr in (np.array(mixed), np.array(mixed, dtype=object)):
        results = det.predict(arr)
        assert [(r.path, r.p_fake) for r in results] == want
        assert all(type(r.path) is str for r in results)  # not numpy's str_


@pytest.mark.parametrize("decode", ["pil", "torch"])
def test_bad_single_inputs_get_records_not_exceptions(tiny_weights, decode):
    d = Detector.load(tiny_weights, device="cpu", workers=0, decode=decode)
    assert d.predict("a\0b.jpg")[0].error == "invalid file name (it contains a NUL byte)"
    for bad, kind in ((None, "NoneType"), (5, "int")):
        (r,) = d.predict(bad)
        assert r.error == f"unsupported input type {kind}"


def test_a_torch_tensor_is_one_input_with_a_clear_error(det):
    """A tensor has a mode() method and a size(): it was taken for a PIL image ("'Tensor' object
    has no attribute 'load'"), and, iterable, in a list for its rows."""
    import torch

    t = torch.zeros((64, 64, 3), dtype=torch.uint8)
    (r,) = det.predict(t)
    assert r.error == "unsupported input type Tensor: pass an HxWx3 uint8 array (t.cpu().numpy(), channels last)"
    assert len(det.predict([t, t])) == 2


def test_arrays_other_than_uint8_grey_rgb_or_rgba_get_an_error_record(det):
    """Pillow scored float arrays stretched to their own range, int32 divided by 257, booleans
    and HxWx2 (as grey and alpha): each a different picture than the caller meant."""
    grey = np.asarray(random_image(seed=4)).mean(axis=2)
    bad = [grey.astype(np.float32), grey / 255, (grey * 4).astype(np.int32), grey > 100,
           np.zeros((32, 32, 2), np.uint8), np.zeros((32, 32, 1), np.uint8), np.zeros((3, 32, 32, 3), np.uint8)]
    rgba = np.dstack([np.asarray(random_image((32, 32), seed=5)), np.full((32, 32), 255, np.uint8)])
    results = det.predict(bad + [grey.astype(np.uint8), rgba])
    for r, a in zip(results, bad):
        assert r.error.startswith(f"unsupported array {a.dtype}{list(a.shape)}: expected HxW or HxWx3/HxWx4 uint8")
    assert "(a * 255).round().astype(np.uint8)" in results[0].error and "round" not in results[2].error
    for a16 in (np.zeros((8, 8, 3), np.uint16), np.zeros((8, 8, 3), ">u2")):  # big-endian too
        (r,) = det.predict(a16)
        assert r.error.endswith("(16-bit: (a >> 8).astype(np.uint8))")
    (r,) = det.predict(np.zeros((8, 8, 1), np.uint8))
    assert r.error.endswith("(one channel: a[..., 0])")
    encoded = np.frombuffer(b"\xff\xd8\xff\xe0" + bytes(60), np.uint8)  # as for cv2.imdecode
    (r,) = det.predict([encoded])
    assert r.error.endswith("(a file's encoded bytes? pass them as bytes: a.tobytes())")
    assert all(r.ok for r in results[len(bad):])


def test_a_dict_is_one_input_not_its_keys(det, tmp_path):
    """A dict of images was scored by its keys: {name: path} gave records for the names."""
    p = str(write_image(tmp_path / "a.png", "PNG"))
    (r,) = det.predict({p: p, "b": p})
    assert r.error == "unsupported input type dict: pass a list of inputs, e.g. list(d.values())"
    (r, ok) = det.predict([{p: p}, p])
    assert r.error.startswith("unsupported input type dict") and ok.ok


def test_an_open_file_is_one_input_not_its_lines(det, tmp_path):
    """predict(open(path, "rb")) is one record that says what to pass instead, not one record
    per line of the file's bytes (a PNG has hundreds)."""
    import io

    p = write_image(tmp_path / "a.png", "PNG")
    for f in (open(p, "rb"), io.BytesIO(p.read_bytes()), open(p, "rb", buffering=0)):
        with f:
            (r,) = det.predict(f)
            assert r.error.startswith(f"unsupported input type {type(f).__name__}: pass its path, or its bytes")
            (r, ok) = det.predict([f, str(p)])
            assert "f.read()" in r.error and ok.ok


def test_an_image_whose_file_was_closed_says_so(det, tmp_path):
    from PIL import Image

    path = write_image(tmp_path / "a.jpg")
    with Image.open(path) as im:  # closed on leaving the block, never loaded
        pass
    assert "file closed" in det.predict(im)[0].error


def test_device_given_as_a_number_or_another_type():
    with pytest.raises(DeviceError, match="must be a string"):
        resolve_device(1.5)
    try:  # an int is a CUDA index, as in torch
        assert str(resolve_device(0)) == "cuda:0"
    except DeviceError as exc:
        assert "'cuda:0'" in str(exc)


def test_unusable_weights_fail_the_load_with_a_clear_reason(tiny_weights, tmp_path, monkeypatch):
    from fakedet import CheckpointError
    from fakedet.model import faces as faces

    with pytest.raises(CheckpointError, match="is a folder"):
        Detector.load(tmp_path, device="cpu")
    bad = tmp_path / "mtcnn.safetensors"
    bad.write_text("junk")
    monkeypatch.setenv("FAKEDET_MTCNN_WEIGHTS", str(bad))
    monkeypatch.setattr(faces, "_detector", None)
    with pytest.raises(CheckpointError, match="face detector weights .* cannot be used"):
        Detector.load(tiny_weights, device="cpu", faces=True)


def test_thumbnails_for_reports_keep_the_image_size_and_are_small(tiny_weights, tmp_path):
    import io

    from PIL import Image

    from fakedet.inference.stream import load_and_score

    from conftest import write_image

    big = write_image(tmp_path / "big.png", "PNG", size=(600, 300))
    paths = [str(big), str(tmp_path / "missing.jpg")]
    for workers in (0, 2):
        (ok, bad), = list(load_and_score(paths, tiny_weights, device="cpu", workers=workers, thumbnail=256))
        assert (ok.thumbnail["width"], ok.thumbnail["height"]) == (600, 300)
        assert Image.open(io.BytesIO(ok.thumbnail["jpeg"])).size == (256, 128)
        assert bad.thumbnail is None and "thumbnail" not in ok.to_dict()
    (plain, _), = list(load_and_score(paths, tiny_weights, device="cpu", workers=0))
    assert plain.thumbnail is None


def test_a_score_does_not_depend_on_the_batch_it_was_in(tmp_path):
    """The model's kernels compute differently for other batch sizes (logits up to 4e-6 apart
    on x86-64 for the shipped model); sub-batches are padded to one size, so that -b and -j
    settings give identical records (benchmarks/faults.py checks this on thousands of files)."""
    import torch

    from fakedet.data import decode

    from conftest import random_image

    det = Detector.load(device="cpu", workers=0)  # the shipped model: its kernels showed it
    cfg = det.config.preprocess
    pre = [decode.preprocess(random_image((160, 120), seed=i), cfg) for i in range(11)]
    views = torch.from_numpy(np.stack([v for v, _ in pre]))
    patches = torch.from_numpy(np.stack([p for _, p in pre]))
    ref = det.forward(views, patches)
    for bs in (1, 3, 5):
        got = torch.cat([det.forward(views[i:i + bs], patches[i:i + bs]) for i in range(0, 11, bs)])
        assert torch.equal(got, ref), (bs, (got - ref).abs().max().item())


def test_a_probability_does_not_depend_on_the_scores_computed_with_it(tiny_weights, monkeypatch):
    """torch's vectorised sigmoid rounds some values differently from its scalar path, so a
    p_fake computed over a batch could differ in the last float32 place from the same image
    scored alone (the fault-injection benchmark's -b 1 and -b 64 runs showed it)."""
    import torch

    from fakedet.inference.pipeline import Decoded

    det = Detector.load(tiny_weights, device="cpu", workers=0)
    logits = torch.from_numpy(np.random.default_rng(0).normal(0, 4, 1000).astype(np.float32))
    dummy = Decoded("x", np.zeros((1, 3, 8, 8), np.uint8), np.zeros((1, 1, 3, 4, 4), np.uint8))
    calls = iter([logits] + [logits[i:i + 1] for i in range(len(logits))])
    monkeypatch.setattr(det, "forward", lambda *a, **k: next(calls))
    together = [r.p_fake for r in det.score_decoded([dummy] * len(logits))]
    alone = [det.score_decoded([dummy])[0].p_fake for _ in range(len(logits))]
    assert together == alone


class _InterruptedWait:
    """A future (or event) whose wait fails as Python's does when Ctrl-C or SIGTERM lands while
    ``threading.Condition.wait`` re-acquires its lock."""

    def __init__(self, signal_exc):
        self.signal_exc = signal_exc

    def result(self, *a):
        try:
            raise self.signal_exc
        except KeyboardInterrupt:
            raise RuntimeError("cannot release un-acquired lock")  # noqa: B904 -- implicit context, as CPython's

    wait = result


@pytest.mark.parametrize("make", ["KeyboardInterrupt", "Terminated"])
def test_every_wait_on_a_worker_raises_the_interruption_not_the_lock_error(make, monkeypatch):
    """Not only the scan's stream: eval's and explain's paths wait on decode futures, on the
    model threads and on a loading model too. Each of those waits raises the interruption."""
    import torch

    from fakedet.cli.common import Terminated
    from fakedet.inference import cpurun, pipeline, stream

    def signal_exc():
        return KeyboardInterrupt() if make == "KeyboardInterrupt" else Terminated()

    exc = signal_exc()
    with pytest.raises(type(exc)) as got:
        pipeline._gather([_InterruptedWait(exc)])
    assert got.value is exc

    class Pool:
        def map(self, fn, items):
            yield from ()
            _InterruptedWait(exc_map).result()

    exc_map = signal_exc()
    runner = cpurun.CpuRunner.__new__(cpurun.CpuRunner)
    monkeypatch.setattr(runner, "_start", lambda: Pool(), raising=False)
    with pytest.raises(type(exc_map)) as got:
        runner(torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 3, 4, 4))
    assert got.value is exc_map

    exc_load = signal_exc()
    loading = stream._Loading.__new__(stream._Loading)  # no thread: only its wait is tried
    loading._done, loading._error, loading._value = _InterruptedWait(exc_load), None, None
    with pytest.raises(type(exc_load)) as got:
        loading.result()
    assert got.value is exc_load

    with pytest.raises(RuntimeError, match="a bug"), pipeline.waiting():
        raise RuntimeError("a bug")


def test_a_short_scan_of_one_batch_is_decoded_by_every_thread(tiny_weights, tmp_path, monkeypatch):
    """Nine images, a batch size of 32 and two threads: the one batch is cut in two slices, by
    its own length, not in one slice of up to 16 that a single thread would decode."""
    from fakedet.data.sources import Item
    from fakedet.inference import pipeline as pl
    from fakedet.model.config import PreprocessConfig

    sizes = []
    real = pl.prepare_batch

    def counted(batch, task):
        sizes.append(len(batch))
        return real(batch, task)
    monkeypatch.setattr(pl, "prepare_batch", counted)
    paths = [write_image(tmp_path / f"{i}.jpg", seed=i) for i in range(9)]
    pipe = pl.DecodePipeline(iter([[Item(str(p), source=str(p)) for p in paths]]),
                             pl.Task(PreprocessConfig(), provenance=False), 32, 2)
    decoded = list(pipe.run(lambda d: d))
    assert sorted(sizes) == [4, 5] and len(decoded) == 1


def test_a_pipeline_given_up_stops_decoding_after_the_inputs_in_hand(tmp_path, monkeypatch):
    """Abandoned (a consumer's break, Ctrl-C, a closed reader), the threads stop after the input
    each is decoding instead of finishing their whole batches, which the exit would wait for."""
    import threading

    from fakedet.data.sources import Item
    from fakedet.inference import pipeline as pl
    from fakedet.model.config import PreprocessConfig

    loads = []
    real_load = pl.decode.load

    def slow_load(*a, **kw):
        loads.append(threading.get_ident())
        time.sleep(0.05)
        return real_load(*a, **kw)
    monkeypatch.setattr(pl.decode, "load", slow_load)
    p = write_image(tmp_path / "a.jpg")
    items = [Item(f"{i}", source=str(p)) for i in range(96)]
    pipe = pl.DecodePipeline(pl.chunks(iter(items), 8), pl.Task(PreprocessConfig(), provenance=False), 8, 2)
    run = pipe.run(lambda d: d)
    assert len(next(run)) == 8
    run.close()
    done = len(loads)
    pipe.pool.shutdown(wait=True)  # the threads' end, which close() did not wait for
    assert len(loads) - done <= 2, f"{len(loads) - done} inputs decoded after the pipeline was closed"
    assert len(loads) < 8 + 2 * 8


def test_torch_decode_path_refuses_an_image_narrower_than_a_patch(tmp_path):
    """A checkpoint may allow images smaller than its patches (min_size below patch_size): the
    PIL path refuses them by the patch size, and so must the torch path, one record each,
    instead of failing the whole batch when the patches are stacked."""
    from conftest import make_tiny_checkpoint, tiny_config_dict

    pre = dict(tiny_config_dict()["preprocess"], min_size=16)
    weights = make_tiny_checkpoint(tmp_path / "min16.safetensors", preprocess=pre)
    inputs = [image_bytes("JPEG", (120, 90)), image_bytes("JPEG", (120, 20)), image_bytes("JPEG", (100, 100))]
    for how in ("pil", "torch"):
        res = Detector.load(weights, device="cpu", workers=0, decode=how).predict(inputs)
        assert [r.ok for r in res] == [True, False, True], how
        assert "both sides must be at least 32 px" in res[1].error, how


@pytest.mark.parametrize("kw", [{"batch_size": 0}, {"batch_size": -5}, {"batch_size": 2.5}, {"workers": -1},
                                {"workers": True}])
def test_a_batch_size_or_worker_count_the_cli_refuses_is_refused_by_the_api(tiny_weights, kw):
    with pytest.raises(ValueError, match="must be a whole number"):
        Detector.load(tiny_weights, device="cpu", **kw)
    det = Detector.load(tiny_weights, device="cpu", workers=0)
    with pytest.raises(ValueError, match="must be a whole number"):
        det.predict([random_image()], **kw)
    assert Detector.load(tiny_weights, device="cpu", batch_size=np.int64(4), workers=0).batch_size == 4


@pytest.mark.parametrize("kw", [{"faces": "false"}, {"faces": "no"}, {"provenance": "false"}, {"crop": "0"},
                                {"crop": None}, {"faces": 1}])
def test_a_flag_that_is_no_bool_is_refused(tiny_weights, kw):
    """`Detector.load(faces=os.environ["FAKEDET_FACES"])` with "false" turned face mode on: text
    is true to Python. A flag must be True or False."""
    with pytest.raises(ValueError, match=f"^{next(iter(kw))} must be True or False, got "):
        Detector.load(tiny_weights, device="cpu", **kw)
    assert Detector.load(tiny_weights, device="cpu", workers=0, crop=np.bool_(False), provenance=False).crop is False


def test_info_is_of_json_types_as_the_cli_writes_it(tiny_weights):
    """`Detector.info()` held NaN for undefined figures, which a service's JSON endpoint then sent
    as a bare NaN that JavaScript and Go cannot parse; `fakedet info --json` writes null."""
    import json

    info = Detector.load(ckpt_default(), device="cpu", workers=0).info()
    json.dumps(info, allow_nan=False)
    assert info["evaluation"]["test"]["all"]["uncertain"] is None


def ckpt_default():
    from fakedet.model import checkpoint as ckpt

    return ckpt.default_weights_path()


def test_an_in_memory_input_can_carry_the_callers_name(tiny_weights):
    """An integrator zipped results back to upload IDs by position: api.md now shows how an
    input carries its own name (an Item), and the Result's path is that name."""
    from fakedet.data.sources import Item

    data = image_bytes("JPEG", (120, 90))
    res = Detector.load(tiny_weights, device="cpu", workers=0).predict([Item("upload-123", source=data), data])
    assert [r.path for r in res] == ["upload-123", "<bytes:1>"] and all(r.ok for r in res)
    assert res[0].p_fake == res[1].p_fake


def test_an_empty_weights_path_is_called_empty():
    from fakedet.model.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="^weights path is empty$"):
        Detector.load("", device="cpu")


def test_torch_decoding_without_a_usable_torchvision_fails_the_load_not_each_image(tiny_weights, monkeypatch):
    """A torch/torchvision pair that does not match raised a raw RuntimeError from every predict;
    the load now says what is wrong, and the default decoder does not need torchvision."""
    import sys

    from fakedet.inference.device import DependencyError

    monkeypatch.setitem(sys.modules, "torchvision.io", None)  # its import fails
    with pytest.raises(DependencyError, match="decode='torch' needs torchvision"):
        Detector.load(tiny_weights, device="cpu", decode="torch")
    assert Detector.load(tiny_weights, device="cpu", decode="auto", workers=0).predict([random_image((64, 64))])[0].ok


@pytest.mark.parametrize("kw, words", [
    ({"threshold": "0.5"}, "threshold must be a number"),
    ({"threshold": True}, "threshold must be a number"),
    ({"threshold": float("nan")}, "threshold must be a number"),
])
def test_load_refuses_arguments_it_would_misread_or_ignore(tiny_weights, kw, words):
    """Text for a threshold was compared as a number (True as 1.0)."""
    with pytest.raises(ValueError, match=words):
        Detector.load(tiny_weights, device="cpu", **kw)


def test_predict_iter_refuses_a_bad_batch_size_at_the_call(tiny_weights):
    det = Detector.load(tiny_weights, device="cpu", workers=0)
    with pytest.raises(ValueError, match="batch_size"):
        det.predict_iter([random_image()], batch_size=0)  # not iterated


def test_iter_batches_refuses_a_bad_batch_size_at_the_call_and_thresholds_take_numbers(tiny_weights):
    import torch

    det = Detector.load(tiny_weights, device="cpu", workers=0)
    with pytest.raises(ValueError, match="batch_size"):
        det.iter_batches([random_image()], batch_size=0)  # not iterated
    for t in (np.float32(0.5), np.array(0.5), torch.tensor(0.5), 1):  # numbers of other kinds still are
        assert Detector.load(tiny_weights, device="cpu", workers=0, threshold=t).cutoffs == (float(t), float(t))


def test_one_colour_and_black_and_white_images_get_no_score_on_either_decoding_path(tiny_weights):
    """A blank JPEG is refused with the same reason whether Pillow or torch decodes it; the
    array given to the API is too."""
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (96, 80), (240, 240, 240)).save(buf, "JPEG")
    blank = buf.getvalue()
    for decode in ("pil", "torch"):
        r = Detector.load(tiny_weights, device="cpu", workers=0, decode=decode).predict([blank])[0]
        assert r.p_fake is None and r.error.startswith("one colour only"), (decode, r)
    r = Detector.load(tiny_weights, device="cpu", workers=0).predict([np.zeros((80, 96, 3), np.uint8)])[0]
    assert r.error.startswith("one colour only")
    from conftest import random_image

    buf = io.BytesIO()
    random_image((400, 300)).convert("1").convert("RGB").save(buf, "JPEG", quality=90)
    two = np.full((256, 256), 100, np.uint8)
    two[:, 128:] = 150  # two flat areas meeting on a block edge: a JPEG of exactly two colours
    buf2 = io.BytesIO()
    Image.fromarray(two).save(buf2, "JPEG", quality=95)
    for decode in ("pil", "torch"):
        r = Detector.load(tiny_weights, device="cpu", workers=0, decode=decode).predict([buf2.getvalue()])[0]
        assert r.p_fake is None and r.error.startswith("two colours only"), (decode, r)
    for decode in ("pil", "torch"):  # dithered, sent on as JPEG
        r = Detector.load(tiny_weights, device="cpu", workers=0, decode=decode).predict([buf.getvalue()])[0]
        assert r.p_fake is None and r.error.startswith("black-and-white dots only"), (decode, r)


@pytest.mark.parametrize("decode", ["pil", "torch"])
def test_a_dark_photo_in_a_light_apps_screenshot_is_scored_cut_out(tiny_weights, decode):
    """Black and white is judged on the picture a scan scores: a night photo on a white phone
    screen is almost all black and white with its margins, and was refused (review); it is
    scored cut out, as before, on either decoding path (the torch path hands it to Pillow's)."""
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    night = rng.integers(0, 40, (400, 540, 3)).astype(np.uint8)  # dark, with some texture
    night[160:240, 220:320] = rng.integers(60, 200, (80, 100, 3))  # a lit part: 4 % of it, 1.3 % of the screen
    screen = np.full((1170, 540, 3), 255, np.uint8)
    screen[385:785] = night
    buf = io.BytesIO()
    Image.fromarray(screen).save(buf, "JPEG", quality=95)
    r = Detector.load(tiny_weights, device="cpu", workers=0, decode=decode).predict([buf.getvalue()])[0]
    assert r.error is None and r.p_fake is not None, r
    if decode == "pil":
        assert r.cropped is not None
