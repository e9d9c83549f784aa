"""A Hugging Face Hub on 127.0.0.1, for tests that go through the real `huggingface_hub` and `datasets` code.

It speaks the part of the hub's HTTP API those clients use: repository info
(`/api/models/ID[/revision/REV]`), file trees and paths-info, and file
downloads (`/ID/resolve/REV/PATH`, with HEAD, ETag, X-Repo-Commit and byte
ranges). Repositories are folders the tests write, one per revision:

    hub.add("models", "org/name", {"config.json": b"...", ...}, revision="main")

and it can answer like the real hub does for the awkward cases: a gated
repository (401 with `X-Error-Code: GatedRepo`), an unknown one
(`RepoNotFound`), an unknown revision (`RevisionNotFound`), and a renamed
repository (a bare legacy id redirected to its namespaced one).
`HF_ENDPOINT` must point at it before `huggingface_hub` is imported: the
tests' conftest reserves the port (`reserve_port`) and sets the variable
first thing, and starts the hub on that socket when a test asks for it.
"""

import collections
import hashlib
import json
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def reserve_port() -> socket.socket:
    """A socket bound to a free port on 127.0.0.1 but not listening: connections are refused (like a machine
    with no network) until a `LocalHub` is started on it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class LocalHub:
    def __init__(self, sock: socket.socket | None = None):
        self.repos = {}  # (kind, repo_id) -> {revision: {path: bytes}}
        self.gated, self.redirects, self.requests = set(), {}, []
        self.served = collections.Counter()  # bytes sent per file path
        self.offline = False  # True: drop every connection unanswered, as when the network is down
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self), bind_and_activate=False)
        self.server.socket.close()
        self.server.socket = sock or reserve_port()
        self.server.server_address = self.server.socket.getsockname()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.server.server_activate()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def add(self, kind, repo_id, files: dict, revision="main"):
        """Files as {path: bytes or a local Path}; revision any branch, tag or `refs/pr/N`."""
        contents = {}
        for path, data in files.items():
            contents[path] = Path(data).read_bytes() if isinstance(data, Path) else data
        self.repos.setdefault((kind, repo_id), {})[revision] = contents

    def add_folder(self, kind, repo_id, folder, revision="main", skip=()):
        folder = Path(folder)
        files = {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in skip}
        self.add(kind, repo_id, files, revision)

    def commit(self, kind, repo_id, revision):
        return hashlib.sha1(f"{kind}/{repo_id}@{revision}".encode()).hexdigest()

    def lookup(self, kind, repo_id, revision):
        """(files, commit) or an error code."""
        repo = self.repos.get((kind, repo_id))
        if repo is None:
            return "RepoNotFound"
        revision = revision or "main"
        for name, files in repo.items():
            if revision in (name, self.commit(kind, repo_id, name)):
                return files, self.commit(kind, repo_id, name)
        return "RevisionNotFound"


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _handler(hub: LocalHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_HEAD(self):
            self.respond(head=True)

        def do_GET(self):
            self.respond(head=False)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            self.respond(head=False, body=body)

        # ---- routing ----
        def respond(self, head, body=b""):
            if hub.offline:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            url = urllib.parse.urlsplit(self.path)
            hub.requests.append(f"{self.command} {url.path}")
            parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
            query = urllib.parse.parse_qs(url.query)
            if parts[:1] == ["api"] and len(parts) >= 3 and parts[1] in ("models", "datasets"):
                return self.api(parts[1], parts[2:], query, body)
            kind = "models"
            if parts[:1] == ["datasets"]:
                kind, parts = "datasets", parts[1:]
            if "resolve" in parts:
                at = parts.index("resolve")
                return self.resolve(kind, "/".join(parts[:at]), parts[at + 1 :], head)
            self.error(404, "EntryNotFound", f"no route for {url.path}")

        def repo_parts(self, kind, rest):
            """(repo_id, remainder) where the id is org/name or a bare legacy name."""
            if len(rest) >= 2 and (kind, "/".join(rest[:2])) in hub.repos:
                return "/".join(rest[:2]), rest[2:]
            if (kind, rest[0]) in hub.repos or rest[0] in hub.redirects:
                return rest[0], rest[1:]
            return "/".join(rest[:2]), rest[2:]

        def check(self, kind, repo_id, revision):
            if repo_id in hub.redirects:
                return "redirect"
            if (kind, repo_id) in hub.gated and "authorization" not in {k.lower() for k in self.headers}:
                self.error(401, "GatedRepo", f"Access to model {repo_id} is restricted. You must be authenticated.")
                return None
            found = hub.lookup(kind, repo_id, revision)
            if isinstance(found, str):
                self.error(404, found, f"{found}: {repo_id}@{revision}")
                return None
            return found

        def redirect(self, repo_id):
            target = self.path.replace(f"/{repo_id}", f"/{hub.redirects[repo_id]}", 1)
            self.send_response(307)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def api(self, kind, rest, query, body):
            repo_id, rest = self.repo_parts(kind, rest)
            revision = "main"
            if rest[:1] == ["revision"]:
                revision, rest = "/".join(rest[1:]), []
            elif rest[:1] in (["tree"], ["paths-info"]):
                revision = rest[1]
            found = self.check(kind, repo_id, revision)
            if found == "redirect":
                return self.redirect(repo_id)
            if found is None:
                return
            files, commit = found
            if rest[:1] == ["tree"]:
                prefix = "/".join(rest[2:]).strip("/")
                return self.json([self.entry(p, d) for p, d in sorted(files.items())
                                  if _in_folder(p, prefix, query.get("recursive", ["false"])[0] == "true")]
                                 + [{"type": "directory", "path": d, "oid": "0" * 40}
                                    for d in _folders(files, prefix, query.get("recursive", ["false"])[0] == "true")])
            if rest[:1] == ["paths-info"]:
                form = urllib.parse.parse_qs(body.decode())
                wanted = form.get("paths", [])
                if not wanted and body.startswith(b"{"):
                    wanted = json.loads(body).get("paths", [])
                entries = [self.entry(p, files[p]) for p in wanted if p in files]
                entries += [{"type": "directory", "path": p, "oid": "0" * 40} for p in wanted
                            if p not in files and any(f.startswith(p.rstrip("/") + "/") for f in files)]
                return self.json(entries)
            info = {
                "id": repo_id, "_id": commit[:24], "sha": commit, "private": False, "disabled": False,
                "gated": False, "downloads": 0, "likes": 0, "tags": [], "lastModified": "2026-01-01T00:00:00.000Z",
                "siblings": [{"rfilename": p, "size": len(d), "blobId": _etag(d)[:40]}
                             for p, d in sorted(files.items())],
            }
            if "README.md" in files:
                info["cardData"] = _card_data(files["README.md"])
            return self.json(info)

        def entry(self, path, data):
            return {"type": "file", "path": path, "size": len(data), "oid": _etag(data)[:40]}

        def resolve(self, kind, repo_id, rest, head):
            revision, path = rest[0], "/".join(rest[1:])
            if repo_id in hub.redirects:
                return self.redirect(repo_id)
            found = self.check(kind, repo_id, revision)
            if found is None:
                return
            files, commit = found
            if path not in files:
                return self.error(404, "EntryNotFound", f"{path} not found in {repo_id}@{revision}", commit)
            data = files[path]
            status, start, end = 200, 0, len(data)
            ranged = self.headers.get("Range")
            if ranged and ranged.startswith("bytes="):
                first, _, last = ranged[len("bytes="):].partition("-")
                start = int(first) if first else max(0, len(data) - int(last))
                end = min(len(data), int(last) + 1) if (first and last) else len(data)
                status = 206
            self.send_response(status)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{_etag(data)}"')
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/octet-stream")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
            self.send_header("Content-Length", str(end - start))
            self.end_headers()
            if not head:
                self.wfile.write(data[start:end])
                hub.served[path] += end - start

        def json(self, value, status=200):
            data = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def error(self, status, code, message, commit=None):
            data = json.dumps({"error": message}).encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            if commit:
                self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    return Handler


def _in_folder(path, prefix, recursive):
    if prefix and not path.startswith(prefix + "/"):
        return False
    rest = path[len(prefix) + 1 :] if prefix else path
    return recursive or "/" not in rest


def _folders(files, prefix, recursive):
    folders = set()
    for path in files:
        if prefix and not path.startswith(prefix + "/"):
            continue
        parts = (path[len(prefix) + 1 :] if prefix else path).split("/")[:-1]
        for depth in range(1, len(parts) + 1 if recursive else min(2, len(parts) + 1)):
            folders.add("/".join(([prefix] if prefix else []) + parts[:depth]))
    return sorted(folders)


def _card_data(readme: bytes) -> dict:
    """The YAML front matter of a dataset card (what the hub returns as `cardData`)."""
    text = readme.decode()
    if not text.startswith("---"):
        return {}
    import yaml

    return yaml.safe_load(text.split("---")[1]) or {}
