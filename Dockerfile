# baton-server in a small image: compiled with the Rust toolchain, run on a distroless base
# (glibc and CA certificates, no shell, no package manager) as an unprivileged user.
#
#   docker build -t baton-server .
#   docker run -p 8080:8080 -v baton-data:/data \
#     -e BATON_PUBLIC_URL=https://auth.example.com \
#     -e BATON_KEY_ENCRYPTION_KEY_FILE=/run/secrets/kek baton-server
#
# Every setting is a BATON_* variable (`docker run baton-server --help`). Health: GET /healthz
# (the process) and /readyz (the database), for the orchestrator's probes.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p baton-server \
 && install -D -m 0755 target/release/baton-server /out/bin/baton-server \
 && mkdir -p /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/bin/baton-server /usr/local/bin/baton-server
# The SQLite directory, owned by the image's unprivileged user (65532).
COPY --from=build --chown=65532:65532 /out/data /data
ENV BATON_BIND=0.0.0.0:8080 \
    BATON_DATABASE_URL=sqlite:///data/baton.db \
    BATON_LOG_FORMAT=json
VOLUME /data
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/baton-server"]
