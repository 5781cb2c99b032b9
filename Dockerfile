# syntax=docker/dockerfile:1
#
# The modellab image, built from source in two stages: a static binary
# (modernc.org/sqlite is pure Go, so CGO_ENABLED=0) on a distroless "static"
# base that holds CA certificates, /etc/passwd and nothing else: no shell, no
# package manager. It runs as the non-root user 65532.
#
#   docker build -t modellab --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg COMMIT=$(git rev-parse HEAD) .
#   docker run -p 8080:8080 modellab            # SQLite in /data, demo data seeded
#
# Without network access to a registry, `make image` builds the same final
# image from a binary built on the host (deploy/container/Dockerfile.prebuilt).

ARG GO_VERSION=1.26

FROM docker.io/library/golang:${GO_VERSION}-alpine AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local
# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=
RUN go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/modellab ./cmd/modellab \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/modellab /modellab
# The SQLite database lives here by default; mount a volume to keep it.
COPY --from=build --chown=65532:65532 /out/data /data
ENV DATABASE_URL=sqlite:///data/modellab.db
USER 65532:65532
EXPOSE 8080
# No shell in the image: the binary probes itself (GET /healthz on the port
# that ADDR or PORT names).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["/modellab", "probe"]
ENTRYPOINT ["/modellab"]
CMD ["serve"]
