"""What an exported model is, written beside it (metadata.json) and inside it.

Every exported model file gets a JSON description: the config, how its tokens
become notes (the representation), z size, the default tempo, its signatures
with their input and output tensors (names, shapes, dtypes), the
quantization, the runtimes it was checked on, the mvae_tf version and the
parity figures measured at export. The same JSON is packed into each .tflite
file as a TFLite metadata entry named `mvae_tf` (a buffer of the flatbuffer,
no extra dependency), so a model file alone is enough on a device.

`metadata.json` beside a file also carries `sha256` and `size_bytes` of that
file; the packed copy cannot hold its own file's hash and leaves them out.

Reading the packed copy (`read_tflite_metadata`, in edge_demo.metadata) needs
only the standard library: it walks the flatbuffer itself, so a device without
TensorFlow (or the flatbuffers package) can read it.
"""

import json
import os
import struct

from edge_demo.metadata import METADATA_NAME, MetadataError, read_tflite_metadata  # noqa: F401

FORMAT = 'mvae_tf-export-1'
METADATA_FILE = 'metadata.json'


def representation(info):
  """How tokens become notes, from a model's config.json fields (`info['data']`).

  classes per part, steps per quarter and bar, the melody's lowest pitch and
  special events, the drum classes' output pitches (one per class, the first
  of each class), trio part offsets and programs.
  """
  data = dict(info['data'])
  depths = [int(d) for d in info['output_depths']]
  rep = dict(kind=data['kind'], classes=depths,
             part_offsets=[sum(depths[:p]) for p in range(len(depths))],
             steps_per_quarter=data['steps_per_quarter'], steps_per_bar=data['steps_per_bar'],
             window_steps=int(info['hparams']['max_seq_len']))
  if data['kind'] in ('melody', 'trio'):
    rep.update(min_pitch=data['min_pitch'], num_special_events=data['num_special_events'],
               melody_classes='0: no event, 1: note off, k >= 2: pitch min_pitch + k - 2')
  if data['kind'] in ('drums', 'trio'):
    rep.update(drum_pitches=list(data['drum_pitches']),
               drum_classes='bit i of the class set: drum_pitches[i] is hit (512 = 2^9 sets)')
  if data['kind'] == 'trio':
    rep.update(parts=['melody', 'bass', 'drums'], programs=dict(melody=0, bass=data.get(
        'bass_program', 33), drums='channel 10'))
  elif data['kind'] == 'drums':
    rep.update(parts=['drums'], programs=dict(drums='channel 10'))
  else:
    rep.update(parts=['melody'], programs=dict(melody=0))
  rep['velocity'] = data.get('velocity', 80)
  return rep


def signature_details(interpreter_or_sigs):
  """{signature: {inputs: {name: {shape, dtype}}, outputs: ...}} from a LiteRT interpreter."""
  out = {}
  interpreter = interpreter_or_sigs
  for name in sorted(interpreter.get_signature_list()):
    runner = interpreter.get_signature_runner(name)
    entry = {}
    for kind, details in (('inputs', runner.get_input_details()),
                          ('outputs', runner.get_output_details())):
      entry[kind] = {k: dict(shape=[int(s) for s in d['shape']],
                             dtype=getattr(d['dtype'], '__name__', str(d['dtype'])))
                     for k, d in sorted(details.items())}
    out[name] = entry
  return out


def base_metadata(info, graphs, version, step=None, name=None):
  """The fields shared by every file of one export."""
  hp = info['hparams']
  meta = dict(
      format=FORMAT, mvae_tf_version=version, name=name, config=info['config'],
      decoder_type=info['decoder_type'], z_size=int(hp['z_size']),
      max_seq_len=int(hp['max_seq_len']), input_depth=int(info['input_depth']),
      output_depths=[int(d) for d in info['output_depths']],
      control_depth=int(info.get('control_depth', 0)),
      default_qpm=float(info['data'].get('qpm', 120.0)),
      representation=representation(info), training_step=step,
      state_size=graphs.state_size, state_layout=graphs.state_layout(),
      sampling=('Gumbel-max: token = argmax(logits / temperature - log(-log(noise))) per '
                'part, noise uniform in (0, 1); temperature 0 is argmax'))
  if graphs.hierarchical:
    meta.update(num_bars=graphs.num_bars, steps_per_bar=graphs.steps_per_bar,
                embedding_size=graphs.embedding_size)
  return meta


# --- Packing into a .tflite flatbuffer. ---

def pack_tflite_metadata(model_bytes, metadata):
  """The .tflite bytes with `metadata` (a dict) as the `mvae_tf` metadata entry."""
  from tensorflow.lite.python import schema_py_generated as schema
  from tensorflow.lite.tools import flatbuffer_utils
  model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
  payload = json.dumps(metadata, sort_keys=True).encode('utf-8')
  model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_NAME.encode()
                    and m.name != METADATA_NAME]
  buffer = schema.BufferT()
  buffer.data = list(payload)
  model.buffers.append(buffer)
  entry = schema.MetadataT()
  entry.name = METADATA_NAME
  entry.buffer = len(model.buffers) - 1
  model.metadata.append(entry)
  return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def write_json(path, metadata):
  with open(path, 'w') as f:
    json.dump(metadata, f, indent=1, sort_keys=True)
    f.write('\n')
