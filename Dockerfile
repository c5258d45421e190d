# syntax=docker/dockerfile:1
# Ferry in a container: built with the official Rust image, run on Debian slim with ffmpeg.
#   docker build -t ferry .
#   docker run -d --name ferry -p 8080:8080 -v ferry-data:/data \
#     -e FERRY_PUBLIC_URL=http://HOST:8080 ferry
#   docker exec ferry ferry admin user add alice --level uploader --json
# Settings are the FERRY_* variables of README.md ("Configuration"), given with -e/--env-file.
# The cache mounts below need BuildKit (the default builder since Docker 23).

# Cargo.toml's rust-version is 1.95: `--build-arg RUST_VERSION=1.95` pins the toolchain.
ARG RUST_VERSION=1

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Only what the build reads: the manifest, the sources, the migrations sqlx::migrate! embeds,
# benches/ (Cargo.toml declares [[bench]] targets, which cargo checks exist) and .cargo/ (the
# bundled SQLite's build flags).
COPY Cargo.toml Cargo.lock ./
COPY .cargo ./.cargo
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
# target/ is a cache mount (kept between builds, not in the image): the binary is copied
# out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -m 0755 target/release/ferry /usr/local/bin/ferry

FROM debian:bookworm-slim
# ffmpeg: Ferry runs ffprobe (video facts) and ffmpeg (a thumbnail frame, playable renditions)
# as subprocesses; without them videos get no thumbnail and no rendition. libheif-examples:
# heif-convert decodes HEIC/HEIF photos (thumbnail, JPEG preview). ca-certificates: HTTPS to S3, remote imports and
# gallery pull sources is verified against the system's roots.
# Versions are not pinned (hadolint DL3008): bookworm's archive drops superseded versions,
# so a pin would break the build at the next security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg libheif-examples ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# A fixed numeric id, so Kubernetes' runAsNonRoot can check it and volumes can be chowned
# to it. /data is created owned by it before VOLUME, so a new named volume inherits that.
RUN groupadd --system --gid 10001 ferry \
    && useradd --system --uid 10001 --gid ferry --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin ferry \
    && install -d -o ferry -g ferry -m 0750 /data
COPY --from=build /usr/local/bin/ferry /usr/local/bin/ferry
# Listen on every interface of the container (the default, 127.0.0.1, is unreachable
# through -p). Links and signed URLs are built from FERRY_PUBLIC_URL: set it to the address
# devices use; the default suits `-p 8080:8080` on this machine.
ENV FERRY_DATA_DIR=/data \
    FERRY_LISTEN=0.0.0.0:8080 \
    FERRY_PUBLIC_URL=http://localhost:8080
VOLUME /data
EXPOSE 8080
USER 10001:10001
# Ferry handles SIGTERM itself (finishes requests in flight) and reaps its ffmpeg children,
# so it runs as PID 1 without an init. `docker run IMAGE admin …` runs the admin CLI.
ENTRYPOINT ["/usr/local/bin/ferry"]
CMD ["serve"]
