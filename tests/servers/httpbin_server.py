"""Serves httpbin over HTTPS with Werkzeug's threaded server on 127.0.0.1.

Usage: python httpbin_server.py CERT.pem KEY.pem
Prints the port it listens on (a free one, chosen by the OS) on the first line
of stdout, then serves until it is killed.
"""
import sys

from httpbin import app
from werkzeug.serving import make_server

cert, key = sys.argv[1], sys.argv[2]
server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=(cert, key))
print(server.server_port, flush=True)
server.serve_forever()
