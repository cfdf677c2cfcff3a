# syntax=docker/dockerfile:1
# The `vane` image: one binary for every role (serve, monitor, features, train, loadtest,
# pipeline). ONNX Runtime is not baked in: at run time the pod's init container runs the same
# setup step as a laptop (`vane-setup-ort`, i.e. scripts/setup-ort.sh: the PyPI wheel
# onnxruntime==1.31.1) into a shared cache the server discovers; without it, tract serves.
#
#   docker build -t vane:0.1.0 .
#   docker run --rm vane:0.1.0 --help

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p vane-cli \
 && install -D -m 0755 target/release/vane /out/vane

FROM debian:bookworm-slim
# python3 + pip: the ONNX Runtime setup step downloads and unpacks the PyPI wheel;
# libstdc++: ONNX Runtime's library needs it (the vane binary itself does not).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libstdc++6 python3 python3-pip \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --create-home --shell /usr/sbin/nologin vane
COPY --from=build /out/vane /usr/local/bin/vane
COPY scripts/setup-ort.sh /usr/local/bin/vane-setup-ort
COPY pipelines/ /etc/vane/pipelines/
COPY deploy/prometheus/vane-rules.yml /etc/vane/vane-rules.yml
ENV VANE_CACHE_DIR=/var/cache/vane
USER 10001
ENTRYPOINT ["vane"]
CMD ["--help"]
