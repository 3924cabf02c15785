# syntax=docker/dockerfile:1
#
# Image of the XYZ MultiFinance engine: the release binaries `ingress`, `worker` and `xyzctl`
# on a small Debian runtime, run as an unprivileged user. No secret is baked in: every key,
# password and URL comes from the environment at run time (see .env.example).
#
#   docker build -t xyz-multifinance .            # or: docker compose build
#
# The dependency layer is cached: the `skeleton` stage reduces the source tree to the
# workspace's manifests, the lockfile and empty target roots, so the first `cargo build` in
# `builder` (all third-party crates) is only redone when a manifest or Cargo.lock changes.
# This is what cargo-chef does, without installing cargo-chef into the builder on every
# cache miss; and, unlike a list of `COPY crate/Cargo.toml` lines, it picks up a new
# workspace member without an edit here.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS base
WORKDIR /src
ENV CARGO_TERM_COLOR=never CARGO_INCREMENTAL=0

# --- manifests and stub target roots only --------------------------------------------------
FROM base AS skeleton
COPY . .
RUN set -eu; \
    mkdir -p /skeleton; \
    cp Cargo.toml Cargo.lock /skeleton/; \
    if [ -d .cargo ]; then cp -r .cargo /skeleton/; fi; \
    for manifest in $(find . -mindepth 2 -name Cargo.toml -not -path './target/*'); do \
        dir=$(dirname "$manifest"); \
        mkdir -p "/skeleton/$dir/src"; \
        cp "$manifest" "/skeleton/$manifest"; \
        if [ -f "$dir/build.rs" ]; then cp "$dir/build.rs" "/skeleton/$dir/build.rs"; fi; \
        if [ -f "$dir/src/lib.rs" ]; then : > "/skeleton/$dir/src/lib.rs"; fi; \
        for bin in "$dir/src/main.rs" "$dir"/src/bin/*.rs; do \
            [ -f "$bin" ] || continue; \
            mkdir -p "/skeleton/$(dirname "$bin")"; \
            echo 'fn main() {}' > "/skeleton/$bin"; \
        done; \
    done

# --- build ----------------------------------------------------------------------------------
FROM base AS builder
# 1. Every third-party dependency, against the stub sources: cached until a manifest changes.
COPY --from=skeleton /skeleton/ ./
RUN cargo build --release --locked -p ingress -p worker -p xyzctl --bins
# 2. The real sources. migrations/ must be in the build context: `sqlx::migrate!` embeds it
#    into the binaries at compile time. The stubs' build outputs are newer than the copied
#    files' modification times, so every source is touched to make cargo rebuild the
#    workspace crates instead of shipping the stubs.
COPY . .
RUN set -eu; \
    test -d migrations; \
    find . -path ./target -prune -o -name '*.rs' -print0 | xargs -0 touch; \
    cargo build --release --locked -p ingress -p worker -p xyzctl --bins; \
    mkdir -p /out; \
    cp target/release/ingress target/release/worker target/release/xyzctl /out/

# --- runtime --------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates: TLS to the broker or database when a URL asks for it (amqps://, ssl-mode).
# curl: the compose file's health check of the ingress (GET /healthz).
RUN set -eu; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 xyz; \
    useradd --system --uid 10001 --gid xyz --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin xyz; \
    install -d -o 10001 -g 10001 -m 0750 /var/lib/xyz
COPY --from=builder /out/ /usr/local/bin/
USER 10001:10001
# Inside a container the ingress must listen on every interface (its binary default is
# 127.0.0.1:8080, right for a developer machine).
ENV LISTEN_ADDR=0.0.0.0:8080 \
    LOG_FORMAT=json
EXPOSE 8080
LABEL org.opencontainers.image.title="xyz-multifinance" \
      org.opencontainers.image.description="XYZ MultiFinance BNPL engine: ingress, worker, xyzctl" \
      org.opencontainers.image.licenses="MIT"
# /var/lib/xyz: the ingress's spill file of audit rows (AUDIT_SPILL_PATH); a named volume
# mounted there starts with this owner.
# The compose file runs `ingress`, `worker` or `xyzctl migrate` from this one image.
CMD ["ingress"]
