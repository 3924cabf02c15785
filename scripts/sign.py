#!/usr/bin/env python3
"""Sends one signed request (SPEC §2). Usage: sign.py METHOD PATH [BODY] with CLIENT_ID,
CLIENT_SECRET, BASE_URL and optionally EXTERNAL_ID / PREFER in the environment."""
import hashlib, hmac, json, os, sys, time, urllib.request, urllib.error

method, path = sys.argv[1], sys.argv[2]
body = sys.argv[3].encode() if len(sys.argv) > 3 else b""
ts = str(int(time.time()))
ext = os.environ.get("EXTERNAL_ID", "")
sts = "\n".join([method, path, ts, ext, hashlib.sha256(body).hexdigest()])
sig = hmac.new(os.environ["CLIENT_SECRET"].encode(), sts.encode(), hashlib.sha256).hexdigest()
req = urllib.request.Request(os.environ.get("BASE_URL", "http://127.0.0.1:8080") + path, data=body or None, method=method)
req.add_header("X-Client-Id", os.environ["CLIENT_ID"])
req.add_header("X-Timestamp", ts)
req.add_header("X-Signature", sig)
if ext:
    req.add_header("X-External-Id", ext)
if body:
    req.add_header("Content-Type", "application/json")
if os.environ.get("PREFER"):
    req.add_header("Prefer", os.environ["PREFER"])
try:
    with urllib.request.urlopen(req) as r:
        print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
