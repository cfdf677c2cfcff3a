# The `vane` image: one binary for every role (serve, monitor, features, train, loadtest,
# pipeline, demo). ONNX Runtime is not baked in: at run time the pod's init container runs the
# same setup step as a laptop (`vane-setup-ort`, i.e. scripts/setup-ort.sh: the PyPI wheel
# onnxruntime==1.31.1) into the shared cache the server discovers ($VANE_CACHE_DIR); without
# it, tract serves.
#
#   docker build -t vane:0.1.0 .            # or scripts/build-image.sh (build + smoke test)
#   docker run --rm vane:0.1.0 --help
#   docker run --rm vane:0.1.0 demo         # the whole loop inside the container

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Only what cargo reads (the workspace's members), so that editing docs, deploy files or this
# Dockerfile keeps the compiled layer cached. A new workspace member needs a line here.
COPY Cargo.toml Cargo.lock ./
COPY benches benches
COPY cli cli
COPY exposition exposition
COPY features features
COPY loadtest loadtest
COPY models models
COPY monitor monitor
COPY online-store online-store
COPY protocol protocol
COPY registry-client registry-client
COPY sample-stream sample-stream
COPY server server
COPY stats stats
COPY tabular tabular
COPY testkit testkit
# Without the line tables the release profile keeps for profiling: 60 MB instead of 280 MB;
# symbol names stay, so backtraces still name functions.
RUN CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=debuginfo \
    cargo build --release --locked -p vane-cli \
 && install -D -m 0755 target/release/vane /out/vane

FROM debian:bookworm-slim
# python3 + pip: the ONNX Runtime setup step downloads and unpacks the PyPI wheel;
# libstdc++: ONNX Runtime's library needs it (the vane binary itself does not).
# /var/cache/vane and /home/vane/work are owned by the runtime user so that a fresh named
# volume mounted there is writable (Kubernetes gets the same from the pod's fsGroup).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libstdc++6 python3 python3-pip \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --create-home --shell /usr/sbin/nologin vane \
 && install -d -o 10001 -g 10001 /var/cache/vane /home/vane/work
COPY --from=build /out/vane /usr/local/bin/vane
COPY scripts/setup-ort.sh /usr/local/bin/vane-setup-ort
COPY pipelines/ /etc/vane/pipelines/
COPY deploy/prometheus/vane-rules.yml /etc/vane/vane-rules.yml
ENV VANE_CACHE_DIR=/var/cache/vane \
    VANE_DEMO_PIPELINE=/etc/vane/pipelines/credit-risk.toml \
    VANE_DEMO_RULES=/etc/vane/vane-rules.yml
USER 10001
WORKDIR /home/vane
ENTRYPOINT ["vane"]
CMD ["--help"]
