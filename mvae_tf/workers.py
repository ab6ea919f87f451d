"""The one worker pool: `mvae prepare`, `mvae inspect` and `mvae corpus` map their
per-file and per-sequence work through `imap`.

Processes start by forkserver where the platform has it (Linux, macOS), else by
spawn; never by fork, which copies a process whose other threads (tqdm's
monitor, TensorFlow's pools) may hold locks at that moment and leaves the child
deadlocked. (A process has one fork server; the first call's function module
is preloaded into it.)
"""

import multiprocessing
import os


def count(workers=None):
  """Workers to use: `workers`, or one per CPU."""
  return workers or os.cpu_count() or 1


def start_method():
  return 'forkserver' if 'forkserver' in multiprocessing.get_all_start_methods() else 'spawn'


def imap(function, items, workers=None, initializer=None, initargs=(), chunksize=1,
         maxtasksperchild=None, min_items=2, encode=None):
  """Yields function(item) for each item, in order.

  In this process when one worker is asked for or there are fewer than
  `min_items` items (a pool costs more than it saves); else in a pool of
  `workers` processes (see the module docstring), each running
  initializer(*initargs) once. `encode`, when given, turns each item into what
  is sent to a worker (e.g. bytes for an object that pickles slowly) and is
  applied only when a pool is used: `function` then receives the encoded item
  in a worker and the item itself in this process. `function` and `initializer`
  must be module-level functions (they are pickled by name).
  """
  items = list(items)
  workers = min(count(workers), len(items))
  if workers <= 1 or len(items) < min_items:
    if initializer is not None:
      initializer(*initargs)
    yield from map(function, items)
    return
  if encode is not None:
    items = [encode(item) for item in items]
  method = start_method()
  ctx = multiprocessing.get_context(method)
  if method == 'forkserver':
    ctx.set_forkserver_preload([function.__module__])
  with ctx.Pool(workers, initializer=initializer, initargs=initargs,
                maxtasksperchild=maxtasksperchild) as pool:
    yield from pool.imap(function, items, chunksize=chunksize)
