# syntax=docker/dockerfile:1
#
# IoTFlow image: a static binary on distroless (no shell, no package
# manager), running as the non-root user 65532.
#
#   docker build --build-arg VERSION="$(git describe --tags --always --dirty)" -t iotflow .
#   docker run -p 5000:5000 -v iotflow-data:/data iotflow
#
# The image has no shell and no curl: its HEALTHCHECK runs the binary's own
# `iotflow healthcheck`, which asks GET /readyz on the loopback. Orchestrators
# and load balancers probe GET /livez and GET /readyz over HTTP (see
# "Production deployment" in README.md).

# The builder runs on the build machine's platform and cross-compiles, which
# a pure-Go binary (no cgo) allows: docker buildx build --platform linux/amd64,linux/arm64 .
# go.mod asks for a newer Go than some 1.26 images hold, and the official
# images do not download toolchains (GOTOOLCHAIN=local): build with --pull.
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src

# Modules first, in a layer of their own: it is rebuilt only when go.mod or
# go.sum change, not on every source change.
COPY go.mod go.sum ./
RUN go mod download && go mod verify

COPY . .
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
# .git is not in the build context (.dockerignore), so the version comes
# from VERSION rather than from VCS stamping.
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" -o /out/iotflow ./cmd/iotflow \
 && mkdir -p /out/data

# static-debian12 carries CA certificates, time zone data and /etc/passwd
# with the nonroot user (65532); nothing else.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/iotflow /usr/local/bin/iotflow
# An empty /data owned by the service user, so that a named volume mounted
# there starts out writable by it.
COPY --from=build --chown=65532:65532 /out/data /data

ENV IOTFLOW_DATA_DIR=/data \
    LOG_FILE=off \
    HOST=0.0.0.0 \
    PORT=5000
USER 65532:65532
VOLUME ["/data"]
EXPOSE 5000
# SIGTERM (docker stop's default) drains requests and the write queue; give
# it more than IOTFLOW_SHUTDOWN_TIMEOUT, e.g. docker stop -t 30.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/iotflow", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/iotflow"]
CMD ["serve"]
