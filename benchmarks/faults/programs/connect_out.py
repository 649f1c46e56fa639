"""Hostile node: reach host listeners: unix sockets by path and by abstract name, TCP on the loopback."""
import json
import socket

params = json.load(open("params.json"))
for path in params.get("unix", []):
    for name in (path, "\0" + path):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2)
            s.connect(name)
            s.sendall(params["token"].encode())
            print("CONNECTED", repr(name))
        except OSError as e:
            print(f"refused {name!r}: {e}")
for port in params.get("tcp", []):
    for host in ("127.0.0.1", "localhost"):
        try:
            socket.create_connection((host, port), timeout=2).sendall(params["token"].encode())
            print("CONNECTED", host, port)
        except OSError as e:
            print(f"refused {host}:{port}: {e}")
