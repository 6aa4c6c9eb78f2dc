# syntax=docker/dockerfile:1
#
# TeleBot container image.
#   docker build -t telebot .
#   docker run --rm -p 8080:8080 telebot        # demo mode: SQLite, simulator, demo chain
#
# The binary needs no other file at run time: migrations, locales and the default
# configuration are compiled in. Configure it with TELEBOT__<SECTION>__<KEY> variables
# or mount a file and pass `--config PATH`.

# ---- build -------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /src

# The whole source tree (see .dockerignore): sqlx::migrate! and include_str! read
# migrations/, locales/ and config.toml at compile time, and Cargo.toml names benches/.
COPY . .

# Cache mounts keep the crates.io registry and compiled dependencies between builds
# (BuildKit, the default builder of current Docker). target/ lives in the cache, so the
# binary is copied out of it within the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin telebot \
    && install -m 0755 target/release/telebot /usr/local/bin/telebot

# ---- run ---------------------------------------------------------------------------------
FROM debian:bookworm-slim

# ca-certificates: TLS to api.telegram.org and TronGrid (rustls reads the system roots).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# Unprivileged user; the uid/gid match the Helm chart's securityContext (10001).
RUN groupadd --system --gid 10001 telebot \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin telebot \
    && mkdir -p /app/data \
    && chown -R 10001:10001 /app

COPY --from=builder /usr/local/bin/telebot /usr/local/bin/telebot

# With the default database.url (sqlite://data/telebot.db) the database lives in
# /app/data: mount a volume there to keep it across containers.
WORKDIR /app
USER 10001:10001

# Listen on all interfaces inside the container (the built-in default is 127.0.0.1:8080).
ENV TELEBOT__HTTP__ADDR=0.0.0.0:8080
EXPOSE 8080

# No HEALTHCHECK: the slim image has no curl or wget to call /healthz with. Use the
# orchestrator's HTTP probes instead (GET /healthz for liveness, GET /readyz for readiness).

# SIGTERM (docker stop) triggers a graceful shutdown; the process exits 0.
ENTRYPOINT ["telebot"]
CMD ["serve"]
