"""Seconds to trace and run the first train step of a config, with and without autograph.

    .venv/bin/python benchmarks/trace_time.py CONFIG 1|0     # 1: autograph on (the old way)

Same seed, same weights and batch either way, so the printed losses must agree.
The fake batch feeds the targets as inputs and no controls: configs whose input is their
output (tiny-mel_2bar, tiny-hierdec-trio_2bar; not drum rolls or chord-conditioned ones).
"""
import sys, time
import numpy as np
from mvae_tf import quiet
tf = quiet.import_tensorflow()
from mvae_tf.training import train
from mvae_tf.model.vae import MusicVAE, make_optimizer
config, ag = sys.argv[1], sys.argv[2] == '1'
orig = tf.function
if ag:  # make_train_step passes autograph=False; put it back on
  tf.function = lambda f, **k: orig(f, **dict(k, autograph=True))
else:
  tf.function = lambda f, **k: orig(f, **dict(k, autograph=False))
import keras; keras.utils.set_random_seed(0)
strategy = tf.distribute.get_strategy()
model = MusicVAE.from_config_name(config, 'batch_size=8')
opt = make_optimizer(model.hparams, model)
rng = np.random.default_rng(0)
steps = model.hparams.max_seq_len
outputs = np.concatenate([np.eye(d, dtype=bool)[rng.integers(0, d, (8, steps))] for d in model.output_depths], -1)
batch = (outputs, outputs, np.zeros((8, steps, 0), bool), np.full(8, steps, np.int32))
step = train.make_train_step(strategy, model, opt, seed=3)
t = time.time(); m = step(batch); t1 = time.time(); m2 = step(batch); t2 = time.time()
print(config, 'autograph', ag, 'first %.2f second %.3f loss %.6f %.6f' % (t1 - t, t2 - t1, float(m['loss']), float(m2['loss'])))
