"""The LF studio: a local web page for the fast LF loop over the cached artifacts.

    epoxy-beam studio --cache_dir DIR --labeling_functions FILE [--port P] [--export_dir D]

Serves (Flask, on ``127.0.0.1`` by default) a page that edits the LF file (a textarea, plus quick
forms for :func:`transforms.keyword_lf` / :func:`transforms.regex_lf` lines), and after each
save shows the LF table, dev metrics with their change, the label distribution and documents
whose label changed (:mod:`pipelines.studio_views`); per LF its votes, the documents it gained
by extension (with the neighbour they came from) and its errors on dev rows; a text search;
and an export (labels Parquet, the LF file, report.html).

* The LF file on disk is the source of truth: a save writes it, and the page's poll picks up
  edits made in any other editor (its modification time). Each change re-applies only the LFs
  whose fingerprint changed (:meth:`pipelines.iterate.Session.sync`) and runs the fast relabel.
* Security: LF code runs only when the user saves (or edits the file they named); requests
  need the random token of the printed URL (``X-Studio-Token`` header for the API); requests
  from another origin (``Origin`` / ``Sec-Fetch-Site``) or for another host are rejected; the
  page sets every document text with ``textContent``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hmac
import logging
import os
import re
import secrets
import sys
import threading
import time
from typing import Any, Sequence

from flask import Flask, abort, jsonify, request, send_from_directory
from werkzeug.serving import make_server

from pipelines import rendering, studio_views
from pipelines.iterate import Session
from pipelines.relabel_result import RelabelResult
from transforms.labeling_functions import load_lf_set

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "studio_static")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_IMPORT = "from transforms import keyword_lf, regex_lf\n"
_LFS = re.compile(r"^LFS\s*=", re.MULTILINE)


class Studio:
    """The session, the LF file it follows and the last two results (for deltas)."""

    def __init__(self, session: Session, lf_path: str, export_dir: str, result: RelabelResult | None = None):
        """Follows ``lf_path`` with ``session`` (``result``: its last full relabel, else one is run)."""
        self.session = session
        self.lf_path = lf_path
        self.export_dir = export_dir
        self.lock = threading.Lock()
        self.version = 0
        self.error = ""
        self.applied: list[str] = []
        self.removed: list[str] = []
        self.previous: RelabelResult | None = None
        self.result = result if result is not None else session.relabel(refit="full")
        self._mtime = os.stat(lf_path).st_mtime_ns

    def read_source(self) -> str:
        """The LF file's text."""
        with open(self.lf_path, encoding="utf-8") as handle:
            return handle.read()

    def save(self, source: str) -> None:
        """Writes the LF file and re-applies what changed."""
        with open(self.lf_path, "w", encoding="utf-8") as handle:
            handle.write(source)
        self.reload()

    def refresh(self) -> None:
        """Reloads when the file changed on disk since the last load (edits in another editor)."""
        if os.stat(self.lf_path).st_mtime_ns != self._mtime:
            self.reload()

    def reload(self) -> None:
        """Loads the LF file, applies the changed LFs, relabels (fast); a bad file sets ``error``."""
        self._mtime = os.stat(self.lf_path).st_mtime_ns
        try:
            lfs = load_lf_set(self.lf_path).lfs
        except ValueError as error:
            self.error = str(error)
            self.version += 1
            return
        self.error = ""
        self.applied, self.removed = self.session.sync(lfs)
        if self.applied or self.removed:
            try:
                self.previous, self.result = self.result, self.session.relabel()
            except ValueError as error:  # e.g. an LF set the labeler cannot fit
                self.error = str(error)
        self.version += 1

    def state(self) -> dict[str, Any]:
        """Everything the page shows after a change."""
        view = studio_views.overview(self.session, self.result, self.previous)
        return {
            "status": rendering.studio_status(view, self.applied, self.removed),
            "version": self.version,
            "error": self.error,
            "source": self.read_source(),
            "path": self.lf_path,
            "applied": self.applied,
            "removed": self.removed,
            "classes": [studio_views.class_name(self.session, c) for c in range(self.session.config.cardinality)],
            **view,
        }


