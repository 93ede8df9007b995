# Multi-stage build from official images, for machines that can pull them.
# Without a registry, use docker/build-local.sh instead.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p mesh -p services -p loadgen

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/meshctl /src/target/release/bookinfo /src/target/release/loadgen /usr/local/bin/
COPY docker/lab-init.sh /usr/local/bin/meshlab-lab-init
COPY scenarios/ /opt/meshlab/scenarios/
WORKDIR /opt/meshlab
ENV RUST_LOG=info
CMD ["bookinfo", "--help"]
