"""The paper's latent-space studies on held-out windows: interpolation and attribute vectors.

  .venv/bin/python benchmarks/latent_studies.py interpolation \\
      --models runs/hierdec-mel_16bar_cpu runs/flat-mel_16bar_cpu \\
      --examples data/folk/eval.tfrecord --pairs 32 --points 11 \\
      --output docs/figures/interpolation_mel_16bar.png [--json FILE]
  .venv/bin/python benchmarks/latent_studies.py attributes --model runs/hierdec-mel_16bar_cpu \\
      --vectors_from data/folk/train.tfrecord --examples data/folk/eval.tfrecord \\
      --output docs/figures/attributes_mel_16bar.png [--json FILE]
  .venv/bin/python benchmarks/latent_studies.py prior --models folk-mel_2bar \\
      runs/cat-mel_2bar_small_b64/kept/ckpt-N --examples data/folk/eval.tfrecord \\
      --samples 512 --output docs/figures/prior_mel_2bar.png [--json FILE]

interpolation: pairs of held-out windows from different tunes (seeded). Along the path
from A to B (--points, ends included) it decodes greedily from slerp(mu_A, mu_B, t) with
each model, and blends in data space (each step taken from B with probability t, else
from A, seeded); for each point it measures the Hamming distance to A and to B (the
fraction of the window's steps whose label differs), the note density (onsets per
step) and the log-likelihood under the first model (teacher-forced log p(x | z) per
step, nats; for the latent paths z is the path's point, for the data path z is the
blend's own mu). Means over pairs, plotted against t.

attributes: vectors from the training windows (the top quarter's mean mu minus the bottom
quarter's, as `mvae generate --mode attribute` computes them); for each held-out window's
mu and each attribute, decodes mu + s * vector for s in --strengths and measures the
mean change of every attribute from s = 0, in units of that attribute's standard
deviation over the held-out windows. One panel per attribute vector.

prior: what `mvae generate` draws. For each model, --samples draws of z from N(0, I)
decoded at --temperature (seeded); for each attribute, the samples' mean and the
Wasserstein-1 distance between the samples' values and the held-out windows' values, in
units of the held-out standard deviation (0: the same distribution), the share of
samples with no note, and the share outside the data (some attribute beyond every
held-out window's: a few such draws can dominate W1; draws with no note count there too,
and the share grows as the held-out set shrinks, so compare models on one set). A model whose posterior sits far from N(0, I) (a large KL) decodes
prior draws it never saw in training, and this is where that shows.
"""

import argparse
import json
import sys

import numpy as np


def _windows(model, path, seed):
  from mvae_tf.data import tfrecord
  sequences = list(tfrecord.read_note_sequences(path))
  inputs, outputs, controls, lengths, owners = model.windows(sequences, all_windows=True,
                                                             skip_empty=True)
  return inputs, outputs, controls, lengths, np.asarray(owners)


def _labels(onehot, depths):
  bounds = np.cumsum([0] + list(depths))
  return np.stack([np.argmax(onehot[..., a:b], -1) for a, b in zip(bounds, bounds[1:])], -1)


def _log_likelihood(model, indices, z):
  """Mean log p(x | z) per step (nats), x given as labels [N, T, P]."""
  depths = model.output_depths
  from mvae_tf.generation.trained_model import onehot
  targets = onehot(indices, depths).astype(np.float32)
  logits = np.asarray(model.teacher_forced_logits(targets, None, z), np.float64)
  total, start = 0.0, 0
  for p, d in enumerate(depths):
    part = logits[..., start:start + d]
    part = part - part.max(-1, keepdims=True)
    log_p = part - np.log(np.exp(part).sum(-1, keepdims=True))
    total = total + np.take_along_axis(log_p, indices[..., p:p + 1], -1)[..., 0]
    start += d
  return total.mean(-1)


def _density(indices, model):
  if model.kind == 'drums':
    return (indices[..., 0] > 0).mean(-1)
  return (indices[..., 0] >= 2).mean(-1)  # melody (or trio melody) onsets


