# syntax=docker/dockerfile:1
# grattr watch as a container: a static musl binary on a distroless base with CA
# certificates and nothing else (no shell, no package manager), as a non-root user.
#
#   docker build -t grattr .
#   docker run --read-only -v /srv/chat-config:/repo:ro -v grattr-state:/var/lib/grattr \
#     -v /etc/grattr/secret-key:/run/secrets/grattr-secret-key:ro -p 9464:9464 grattr
#
# Where the binary comes from (the build argument GRATTR_BINARY):
# - source (the default): compiled here, for the platform being built, as above.
# - prebuilt: the release's own archives, as the release workflow publishes the image
#   (linux/amd64 and linux/arm64): prebuilt/ in the build context holds the cargo-dist archives
#   grattr-<target>.tar.xz and their .sha256; each platform takes its target's, checked.
#     docker buildx build --platform linux/amd64,linux/arm64 --build-arg GRATTR_BINARY=prebuilt .
#
# Base images are pinned by digest (the tag says what, the digest which); the
# digests were taken from other public projects pinning the same tags, not pulled
# here: refresh them deliberately with `docker buildx imagetools inspect IMAGE:TAG`.
ARG GRATTR_BINARY=source

FROM rust:1.89-bookworm@sha256:948f9b08a66e7fe01b03a98ef1c7568292e07ec2e4fe90d88c07bb14563c84ff AS source
# musl-tools (bookworm's version): mimalloc and the TLS cryptography (ring) have C parts, built
# with the musl C compiler (musl-gcc), for this stage's own architecture: built for another
# platform, the stage runs emulated (binfmt/QEMU), slowly but with no cross toolchain.
# No OpenSSL: the HTTP client uses rustls.
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add "$(uname -m)-unknown-linux-musl"
WORKDIR /src
COPY . .
# A build context has no .git: name the commit for `grattr --version` with
# --build-arg GRATTR_BUILD_COMMIT="$(git rev-parse HEAD) $(git log -1 --format=%cs)" if wanted.
ARG GRATTR_BUILD_COMMIT=""
ENV GRATTR_BUILD_COMMIT=${GRATTR_BUILD_COMMIT}
# The `dist` profile, as the release archives: fat LTO, stripped.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(uname -m)-unknown-linux-musl" \
    && cargo build --profile dist --locked --target "$target" \
    && install -D -m 0755 "target/$target/dist/grattr" /out/grattr \
    && install -d -m 0700 /out/state

# Runs on the build machine's platform whatever the target (nothing here executes the binary):
# it only checks and unpacks the archive of the platform being built.
FROM --platform=$BUILDPLATFORM rust:1.89-bookworm@sha256:948f9b08a66e7fe01b03a98ef1c7568292e07ec2e4fe90d88c07bb14563c84ff AS prebuilt
ARG TARGETARCH
WORKDIR /prebuilt
COPY prebuilt/ ./
RUN case "$TARGETARCH" in \
      amd64) target=x86_64-unknown-linux-musl ;; \
      arm64) target=aarch64-unknown-linux-musl ;; \
      *) echo "no grattr release for linux/$TARGETARCH" >&2; exit 1 ;; \
    esac \
    && sha256sum --check --strict "grattr-$target.tar.xz.sha256" \
    && tar -xJf "grattr-$target.tar.xz" \
    && install -D -m 0755 "grattr-$target/grattr" /out/grattr \
    && install -d -m 0700 /out/state

# The stage named by GRATTR_BINARY; BuildKit builds only that one of the two above.
FROM ${GRATTR_BINARY} AS binary

FROM gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639
COPY --from=binary /out/grattr /grattr
# The record (lockfile, journal, lock) lives here, on a volume, never in the checkout.
COPY --from=binary --chown=65532:65532 /out/state /var/lib/grattr
USER 65532:65532
# The checkout (read-only is enough) is mounted at /repo; the state on a volume.
ENV GRATTR_CONFIG=/repo/grattr.yaml
VOLUME ["/var/lib/grattr"]
EXPOSE 9464
ENTRYPOINT ["/grattr"]
# The secret key comes from a file (its first line): mount it there, or set
# GRATTR_SECRET_KEY and pass a CMD without --secret-key-file. Given a shared record
# (GRATTR_STATE=postgres://...), the record is there, and the state directory holds only
# what `watch --source head` keeps on disk.
CMD ["watch", "--listen", "0.0.0.0:9464", "--log-format", "json", "--state-dir", "/var/lib/grattr", "--secret-key-file", "/run/secrets/grattr-secret-key"]
