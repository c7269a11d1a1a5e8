"""Weights that download: a loopback HTTP server started by the test serves a tiny state dict."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from errors import MissingFileError
from lightning_modules import build_backbone
from lightning_modules.backbones import hub_weights_path
from lightning_modules.weights import url_cache_path

ROOT = Path(__file__).resolve().parent.parent


class WeightsServer:
    """``http://127.0.0.1:<port>/<name>`` serving ``files``; counts the GET requests per name.

    ``truncate``: send the full Content-Length but close the connection after half the body.
    ``delay``: seconds to wait halfway through the body (lets two clients overlap).
    """

    def __init__(self, files: dict[str, bytes], truncate: bool = False, delay: float = 0.0):
        self.files, self.truncate, self.delay = files, truncate, delay
        self.requests: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                server.requests[name] = server.requests.get(name, 0) + 1
                body = server.files.get(name)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                half = len(body) // 2
                self.wfile.write(body[:half])
                self.wfile.flush()
                time.sleep(server.delay)
                if server.truncate:
                    self.close_connection = True
                    return
                self.wfile.write(body[half:])

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.02}, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/{name}"

    def __enter__(self) -> WeightsServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _tiny_weights(num_classes: int = 4) -> tuple[dict[str, torch.Tensor], bytes]:
    torch.manual_seed(3)
    state = build_backbone("tiny_vgg", num_classes).state_dict()
    buf = io.BytesIO()
    torch.save(state, buf)
    return state, buf.getvalue()


@pytest.fixture
def hub_dir(tmp_path: Path) -> Iterator[Path]:
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        yield tmp_path / "hub" / "checkpoints"
    finally:
        torch.hub.set_dir(old)


def test_url_downloads_once_then_loads_from_cache(hub_dir: Path) -> None:
    state, body = _tiny_weights()
    with WeightsServer({"tiny.pth": body}) as server:
        url = server.url("tiny.pth")
        net = build_backbone("tiny_vgg", 4, pretrained=url)
        assert server.requests == {"tiny.pth": 1}
        assert url_cache_path(url) == hub_dir / "tiny.pth" and (hub_dir / "tiny.pth").is_file()
        for k, v in net.state_dict().items():
            assert torch.equal(v, state[k]), k
        again = build_backbone("tiny_vgg", 4, pretrained=url)
        assert server.requests == {"tiny.pth": 1}  # the second call read the cache
        assert torch.equal(again.features[0].weight, state["features.0.weight"])
    assert sorted(p.name for p in hub_dir.iterdir() if not p.name.endswith(".lock")) == [
        "tiny.pth"]


def test_interrupted_download_leaves_no_file(hub_dir: Path) -> None:
    _, body = _tiny_weights()
    with WeightsServer({"cut.pth": body}, truncate=True) as server:
        url = server.url("cut.pth")
        with pytest.raises(MissingFileError) as err:
            build_backbone("tiny_vgg", 4, pretrained=url)
    msg = str(err.value)
    assert "\n" not in msg and url in msg and str(hub_dir / "cut.pth") in msg
    assert [p.name for p in hub_dir.iterdir() if not p.name.endswith(".lock")] == []


def test_offline_names_what_url_and_cache_path(hub_dir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path, url = hub_weights_path("alexnet", "IMAGENET1K_V1")
    with WeightsServer({}) as server, pytest.raises(MissingFileError) as err:
        build_backbone("tiny_vgg", 4, pretrained=server.url("x.pth"))
    assert server.requests == {}  # offline: not even tried
    with pytest.raises(MissingFileError) as named:
        build_backbone("alexnet", 10, pretrained="IMAGENET1K_V1")
    msg = str(named.value)
    assert "\n" not in msg and "'IMAGENET1K_V1'" in msg and url in msg and str(path) in msg
    assert "HF_HUB_OFFLINE" in msg and str(hub_dir / "x.pth") in str(err.value)


def test_server_error_is_one_line(hub_dir: Path) -> None:
    with WeightsServer({}) as server, pytest.raises(MissingFileError,
                                                    match=r"404.*copy it to") as err:
        build_backbone("tiny_vgg", 4, pretrained=server.url("missing.pth"))
    assert "\n" not in str(err.value)
    assert not (hub_dir / "missing.pth").exists()


CHILD = """
import sys, torch
from lightning_modules import build_backbone
net = build_backbone("tiny_vgg", 4, pretrained=sys.argv[1])
print(float(net.features[0].weight.sum()))
"""


@pytest.mark.slow
def test_two_processes_download_once(tmp_path: Path) -> None:
    """Two processes started together (as torchrun starts ranks) share one download."""
    state, body = _tiny_weights()
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch"), "PYTHONPATH": str(ROOT)}
    with WeightsServer({"slow.pth": body}, delay=1.0) as server:
        procs = [subprocess.Popen([sys.executable, "-c", CHILD, server.url("slow.pth")], env=env,
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
        assert server.requests == {"slow.pth": 1}
    expected = float(state["features.0.weight"].sum())
    assert [float(o[0].split()[-1]) for o in outs] == pytest.approx([expected, expected])
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    assert sorted(p.name for p in cache.iterdir()) == ["slow.pth", "slow.pth.lock"]


@pytest.mark.slow
def test_ddp_fit_downloads_once(tmp_path: Path) -> None:
    """train.py with 2 gloo processes and a URL as pretrained: one request at the server."""
    from tests.processes import run_cli

    _, body = _tiny_weights(num_classes=10)
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch"), "PYTHONPATH": str(ROOT)}
    with WeightsServer({"ddp.pth": body}, delay=0.5) as server:
        cmd = [sys.executable, "train.py", "fit", "--config", "configs/synthetic.yaml",
               "--model.backbone", "tiny_vgg", "--model.pretrained", server.url("ddp.pth"),
               "--data.image_size", "32", "--data.batch_size", "4", "--data.num_train", "16",
               "--data.num_test", "4", "--data.num_workers", "0", "--trainer.max_steps", "1",
               "--trainer.limit_val_batches", "0", "--trainer.strategy", "ddp",
               "--trainer.devices", "2", "--trainer.accelerator", "cpu",
               "--trainer.enable_progress_bar", "false",
               "--trainer.default_root_dir", str(tmp_path / "E")]
        proc = run_cli(cmd, cwd=ROOT, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert server.requests == {"ddp.pth": 1}
    assert (tmp_path / "torch" / "hub" / "checkpoints" / "ddp.pth").is_file()
