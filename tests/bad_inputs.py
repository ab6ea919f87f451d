"""A catalogue of bad inputs to every command, with what each must now do.

Used by tests/test_bad_inputs.py (each case: the exit code, one line on
stderr containing the expected words, no traceback, and what must be left
on disk) and by benchmarks/bad_inputs_table.py (the table in BUILD_NOTES.md).
Each case runs `mvae` in-process through mvae_tf.cli.main.
"""

import collections
import json
import os
import shutil

import numpy as np

REFERENCE_MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'reference',
                                'models')

# name: what is wrong; argv: the command (format fields are paths under the work
# dir); code: the exit code; expect: words the one stderr line must hold (empty
# for exit 0); left: {file: 'unchanged' | 'absent'} checked afterwards.
Case = collections.namedtuple('Case', ['command', 'name', 'argv', 'code', 'expect', 'left'])


def _case(command, name, argv, code, expect, left=None):
  return Case(command, name, argv, code, expect, left or {})


CASES = [
    # prepare
    _case('prepare', 'mistyped input path, existing output',
          'prepare --input {w}/nosuch.mid --output {w}/good.tfrecord', 2,
          'no such input', {'good.tfrecord': 'unchanged'}),
    _case('prepare', 'every input unreadable (empty, corrupt)',
          'prepare --input {w}/empty.mid {w}/corrupt.mid --output {w}/good.tfrecord', 2,
          'no file could be read', {'good.tfrecord': 'unchanged'}),
    _case('prepare', 'output under a file', 'prepare --input {w}/tune.mid --output '
          '{w}/tune.mid/x.tfrecord', 2, 'Not a directory'),
    _case('prepare', 'output under /proc', 'prepare --input {w}/tune.mid --output '
          '/proc/mvae/x.tfrecord', 2, 'cannot write /proc/mvae/x.tfrecord'),
    _case('prepare', 'output not .tfrecord', 'prepare --input {w}/tune.mid --output '
          '{w}/out.txt', 2, 'ending in .tfrecord', {'out.txt': 'absent'}),
    _case('prepare', 'good, empty, corrupt, 3/4 and non-UTF-8 named files together',
          'prepare --input {w}/tune.mid {w}/empty.mid {w}/corrupt.mid {w}/waltz.mid '
          '{w}/caf\udce9.mid --output {w}/mixed.tfrecord', 0, ''),
    # inspect
    _case('inspect', 'missing file', 'inspect {w}/nosuch.tfrecord --config cat-mel_2bar_small',
          2, 'no such file'),
    _case('inspect', 'damaged TFRecord', 'inspect {w}/damaged.tfrecord --config '
          'cat-mel_2bar_small', 2, 'bad length checksum'),
    _case('inspect', 'truncated TFRecord', 'inspect {w}/truncated.tfrecord --config '
          'cat-mel_2bar_small', 2, 'truncated'),
    _case('inspect', 'unknown config', 'inspect {w}/good.tfrecord --config cat-mel_2bar_smal',
          2, 'unknown config'),
    _case('inspect', 'empty MIDI', 'inspect {w}/empty.mid --config cat-mel_2bar_small', 2,
          'the file is empty'),
    _case('inspect', 'too-large MIDI (16.02 MB)', 'inspect {w}/huge.mid --config '
          'cat-mel_2bar_small', 2, 'mvae prepare --max_file_mb N'),
    _case('inspect', 'a 3/4 tune (explained, not an error)', 'inspect {w}/waltz.mid --config '
          'cat-mel_2bar_small', 0, ''),
    # generate
    _case('generate', '--temperature nan', 'generate --temperature nan --output_dir {w}/o', 2,
          'temperature'),
    _case('generate', '--temperature -1', 'generate --temperature -1 --output_dir {w}/o', 2,
          'temperature'),
    _case('generate', '--length 10000 on a 2-bar model', 'generate --length 10000 '
          '--output_dir {w}/o', 2, 'hierarchical 16-bar model'),
    _case('generate', '--num_outputs 5000', 'generate --num_outputs 5000 --output_dir {w}/o', 2,
          '--max_outputs'),
    _case('generate', 'a directory as --input_midi_1', 'generate --mode similar --input_midi_1 '
          '{w} --output_dir {w}/o', 2, 'is a directory'),
    _case('generate', 'missing --input_midi_1', 'generate --mode similar --input_midi_1 '
          '{w}/nosuch.mid --output_dir {w}/o', 2, 'no such file'),
    _case('generate', 'corrupt --input_midi_1', 'generate --mode similar --input_midi_1 '
          '{w}/corrupt.mid --output_dir {w}/o', 2, 'corrupt'),
    _case('generate', 'a 3/4 input', 'generate --mode similar --input_midi_1 {w}/waltz.mid '
          '--output_dir {w}/o', 2, 'metre 3/4'),
    _case('generate', 'drums to the melody model', 'generate --mode similar --preset '
          'folk-mel_2bar --input_midi_1 {w}/drums.mid --output_dir {w}/o', 2, 'drums model'),
    _case('generate', '--input_bar past the end', 'generate --mode similar --input_midi_1 '
          '{w}/tune.mid --input_bar 99 --output_dir {w}/o', 2, 'usable windows start at bars'),
    _case('generate', 'too-large input MIDI', 'generate --mode similar --input_midi_1 '
          '{w}/huge.mid --output_dir {w}/o', 2, 'cut a shorter excerpt'),
    _case('generate', 'output dir under a file', 'generate --output_dir {w}/tune.mid/o', 2,
          'Not a directory'),
    _case('generate', 'output dir under /proc', 'generate --output_dir /proc/mvae', 2,
          '/proc/mvae'),
    _case('generate', 'a model path that does not exist', 'generate --checkpoint_file '
          '{w}/nosuch --output_dir {w}/o', 2, 'nosuch'),
    _case('generate', 'a TFRecord as the model', 'generate --checkpoint_file {w}/good.tfrecord '
          '--output_dir {w}/o', 2, 'good.tfrecord'),
    _case('generate', 'packaged model (weights only) with NaN weights', 'generate '
          '--checkpoint_file {w}/nan --output_dir {w}/o', 2, 'NaN or infinite'),
    _case('generate', 'packaged model with a truncated model.tflite', 'generate '
          '--checkpoint_file {w}/truncated_tflite --output_dir {w}/o', 2,
          'model.tflite is damaged'),
    _case('generate', "packaged model with another model's model.tflite", 'generate '
          '--checkpoint_file {w}/foreign_tflite --output_dir {w}/o', 2,
          'is an export of cat-drums_2bar_cpu'),
    _case('generate', 'packaged model naming an unknown config', 'generate --checkpoint_file '
          '{w}/renamed --output_dir {w}/o', 2, 'unknown config'),
    _case('generate', 'a whole 2/4 tune (read as 4/4)', 'generate --mode similar --input_midi_1 '
          '{w}/polka.mid --num_outputs 1 --output_dir {w}/o24', 0, ''),
    _case('generate', 'packaged model with a truncated weights.npz (--backend tf)', 'generate '
          '--checkpoint_file {w}/truncated_npz --backend tf --output_dir {w}/o', 2,
          'truncated or damaged'),
    _case('generate', 'packaged model with a truncated config.json', 'generate '
          '--checkpoint_file {w}/truncated_json --output_dir {w}/o', 2, 'not valid JSON'),
    # train
    _case('train', 'missing examples', 'train --config tiny-mel_2bar --run_dir {w}/run '
          '--examples_path {w}/nosuch.tfrecord --num_steps 2', 2, 'no such examples file'),
    _case('train', 'damaged examples', 'train --config tiny-mel_2bar --run_dir {w}/run '
          '--examples_path {w}/damaged.tfrecord --num_steps 2', 2, 'mvae inspect'),
    _case('train', 'damaged eval examples', 'train --config tiny-mel_2bar --run_dir {w}/run '
          '--examples_path {w}/good.tfrecord --eval_examples_path {w}/truncated.tfrecord '
          '--num_steps 2', 2, 'truncated'),
    _case('train', 'a run dir started with other hparams', 'train --config tiny-mel_2bar '
          '--run_dir {w}/other_run --examples_path {w}/good.tfrecord --num_steps 2', 2,
          'z_size'),
    _case('train', '--num_steps 0', 'train --config tiny-mel_2bar --run_dir {w}/run '
          '--examples_path {w}/good.tfrecord --num_steps 0', 2, 'must be positive'),
    _case('train', 'unknown config', 'train --config tiny-mel_2bar_x --run_dir {w}/run '
          '--examples_path {w}/good.tfrecord --num_steps 2', 2, 'unknown config'),
    # evaluate
    _case('evaluate', 'damaged examples', 'evaluate --config tiny-mel_2bar --run_dir {w}/run '
          '--examples_path {w}/truncated.tfrecord', 2, 'mvae inspect'),
    _case('evaluate', 'a run dir without checkpoints', 'evaluate --config tiny-mel_2bar '
          '--run_dir {w}/empty_run --examples_path {w}/good.tfrecord', 2, 'no checkpoint'),
    # import-magenta
    _case('import-magenta', 'missing checkpoint', 'import-magenta --config cat-mel_2bar_small '
          '--checkpoint {w}/nosuch.ckpt --output {w}/imported', 2, 'nosuch.ckpt'),
    _case('import-magenta', "the checkpoint's sizes, no --hparams", 'import-magenta --config '
          'cat-drums_2bar_small --checkpoint {r}/cat-drums_2bar_small --output {w}/imported', 2,
          "pass --hparams 'enc_rnn_size=[48],dec_rnn_size=[32,32],z_size=12'",
          {'imported': 'absent'}),
    _case('import-magenta', 'a truncated checkpoint', 'import-magenta --config '
          'cat-drums_2bar_small --hparams enc_rnn_size=[48],dec_rnn_size=[32,32],z_size=12 '
          '--checkpoint {w}/truncated_ckpt --output {w}/imported', 2, 'truncated or damaged',
          {'imported': 'absent'}),
    _case('import-magenta', 'output under a file', 'import-magenta --config '
          'cat-drums_2bar_small --hparams enc_rnn_size=[48],dec_rnn_size=[32,32],z_size=12 '
          '--checkpoint {r}/cat-drums_2bar_small --output {w}/tune.mid/imported', 2,
          'Not a directory'),
    # export
    _case('export', 'a TFRecord as the model', 'export {w}/good.tfrecord --output {w}/exp', 2,
          'good.tfrecord'),
]


