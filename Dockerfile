# GPU image for the DARTS-PT runner. Build:
#   docker build -t darts-pt .            (or --build-arg BASE_IMAGE=<another CUDA PyTorch image>)
# Run (data, MLflow store and outputs mounted from the host; see README):
#   docker run --gpus all -v "$PWD/data:/work/data" -v "$PWD/mlflow:/work/mlflow" \
#     -e MLFLOW_TRACKING_URI=sqlite:////work/mlflow/mlflow.db darts-pt --gin gin/s3_svhn.gin
ARG BASE_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

RUN useradd --create-home --uid 1000 nas

WORKDIR /opt/darts-pt
COPY pyproject.toml README.md ./
COPY runner ./runner
COPY spaces ./spaces
COPY tracking ./tracking
COPY gin ./gin
# torch comes with the base image; pip keeps it when it satisfies the requirement
RUN pip install --no-cache-dir . && mkdir -p /work && chown nas:nas /work

USER 1000
# `--gin gin/<file>` finds the experiment files the package ships, from any folder
WORKDIR /work
ENTRYPOINT ["runner"]
CMD ["--help"]
