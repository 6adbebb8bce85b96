"""`promptpulse deadletter list|show|replay|purge`: the requests the store refused on their data.

``replay`` sends a letter's body to a running processor's OTLP/HTTP receiver again (after an upgrade that fixes
what made it fail): answered 200 it is stored (or refused again, and back in the dead letters), 400 it is invalid
under today's checks; either way the letter is removed only when the receiver took it (200), unless
``--drop-rejected``.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request

from .cli import register
from .deadletter import DeadLetters, Letter

_CTYPE = {"protobuf": "application/x-protobuf", "json": "application/json"}


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("list", "show", "replay", "purge"))
    p.add_argument("ids", nargs="*", help="letter ids (replay/purge: default all)")
    p.add_argument("--config")
    p.add_argument("--data-dir", dest="data_dir")
    p.add_argument("--spool-dir", dest="spool_dir")
    p.add_argument("--endpoint", help="OTLP/HTTP receiver (default http://<host>:<otlp_http_port>)")
    p.add_argument("--auth-token", dest="auth_token")
    p.add_argument("--drop-rejected", action="store_true", help="replay: also remove letters answered 400")
    p.add_argument("--json", action="store_true", help="list/show: JSON lines")


def _post(endpoint: str, letter: Letter, body: bytes, token: str | None) -> tuple[int, str]:
    req = urllib.request.Request(endpoint.rstrip("/") + letter.path, data=body, method="POST",
                                 headers={"Content-Type": _CTYPE[letter.kind]})
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, ""
    except urllib.error.HTTPError as e:
        return e.code, e.read()[:300].decode("utf-8", "replace")


def _run(args: argparse.Namespace) -> int:
    from .config import load

    s = load({k: getattr(args, k) for k in ("data_dir", "spool_dir", "auth_token")}, config_file=args.config)
    dl = DeadLetters(s.deadletter_path)
    try:
        letters = [dl.get(i) for i in args.ids] if args.ids else dl.list()
    except KeyError as e:
        print(f"promptpulse deadletter: {e.args[0]}", file=sys.stderr)
        return 2
    if args.action == "list":
        for x in letters:
            if args.json:
                print(json.dumps(x.__dict__))
            else:
                print(f"{x.id}  {x.time}  {x.path:<11} {x.kind:<8} {x.spans:>6} item(s)  {x.error[:100]}")
        print(f"({len(letters)} letter(s), {sum(x.spans for x in letters)} item(s) in {dl.path})", file=sys.stderr)
        return 0
    if args.action == "show":
        for x in letters:
            print(json.dumps(x.__dict__, indent=2))
            if x.kind == "json":
                print(dl.payload(x)[6:].decode("utf-8", "replace"))
        return 0
    if args.action == "purge":
        for x in letters:
            dl.remove(x)
        print(f"removed {len(letters)} letter(s)")
        return 0
    endpoint = args.endpoint or f"http://{s.host}:{s.otlp_http_port}"
    failed = 0
    for x in letters:
        if x.kind not in _CTYPE:
            print(f"{x.id}: spooled rows, not a request body; cannot be replayed", file=sys.stderr)
            failed += 1
            continue
        try:
            code, msg = _post(endpoint, x, dl.payload(x)[6:], s.auth_token)
        except (urllib.error.URLError, ConnectionError) as e:
            print(f"promptpulse deadletter: cannot reach {endpoint}: {e}", file=sys.stderr)
            return 2
        if code == 200 or (code == 400 and args.drop_rejected):
            dl.remove(x)
        print(f"{x.id}: {code} {msg}".rstrip())
        failed += code != 200
    return 1 if failed else 0


register("deadletter", "list, show, replay or purge the requests the store refused on their data", _args, _run)
