# splitnet client image. CPU PyTorch by default.
#   Online:  docker build -t splitnet .
#   Offline: scripts/build-image.sh (base image from the machine's Debian sources, wheels from
#            a local wheelhouse; no registry and no package index needed).
#   CUDA:    build a wheelhouse with a CUDA build of torch 2.13.0 (pip download torch==2.13.0
#            --index-url <your CUDA wheel index>) and a CUDA base image, then
#            docker build --build-arg BASE_IMAGE=<cuda runtime image> .
ARG BASE_IMAGE=python:3.11-slim

# Stage 1: install splitnet and its pinned dependencies from the wheelhouse into a venv.
FROM ${BASE_IMAGE} AS install
ARG WHEELHOUSE=wheelhouse
COPY ${WHEELHOUSE}/ /tmp/wheels/
RUN python3 -m venv /opt/splitnet \
    && if ls /tmp/wheels/*.whl >/dev/null 2>&1; then \
         /opt/splitnet/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels splitnet; \
       else \
         echo "empty wheelhouse: run scripts/build-image.sh (offline) or fill ./wheelhouse" >&2; exit 1; \
       fi

# Stage 2: the runtime image, without the wheels.
FROM ${BASE_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/splitnet \
    PATH=/opt/splitnet/bin:$PATH \
    RESULTS_DIR=/results \
    CHECKPOINT_DIR=/checkpoints \
    DATA_DIR=/data

# tc (iproute2) shapes traffic; the offline base image already has it.
RUN command -v tc >/dev/null 2>&1 || (apt-get update && apt-get install -y --no-install-recommends iproute2 \
      && rm -rf /var/lib/apt/lists/*)
COPY --from=install /opt/splitnet /opt/splitnet
RUN groupadd --system splitnet && useradd --system --gid splitnet --home /home/splitnet --create-home splitnet \
    && mkdir -p /results /data /checkpoints && chown splitnet:splitnet /results /data /checkpoints

COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 0755 /usr/local/bin/docker-entrypoint.sh

WORKDIR /home/splitnet
EXPOSE 50051 6881 9100
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["splitnet", "health"]
# The entrypoint starts as root only to apply tc shaping, then drops to the splitnet user.
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["splitnet", "run"]
