# syntax=docker/dockerfile:1
# grattr watch as a container: a static musl binary on a distroless base with CA
# certificates and nothing else (no shell, no package manager), as a non-root user.
#
#   docker build -t grattr .
#   docker run --read-only -v /srv/chat-config:/repo:ro -v grattr-state:/var/lib/grattr \
#     -v /etc/grattr/secret-key:/run/secrets/grattr-secret-key:ro -p 9464:9464 grattr
#
# Base images are pinned by digest (the tag says what, the digest which); the
# digests were taken from other public projects pinning the same tags, not pulled
# here: refresh them deliberately with `docker buildx imagetools inspect IMAGE:TAG`.

FROM rust:1.89-bookworm@sha256:948f9b08a66e7fe01b03a98ef1c7568292e07ec2e4fe90d88c07bb14563c84ff AS builder
# musl-tools (bookworm's version): mimalloc and the TLS cryptography (ring) have C parts, built with the musl C compiler
# (x86_64-linux-musl-gcc).
# No OpenSSL: the HTTP client uses rustls.
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
# A build context has no .git: name the commit for `grattr --version` with
# --build-arg GRATTR_BUILD_COMMIT="$(git rev-parse HEAD) $(git log -1 --format=%cs)" if wanted.
ARG GRATTR_BUILD_COMMIT=""
ENV GRATTR_BUILD_COMMIT=${GRATTR_BUILD_COMMIT}
# The `dist` profile, as the release archives: fat LTO, stripped.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked --target x86_64-unknown-linux-musl \
    && install -D -m 0755 target/x86_64-unknown-linux-musl/dist/grattr /out/grattr \
    && install -d -m 0700 /out/state

FROM gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639
COPY --from=builder /out/grattr /grattr
# The record (lockfile, journal, lock) lives here, on a volume, never in the checkout.
COPY --from=builder --chown=65532:65532 /out/state /var/lib/grattr
USER 65532:65532
# The checkout (read-only is enough) is mounted at /repo; the state on a volume.
ENV GRATTR_CONFIG=/repo/grattr.yaml \
    GRATTR_STATE_DIR=/var/lib/grattr
VOLUME ["/var/lib/grattr"]
EXPOSE 9464
ENTRYPOINT ["/grattr"]
# The secret key comes from a file (its first line): mount it there, or set
# GRATTR_SECRET_KEY and pass a CMD without --secret-key-file.
CMD ["watch", "--listen", "0.0.0.0:9464", "--log-format", "json", "--secret-key-file", "/run/secrets/grattr-secret-key"]