def quick_lf_line(form: dict[str, Any]) -> str:
    """One ``keyword_lf`` / ``regex_lf`` line from the page's quick form (values as literals).

    Raises:
        ValueError: naming the bad field.
    """
    name, kind = str(form.get("name", "")), form.get("kind")
    if not _NAME.match(name):
        raise ValueError(f"LF name {name!r} is not a Python identifier: use letters, digits and _")
    try:
        label = int(form.get("label"))
    except (TypeError, ValueError):
        raise ValueError(f"label {form.get('label')!r} is not a class number") from None
    if kind == "keyword":
        words = [w.strip() for w in str(form.get("words", "")).split(",") if w.strip()]
        if not words:
            raise ValueError("give at least one keyword (comma-separated)")
        return f"{name} = keyword_lf({name!r}, {words!r}, {label})\n"
    if kind == "regex":
        pattern = str(form.get("pattern", ""))
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"pattern {pattern!r} is not a regular expression: {error}") from None
        return f"{name} = regex_lf({name!r}, {pattern!r}, {label})\n"
    raise ValueError(f"kind {kind!r} is unknown: use 'keyword' or 'regex'")


def with_quick_lf(source: str, line: str) -> str:
    r"""``source`` plus ``line`` (after the builders' import when the file lacks it); when the
    file fixes its LFs in an ``LFS`` sequence, the new LF is appended to it.

    >>> print(with_quick_lf("LFS = (a, b)\n", "c = keyword_lf('c', ['x'], 1)\n"), end="")
    LFS = (a, b)
    from transforms import keyword_lf, regex_lf
    c = keyword_lf('c', ['x'], 1)
    LFS = [*LFS, c]
    """
    source = source.rstrip("\n") + "\n"
    if _IMPORT.strip() not in source:
        source += _IMPORT
    source += line
    if _LFS.search(source):
        source += f"LFS = [*LFS, {line.split(' = ', 1)[0]}]\n"
    return source


LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def _hostname(host: str) -> str:
    """``Host`` header without its port (``[::1]:8765`` → ``[::1]``)."""
    return host.split("]")[0] + "]" if host.startswith("[") else host.split(":")[0]


def check_request(token: str, hosts: Sequence[str]) -> None:
    """Aborts with 403 unless the request is for one of ``hosts`` (no DNS rebinding), from no
    other origin, and carries ``token`` (static assets excepted: they hold no data)."""
    if _hostname(request.host) not in hosts:
        abort(403, f"host {request.host!r} is not one this studio serves ({list(hosts)})")
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        abort(403, f"cross-origin request from {origin!r} rejected")
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        abort(403, "cross-site request rejected")
    if request.path.startswith("/static/"):
        return
    given = request.headers.get("X-Studio-Token") or request.args.get("token", "")
    if not hmac.compare_digest(given.encode(), token.encode()):
        abort(403, "missing or wrong token: open the URL the studio printed")


