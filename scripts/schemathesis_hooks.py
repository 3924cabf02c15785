"""Schemathesis hooks: sign every generated request per SPEC §2.

Loaded by scripts/schemathesis.sh through SCHEMATHESIS_HOOKS. The key comes from the JSON file
named by XYZ_KEY_FILE ({"client_id", "secret", ...}, as `xyzctl keys create` prints it).

The signature covers the exact bytes sent, so it is computed as a `requests` auth handler:
`requests` applies auth after it has prepared the URL and serialized the body, which is the
last point before the bytes go out.
"""

import hashlib
import hmac
import json
import os
import time
import uuid

import requests
import schemathesis

# Hypothesis describes each filter's lambda by parsing its source with `ast.parse`, which on
# CPython 3.11.7 can raise "AST constructor recursion depth mismatch" deep in schemathesis's
# coverage phase (a CPython bug, fixed in 3.11.8). The description is only a repr: use the
# function's name instead.
import sys

import hypothesis.strategies  # noqa: F401  (loads every module that imported the function)


def _plain_description(f):
    return getattr(f, "__name__", "function")


for _name, _module in list(sys.modules.items()):
    if _name.startswith("hypothesis") and hasattr(_module, "get_pretty_function_description"):
        _module.get_pretty_function_description = _plain_description

try:  # urllib3 percent-encodes the request target once more when it sends it.
    from urllib3.util.url import _encode_target
except ImportError:  # pragma: no cover - older or newer urllib3
    def _encode_target(target: str) -> str:
        return target

with open(os.environ.get("XYZ_KEY_FILE", ".local/admin.json"), encoding="utf-8") as f:
    _KEY = json.load(f)
CLIENT_ID = _KEY["client_id"]
SECRET = _KEY["secret"].encode("utf-8")


def _header(headers, name):
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


class SignRequest(requests.auth.AuthBase):
    """Sets X-Client-Id, X-Timestamp and X-Signature on the prepared request."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body
        if body is None:
            body = b""
        elif isinstance(body, str):
            # Send exactly the bytes that are signed.
            body = body.encode("utf-8")
            r.body = body
            r.headers["Content-Length"] = str(len(body))
        elif not isinstance(body, (bytes, bytearray)):
            raise TypeError(f"cannot sign a streamed body ({type(body).__name__})")
        external_id = _header(r.headers, "X-External-Id")
        if isinstance(external_id, bytes):
            external_id = external_id.decode("latin-1")
        if external_id is not None:
            # http.client sends header text as latin-1; the ingress reads the bytes as UTF-8.
            external_id = external_id.encode("latin-1", "replace").decode("utf-8", "replace")
        timestamp = str(int(time.time()))
        string_to_sign = "\n".join(
            [
                r.method.upper(),
                _encode_target(r.path_url),
                timestamp,
                external_id or "",
                hashlib.sha256(bytes(body)).hexdigest(),
            ]
        )
        r.headers["X-Client-Id"] = CLIENT_ID
        r.headers["X-Timestamp"] = timestamp
        r.headers["X-Signature"] = hmac.new(
            SECRET, string_to_sign.encode("utf-8"), hashlib.sha256
        ).hexdigest()
        return r


@schemathesis.hook
def before_call(context, case, kwargs):
    """A POST without an X-External-Id gets a fresh one; every request gets signed."""
    if case.method.upper() == "POST":
        headers = dict(case.headers or {})
        if _header(headers, "X-External-Id") is None:
            headers["X-External-Id"] = f"ST-{uuid.uuid4().hex}"
            case.headers = headers
    kwargs["auth"] = SignRequest()