def interpolation(args):
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  from mvae_tf import atomic
  from mvae_tf.generation.trained_model import TrainedModel, interpolate_latents
  models = [TrainedModel.load(m) for m in args.models]
  first = models[0]
  inputs, outputs, controls, lengths, owners = _windows(first, args.examples, args.seed)
  rng = np.random.default_rng(args.seed)
  pairs = []
  while len(pairs) < args.pairs:
    a, b = rng.choice(len(owners), 2, replace=False)
    if owners[a] != owners[b]:
      pairs.append((a, b))
  pairs = np.asarray(pairs)
  ts = np.linspace(0.0, 1.0, args.points)
  labels = _labels(outputs, first.output_depths)  # [N, T, P]
  ends_a, ends_b = labels[pairs[:, 0]], labels[pairs[:, 1]]
  length = first.max_seq_len
  curves = {}

  def measure(name, paths, z):
    """paths [pairs, points, T, P] labels; z [pairs * points, z] for the likelihood."""
    flat = paths.reshape((-1,) + paths.shape[2:])
    ham_a = (paths != ends_a[:, None]).any(-1).mean(-1)
    ham_b = (paths != ends_b[:, None]).any(-1).mean(-1)
    ll = _log_likelihood(first, flat, z).reshape(paths.shape[:2])
    curves[name] = dict(hamming_a=ham_a.mean(0).tolist(), hamming_b=ham_b.mean(0).tolist(),
                        density=_density(paths, first).mean(0).tolist(),
                        log_likelihood=ll.mean(0).tolist())

  for label, model in zip(args.models, models):
    if model.max_seq_len != length or list(model.output_depths) != list(first.output_depths):
      raise SystemExit('%s: windows differ from %s' % (label, args.models[0]))
    _, mu, _ = model.encode_tensors(inputs, lengths, controls, seed=0)
    z = np.stack([interpolate_latents(mu[a], mu[b], args.points) for a, b in pairs])
    flat_z = z.reshape(-1, z.shape[-1])
    paths, _ = model.decode_indices(flat_z, length, 0.0)
    paths = np.asarray(paths).reshape((len(pairs), args.points) + paths.shape[1:])
    # The likelihood is the first model's: for another model's path, its own mu of the path.
    if model is first:
      like_z = flat_z
    else:
      like_z = _mu_of(first, paths.reshape((-1,) + paths.shape[2:]))
    measure('latent, %s' % (model.config_name or label), paths, like_z)
  take_b = rng.random((len(pairs), args.points, length)) < ts[None, :, None]
  blend = np.where(take_b[..., None], ends_b[:, None], ends_a[:, None])
  measure('data space', blend, _mu_of(first, blend.reshape((-1,) + blend.shape[2:])))

  fig = Figure(figsize=(13, 3.8), dpi=100)
  FigureCanvasAgg(fig)
  axes = fig.subplots(1, 3)
  for i, (name, c) in enumerate(curves.items()):
    color = 'C%d' % i
    axes[0].plot(ts, c['hamming_a'], '-', color=color, label=name)
    axes[0].plot(ts, c['hamming_b'], '--', color=color)
    axes[1].plot(ts, c['density'], color=color, label=name)
    axes[2].plot(ts, c['log_likelihood'], color=color, label=name)
  axes[0].set(xlabel='t (A to B)', ylabel='Hamming distance (fraction of steps)',
              title='to A (solid) and B (dashed)')
  axes[1].set(xlabel='t', ylabel='note onsets per step', title='note density')
  axes[2].set(xlabel='t', ylabel='log p(x | z) per step (nats)',
              title='log-likelihood under %s' % first.config_name)
  axes[0].legend(fontsize=7)
  fig.tight_layout()
  atomic.write_file(args.output, lambda tmp: fig.savefig(tmp, format='png'))
  return dict(study='interpolation', models=args.models, examples=args.examples,
              pairs=len(pairs), points=args.points, seed=args.seed, t=ts.tolist(),
              curves=curves)


