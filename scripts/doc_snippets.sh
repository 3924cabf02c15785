#!/usr/bin/env bash
# Runs every code snippet of the API guide (docs/api.md) against the running engine, so that
# none of them rots: a snippet the guide shows is a snippet that worked on the last test run.
#
#   bash scripts/run.sh               # the engine on :8080, and the demo keys in .local/
#   bash scripts/doc_snippets.sh      # XYZ_URL (default http://127.0.0.1:8080), DOC=docs/api.md
#
# The convention, in the guide: a fenced block whose language is bash, python, javascript or go
# is a snippet, and the line right before it (blank lines aside) is an HTML comment that names
# it and says what it must print:
#
#   <!-- snippet: NAME; expect: 202 ACCEPTED -->          the HTTP status and message_action
#   <!-- snippet: NAME; expect: 200 SUCCESS APPROVED -->  ... and message_data.status
#   <!-- snippet: NAME; expect-output: TEXT -->           a line of the output equal to TEXT
#   <!-- snippet: NAME; library -->                       not run alone: code other snippets
#                                                         of its language start with
# and, after the name, optionally `with: LIBRARY` (that library's code first) and `key: admin`
# (the snippet runs with the demo admin key instead of the merchant key).
#
# A snippet that talks to the engine prints the HTTP status alone on a line and the response
# body (the envelope, one line of JSON) on another; the last of each is what is checked. Blocks
# in other languages (http, json, text) are examples, not snippets. A bash, python, javascript
# or go block without its comment fails the run: every snippet runs, or the guide says nothing.
#
# Each snippet runs as its own program (bash, python3, node, `go run`), with these variables,
# which the guide's snippets read:
#   XYZ_URL        the engine (nginx)
#   XYZ_CLIENT_ID  the demo merchant key's id (.local/merchant.json, made by scripts/run.sh)
#   XYZ_SECRET     its secret
#   XYZ_USER_ID    a user this script creates first with the demo admin key (fresh limits)
# Before any snippet, it also checks that the guide names every message_action of
# shared/src/envelope.rs in its error table and has a section for every endpoint of
# the committed openapi.json. Exits non-zero when any check or snippet fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

DOC="${DOC:-docs/api.md}"
STATE="${ENGINE_STATE:-.local}"
export XYZ_URL="${XYZ_URL:-${BASE_URL:-http://127.0.0.1:8080}}"

# What the snippets need, the project's way: Debian's packages (Go is Debian's golang-go).
ensure_packages curl openssl golang-go
command -v node >/dev/null 2>&1 || ensure_packages nodejs
command -v python3 >/dev/null 2>&1 || ensure_packages python3
say "snippet runtimes: $(bash --version | head -1 | cut -d' ' -f1-4), $(python3 --version), node $(node --version), $(go version | cut -d' ' -f3), $(openssl version | cut -d' ' -f1-2)"
# Go's build cache: one per checkout, kept between runs (the first `go run` compiles net/http).
export GOCACHE="${GOCACHE:-$PWD/$STATE/go-build}"
export GOPATH="${GOPATH:-$PWD/$STATE/go}"
# Standard library only: nothing is downloaded, and a snippet importing a module fails.
export GOTOOLCHAIN=local GOPROXY=off