def security_headers(response: Any) -> Any:
    """No script or style from elsewhere, no sniffing, no referrer (the URL holds the token)."""
    response.headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self' data:"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def create_app(studio: Studio, token: str, hosts: Sequence[str] = LOCAL_HOSTS) -> Flask:
    """The Flask app over ``studio`` (every request passes :func:`check_request`)."""
    app = Flask(__name__, static_folder=None)
    app.before_request(lambda: check_request(token, hosts))
    app.after_request(security_headers)

    @app.get("/")
    def index() -> Any:
        return send_from_directory(STATIC_DIR, "index.html")

    @app.get("/static/<path:name>")
    def static_file(name: str) -> Any:
        return send_from_directory(STATIC_DIR, name)

    @app.get("/api/state")
    def state() -> Any:
        with studio.lock:
            studio.refresh()
            if request.args.get("since") == str(studio.version):
                return jsonify({"version": studio.version, "unchanged": True})
            return jsonify(studio.state())

    @app.post("/api/source")
    def save_source() -> Any:
        with studio.lock:
            studio.save(str(request.get_json(force=True).get("source", "")))
            return jsonify(studio.state())

    @app.post("/api/quick_lf")
    def quick_lf() -> Any:
        with studio.lock:
            try:
                line = quick_lf_line(request.get_json(force=True))
            except ValueError as error:
                return jsonify({"error": f"quick LF: {error}"}), 400
            studio.save(with_quick_lf(studio.read_source(), line))
            return jsonify(studio.state())

    @app.get("/api/lf/<name>")
    def lf(name: str) -> Any:
        with studio.lock:
            try:
                return jsonify(studio_views.lf_details(studio.session, studio.result, name))
            except KeyError:
                return jsonify({"error": f"no LF named {name!r}"}), 404

    @app.get("/api/search")
    def search() -> Any:
        with studio.lock:
            return jsonify(studio_views.search(studio.session, studio.result, request.args.get("q", "")))

    @app.post("/api/export")
    def export() -> Any:
        with studio.lock:
            paths = studio_views.export(studio.session, studio.result, studio.lf_path, studio.export_dir)
            return jsonify({"written": paths})

    return app


@dataclasses.dataclass
class Server:
    """A running studio: its URL (with the token) and a way to stop it."""

    url: str
    studio: Studio
    _server: Any
    _thread: threading.Thread

    def stop(self) -> None:
        """Shuts the server down and waits for its thread."""
        self._server.shutdown()
        self._thread.join()


def serve(studio: Studio, host: str = "127.0.0.1", port: int = 0) -> Server:
    """Starts the studio in a background thread (``port=0``: a free port)."""
    token = secrets.token_urlsafe(24)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per poll
    hosts = LOCAL_HOSTS if host in ("127.0.0.1", "localhost", "::1") else (*LOCAL_HOSTS, host)
    server = make_server(host, port, create_app(studio, token, hosts), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="epoxy-beam-studio", daemon=True)
    thread.start()
    return Server(f"http://{host}:{server.server_port}/?token={token}", studio, server, thread)


def main(argv: Sequence[str] | None = None) -> int:
    """``epoxy-beam studio``: serve the LF studio until interrupted."""
    parser = argparse.ArgumentParser(prog="epoxy-beam studio", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache_dir", required=True, help="The pipeline's --cache_dir.")
    parser.add_argument("--labeling_functions", required=True, help="The LF file to edit (the only code run).")
    parser.add_argument("--port", type=int, default=8765, help="Port on 127.0.0.1 (0 = any free port).")
    parser.add_argument("--host", default="127.0.0.1", help="Interface to bind (default: local only).")
    parser.add_argument("--export_dir", default="studio_export", help="Where Export writes its files.")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.labeling_functions):
        print(f"epoxy-beam studio: error: --labeling_functions {args.labeling_functions!r} is not a "
              "file: the studio edits a local .py file", file=sys.stderr)  # fmt: skip
        return 2
    start = time.perf_counter()
    try:
        session = Session.open(args.cache_dir, args.labeling_functions)
    except ValueError as error:
        print(f"epoxy-beam studio: error: {error}", file=sys.stderr)
        return 2
    studio = Studio(session, args.labeling_functions, args.export_dir)
    server = serve(studio, args.host, args.port)
    print(f"loaded {len(session.ids)} documents, {len(session.lfs)} LFs in {time.perf_counter() - start:.1f}s")
    print(f"LF studio: {server.url}  (Ctrl-C stops it)", flush=True)
    try:
        server._thread.join()
    except KeyboardInterrupt:
        server.stop()
    return 0
