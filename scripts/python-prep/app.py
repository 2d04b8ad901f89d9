#!/usr/bin/python3
"""The classic Python prep service, the baseline prep is measured against.

FastAPI + uvicorn + Pillow + numpy, as one would hand-roll it: POST
/predict/label takes {"data": "<base64 image>"}, preprocesses it with Pillow
per the model's PreprocessSpec (read from <repository>/<model>/config.pbtxt),
calls pred's Open Inference Protocol gRPC ModelInfer with the tensor in
raw_input_contents, and answers {"prediction": "<label>"} after a softmax,
as prep does. POST /predict/topk?k=N answers prep's top-k shape, GET /ready
asks pred's ModelReady.

    /usr/bin/python3 scripts/python-prep/app.py --pred 127.0.0.1:50051 --model colors --workers 2

It binds its socket first (--port 0: an ephemeral one), prints
"listening http://HOST:PORT" and then serves with uvicorn's worker processes,
as `uvicorn --workers N` does. It also runs under uvicorn's own command line:

    cd scripts/python-prep && PRED_ADDRESS=127.0.0.1:50051 PREP_MODEL=colors \\
        uvicorn --factory app:create_app --workers 2
"""

import argparse
import base64
import binascii
import io
import json
import os
import re
import socket
import sys

import grpc
import numpy as np
import uvicorn
from fastapi import FastAPI, HTTPException, Query
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import BaseModel
from uvicorn.supervisors import Multiprocess

DEFAULT_TOP_K = 5  # prep's default k of /predict/topk
RPC_TIMEOUT_S = 10  # prep's default request timeout

# The fields of inference/grpc_predict_v2.proto this service sends and
# reads, with their wire numbers; the server's other fields are skipped.
OIP_MESSAGES = {
    "InferInputTensor": [("name", 1, "string"), ("datatype", 2, "string"), ("shape", 3, "repeated int64")],
    "ModelInferRequest": [("model_name", 1, "string"), ("inputs", 5, "repeated InferInputTensor"),
                          ("raw_input_contents", 7, "repeated bytes")],
    "ModelInferResponse": [("model_name", 1, "string"), ("model_version", 2, "string"),
                           ("raw_output_contents", 6, "repeated bytes")],
    "ModelReadyRequest": [("name", 1, "string")],
    "ModelReadyResponse": [("ready", 1, "bool")],
}
SCALARS = {"string": "TYPE_STRING", "bytes": "TYPE_BYTES", "int64": "TYPE_INT64", "bool": "TYPE_BOOL"}