def _mu_of(model, indices):
  """mu of windows given as labels [N, T, P] (full length)."""
  from mvae_tf.generation.trained_model import onehot
  converter = model.converter
  if getattr(converter, 'roll_input', False):  # 16-bar drums: 9-class roll + a "no hit" bit
    inputs = converter.inputs_from_labels(indices[..., 0]).astype(np.float32)
  else:
    inputs = onehot(indices, model.output_depths)
  lengths = np.full(len(indices), indices.shape[1], np.int32)
  _, mu, _ = model.encode_tensors(inputs, lengths, None, seed=0)
  return mu


def attributes(args):
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  from mvae_tf import atomic
  from mvae_tf.generation import attributes as attr
  from mvae_tf.data import tfrecord
  from mvae_tf.generation.trained_model import TrainedModel
  model = TrainedModel.load(args.model)
  vectors, meta = attr.compute_attribute_vectors(
      model, list(tfrecord.read_note_sequences(args.vectors_from)))
  inputs, outputs, controls, lengths, _ = _windows(model, args.examples, args.seed)
  rng = np.random.default_rng(args.seed)
  keep = rng.choice(len(lengths), min(args.windows, len(lengths)), replace=False)
  # Changes are in units of each attribute's spread over the held-out windows themselves.
  truth = _labels(outputs[keep], model.output_depths)
  _, mu, _ = model.encode_tensors(inputs[keep], lengths[keep],
                                  None if controls is None else controls[keep], seed=0)
  names = list(vectors)
  spread = {a: float(np.std([attr.of_indices(a, w, model.data) for w in truth])) or 1.0
            for a in names}
  strengths = [float(s) for s in args.strengths.split(',')]
  if 0.0 not in strengths:
    raise SystemExit('--strengths must include 0 (changes are measured from it)')
  changes = {}
  for vector_name in names:
    values = {}
    for s in strengths:
      indices, _ = model.decode_indices(attr.apply(mu, vectors[vector_name], s),
                                        model.max_seq_len, 0.0)
      values[s] = {a: np.mean([attr.of_indices(a, w, model.data) for w in np.asarray(indices)])
                   for a in names}
    changes[vector_name] = {a: [float((values[s][a] - values[0.0][a]) / spread[a])
                                for s in strengths] for a in names}
  fig = Figure(figsize=(3.4 * len(names), 3.4), dpi=100)
  FigureCanvasAgg(fig)
  axes = np.atleast_1d(fig.subplots(1, len(names)))
  for ax, vector_name in zip(axes, names):
    for i, a in enumerate(names):
      ax.plot(strengths, changes[vector_name][a], 'o-', color='C%d' % i, ms=3, label=a,
              lw=2.0 if a == vector_name else 0.8)
    ax.axhline(0, color='gray', lw=0.5)
    ax.set(title='+ s * %s vector' % vector_name, xlabel='strength s')
  axes[0].set_ylabel('mean change from s = 0 (held-out std)')
  axes[0].legend(fontsize=7)
  fig.tight_layout()
  atomic.write_file(args.output, lambda tmp: fig.savefig(tmp, format='png'))
  return dict(study='attributes', model=args.model, vectors_from=args.vectors_from,
              examples=args.examples, windows=len(keep), strengths=strengths,
              vector_meta=meta, held_out_std=spread, changes=changes)


def _wasserstein(a, b, points=201):
  """Wasserstein-1 distance of two 1-D samples (their quantile functions' mean gap)."""
  q = np.linspace(0, 1, points)
  return float(np.mean(np.abs(np.quantile(a, q) - np.quantile(b, q))))


def _short(name):
  """A model's label: a run's checkpoint as RUN/ckpt-N, anything else as given."""
  parts = [p for p in name.split('/') if p not in ('', 'runs', 'kept', 'checkpoints')]
  return '/'.join(parts[-2:])


