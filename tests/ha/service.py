"""The real faceanon service (and a mosquitto broker for it) as subprocesses on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ENGINE_PYTHON = Path(os.environ.get("FACEANON_ENGINE_PYTHON", str(ROOT / ".venv" / "bin" / "python")))
SAMPLE_CLIP = ROOT / "addon" / "faceanon" / "samples" / "face-demographics-walking.gif"
START_TIMEOUT = 120.0  # model load and the first anonymized frame, on a busy 2-core box


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def stop_process(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Broker:
    """mosquitto on a free loopback port, so that the service does not start its embedded broker on 1883."""

    def __init__(self, workdir: Path) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto; .ci/run does this)")
        self.port = free_port()
        conf = workdir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        stop_process(self.proc)


class Service:
    """`faceanon serve` with a token and cameras on the bundled clip; restartable on the same port."""

    DEFAULT_TOKEN = "s3cret-test-token"
    DEFAULT_CAMERAS: dict[str, str] = {"walk": str(SAMPLE_CLIP)}  # noqa: RUF012 - read only

    def __init__(self, workdir: Path, broker_port: int) -> None:
        self.workdir = workdir
        self.broker_port = broker_port
        self.token = self.DEFAULT_TOKEN
        self.port = free_port()
        self.rtsp_port = free_port()
        self.config_path = workdir / "faceanon.yaml"
        self.log_path = workdir / "faceanon.log"
        self.proc: subprocess.Popen | None = None
        self.cameras: dict[str, str] = {}

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def is_default(self) -> bool:
        return self.running and self.cameras == self.DEFAULT_CAMERAS and self.token == self.DEFAULT_TOKEN

    def start(self, cameras: dict[str, str] | None = None, token: str | None = None) -> None:
        """Start with `cameras` (name -> url; default: one camera `walk` on the clip) and the token (default:
        DEFAULT_TOKEN), then wait for every camera whose source is the clip to serve an anonymized JPEG."""
        self.cameras = cameras or dict(self.DEFAULT_CAMERAS)
        self.token = token or self.DEFAULT_TOKEN
        config = {
            "mqtt": {"host": "127.0.0.1", "port": self.broker_port, "client_id": f"faceanon-ha-{self.port}"},
            "http": {"host": "127.0.0.1", "port": self.port, "token": self.token},
            "rtsp": {"host": "127.0.0.1", "port": self.rtsp_port},
            "detector": {"threads": 1},
            "log_level": "info",
            "state_dir": str(self.workdir / "state"),  # this installation's own service id, kept over restarts
            "cameras": [{"name": name, "url": url, "detect_fps": 5} for name, url in self.cameras.items()],
        }
        self.config_path.write_text(yaml.safe_dump(config))
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(ENGINE_PYTHON), "-m", "faceanon", "serve", "--config", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        live = [name for name, url in self.cameras.items() if url == str(SAMPLE_CLIP)]
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"faceanon serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if all(self.get(f"/api/{name}/latest.jpg")[0] == 200 for name in live):
                    return
            except OSError:
                pass
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"faceanon serve did not serve {live} within {START_TIMEOUT}s:\n{self.log_tail()}")

    def stop(self) -> None:
        stop_process(self.proc)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    @property
    def service_id(self) -> str:
        """The installation's stable id, as /api/health reports it."""
        return str(json.loads(self.get("/api/health")[1])["id"])

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        request.add_header("Authorization", f"Bearer {token or self.token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def put(self, path: str, body: Any) -> tuple[int, Any]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=json.dumps(body).encode(),
                                         method="PUT", headers={"Authorization": f"Bearer {self.token}",
                                                                "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def camera_status(self) -> dict[str, dict[str, Any]]:
        status, body = self.get("/api/cameras")
        assert status == 200, body
        return {camera["name"]: camera for camera in json.loads(body)["cameras"]}


class TcpForward:
    """127.0.0.1:<port> forwarding to another local port: the same service at a second address (as a reverse proxy
    or a second host name would give it). Threads; closed by `close`."""

    def __init__(self, target_port: int) -> None:
        import socketserver
        import threading

        target = target_port
        # Every open connection: `close` ends them, then joins the threads serving them, so none outlives the test
        # (Home Assistant's harness fails a test that leaves a thread behind; a keep-alive client would keep one).
        self._sockets: set[socket.socket] = set()
        open_sockets = self._sockets

        class Pipe(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                open_sockets.add(self.request)
                upstream = socket.create_connection(("127.0.0.1", target), 5)
                sockets = [self.request, upstream]
                open_sockets.update(sockets)

                def pump(src: socket.socket, dst: socket.socket) -> None:
                    try:
                        while data := src.recv(65536):
                            dst.sendall(data)
                    except OSError:
                        pass
                    finally:
                        for s in sockets:
                            with contextlib.suppress(OSError):
                                s.shutdown(socket.SHUT_RDWR)

                back = threading.Thread(target=pump, args=(upstream, self.request), daemon=True)
                back.start()
                pump(self.request, upstream)
                back.join(5)
                upstream.close()

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = False  # the server keeps its handler threads, and server_close joins them
            block_on_close = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Pipe)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()  # no new connection
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # each pump sees the end and its handler returns
        self.server.server_close()  # joins the handler threads (each joins its second pump)


def retained(broker_port: int, topic: str, wait_s: float = 2.0) -> bytes | None:
    """The retained payload on `topic` at the broker (None: nothing retained), read by a fresh subscriber."""
    import threading

    import paho.mqtt.client as paho

    got: list[bytes] = []
    done = threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"ha-test-{time.time_ns()}")
    client.on_connect = lambda c, *_: c.subscribe(topic, 1)

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        got.append(bytes(msg.payload))
        done.set()

    client.on_message = on_message
    client.connect("127.0.0.1", broker_port, 10)
    client.loop_start()
    done.wait(wait_s)  # a retained message arrives at once; none within the wait means none is retained
    client.loop_stop()
    client.disconnect()
    return got[0] if got else None


class MjpegCamera:
    """An MJPEG camera on 127.0.0.1 serving the sample clip at 5 fps (threads); `stop` ends its stream at once, so
    the service sees the camera go offline."""

    def __init__(self) -> None:
        import http.server
        import io
        import threading

        from PIL import Image, ImageSequence

        frames: list[bytes] = []
        with Image.open(SAMPLE_CLIP) as clip:
            for frame in ImageSequence.Iterator(clip):
                out = io.BytesIO()
                frame.convert("RGB").save(out, "JPEG", quality=90)
                frames.append(out.getvalue())
        stopped = self.stopped = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                while not stopped.wait(0.2):
                    data = frames[i % len(frames)]
                    try:
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%b\r\n"
                                         % (len(data), data))
                    except OSError:
                        return
                    i += 1

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream.mjpeg"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()