def oip_classes():
    """Message classes for OIP_MESSAGES, built from a descriptor at run time."""
    F = descriptor_pb2.FieldDescriptorProto
    fd = descriptor_pb2.FileDescriptorProto(name="python_prep_oip.proto", package="inference", syntax="proto3")
    for name, fields in OIP_MESSAGES.items():
        m = fd.message_type.add(name=name)
        for field, number, kind in fields:
            repeated, _, kind = kind.rpartition(" ")
            f = m.field.add(name=field, number=number, label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
            if kind in SCALARS:
                f.type = getattr(F, SCALARS[kind])
            else:
                f.type, f.type_name = F.TYPE_MESSAGE, ".inference." + kind
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    factory = message_factory.MessageFactory(pool)
    get = getattr(message_factory, "GetMessageClass", None) or factory.GetPrototype
    return {name: get(pool.FindMessageTypeByName("inference." + name)) for name in OIP_MESSAGES}


def read_spec(repository, model):
    """The preprocess block of the model's config.pbtxt as {field: [values]}."""
    with open(os.path.join(repository, model, "config.pbtxt")) as f:
        block = re.search(r"^preprocess: \{\n(.*?)^\}", f.read(), re.M | re.S)
    if not block:
        sys.exit(f"{model}: config.pbtxt has no preprocess block")
    spec = {}
    for key, value in re.findall(r"^\s*(\w+): (.+)$", block.group(1), re.M):
        spec.setdefault(key, []).append(value.strip('"'))
    for key, want in [("resize_mode", "RESIZE_MODE_SQUASH"), ("layout", "LAYOUT_NCHW"), ("dtype", "DATA_TYPE_FLOAT32")]:
        if spec.get(key, [want]) != [want]:
            sys.exit(f"{model}: {key} {spec[key][0]} is not supported here, only {want}")
    return spec


class Preprocessor:
    """Pillow + numpy, the classic pipeline of scripts/golden/make_golden.py."""

    def __init__(self, spec):
        self.input = spec["input"][0]
        self.size = (int(spec["width"][0]), int(spec["height"][0]))
        self.filter = getattr(Image.Resampling, spec["interpolation"][0].removeprefix("INTERPOLATION_"))
        self.bgr = spec.get("color_order") == ["COLOR_ORDER_BGR"]
        self.background = tuple(int(v) for v in spec.get("background", [255, 255, 255]))
        self.scale = np.float32(spec["scale"][0])
        self.mean = np.array(spec["mean"], dtype=np.float32)
        self.std = np.array(spec["std"], dtype=np.float32)

    def __call__(self, data):
        im = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
        if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
            im = im.convert("RGBA")
            bg = Image.new("RGB", im.size, self.background)
            bg.paste(im, mask=im.getchannel("A"))
            im = bg
        x = np.asarray(im.convert("RGB").resize(self.size, self.filter), dtype=np.float32)
        if self.bgr:
            x = x[..., ::-1]
        x = (x * self.scale - self.mean) / self.std
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


class Body(BaseModel):
    data: str


def load_model(repository, model):
    """The model's preprocessor and labels."""
    with open(os.path.join(repository, model, "labels.json")) as f:
        return Preprocessor(read_spec(repository, model)), json.load(f)


def create_app(pred=None, model=None, repository=None):
    """The service; arguments default to PRED_ADDRESS, PREP_MODEL and MODEL_REPOSITORY."""
    pred = pred or os.environ.get("PRED_ADDRESS", "127.0.0.1:50051")
    model = model or os.environ.get("PREP_MODEL", "resnet50")
    repository = repository or os.environ.get("MODEL_REPOSITORY", "models")
    prep, labels = load_model(repository, model)
    msg = oip_classes()
    channel = grpc.insecure_channel(pred)

    def rpc(method, request, response):
        call = channel.unary_unary(f"/inference.GRPCInferenceService/{method}",
                                   request_serializer=msg[request].SerializeToString,
                                   response_deserializer=msg[response].FromString)
        return lambda req: call(req, timeout=RPC_TIMEOUT_S)

    model_infer = rpc("ModelInfer", "ModelInferRequest", "ModelInferResponse")
    model_ready = rpc("ModelReady", "ModelReadyRequest", "ModelReadyResponse")

    def classify(body):
        try:
            x = prep(base64.b64decode(body.data.partition(";base64,")[2] or body.data))
        except (binascii.Error, UnidentifiedImageError, OSError, ValueError) as e:
            raise HTTPException(400, f"data is not a base64 image Pillow reads: {e}")
        req = msg["ModelInferRequest"](model_name=model, raw_input_contents=[x.tobytes()])
        req.inputs.add(name=prep.input, datatype="FP32", shape=x.shape)
        try:
            resp = model_infer(req)
        except grpc.RpcError as e:
            raise HTTPException(502, f"pred: {e.code().name}: {e.details()}")
        logits = np.frombuffer(resp.raw_output_contents[0], dtype="<f4").astype(np.float64)
        p = np.exp(logits - logits.max())
        return p / p.sum(), int(resp.model_version or 0)

    app = FastAPI(title="python-prep")

    @app.post("/predict/label")
    def predict_label(body: Body):
        p, _ = classify(body)
        return {"prediction": labels[int(p.argmax())]}

    @app.post("/predict/topk")
    def predict_topk(body: Body, k: int = Query(DEFAULT_TOP_K, ge=1)):
        p, version = classify(body)
        top = np.argsort(-p, kind="stable")[:k]
        return {"prediction": [{"label": labels[i], "index": int(i), "probability": float(p[i])} for i in top],
                "model": model, "version": version}

    @app.get("/ready")
    def ready():
        try:
            ok = model_ready(msg["ModelReadyRequest"](name=model)).ready
        except grpc.RpcError as e:
            raise HTTPException(503, f"pred: {e.code().name}: {e.details()}")
        if not ok:
            raise HTTPException(503, f"pred serves no ready version of {model!r}")
        return {"ready": "ok", "model": model}

    return app


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pred", default="127.0.0.1:50051", help="pred's gRPC address")
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--model-repository", default="models")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000, help="0: an ephemeral port")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    # The workers are new processes that build the app from the environment.
    os.environ.update(PRED_ADDRESS=args.pred, PREP_MODEL=args.model, MODEL_REPOSITORY=args.model_repository)
    try:
        load_model(args.model_repository, args.model)  # fail here, once, on a bad model
    except OSError as e:
        sys.exit(f"python-prep: {e}")
    sock = socket.create_server((args.host, args.port))
    # Accepted sockets inherit this from the listener. Without it, uvicorn's
    # workers leave Nagle on (their listener's proto is 0, so asyncio skips
    # TCP_NODELAY) and each keep-alive answer waits ~40 ms for a delayed ACK
    # (uvicorn issue #3149): the baseline would lose to a bug, not to Python.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    host, port = sock.getsockname()[:2]
    print(f"listening http://{host}:{port}", flush=True)
    config = uvicorn.Config("app:create_app", factory=True, workers=args.workers)
    server = uvicorn.Server(config)
    if args.workers > 1:
        Multiprocess(config, target=server.run, sockets=[sock]).run()
    else:
        server.run(sockets=[sock])


if __name__ == "__main__":
    main()
