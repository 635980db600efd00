# syntax=docker/dockerfile:1
#
# keras_ssl: training image and TF Serving image (multi-stage).
#
#   Train (mount runs/ to keep the results):
#     docker build --target train -t keras-ssl-train .
#     docker run --rm -v "$PWD/runs:/app/runs" keras-ssl-train --config configs/mnist_egomotion.json
#
#   Serve a finished run with TF Serving (the export stage runs
#   `python -m keras_ssl.export` on RUN_DIR, so the model lands at
#   /models/<MODEL_NAME>/<version>/saved_model.pb as TF Serving expects):
#     docker build --target serve --build-arg RUN_DIR=runs/<run> \
#         --build-arg MODEL_NAME=mnist_egomotion -t keras-ssl-serving .
#     docker run --rm -p 8500:8500 -p 8501:8501 keras-ssl-serving
#
# Base images are pinned: tensorflow/serving matches tensorflow-serving-api
# and tensorflow in requirements.txt (2.21.0); Python matches the dev machines.
# For reproducible builds pin them by digest (image@sha256:...) as well.

ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm
ARG TF_SERVING_IMAGE=tensorflow/serving:2.21.0

# ---------------------------------------------------------------- train ----
FROM ${PYTHON_IMAGE} AS train
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.txt constraints.txt ./
RUN pip install -r requirements.txt -c constraints.txt
COPY keras_ssl/ keras_ssl/
COPY configs/ configs/
ENTRYPOINT ["python", "-m", "keras_ssl.train"]
CMD ["--config", "configs/mnist_egomotion.json"]

# --------------------------------------------------------------- export ----
# A finished run directory (encoder.keras + config.json) -> SavedModel.
FROM train AS export
ARG RUN_DIR=runs/mnist_egomotion
ARG MODEL_NAME=mnist_egomotion
COPY ${RUN_DIR}/encoder.keras ${RUN_DIR}/config.json /run/
RUN python -m keras_ssl.export --run-dir /run --base-path /export --model-name "${MODEL_NAME}"

# ---------------------------------------------------------------- serve ----
FROM ${TF_SERVING_IMAGE} AS serve
ARG MODEL_NAME=mnist_egomotion
# The image's entrypoint runs:
#   tensorflow_model_server --port=8500 --rest_api_port=8501 \
#     --model_name=${MODEL_NAME} --model_base_path=${MODEL_BASE_PATH}/${MODEL_NAME} "$@"
ENV MODEL_NAME=${MODEL_NAME} \
    MODEL_BASE_PATH=/models
COPY --from=export /export/${MODEL_NAME}/ /models/${MODEL_NAME}/
COPY serving/models.config serving/batching.config /models/
EXPOSE 8500 8501
CMD ["--enable_batching", "--batching_parameters_file=/models/batching.config"]
