"""Requests to an exported SavedModel as TF Serving takes them, and a local stand-in.

TF Serving (its binary or docker image, not installable here) serves
DIR/saved_model/ (version folder 1/) on REST port 8501 and gRPC port 8500.
These helpers build the two request forms the README shows:

  rest_body('decode', z=..., temperature=..., noise=...)
      {"signature_name": "decode", "inputs": {"z": [[...]], ...}}   (columnar "inputs":
      each input its own nested list, since z, temperature and noise differ in shape)
  predict_request('folk', 'decode', z=..., ...)   a tensorflow_serving PredictRequest

and `answer_rest` / `answer_predict` run a request against the SavedModel's
loaded signature in this process, the way TF Serving would, for tests and
for checking a request before deploying.
"""

import json

import numpy as np


def rest_body(signature, **inputs):
  """The JSON body (a dict) of a REST :predict request in the columnar format."""
  return {'signature_name': signature,
          'inputs': {k: np.asarray(v).tolist() for k, v in inputs.items()}}


def predict_request(model_name, signature, **inputs):
  """A tensorflow_serving.apis.predict_pb2.PredictRequest with these inputs."""
  import tensorflow as tf
  from tensorflow_serving.apis import predict_pb2
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = signature
  for name, value in inputs.items():
    request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
  return request


def _signature(saved_model, name):
  import tensorflow as tf
  loaded = tf.saved_model.load(saved_model) if isinstance(saved_model, str) else saved_model
  if name not in loaded.signatures:
    raise KeyError('no signature %r (has: %s)' % (name, ', '.join(sorted(loaded.signatures))))
  return loaded.signatures[name]


def answer_rest(saved_model, body):
  """The REST response body (dict, columnar "outputs") for a request body (dict or JSON)."""
  import tensorflow as tf
  if isinstance(body, (str, bytes)):
    body = json.loads(body)
  fn = _signature(saved_model, body.get('signature_name', 'serving_default'))
  _, specs = fn.structured_input_signature
  feed = {k: tf.constant(np.asarray(v), dtype=specs[k].dtype)
          for k, v in body['inputs'].items()}
  out = fn(**feed)
  return {'outputs': {k: v.numpy().tolist() for k, v in out.items()}}


def answer_predict(saved_model, request):
  """A PredictResponse for a PredictRequest, from the loaded signature."""
  import tensorflow as tf
  from tensorflow_serving.apis import predict_pb2
  fn = _signature(saved_model, request.model_spec.signature_name or 'serving_default')
  feed = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
  out = fn(**feed)
  response = predict_pb2.PredictResponse()
  response.model_spec.CopyFrom(request.model_spec)
  for k, v in out.items():
    response.outputs[k].CopyFrom(tf.make_tensor_proto(v.numpy()))
  return response
