# syntax=docker/dockerfile:1
# The mimir-aip binary on Debian slim: the orchestrator by default
# (`serve`), and the worker that Kubernetes worker Jobs run
# (`mimir-aip worker`, reading WORKTASK_ID and MIMIR_ORCHESTRATOR_URL).
#
#   docker build -t mimir-aip:0.1.0 \
#     --build-arg MIMIR_GIT_COMMIT="$(git rev-parse --short=12 HEAD)" .
#   docker run -p 8080:8080 -v mimir-data:/var/lib/mimir mimir-aip:0.1.0
#
# It runs as the unprivileged user 10001, as deploy/kubernetes expects.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The commit `mimir_build_info` reports (.git is not in the build context).
ARG MIMIR_GIT_COMMIT=
ENV MIMIR_GIT_COMMIT=${MIMIR_GIT_COMMIT}
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p mimir-aip \
    && cp target/release/mimir-aip /usr/local/bin/mimir-aip

FROM debian:bookworm-slim
# CA certificates for HTTPS to storage backends, Loki, Tempo and the
# Kubernetes API; the user the image runs as.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 mimir \
    && useradd --system --uid 10001 --gid mimir --home-dir /var/lib/mimir \
        --shell /usr/sbin/nologin mimir \
    && install -d -o mimir -g mimir -m 0750 /var/lib/mimir
COPY --from=build /usr/local/bin/mimir-aip /usr/local/bin/mimir-aip
# Numeric, so that Kubernetes can check runAsNonRoot.
USER 10001:10001
# The default data directory (./mimir-data) is below it.
WORKDIR /var/lib/mimir
EXPOSE 8080
ENTRYPOINT ["mimir-aip"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
