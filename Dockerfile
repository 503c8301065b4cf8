# syntax=docker/dockerfile:1
#
# One image per service, all from this file and the go.work workspace:
#
#   docker build --build-arg SERVICE=gc-webhook -t ghcr.io/ml-connector/gc-webhook:0.1.0 .
#
# SERVICE is a directory under services/. The binary is static
# (CGO_ENABLED=0), so the runtime image is distroless static: CA
# certificates, time zones and a non-root user, no shell, no package
# manager.

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG SERVICE
ARG TARGETOS
ARG TARGETARCH
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false"
WORKDIR /src
# The whole workspace: a service builds against the platform, proto and
# connector modules next to it, as go.work says.
COPY . .
RUN if [ -z "${SERVICE}" ] || [ ! -f "services/${SERVICE}/main.go" ]; then \
      echo "build with --build-arg SERVICE=<one of: $(ls services | tr '\n' ' ')>" >&2; exit 1; \
    fi
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -ldflags="-s -w" -o /out/service ./services/${SERVICE}

FROM gcr.io/distroless/static-debian12:nonroot
ARG SERVICE
LABEL org.opencontainers.image.title="${SERVICE}" \
      org.opencontainers.image.source="https://github.com/ml-connector/ml-connector"
COPY --from=build /out/service /service
# Numeric, so Kubernetes can check runAsNonRoot; the manifests run as the
# same user.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/service"]
