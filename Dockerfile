# syntax=docker/dockerfile:1
# `ylambda serve`: the direct server (y-websocket, y-webrtc signaling, /healthz, /readyz) as a
# container for ECS / Fargate or any other container runtime. README, "Direct mode on ECS /
# Fargate". Build: `docker build -t ylambda .` (BuildKit, the default since Docker 23: the cache
# mounts below need it). The image is for the build machine's architecture.

# Build stage. Pinned to an exact release so a rebuild gets the same compiler: the AWS SDK crates
# in Cargo.lock need rustc 1.94.1 or newer (their rust-version), and 1.95.0 is the toolchain
# the project's machines and CI build with. Bookworm, because the binary links against glibc and must run on
# the Debian 12 glibc (2.36) of the distroless image below; a newer Debian could link symbols
# that image lacks. Nothing is installed: aws-lc-sys builds with the image's gcc (no cmake on
# x86-64 and aarch64) and there are no git dependencies.
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep downloaded crates and compiled dependencies between builds (the release
# profile's fat LTO still relinks everything). The target dir is a cache, not part of the layer,
# so the binary is copied out of it in the same step. --locked: exactly the versions in
# Cargo.lock (the ones CI tests), or fail if it is out of date.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ylambda \
    && install -D -m 0755 target/release/ylambda /out/ylambda

# Run stage: distroless "cc" is glibc, libgcc and CA certificates, and no shell or package
# manager. Pinned to Debian 12 (the tag moves only with security updates of that release). The
# `nonroot` variant already runs as uid 65532 in /home/nonroot; both are said again below so they
# are visible here.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ylambda /ylambda
# The nonroot user's home, which it owns: with YLAMBDA_BACKEND=embedded the default data dir
# (./.ylambda, snapshots) is created here. To keep snapshots across containers mount a named
# volume here (`-v ylambda-data:/home/nonroot`: a new volume takes this directory's owner).
# With YLAMBDA_BACKEND=aws snapshots go to S3.
WORKDIR /home/nonroot
# nonroot, by number (65532:65532): a runtime can then see it is not root without the image's
# /etc/passwd (Kubernetes' runAsNonRoot refuses a user given by name; hadolint DL3066).
USER 65532:65532
ENV YLAMBDA_LISTEN=0.0.0.0:8080
EXPOSE 8080
# SIGTERM (the default, as ECS and Docker send it) starts the graceful drain: no new connections,
# clients are closed with 1001 and reconnect elsewhere, their rooms are compacted. Give it time to
# finish (ECS stopTimeout, docker stop -t) before the runtime sends SIGKILL.
STOPSIGNAL SIGTERM
# No HEALTHCHECK: distroless has no shell or curl to run one, and the binary has no self-check
# command. Orchestrators check over HTTP instead: GET /healthz (200 while the process runs) for
# liveness (the ALB target group's health check), GET /readyz (503 while draining) for readiness.
ENTRYPOINT ["/ylambda", "serve"]
