"""The fast CPU path of a segmentation model: onnxruntime on an ONNX export of the network.

On a CPU, onnxruntime runs the U-Nets chipqa uses in half the time torch takes, or
less (the pretrained efficientnet-b4 model on 2 cores: the whole scoring step 1.5 to
2.6 times faster, within 3 % of onnxruntime's own time on the shipped graph; see
``bench/pretrained_speed.py``). :func:`onnx_runner` exports the
network (the ``nn.Module`` only: normalisation and padding stay in
:class:`~chipqa.predictors.adapter.InputAdapter`, in torch) with ``torch.onnx.export``
in float32, for any batch size, height and width, once per set of weights, and caches
the export in chipqa's cache folder (:func:`cache_dir`) under a hash of the weights.

The export holds the weights' hash and the torch model's logits for a fixed check
input. Each time a cached export is opened, onnxruntime computes the check input and
must agree with those logits to within :data:`ATOL`, so that an export that is
damaged, or that another model's weights made, is noticed and built again; the first
check compares onnxruntime against torch itself.

Nothing here is required: where onnxruntime is not installed, the model cannot be
exported, or the cache folder cannot take the export (read-only, full), the model runs
in torch as before, with a warning that says why.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import io
import os
import re
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from chipqa.io.atomic import atomic_open

EXPORT_VERSION = 1
"""Bumped whenever the export recipe changes: older exports are then made anew."""

OPSET = 17
INPUT, OUTPUT = "input", "logits"

CHECK_SHAPE = (2, 64, 96)
"""Batch, height and width of the check input (two chips, sides multiples of 32)."""

ATOL = 1e-3
"""Largest difference allowed between onnxruntime's and torch's logits on the check
input (measured: about 1e-5, the order of float32 sums; logits of standard deviation ~4)."""

_META_WEIGHTS, _META_CHECK = "chipqa.weights", "chipqa.check_logits"
_warned: set[str] = set()
_warn_lock = threading.Lock()


def cache_dir() -> Path:
    """chipqa's cache folder: ``$CHIPQA_CACHE_DIR``, else ``$XDG_CACHE_HOME/chipqa``,
    else ``~/.cache/chipqa``."""
    env = os.environ.get("CHIPQA_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "chipqa"


def default_threads() -> int:
    """onnxruntime's intra-op threads: torch's thread count (every core this process may
    use, unless ``OMP_NUM_THREADS`` or ``torch.set_num_threads`` says otherwise)."""
    return max(1, torch.get_num_threads())


def weights_digest(model: nn.Module, in_channels: int) -> str:
    """A hash of the model's weights, its structure and the export recipe."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"chipqa-onnx {EXPORT_VERSION} opset {OPSET} in {in_channels}\n".encode())
    h.update(f"{type(model).__module__}.{type(model).__qualname__}\n{model!r}\n".encode())
    for name, t in model.state_dict().items():
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name} {t.dtype} {tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _warn_once(key: str, message: str) -> None:
    with _warn_lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(message, stacklevel=3)


def _check_input(in_channels: int) -> np.ndarray:
    batch, h, w = CHECK_SHAPE
    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch, in_channels, h, w, generator=gen).numpy()


def export_model(model: nn.Module, in_channels: int, digest: str) -> bytes:
    """The network as a serialised float32 ONNX model with dynamic batch, height and
    width, holding ``digest`` and torch's logits for the check input."""
    import onnx

    model = model.eval()
    check = _check_input(in_channels)
    dims = {0: "batch", 2: "height", 3: "width"}
    buf = io.BytesIO()
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on deprecation and folding
        kwargs = {}
        if "dynamo" in inspect.signature(torch.onnx.export).parameters:
            kwargs["dynamo"] = False  # the TorchScript exporter: no onnxscript needed
        example = torch.zeros(1, in_channels, 64, 64)
        torch.onnx.export(
            model,
            (example,),
            buf,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: dims, OUTPUT: dims},
            opset_version=OPSET,
            do_constant_folding=True,
            **kwargs,
        )
        reference = model(torch.from_numpy(check)).float().numpy()
    proto = onnx.load_from_string(buf.getvalue())
    for key, value in (
        (_META_WEIGHTS, digest),
        (_META_CHECK, base64.b64encode(np.ascontiguousarray(reference).tobytes()).decode()),
    ):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


