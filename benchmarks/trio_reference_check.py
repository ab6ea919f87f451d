"""The trio converter's whole-bar padding against the original, on the test's sequences.

  .venv/bin/python benchmarks/trio_reference_check.py write /tmp/trio
  TF_USE_LEGACY_KERAS=1 $HOME/mvae-ref-venv/bin/python benchmarks/trio_reference_check.py check /tmp/trio

`write` (our venv) saves tests/test_converters.py's 16-bar trios whose melody's last note
ends mid-bar at the piece's end (120 and 97 qpm) and our hierdec-trio_16bar tensors;
`check` (the original's venv, ../shared/reference_runner/setup_venv.sh) converts the same
sequences with the original's converter and prints whether every window is equal and the
melody labels at steps 244..249 (the last note at 244, its note-off at 248).
"""

import json
import os
import sys

import numpy as np

QPMS = (120.0, 97.0)


def write(folder):
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests'))
  from test_converters import _trio_ending_mid_bar
  from mvae_tf import configs
  os.makedirs(folder, exist_ok=True)
  ours = {}
  for qpm in QPMS:
    ns = _trio_ending_mid_bar(qpm)
    with open(os.path.join(folder, 'trio_%d.pb' % qpm), 'wb') as f:
      f.write(ns.SerializeToString())
    tensors = configs.get_config('hierdec-trio_16bar').make_converter('eval').to_tensors(ns)
    ours[str(qpm)] = [np.asarray(w, int).tolist() for w in tensors.outputs]
  with open(os.path.join(folder, 'ours.json'), 'w') as f:
    json.dump(ours, f)


def check(folder):
  from magenta.models.music_vae import configs
  from note_seq.protobuf import music_pb2
  converter = configs.CONFIG_MAP['hierdec-trio_16bar'].data_converter
  with open(os.path.join(folder, 'ours.json')) as f:
    ours = json.load(f)
  for qpm in QPMS:
    with open(os.path.join(folder, 'trio_%d.pb' % qpm), 'rb') as f:
      ns = music_pb2.NoteSequence.FromString(f.read())
    ref = [np.asarray(w, int).tolist() for w in converter.to_tensors(ns).outputs]
    melody = np.argmax(np.array(ref[0])[244:250, :90], -1).tolist() if ref else None
    print('qpm %g: windows original %d ours %d, all equal: %s; original melody labels '
          '244..249: %s' % (qpm, len(ref), len(ours[str(qpm)]), ref == ours[str(qpm)], melody))


if __name__ == '__main__':
  {'write': write, 'check': check}[sys.argv[1]](sys.argv[2])
