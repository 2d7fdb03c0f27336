# syntax=docker/dockerfile:1
# Multi-stage build: compile with the Rust toolchain, run on a slim Debian with only CA certificates.
FROM rust:1.95-bookworm AS build
WORKDIR /src
ENV SQLX_OFFLINE=true
COPY Cargo.toml Cargo.lock build.rs ./
COPY vendor vendor
COPY .sqlx .sqlx
COPY migrations migrations
COPY locales locales
COPY src src
COPY tests tests
RUN cargo build --release --locked --bin vpnshop

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /app --shell /usr/sbin/nologin vpnshop
WORKDIR /app
COPY --from=build /src/target/release/vpnshop /usr/local/bin/vpnshop
COPY config config
COPY deploy deploy
ENV VPNSHOP_ENV=production \
    VPNSHOP__HTTP__ADDR=0.0.0.0:8080 \
    VPNSHOP__METRICS__ADDR=0.0.0.0:9100
USER vpnshop
EXPOSE 8080 9100
HEALTHCHECK --interval=15s --timeout=3s CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
ENTRYPOINT ["/usr/bin/tini", "--", "vpnshop"]
CMD ["serve"]
