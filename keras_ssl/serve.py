"""Local server speaking TF Serving's REST and gRPC APIs (see :mod:`keras_ssl.server`).

    python -m keras_ssl.serve --model_name=NAME --model_base_path=DIR [--port=8500] [--rest_api_port=8501]
        [--model_config_file=serving/models.config] [--enable_batching --batching_parameters_file=F]
"""
from __future__ import annotations

import sys

from keras_ssl.server.app import main

if __name__ == "__main__":
    sys.exit(main())
