# `ketch serve vw`: the wrapper image for Vowpal Wabbit models. Build from the repository root:
#   docker build -f deploy/docker/Dockerfile.vw -t ketch/vw:0.1.0 .
# Every install step is deploy/docker/install, which deploy/tests run for real.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
RUN deploy/docker/install vw /opt/ketch

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="ketch-vw" \
      org.opencontainers.image.description="ketch serve vw: Vowpal Wabbit models, learning online over the Open Inference Protocol (gRPC)" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 ketch \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin ketch
COPY --from=build /opt/ketch /opt/ketch
ENV PATH=/opt/ketch/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 8001
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/opt/ketch/bin/ketch", "probe", "grpc", "127.0.0.1:8001"]
ENTRYPOINT ["/opt/ketch/bin/ketch"]
CMD ["serve", "vw", "/mnt/models", "--host", "0.0.0.0", "--port", "8001"]
