"""A small client over ``tritonclient`` for both protocols, with errors that say what happened.

    with TritonClient("127.0.0.1:8000", "http") as client:
        served = client.model_spec("seedcnn_torch_onnx", repo=Path("model_repo"))
        logits = client.infer(served.spec.name, {"input": batch}, ["logits"])["logits"]

HTTP uses the binary tensor extension both ways. Triton's refusals become
:class:`~serving.errors.InferenceError` (Triton's status and message, plus what was sent); a
refused, reset or silent connection becomes :class:`~serving.errors.ServerUnreachableError`.
One client per thread: the HTTP client runs on a gevent hub bound to the thread that uses it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from exporters.spec import FORMATS, FRAMEWORK_FORMATS, ModelSpec, TensorSpec
from models.datasets import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from models.errors import UserInputError
from serving.errors import InferenceError, ServerUnreachableError, UnknownModelError

log = logging.getLogger(__name__)

PROTOCOLS = ("http", "grpc")
SIDECAR = "servebench.json"
PORTS_HINT = "servebench serve: HTTP 8000, gRPC 8001"
SAMPLES_NEED_CHECKPOINT = (
    "--samples needs the model's source checkpoint (its held-out images come from the training "
    "run): pass --repo MODEL_REPO (the exported repository, whose servebench.json records the "
    "checkpoint) or --checkpoint RUN_DIR (the --out folder of 'servebench train')"
)
_NOT_FOUND = {"404", "NOT_FOUND"}
# gRPC reports transport failures as UNAVAILABLE, and so does Triton for a model that is not
# ready: only these words in the message mean the connection itself failed
_TRANSPORT_WORDS = ("connect", "socket", "reset", "closed", "goaway", "broken pipe", "backends")


_NOT_INFERENCE_ENDPOINT = (
    "not Triton's inference endpoint; is --url its HTTP address "
    "(servebench serve: HTTP 8000, gRPC 8001, metrics 8002)?"
)


@dataclasses.dataclass(frozen=True)
class ServedModel:
    """What a client needs to talk to one model: its spec, its preprocessing and where they came
    from (``"repository"``: the model's ``servebench.json``; ``"server config"``: the recipe in
    the served config's parameters; ``"server"``: guessed from tensor shapes, less exact)."""

    spec: ModelSpec
    preprocess: Preprocess
    origin: str
    sidecar: dict = dataclasses.field(default_factory=dict)

    @property
    def checkpoint_dir(self) -> Path | None:
        recorded = self.sidecar.get("provenance", {}).get("checkpoint_dir")
        return Path(recorded) if recorded else None


def host_port(url: str) -> str:
    """``http://127.0.0.1:8000/`` -> ``127.0.0.1:8000`` (what tritonclient takes)."""
    return url.split("://", 1)[-1].rstrip("/")


class TritonClient:
    """``infer`` and ``model_spec`` against one Triton endpoint (``protocol`` ``http`` | ``grpc``)."""

    def __init__(self, url: str, protocol: str = "http", timeout_s: float = 60.0):
        if protocol not in PROTOCOLS:
            raise UserInputError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        self.url = host_port(url)
        self.protocol = protocol
        self.timeout_s = timeout_s
        if protocol == "http":
            import tritonclient.http as module

            self._client = module.InferenceServerClient(
                self.url, connection_timeout=timeout_s, network_timeout=timeout_s
            )
        else:
            import tritonclient.grpc as module

            self._client = module.InferenceServerClient(self.url)
        self._module = module
        self._outputs: dict[str, list[str]] = {}  # model -> output names, for output_names=None
        self._answered = False  # has the endpoint sent one well-formed response yet?

    # -- inference ------------------------------------------------------------------------------
    def infer(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        output_names: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """One request; ``output_names`` None asks for every output the model declares."""
        from tritonclient.utils import np_to_triton_dtype

        sent = _describe(model, inputs)
        with self._translate(sent):
            names = list(output_names or self._output_names(model))
            request = []
            for name, array in inputs.items():
                array = np.ascontiguousarray(array)
                infer_input = self._module.InferInput(
                    name, list(array.shape), np_to_triton_dtype(array.dtype)
                )
                if self.protocol == "http":
                    infer_input.set_data_from_numpy(array, binary_data=True)
                else:
                    infer_input.set_data_from_numpy(array)
                request.append(infer_input)
            if self.protocol == "http":
                outputs = [self._module.InferRequestedOutput(n, binary_data=True) for n in names]
                result = self._client.infer(model, request, outputs=outputs)
            else:
                outputs = [self._module.InferRequestedOutput(n) for n in names]
                result = self._client.infer(
                    model, request, outputs=outputs, client_timeout=self.timeout_s
                )
            return {name: result.as_numpy(name) for name in names}

    # -- server information ---------------------------------------------------------------------
    def check_live(self) -> None:
        """Raise ``ServerUnreachableError`` unless a live Triton answers at this endpoint."""
        with self._translate("health check"):
            if self.protocol == "http":
                live = self._client.is_server_live()
            else:
                live = self._client.is_server_live(client_timeout=self.timeout_s)
        if not live:
            raise ServerUnreachableError(
                f"{self.url} answers {self.protocol.upper()} but is not a live Triton server "
                f"(health/live says no): is the server still starting or shutting down? "
                f"({PORTS_HINT})",
                self.url,
            )

    # -- model information ----------------------------------------------------------------------
    def model_names(self) -> list[str]:
        """The models the server's repository index lists (any state)."""
        with self._translate("repository index"):
            if self.protocol == "http":
                index = self._client.get_model_repository_index()
            else:
                index = self._client.get_model_repository_index(
                    as_json=True, client_timeout=self.timeout_s
                ).get("models", [])
        return sorted({entry["name"] for entry in index})

    def model_spec(self, model: str, repo: Path | None = None) -> ServedModel:
        """The spec and preprocessing of ``model``: from ``repo/<model>/servebench.json`` when a
        repository is given (exact), else derived from the server's config and metadata."""
        if repo is not None:
            return read_served_model(repo, model)
        metadata, config = self._metadata_and_config(model)
        return spec_from_server(metadata, config)

    def _metadata_and_config(self, model: str) -> tuple[dict, dict]:
        from tritonclient.utils import InferenceServerException

        try:
            with self._translate(f"metadata of model {model!r}"):
                if self.protocol == "http":
                    return self._client.get_model_metadata(model), self._client.get_model_config(
                        model
                    )
                kwargs = {"as_json": True, "client_timeout": self.timeout_s}
                metadata = self._client.get_model_metadata(model, **kwargs)
                return metadata, self._client.get_model_config(model, **kwargs)["config"]
        except InferenceError as error:
            cause = error.__cause__
            if isinstance(cause, InferenceServerException) and _status(cause) in _NOT_FOUND:
                raise UnknownModelError(
                    f"model {model!r} is not served at {self.url}; served models: "
                    f"{', '.join(self.model_names()) or 'none'}"
                ) from error
            raise

    def _output_names(self, model: str) -> list[str]:
        if model not in self._outputs:
            metadata, _ = self._metadata_and_config(model)
            self._outputs[model] = [o["name"] for o in metadata["outputs"]]
        return self._outputs[model]

    # -- errors ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _translate(self, sent: str):
        from tritonclient.utils import InferenceServerException

        try:
            yield
        except InferenceServerException as exc:
            self._answered = self._answered or self.protocol == "http"  # an HTTP error reply
            raise self._from_triton(exc, sent) from exc
        except (OSError, http.client.HTTPException) as exc:  # HTTP transport (geventhttpclient)
            raise ServerUnreachableError(
                _transport_cause(exc, self.url, self.timeout_s, self._answered), self.url, repr(exc)
            ) from exc
        except ValueError as exc:  # an HTTP answer that is not Triton's JSON (another service)
            raise ServerUnreachableError(
                f"{self.url} answered HTTP but no JSON: {_NOT_INFERENCE_ENDPOINT}",
                self.url,
                repr(exc),
            ) from exc
        self._answered = True

    def _from_triton(self, exc, sent: str) -> Exception:
        status, message = _status(exc), exc.message() or str(exc)
        if self.protocol == "http" and status == "405":  # e.g. the metrics port: GET /metrics only
            return ServerUnreachableError(
                f"{self.url} answered HTTP 405 ({message}): {_NOT_INFERENCE_ENDPOINT}", self.url
            )
        if self.protocol == "grpc" and _grpc_transport_failure(status, message):
            return ServerUnreachableError(
                _grpc_cause(status, message, self.url, self.timeout_s), self.url, message
            )
        return InferenceError(status, message, f"{self.protocol}://{self.url}", sent)

    # -- lifetime -------------------------------------------------------------------------------
    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> TritonClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _status(exc) -> str:
    """``"400"`` (HTTP) or ``"INVALID_ARGUMENT"`` (gRPC, without the ``StatusCode.`` prefix)."""
    status = exc.status()
    return "unknown" if status is None else str(status).removeprefix("StatusCode.")


def _describe(model: str, inputs: Mapping[str, np.ndarray]) -> str:
    from tritonclient.utils import np_to_triton_dtype

    tensors = ", ".join(
        f"input {name!r} {np_to_triton_dtype(np.asarray(a).dtype)} shape {list(np.shape(a))}"
        for name, a in inputs.items()
    )
    return f"model {model!r}, {tensors or 'no inputs'}"


def _transport_cause(exc: BaseException, url: str, timeout_s: float, answered: bool) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return (
            f"connection to {url} refused: is the server running, and is {url} its HTTP port "
            f"({PORTS_HINT})?"
        )
    if not answered and _is_parse_error(exc):
        return (
            f"{url} did not answer HTTP (its first reply is not an HTTP response): is {url} "
            f"Triton's HTTP port? ({PORTS_HINT})"
        )
    if isinstance(exc, TimeoutError):
        return f"no answer from {url} within {timeout_s:g}s: the server is stuck or overloaded"
    return f"connection to {url} lost mid-request: the server closed it or died"


def _is_parse_error(exc: BaseException) -> bool:
    from geventhttpclient.response import HTTPParseError

    return isinstance(exc, HTTPParseError)


def _grpc_transport_failure(status: str, message: str) -> bool:
    if status == "DEADLINE_EXCEEDED":
        return True
    return status == "UNAVAILABLE" and any(w in message.lower() for w in _TRANSPORT_WORDS)


def _grpc_cause(status: str, message: str, url: str, timeout_s: float) -> str:
    if status == "DEADLINE_EXCEEDED":
        return f"no answer from {url} within {timeout_s:g}s: the server is stuck or overloaded"
    lowered = message.lower()
    if "failed to connect" in lowered and "socket closed" in lowered:  # HTTP/1 port: no HTTP/2
        return (
            f"{url} accepted the connection but did not answer gRPC: is {url} Triton's gRPC "
            f"port? ({PORTS_HINT})"
        )
    if "refused" in lowered or "failed to connect" in lowered:
        return (
            f"connection to {url} refused: is the server running, and is {url} its gRPC port "
            f"({PORTS_HINT})?"
        )
    return f"connection to {url} lost mid-request: the server closed it or died"


# -- specs ------------------------------------------------------------------------------------------
def read_served_model(repo: Path, model: str) -> ServedModel:
    """The exact spec and preprocessing recorded at export in ``repo/<model>/servebench.json``."""
    repo = Path(repo)
    path = repo / model / SIDECAR
    if not path.is_file():
        if not repo.is_dir():
            raise UserInputError(f"model repository {repo} does not exist; pass --repo of export")
        names = sorted(p.parent.name for p in repo.glob(f"*/{SIDECAR}"))
        raise UnknownModelError(
            f"model {model!r} is not in {repo}; models there: {', '.join(names) or 'none'}"
        )
    try:
        sidecar = json.loads(path.read_text())
        return ServedModel(
            spec=ModelSpec.from_dict(sidecar["spec"]),
            preprocess=Preprocess.from_dict(sidecar["preprocess"]),
            origin="repository",
            sidecar=sidecar,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise UserInputError(f"{path} is corrupt ({exc!r}); export the model again") from exc


def spec_from_server(metadata: dict, config: dict) -> ServedModel:
    """A spec from Triton's model metadata and config (JSON form, either protocol).

    The preprocessing recipe and class names come from the config's servebench parameters (see
    ``exporters.triton_config``); a model exported elsewhere has none, so its classes are indices
    and its recipe is the training default for its channel count (a warning says so).
    """
    from exporters.triton_config import described_model

    max_batch = int(config.get("max_batch_size", 0))
    by_name = {t["name"]: t for t in config.get("input", []) + config.get("output", [])}

    def tensor(meta: dict) -> TensorSpec:
        dims = by_name.get(meta["name"], {}).get("dims") or meta["shape"][1 if max_batch else 0 :]
        return TensorSpec(meta["name"], meta["datatype"], tuple(int(d) for d in dims))

    inputs = tuple(tensor(t) for t in metadata["inputs"])
    outputs = tuple(tensor(t) for t in metadata["outputs"])
    described = described_model(config)
    if described is not None:
        preprocess, classes = described
        origin = "server config"
    else:
        preprocess = _guess_preprocess(inputs[0].dims, _guess_layout(inputs[0].dims))
        classes = tuple(str(i) for i in range(outputs[0].dims[-1]))
        origin = "server"
    arch, framework, fmt = _split_name(metadata["name"])
    spec = ModelSpec(
        name=metadata["name"],
        arch=arch,
        framework=framework,
        format=fmt,
        inputs=inputs,
        outputs=outputs,
        layout=preprocess.layout,
        max_batch_size=max_batch,
        classes=classes,
    )
    return ServedModel(spec=spec, preprocess=preprocess, origin=origin)


def _split_name(name: str) -> tuple[str, str, str]:
    parts = name.rsplit("_", 2)
    if len(parts) == 3 and parts[1] in FRAMEWORK_FORMATS and parts[2] in FORMATS:
        return parts[0], parts[1], parts[2]
    return name, "unknown", "unknown"


def _guess_layout(dims: tuple[int, ...]) -> str:
    return "NHWC" if len(dims) == 3 and dims[-1] in (1, 3) and dims[0] not in (1, 3) else "NCHW"


def _guess_preprocess(dims: tuple[int, ...], layout: str) -> Preprocess:
    if len(dims) != 3:
        raise UserInputError(f"expected an image input of 3 dims (C,H,W or H,W,C), found {dims}")
    channels, size = (dims[0], dims[1]) if layout == "NCHW" else (dims[2], dims[0])
    mean, std = ((0.5,), (0.5,)) if channels == 1 else (IMAGENET_MEAN, IMAGENET_STD)
    log.warning(
        "no --repo: guessed preprocessing %dx%d, %d channel(s), mean %s std %s, %s",
        size, size, channels, mean, std, layout,
    )  # fmt: skip
    return Preprocess(image_size=size, channels=channels, mean=mean, std=std, layout=layout)


# -- classification ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Prediction:
    """Top-k (label, softmax probability) for one input; ``true_label`` for held-out samples."""

    source: str
    top: tuple[tuple[str, float], ...]
    true_label: str | None = None

    @property
    def label(self) -> str:
        return self.top[0][0]

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "top": [{"label": label, "probability": p} for label, p in self.top],
            "true_label": self.true_label,
        }


def classify(client: TritonClient, served: ModelSpec | ServedModel, batch: np.ndarray, top_k: int):
    """Send ``batch`` (already preprocessed) in chunks of max_batch_size; top-k per row."""
    spec = served.spec if isinstance(served, ServedModel) else served
    logits = infer_batched(client, spec, batch)[spec.outputs[0].name].astype(np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    k = max(1, min(top_k, probs.shape[1]))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    labels = spec.classes if len(spec.classes) == probs.shape[1] else None
    return [
        tuple((labels[j] if labels else str(j), float(row[j])) for j in top)
        for row, top in zip(probs, order, strict=True)
    ]


def infer_batched(
    client: TritonClient, spec: ModelSpec, batch: np.ndarray
) -> dict[str, np.ndarray]:
    """Every output for ``batch``, sent in chunks the model accepts (``max_batch_size``)."""
    size = spec.max_batch_size or 1
    names = [t.name for t in spec.outputs]
    parts = [
        client.infer(spec.name, {spec.inputs[0].name: batch[i : i + size]}, names)
        for i in range(0, len(batch), size)
    ]
    return {n: np.concatenate([p[n] for p in parts]) for n in names}


def predict_images(
    client: TritonClient, served: ServedModel, paths: Sequence[Path], top_k: int = 5
) -> list[Prediction]:
    """Read each image with the model's recipe (size, channels, mean/std, layout) and classify."""
    from models.datasets import read_image

    check_images_exist(paths)
    pre = served.preprocess
    images = np.stack([read_image(Path(p), pre.image_size, pre.channels) for p in paths])
    tops = classify(client, served, pre.apply(images), top_k)
    return [Prediction(str(p), top) for p, top in zip(paths, tops, strict=True)]


def check_images_exist(paths: Sequence[Path]) -> None:
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise UserInputError(
            f"image file(s) not found: {', '.join(missing)}; pass existing JPEG/PNG files"
        )


def predict_samples(
    client: TritonClient,
    served: ServedModel,
    count: int,
    checkpoint: Path | None = None,
    top_k: int = 1,
) -> list[Prediction]:
    """The first ``count`` held-out test images of the model's training run, with true labels."""
    from models.checkpoint import read_checkpoint
    from models.datasets import load_dataset

    info = read_checkpoint(_samples_run_dir(served, checkpoint))
    dataset = load_dataset(info.data, served.preprocess.image_size, seed=info.seed)
    available = len(dataset.test_images)
    if not 1 <= count <= available:
        raise UserInputError(f"--samples must be between 1 and {available} (held-out images)")
    batch = served.preprocess.apply(dataset.test_images[:count])
    tops = classify(client, served, batch, top_k)
    return [
        Prediction(f"sample {i}", top, dataset.classes[int(dataset.test_labels[i])])
        for i, top in enumerate(tops)
    ]


def _samples_run_dir(served: ServedModel, checkpoint: Path | None) -> Path:
    """The training run whose held-out images ``--samples`` sends."""
    if checkpoint is not None:
        return checkpoint
    if served.origin != "repository":
        raise UserInputError(SAMPLES_NEED_CHECKPOINT)
    if served.checkpoint_dir is None:
        raise UserInputError(
            f"{served.spec.name}: its {SIDECAR} records no checkpoint directory (exported before "
            "servebench recorded it); pass --checkpoint RUN_DIR (the --out folder of "
            "'servebench train') or export the model again"
        )
    return served.checkpoint_dir
