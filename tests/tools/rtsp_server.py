#!/usr/bin/python3
"""A real RTSP server for tests: GStreamer's gst-rtsp-server through Debian's python3-gi.

Usage: /usr/bin/python3 tests/tools/rtsp_server.py PORT CLIP.mp4
Serves rtsp://127.0.0.1:PORT/cam (the clip's H.264 track, not re-encoded, played in real time, looped per client
by starting every client at frame 0). Prints "READY <url>" once listening. Runs under Debian's interpreter because
python3-gi is not installed in the project's virtual environments.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
port, clip = sys.argv[1], sys.argv[2]
launch = f"( filesrc location={clip} ! qtdemux ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )"
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(launch)
factory.set_shared(False)
server.get_mount_points().add_factory("/cam", factory)
if server.attach(None) == 0:
    sys.exit(f"cannot listen on 127.0.0.1:{port}")
print(f"READY rtsp://127.0.0.1:{server.get_bound_port()}/cam", flush=True)
GLib.MainLoop().run()
