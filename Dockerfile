# syntax=docker/dockerfile:1
# Multi-stage build: compile with the Rust toolchain, run on a slim Debian. docs/deploy.md ("Docker") tells
# what of this is checked on every CI run (the runtime stage is built and run there without a Docker engine).
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

FROM debian:bookworm-slim AS runtime
# ca-certificates: HTTPS to Telegram, Stripe, Zarinpal; tini: PID 1 that passes signals on and reaps;
# postgresql-client (pg_dump 15) and age: `vpnshop backup`. Debian's versions are not pinned: the security
# archive replaces them, so a pin would break the build instead of patching it.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini postgresql-client age \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 vpnshop \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin vpnshop
WORKDIR /app
COPY --from=build /src/target/release/vpnshop /usr/local/bin/vpnshop
COPY deploy/docker/healthcheck /usr/local/bin/vpnshop-healthcheck
COPY config config
ENV VPNSHOP_ENV=production \
    VPNSHOP_CONFIG_DIR=/app/config \
    VPNSHOP__HTTP__ADDR=0.0.0.0:8080 \
    VPNSHOP__METRICS__ADDR=0.0.0.0:9100
# numeric, so runAsNonRoot-style checks can see it is not root
USER 10001:10001
EXPOSE 8080 9100
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s CMD ["/usr/local/bin/vpnshop-healthcheck"]
# SIGTERM drains: listeners close, running jobs get up to 30 s. Give it 45 s (`docker stop -t 45`,
# compose stop_grace_period) before the SIGKILL; Docker's default is 10 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/vpnshop"]
CMD ["serve"]
