"""The operators of each signature of a .tflite file, with their tensor ranks and types; JSON.

  .venv/bin/python benchmarks/tflite_ops.py out/folk/tflite/int8/model.tflite

What the Edge TPU notes in BUILD_NOTES.md are read from: per signature
(subgraph), each builtin operator with its count and op version, the
largest tensor rank, the tensor types, and whether any shape is dynamic.
"""

import collections
import json
import sys


def describe(path):
  from tensorflow.lite.python import schema_py_generated as schema
  from tensorflow.lite.tools import flatbuffer_utils
  model = flatbuffer_utils.read_model(path)
  names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith('_')}
  types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith('_')}
  keys = {}
  for sig in model.signatureDefs or []:
    keys[sig.subgraphIndex] = sig.signatureKey.decode() if isinstance(
        sig.signatureKey, bytes) else sig.signatureKey
  out = {}
  for i, graph in enumerate(model.subgraphs):
    ops = collections.Counter()
    for op in graph.operators:
      code = model.operatorCodes[op.opcodeIndex]
      builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
      ops['%s v%d' % (names.get(builtin, builtin), code.version)] += 1
    tensors = graph.tensors
    out[keys.get(i, 'subgraph %d (loop body or condition)' % i)] = dict(
        operators=dict(sorted(ops.items())),
        max_rank=max((len(t.shape) for t in tensors if t.shape is not None), default=0),
        tensor_types=dict(collections.Counter(types[t.type] for t in tensors)),
        dynamic_shapes=any(t.shapeSignature is not None and -1 in list(t.shapeSignature)
                           for t in tensors))
  return dict(file=path, subgraphs=len(model.subgraphs), signatures=out)


if __name__ == '__main__':
  print(json.dumps([describe(p) for p in sys.argv[1:]], indent=1))
