# Multi-stage build: the Rust toolchain only in the build stage; the runtime image holds the
# binary and the static page, and runs as an unprivileged user.

FROM rust:1.95-slim-bookworm AS build
# make builds jemalloc, the binary's allocator (the slim image has a C compiler but no make).
RUN apt-get update && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, in their own layer: a change to the code does not rebuild them. The
# workspace's manifests come with placeholder sources, replaced by the real ones below.
COPY Cargo.toml Cargo.lock ./
# Every member of the workspace needs its manifest here, or cargo cannot load the workspace
# (the test dockerfile::dockerfile_dependency_layer_has_every_member checks the list).
COPY server/Cargo.toml server/Cargo.toml
COPY server/rules/Cargo.toml server/rules/Cargo.toml
COPY server/protocol/Cargo.toml server/protocol/Cargo.toml
COPY server/tools/Cargo.toml server/tools/Cargo.toml
RUN mkdir -p server/src server/rules/src server/protocol/src server/tools/src tests/it \
    && echo 'fn main() {}' > server/src/main.rs \
    && touch server/src/lib.rs server/rules/src/lib.rs server/protocol/src/lib.rs \
        server/tools/src/lib.rs tests/it/main.rs \
    && cargo build --release --locked --bin tictactoe \
    && rm -rf server/src server/rules/src server/protocol/src server/tools/src
COPY server ./server
# The placeholder build left fresher timestamps than the copied sources.
RUN find server -name '*.rs' -exec touch {} + \
    && cargo build --release --locked --bin tictactoe

FROM debian:bookworm-slim
# The system's roots, for Redis over TLS (`rediss://`) to a managed service; a private CA
# comes in through SSL_CERT_FILE.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home ttt
COPY --from=build /src/target/release/tictactoe /usr/local/bin/tictactoe
COPY web /srv/tictactoe/web
ENV LISTEN_ADDR=0.0.0.0:8080 \
    WEB_DIR=/srv/tictactoe/web \
    LOG_FORMAT=json
USER ttt
EXPOSE 8080
# /readyz is 200 only when Redis and pub/sub work; no curl in a slim image, bash can ask.
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tictactoe"]