def make_inputs(work):
  """The files the cases name, in the directory `work`."""
  import note_seq
  from conftest import make_sequence, rock_beat, scale_melody, varied_melody
  from mvae_tf import pretrained
  from mvae_tf.data import tfrecord

  def midi(name, ns):
    note_seq.sequence_proto_to_midi_file(ns, os.path.join(work, name))

  midi('tune.mid', varied_melody(bars=8))
  midi('drums.mid', rock_beat(bars=2))
  midi('waltz.mid', make_sequence([(60 + i % 5, i * 0.5, i * 0.5 + 0.5) for i in range(24)],
                                  time_signature=(3, 4)))
  midi('polka.mid', make_sequence([(62 + i % 7, i * 0.25, i * 0.25 + 0.25) for i in range(64)],
                                  time_signature=(2, 4)))
  midi(os.fsdecode(b'caf\xe9.mid'), scale_melody(bars=4))
  open(os.path.join(work, 'empty.mid'), 'wb').close()
  with open(os.path.join(work, 'corrupt.mid'), 'wb') as f:
    f.write(b'MThd\x00\x00\x00\x06\x00\x01\x00\x01\x00\xdcMTrk\xff\xff')
  with open(os.path.join(work, 'huge.mid'), 'wb') as f:
    f.write(b'MThd')
    f.truncate(16 * 2**20 + 20_000)  # sparse
  with tfrecord.AtomicTFRecordWriter(os.path.join(work, 'good.tfrecord')) as w:
    for i in range(12):
      ns = varied_melody(bars=10) if i % 2 else scale_melody(bars=6, start_pitch=52 + i)
      w.write(ns.SerializeToString())
  with open(os.path.join(work, 'good.tfrecord'), 'rb') as f:
    data = f.read()
  flipped = bytearray(data)
  flipped[len(data) // 2] ^= 0xFF
  with open(os.path.join(work, 'damaged.tfrecord'), 'wb') as f:
    f.write(bytes(flipped))
  with open(os.path.join(work, 'truncated.tfrecord'), 'wb') as f:
    f.write(data[:-7])  # inside the last record
  nan = os.path.join(work, 'nan')
  shutil.copytree(pretrained.preset_dir('folk-mel_2bar'), nan)
  for name in ('model.tflite', 'model_b64.tflite'):  # weights only: they are what runs
    os.remove(os.path.join(nan, name))
  for name in ('truncated_tflite', 'foreign_tflite'):
    shutil.copytree(pretrained.preset_dir('folk-mel_2bar'), os.path.join(work, name))
  with open(os.path.join(work, 'truncated_tflite', 'model.tflite'), 'r+b') as f:
    f.truncate(5000)
  shutil.copy(os.path.join(pretrained.preset_dir('drums_2bar'), 'model.tflite'),
              os.path.join(work, 'foreign_tflite', 'model.tflite'))
  weights = pretrained.read_weights(nan)
  for v in weights.values():
    v[...] = np.nan
  np.savez_compressed(os.path.join(nan, pretrained.WEIGHTS_FILE),
                      **{k: v.astype(np.float16) for k, v in weights.items()})
  renamed = os.path.join(work, 'renamed')
  shutil.copytree(pretrained.preset_dir('folk-mel_2bar'), renamed)
  info_path = os.path.join(renamed, pretrained.INFO_FILE)
  with open(info_path) as f:
    info = json.load(f)
  info['config'] = 'cat-mel_2bar_cpuu'
  with open(info_path, 'w') as f:
    json.dump(info, f)
  for name, damage in (('truncated_npz', pretrained.WEIGHTS_FILE),
                       ('truncated_json', pretrained.INFO_FILE)):
    shutil.copytree(pretrained.preset_dir('folk-mel_2bar'), os.path.join(work, name))
    path = os.path.join(work, name, damage)
    with open(path, 'r+b') as f:
      f.truncate(os.path.getsize(path) // 2)
  shutil.copytree(os.path.join(REFERENCE_MODELS, 'cat-drums_2bar_small'),
                  os.path.join(work, 'truncated_ckpt'))
  data = os.path.join(work, 'truncated_ckpt', 'model.ckpt.data-00000-of-00001')
  with open(data, 'r+b') as f:
    f.truncate(os.path.getsize(data) // 2)
  from mvae_tf import configs
  from mvae_tf.training import runs
  hp = configs.get_config('tiny-mel_2bar').with_hparams('z_size=6').hparams
  runs.write_run_info(os.path.join(work, 'other_run'), dict(
      config='tiny-mel_2bar', hparams=hp.to_dict(), hparams_overrides='z_size=6'))
  os.makedirs(os.path.join(work, 'empty_run', 'checkpoints'))


def argv(case, work):
  import shlex
  return [a.replace('{w}', work).replace('{r}', REFERENCE_MODELS)
          for a in shlex.split(case.argv)]


def snapshot(case, work):
  """The bytes of the files a case must leave unchanged."""
  out = {}
  for name, how in case.left.items():
    path = os.path.join(work, name)
    if how == 'unchanged':
      with open(path, 'rb') as f:
        out[name] = f.read()
  return out


def check_left(case, work, before):
  """Problems with what the case left on disk (empty when all is as it must be)."""
  problems = []
  for name, how in case.left.items():
    path = os.path.join(work, name)
    if how == 'absent' and os.path.exists(path):
      problems.append('%s was written' % name)
    if how == 'unchanged':
      with open(path, 'rb') as f:
        if f.read() != before[name]:
          problems.append('%s changed' % name)
  leftovers = [n for n in os.listdir(work) if '.tmp-' in n]
  if leftovers:
    problems.append('temporary files left: %s' % leftovers)
  return problems
