"""Serves a WSGI app over HTTPS with Werkzeug's threaded server on 127.0.0.1.

Usage: python werkzeug_server.py APP CERT.pem KEY.pem
APP is `httpbin` (the HTTP request & response service) or `multipart`, which
answers with what Werkzeug's form parser (Flask's `request.form` and
`request.files`) read from the request. Prints the port it listens on (a free
one, chosen by the OS) on the first line of stdout, then serves until killed.
"""
import hashlib
import json
import sys

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


def digest(data):
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@Request.application
def multipart(request):
    form = [[name, value] for name, value in request.form.items(multi=True)]
    files = [
        {"name": name, "filename": f.filename, "content_type": f.content_type, **digest(f.read())}
        for name, f in request.files.items(multi=True)
    ]
    body = {"content_type": request.content_type, "form": form, "files": files}
    if not request.mimetype.startswith("multipart/"):
        body["raw"] = digest(request.get_data())
    return Response(json.dumps(body), content_type="application/json")


def app_named(name):
    if name == "httpbin":
        from httpbin import app
        return app
    return multipart


name, cert, key = sys.argv[1], sys.argv[2], sys.argv[3]
server = make_server("127.0.0.1", 0, app_named(name), threaded=True, ssl_context=(cert, key))
print(server.server_port, flush=True)
server.serve_forever()