def prior(args):
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  from mvae_tf import atomic
  from mvae_tf.generation import attributes as attr
  from mvae_tf.generation.trained_model import TrainedModel
  models = [TrainedModel.load(m) for m in args.models]
  first = models[0]
  _, outputs, _, _, _ = _windows(first, args.examples, args.seed)
  truth = _labels(outputs, first.output_depths)
  names = list(attr.available(first.kind))
  held_out = {a: np.array([attr.of_indices(a, w, first.data) for w in truth]) for a in names}
  spread = {a: float(np.std(held_out[a])) or 1.0 for a in names}
  results = {}
  for name, model in zip(args.models, models):
    if model.kind != first.kind or model.max_seq_len != first.max_seq_len:
      raise SystemExit('%s: a %s model of %d steps; the first is a %s model of %d steps'
                       % (name, model.kind, model.max_seq_len, first.kind, first.max_seq_len))
    indices, _ = model.decode_indices(model.random_latents(args.samples, args.seed),
                                      model.max_seq_len, args.temperature, args.seed)
    indices = np.asarray(indices)
    values = {a: np.array([attr.of_indices(a, w, model.data) for w in indices]) for a in names}
    results[name] = dict(
        values=values,
        mean={a: float(values[a].mean()) for a in names},
        w1_held_out_std={a: _wasserstein(values[a], held_out[a]) / spread[a] for a in names},
        empty=float(np.mean(_density(indices, model) == 0)),
        # Draws with any attribute beyond what any held-out window has (the tail that
        # dominates W1 when a model's draws are mostly like the data).
        outside=float(np.mean(np.any([(values[a] < held_out[a].min()) |
                                      (values[a] > held_out[a].max()) for a in names], 0))))
  fig = Figure(figsize=(3.4 * len(names), 3.2), dpi=100)
  FigureCanvasAgg(fig)
  axes = np.atleast_1d(fig.subplots(1, len(names)))
  for ax, a in zip(axes, names):
    bins = np.histogram_bin_edges(np.concatenate(
        [held_out[a]] + [r['values'][a] for r in results.values()]), 20)
    ax.hist(held_out[a], bins, density=True, color='gray', alpha=0.5, label='held-out')
    for i, (name, r) in enumerate(results.items()):
      ax.hist(r['values'][a], bins, density=True, histtype='step', color='C%d' % i, lw=1.5,
              label='%s (W1 %.2f)' % (_short(name), r['w1_held_out_std'][a]))
    ax.set(title=a)
    ax.legend(fontsize=6)
  fig.suptitle('prior draws at temperature %g against held-out windows' % args.temperature,
               fontsize=9)
  fig.tight_layout()
  atomic.write_file(args.output, lambda tmp: fig.savefig(tmp, format='png'))
  for r in results.values():
    del r['values']
  return dict(study='prior', models=args.models, examples=args.examples,
              held_out_windows=len(truth), samples=args.samples, temperature=args.temperature,
              held_out_mean={a: float(held_out[a].mean()) for a in names},
              held_out_std=spread, models_results=results)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  sub = parser.add_subparsers(dest='study', required=True)
  p = sub.add_parser('interpolation')
  p.add_argument('--models', nargs='+', required=True)
  p.add_argument('--pairs', type=int, default=32)
  p.add_argument('--points', type=int, default=11)
  p = sub.add_parser('attributes')
  p.add_argument('--model', required=True)
  p.add_argument('--vectors_from', required=True, help='TFRecord the vectors are computed on')
  p.add_argument('--windows', type=int, default=128)
  p.add_argument('--strengths', default='-2,-1,0,1,2')
  p = sub.add_parser('prior')
  p.add_argument('--models', nargs='+', required=True)
  p.add_argument('--samples', type=int, default=512)
  p.add_argument('--temperature', type=float, default=0.5,
                 help="decoding temperature (default 0.5, as mvae generate's)")
  for p in sub.choices.values():
    p.add_argument('--examples', required=True, help='held-out TFRecord')
    p.add_argument('--output', required=True, help='PNG path')
    p.add_argument('--json', help='write the numbers here too')
    p.add_argument('--seed', type=int, default=0)
  args = parser.parse_args(argv)
  result = {'interpolation': interpolation, 'attributes': attributes,
            'prior': prior}[args.study](args)
  if args.json:
    from mvae_tf import atomic
    atomic.write_json(args.json, result)
  print(json.dumps(result, indent=1))
  print('wrote %s' % args.output, file=sys.stderr)


if __name__ == '__main__':
  main()