class OnnxRunner:
    """The exported network in an onnxruntime session: ``runner(x)`` takes the model's
    float32 input ``(B, C, H, W)`` on the CPU and returns its logits as a torch tensor,
    like ``model(x)``. Safe to call from several threads."""

    def __init__(self, session, path: Path, threads: int):
        self.session = session
        self.path = path
        self.threads = threads

    def __call__(self, x: Tensor) -> Tensor:
        arr = x.detach().to(torch.float32).contiguous().numpy()
        (out,) = self.session.run([OUTPUT], {INPUT: arr})
        return torch.from_numpy(out)

    def __repr__(self) -> str:
        return f"OnnxRunner({str(self.path)!r}, threads={self.threads})"


def _session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Threads that spin while waiting for work take the cores from the reading threads,
    # the torch steps around the network, a GUI and other programs. Measured on 2 cores:
    # spinning made a scoring run 6 % faster on idle cores and 17 % slower on busy ones
    # (onnxruntime alone: 16 % faster, 30 to 40 % slower).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class StaleExport(Exception):
    """A cached export that cannot be used; the message says why."""


def open_export(path: Path, digest: str, in_channels: int, threads: int) -> OnnxRunner:
    """Open a cached export and check it.

    Raises:
        StaleExport: the file is damaged, another model's, or computes something else
            (the message says which).
    """
    try:
        session = _session(path, threads)
        meta = session.get_modelmeta().custom_metadata_map
        if meta.get(_META_WEIGHTS) != digest:
            raise StaleExport("made from other weights")
        reference = np.frombuffer(base64.b64decode(meta[_META_CHECK]), np.float32)
        runner = OnnxRunner(session, path, threads)
        got = runner(torch.from_numpy(_check_input(in_channels))).numpy()
        err = float(np.abs(got.reshape(-1) - reference).max())
    except StaleExport:
        raise
    except Exception as exc:  # onnxruntime's errors (protobuf, graph), a cut reference, …
        raise StaleExport(f"damaged ({type(exc).__name__}: {str(exc)[:200]})") from exc
    if not err <= ATOL:  # NaN too
        raise StaleExport(f"wrong (its logits differ from the model's by {err:.3g})")
    return runner


def onnx_runner(
    model: nn.Module,
    in_channels: int,
    *,
    name: str = "model",
    folder: str | Path | None = None,
    threads: int | None = None,
) -> OnnxRunner | None:
    """The network of ``model`` (on the CPU, in eval mode) in onnxruntime, exported
    once and cached in ``folder`` (default: :func:`cache_dir`), or None with a warning
    where that is impossible (the model then runs in torch).

    The first call for a set of weights exports the network (efficientnet-b4: a few
    seconds on 2 idle cores) and writes a file of about the weights' size
    (``{name}-{hash}.onnx``); later calls, in any process, open that file and check it.
    A cached export found damaged or made from other weights is built again.
    """
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        _warn_once(
            "import",
            f"onnxruntime is not installed ({exc}); the model runs in torch on the CPU "
            "(about twice as slow). For the fast CPU path: pip install onnxruntime onnx",
        )
        return None
    folder = cache_dir() if folder is None else Path(folder)
    threads = default_threads() if threads is None else threads
    digest = weights_digest(model, in_channels)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "model"
    path = folder / f"{slug}-{digest}.onnx"
    if path.is_file():
        try:
            return open_export(path, digest, in_channels, threads)
        except StaleExport as why:
            warnings.warn(f"the cached export {path} is {why}; building it again", stacklevel=2)
    try:
        data = export_model(model, in_channels, digest)
    except Exception as exc:  # an operator the exporter lacks, a model it cannot trace
        problem = f"it cannot be exported to ONNX ({type(exc).__name__}: {str(exc)[:300]})"
    else:
        try:
            with atomic_open(path, "wb") as f:
                f.write(data)
        except OSError as exc:  # read-only, full, not a folder
            _warn_once(
                f"write {folder}",
                f"the cache folder {folder} cannot take the onnxruntime export of the model "
                f"({type(exc).__name__}: {exc}); the model runs in torch on the CPU (about "
                "twice as slow). Make the folder writable, free some space, or set "
                "CHIPQA_CACHE_DIR to a writable folder",
            )
            return None
        try:
            return open_export(path, digest, in_channels, threads)
        except StaleExport as why:
            problem = f"its onnxruntime export is {why}"
            path.unlink(missing_ok=True)
    warnings.warn(
        f"the model {name!r}: {problem}; it runs in torch on the CPU (about twice as slow)",
        stacklevel=2,
    )
    return None
