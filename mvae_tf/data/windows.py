"""`mvae inspect`: how many windows each sequence yields for a config, and
why a sequence yields none."""

import collections

from mvae_tf import configs
from mvae_tf.data import sources, tfrecord


def load_sequences(path):
  """NoteSequences from a TFRecord (from `mvae prepare`) or a music file."""
  if path.lower().endswith(sources.SUPPORTED_EXTENSIONS):
    return list(sources.read_file(
        path, limit_hint='cut it shorter, or read it with `mvae prepare --%s N` and inspect '
                         'the TFRecord'))
  return list(tfrecord.read_note_sequences(path))


def reason_category(reason):
  """'too short: no melody of 2 bars (...)' -> 'too short'."""
  for sep in (':', ' ('):
    if sep in reason:
      reason = reason.split(sep)[0]
  return reason.strip()


def inspect_sequence(converter, ns):
  """{'name', 'windows', 'reasons'} for one NoteSequence (eval mode)."""
  tensors = converter.to_tensors(ns)
  reasons = list(dict.fromkeys(tensors.skipped)) if not len(tensors) else []
  if not len(tensors) and not reasons:
    reasons = ['no window of the required length']
  return {'name': ns.filename or ns.id, 'windows': len(tensors), 'reasons': reasons}


_worker_converter = None


def _init_worker(config_name):
  global _worker_converter
  _worker_converter = configs.get_config(config_name).make_converter('eval')


def _inspect_one(item):
  """The report of a NoteSequence (in this process) or of its bytes (in a worker)."""
  if isinstance(item, bytes):
    from note_seq.protobuf import music_pb2
    item = music_pb2.NoteSequence.FromString(item)
  return inspect_sequence(_worker_converter, item)


def _serialize(ns):
  return ns.SerializeToString()


def inspect_sequences(sequences, config_name, workers=None):
  """Per-sequence reports, in order (in a worker pool from 16 sequences on: fewer cost
  more to send than to convert here)."""
  from mvae_tf import workers as workers_lib
  return list(workers_lib.imap(_inspect_one, sequences, workers, _init_worker, (config_name,),
                               chunksize=16, min_items=16, encode=_serialize))


def summarize(reports, config_name):
  by_reason = collections.Counter()
  for r in reports:
    if not r['windows']:
      by_reason[reason_category(r['reasons'][0])] += 1
  return {
      'config': config_name,
      'sequences': len(reports),
      'sequences_with_windows': sum(1 for r in reports if r['windows']),
      'windows': sum(r['windows'] for r in reports),
      'sequences_without_windows_by_reason': dict(by_reason.most_common()),
  }


def format_report(reports, summary, show_all=False, limit=50):
  lines = []
  shown = 0
  for r in reports:
    if r['windows'] and not show_all:
      continue
    if shown == limit:
      lines.append('... (%d more; --json lists all)' % (
          sum(1 for x in reports if show_all or not x['windows']) - limit))
      break
    shown += 1
    if r['windows']:
      lines.append('%5d windows  %s' % (r['windows'], r['name']))
    else:
      lines.append('    0 windows  %s: %s' % (r['name'], '; '.join(r['reasons'])))
  lines.append('%s: %d of %d sequences yield windows, %d windows in all (eval mode, at '
               'most %s per sequence)' % (
                   summary['config'], summary['sequences_with_windows'],
                   summary['sequences'], summary['windows'],
                   configs.get_config(summary['config']).make_converter()
                   .max_tensors_per_notesequence))
  for reason, count in summary['sequences_without_windows_by_reason'].items():
    lines.append('  %d without windows: %s' % (count, reason))
  return '\n'.join(lines)
