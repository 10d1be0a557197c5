# Multi-stage build: the Rust toolchain only in the build stage; the runtime image holds the
# binary and the static page, and runs as an unprivileged user.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, in their own layer: a change to the server's code does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p server/src && echo 'fn main() {}' > server/src/main.rs && touch server/src/lib.rs \
    && cargo build --release --locked --bin tictactoe \
    && rm -rf server
COPY server ./server
# The placeholder build left fresher timestamps than the copied sources.
RUN touch server/src/main.rs server/src/lib.rs \
    && cargo build --release --locked --bin tictactoe

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home ttt
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