key_field() { python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
for f in "$STATE/admin.json" "$STATE/merchant.json"; do
  [ -f "$f" ] || { say "$f is missing: start the engine with scripts/run.sh first"; exit 1; }
done
export XYZ_CLIENT_ID="${XYZ_CLIENT_ID:-$(key_field "$STATE/merchant.json" client_id)}"
export XYZ_SECRET="${XYZ_SECRET:-$(key_field "$STATE/merchant.json" secret)}"
ADMIN_ID=$(key_field "$STATE/admin.json" client_id)
ADMIN_SECRET=$(key_field "$STATE/admin.json" secret)

# The guide lists every message_action and every endpoint the code has: a new one the guide
# does not name fails here (the names from shared/src/envelope.rs and openapi.json, which a
# test keeps equal to the served document).
python3 - "$DOC" shared/src/envelope.rs openapi.json <<'PY'
import json, re, sys

doc, envelope, document = (open(p, encoding="utf-8").read() for p in sys.argv[1:4])
actions = set(re.findall(r'=> "([A-Z_]+)",', envelope))
table = set(re.findall(r"^\| [0-9]{3} \| `([A-Z_]+)`", doc, re.M))
table |= {a for row in re.findall(r"^\| [0-9]{3} \| (.*?) \|", doc, re.M) for a in re.findall(r"`([A-Z_]+)`", row)}
missing = sorted(actions - table)
names = re.compile(r"\{[a-z_]+\}")
endpoints = [
    (method.upper(), names.sub("{}", path))
    for path, item in json.loads(document)["paths"].items()
    for method in item
    if method in ("get", "put", "post", "delete", "patch")
]
public = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/{}", "/console", "/console/{}"}
headings = set(re.findall(r"^### ([A-Z]+ \S+)", doc, re.M))
headings = {names.sub("{}", h) for h in headings}
undocumented = [f"{m} {p}" for m, p in endpoints if p not in public and f"{m} {p}" not in headings]
for a in missing:
    print(f"error: {sys.argv[1]}: message_action {a} is not in the table of section 3", file=sys.stderr)
for e in undocumented:
    print(f"error: {sys.argv[1]}: endpoint {e} has no '### {e}' section", file=sys.stderr)
if not actions or not endpoints:
    print("error: could not read the actions or the routes from the code", file=sys.stderr)
    sys.exit(1)
sys.exit(1 if missing or undocumented else 0)
PY
say "$DOC names every message_action and every endpoint of the code"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Extracts the snippets into $WORK, one directory each, and a manifest (tab-separated):
# file, kind of program, name, expectation kind, expectation, key, line in the guide.
python3 - "$DOC" "$WORK" <<'PY'
import os, re, sys

doc, work = sys.argv[1], sys.argv[2]
RUNNABLE = {"bash": "sh", "sh": "sh", "python": "py", "javascript": "mjs", "js": "mjs", "go": "go"}
MARK = re.compile(r"^<!--\s*snippet:\s*(.*?)\s*-->$")
lines = open(doc, encoding="utf-8").read().split("\n")
snippets, errors = [], []
i, mark, mark_line = 0, None, -1
while i < len(lines):
    line = lines[i]
    m = MARK.match(line.strip())
    if m:
        fields = [f.strip() for f in m.group(1).split(";")]
        mark = {"name": fields[0]}
        for f in fields[1:]:
            k, _, v = f.partition(":")
            mark[k.strip()] = v.strip()
        mark_line = i
        i += 1
        continue
    fence = re.match(r"^(\s*)(```+|~~~+)\s*([A-Za-z0-9_+-]*)", line)
    if not fence:
        if line.strip():
            mark = None
        i += 1
        continue
    indent, ticks, lang = fence.group(1), fence.group(2), fence.group(3).lower()
    j = i + 1
    while j < len(lines) and not lines[j].strip().startswith(ticks):
        j += 1
    code = "\n".join(l[len(indent):] if l.startswith(indent) else l for l in lines[i + 1:j]) + "\n"
    where = f"{doc}:{mark_line + 1}"
    if lang in RUNNABLE:
        if mark is None:
            errors.append(f"{doc}:{i + 1}: a ```{lang} block without a <!-- snippet: NAME; expect: ... --> line before it")
        else:
            kinds = [k for k in ("expect", "expect-output", "library") if k in mark]
            if len(kinds) != 1:
                errors.append(f"{where}: snippet {mark['name']} needs exactly one of expect:, expect-output:, library")
            unknown = set(mark) - {"name", "expect", "expect-output", "library", "with", "key"}
            if unknown:
                errors.append(f"{where}: snippet {mark['name']}: unknown field(s) {', '.join(sorted(unknown))}")
            if mark.get("key", "merchant") not in ("merchant", "admin"):
                errors.append(f"{where}: snippet {mark['name']}: key must be merchant or admin")
            if any(s["name"] == mark["name"] for s in snippets):
                errors.append(f"{where}: snippet name {mark['name']} used twice")
            snippets.append(dict(mark, lang=RUNNABLE[lang], code=code, line=i + 1,
                                 kind=kinds[0] if kinds else "expect"))
    elif mark is not None:
        errors.append(f"{where}: snippet {mark['name']} is followed by a ```{lang or 'plain'} block, which is not run")
    mark = None
    i = j + 1

by_name = {s["name"]: s for s in snippets}
used = set()
manifest = []
for s in snippets:
    code = s["code"]
    for dep in filter(None, (d.strip() for d in s.get("with", "").split(","))):
        d = by_name.get(dep)
        if d is None or "library" not in d or d["lang"] != s["lang"]:
            errors.append(f"{doc}:{s['line']}: snippet {s['name']}: with: {dep} is not a library snippet in the same language")
            continue
        used.add(dep)
        code = d["code"] + "\n" + code
    if "library" in s:
        continue
    path = os.path.join(work, f"{len(manifest):02d}-{s['name']}", f"main.{s['lang']}")
    os.makedirs(os.path.dirname(path))
    with open(path, "w", encoding="utf-8") as f:
        f.write(code)
    manifest.append("\t".join([path, s["lang"], s["name"], s["kind"], s.get(s["kind"], ""),
                               s.get("key", "merchant"), str(s["line"])]))
for s in snippets:
    if "library" in s and s["name"] not in used:
        errors.append(f"{doc}:{s['line']}: library snippet {s['name']} is used by no snippet (so it never runs)")
if not manifest:
    errors.append(f"{doc}: no snippets found")
with open(os.path.join(work, "manifest.tsv"), "w", encoding="utf-8") as f:
    f.write("".join(m + "\n" for m in manifest))
for e in errors:
    print("error: " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY

say "waiting for $XYZ_URL/readyz"
wait_ready "$XYZ_URL" || { say "the engine at $XYZ_URL is not ready"; exit 1; }

# A user of its own for this run: the snippets spend its limits, never the demo user's.
say "creating the user the snippets buy for (demo admin key)"
NIK="3201$(date +%s%N | tail -c 13)"
USER_JSON=$(CLIENT_ID=$ADMIN_ID CLIENT_SECRET=$ADMIN_SECRET BASE_URL=$XYZ_URL \
  "target/${ENGINE_PROFILE:-release}/xyzctl" call --external-id "doc-snippets-$NIK" POST /create-user "{\"nik\":\"$NIK\",\"full_name\":\"Siti Rahayu\",\"legal_name\":\"Siti Rahayu\",\"tempat_lahir\":\"Surabaya\",\"tanggal_lahir\":\"1994-08-17\",\"gaji\":15000000,\"foto_ktp\":\"https://cdn.example.com/ktp.jpg\",\"foto_selfie\":\"https://cdn.example.com/selfie.jpg\",\"limit_one_month\":1000000,\"limit_two_month\":2000000,\"limit_three_month\":5000000,\"limit_sixth\":10000000}" || true)
# xyzctl call prints the status on its first line, then the body.
XYZ_USER_ID=$(printf '%s' "$USER_JSON" | python3 -c 'import json,sys
status, body = sys.stdin.read().split("\n", 1)
print(json.loads(body)["message_data"]["user_id"] if status.strip() == "201" else "")' || true)
[ -n "$XYZ_USER_ID" ] || { say "could not create the user: $USER_JSON"; exit 1; }
export XYZ_USER_ID
say "user $XYZ_USER_ID, merchant key $XYZ_CLIENT_ID, engine $XYZ_URL"

# Whether a snippet's output is what its comment expects; prints why not.
check() { # output-file kind expectation
  python3 - "$@" <<'PY'
import json, re, sys

out_file, kind, want = sys.argv[1:4]
lines = open(out_file, encoding="utf-8", errors="replace").read().splitlines()
if kind == "expect-output":
    if want in (l.strip() for l in lines):
        sys.exit(0)
    print(f"no output line is {want!r}")
    sys.exit(1)
statuses = [l.strip() for l in lines if re.fullmatch(r"\s*[1-5][0-9]{2}\s*", l)]
envelopes = []
for l in lines:
    l = l.strip()
    if l.startswith("{"):
        try:
            v = json.loads(l)
        except ValueError:
            continue
        if isinstance(v, dict) and "message_action" in v:
            envelopes.append(v)
if not statuses or not envelopes:
    print("expected a line with the HTTP status and a line with the envelope (one line of JSON)")
    sys.exit(1)
status, env = statuses[-1], envelopes[-1]
parts = want.split()
got = [status, env.get("message_action")]
if len(parts) > 2:
    data = env.get("message_data")
    got.append(data.get("status") if isinstance(data, dict) else None)
if [str(g) for g in got] != parts:
    print(f"expected {' '.join(parts)}, got {' '.join(str(g) for g in got)}")
    sys.exit(1)
PY
}

passed=0
failed=0
failures=()
while IFS=$'\t' read -r file ext name kind want key line; do
  dir=$(dirname "$file")
  out="$dir/output.txt"
  case "$ext" in
    sh) cmd=(bash "$file") ;;
    py) cmd=(python3 "$file") ;;
    mjs) cmd=(node "$file") ;;
    go) cmd=(go run "$file") ;;
  esac
  started=$(date +%s%N)
  rc=0
  why=""
  if [ "$key" = admin ]; then
    creds=(XYZ_CLIENT_ID="$ADMIN_ID" XYZ_SECRET="$ADMIN_SECRET")
  else
    creds=(XYZ_CLIENT_ID="$XYZ_CLIENT_ID" XYZ_SECRET="$XYZ_SECRET")
  fi
  (cd "$dir" && env "${creds[@]}" timeout 180 "${cmd[@]}") >"$out" 2>&1 || rc=$?
  ms=$(( ($(date +%s%N) - started) / 1000000 ))
  if [ "$rc" -eq 0 ] && why=$(check "$out" "$kind" "$want"); then
    passed=$((passed + 1))
    printf 'PASS  %-22s %-5s %-28s %6d ms  (%s:%s)\n' "$name" "$ext" "$want" "$ms" "$DOC" "$line"
    sed 's/^/      | /' "$out" | cut -c1-200 | tail -n 4
  else
    failed=$((failed + 1))
    failures+=("$name")
    [ "$rc" -ne 0 ] && why="exited with status $rc${why:+; $why}"
    printf 'FAIL  %-22s %-5s %-28s %6d ms  (%s:%s): %s\n' "$name" "$ext" "$want" "$ms" "$DOC" "$line" "${why:-}"
    sed 's/^/      | /' "$out"
  fi
done < "$WORK/manifest.tsv"

echo "snippets: $passed passed, $failed failed"
if [ "$failed" -gt 0 ]; then
  say "snippets of $DOC that failed: ${failures[*]}"
  exit 1
fi
say "every snippet of $DOC ran against $XYZ_URL as the guide says"
