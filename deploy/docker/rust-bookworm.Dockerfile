# A stand-in for the official `rust:1.95-bookworm` image, for machines that reach Debian's
# mirror and static.rust-lang.org but not Docker Hub (scripts/build-image.sh --offline-bases).
# Same layout as the official image: rustup in /usr/local, the 1.95.0 toolchain, gcc for the
# crates that build C.
FROM debian:bookworm-slim
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential ca-certificates curl git pkg-config \
 && rm -rf /var/lib/apt/lists/* \
 && curl -sSf -o /tmp/rustup-init https://static.rust-lang.org/rustup/dist/x86_64-unknown-linux-gnu/rustup-init \
 && chmod +x /tmp/rustup-init \
 && /tmp/rustup-init -y --no-modify-path --profile minimal --default-toolchain 1.95.0 \
 && rm /tmp/rustup-init \
 && rustc --version && cargo --version
