"""The MusicVAE model, its objective and its schedules.

`MusicVAE` holds an encoder and a decoder built from a config's hparams and
its converter's depths. The loss is a method (`compute_loss(batch, step)`)
and the schedules are pure functions of the step, so a custom training loop
(and `train_step` here) can use them without Keras' fit.

Objective (per batch): mean over examples of the cross-entropy summed over
real steps (and parts), plus beta * mean of max(KL - free_bits * ln 2, 0),
beta = (1 - beta_rate^step) * max_beta.
"""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from mvae_tf.hparams import HParams
from mvae_tf.model.decoders import CategoricalLSTMDecoder, HierarchicalLSTMDecoder
from mvae_tf.model.encoder import BidirectionalLSTMEncoder

tfd = tfp.distributions


# --- Schedules: pure functions of (hparams, step). ---

# Schedules are computed in float64: 0.99999 ** step loses 1e-3 relative in float32.

def beta(hparams, step):
  """KL weight: (1 - beta_rate^step) * max_beta."""
  step = tf.cast(step, tf.float64)
  b = (1.0 - tf.pow(tf.constant(hparams.beta_rate, tf.float64), step)) * hparams.max_beta
  return tf.cast(b, tf.float32)


def sampling_probability(hparams, step):
  """Probability that a training step's decoder input is the model's own sample."""
  step = tf.cast(step, tf.float64)
  rate = tf.constant(hparams.sampling_rate, tf.float64)
  if hparams.sampling_schedule == 'constant':
    p = rate
  elif hparams.sampling_schedule == 'exponential':
    p = 1.0 - tf.pow(rate, step)
  else:  # inverse_sigmoid: 1 - k / (k + exp(step / k))
    p = 1.0 - rate / (rate + tf.exp(tf.minimum(step / rate, 700.0)))
  return tf.cast(p, tf.float32)


def learning_rate(hparams, step):
  """(learning_rate - min_learning_rate) * decay_rate^step + min_learning_rate."""
  step = tf.cast(step, tf.float64)
  lr = ((hparams.learning_rate - hparams.min_learning_rate)
        * tf.pow(tf.constant(hparams.decay_rate, tf.float64), step)
        + hparams.min_learning_rate)
  return tf.cast(lr, tf.float32)


@keras.saving.register_keras_serializable(package='mvae_tf')
class LearningRate(keras.optimizers.schedules.LearningRateSchedule):
  """`learning_rate(hparams, optimizer step)` as a Keras schedule."""

  def __init__(self, learning_rate, decay_rate, min_learning_rate):
    self.learning_rate = learning_rate
    self.decay_rate = decay_rate
    self.min_learning_rate = min_learning_rate

  def __call__(self, step):
    return learning_rate(self, step)

  def get_config(self):
    return dict(learning_rate=self.learning_rate, decay_rate=self.decay_rate,
                min_learning_rate=self.min_learning_rate)


@keras.saving.register_keras_serializable(package='mvae_tf')
class Adam(keras.optimizers.Adam):
  """Adam that takes gradients already summed over replicas.

  Gradients are summed over replicas by `train_step`, which needs the sum for
  the global norm, so the optimizer must not sum them again.
  """

  def _all_reduce_sum_gradients(self, grads_and_vars):
    return list(grads_and_vars)


# tf.train.AdamOptimizer's default, which the original trains with (Keras' is 1e-7).
ADAM_EPSILON = 1e-8


def make_optimizer(hparams, model=None):
  """Adam with the reference's exponential decay (clipping is done in train_step).

  With `model`, its slots are created now, so that a tf.train.Checkpoint of
  (model, optimizer) restores the optimizer state before the first step.
  """
  optimizer = Adam(LearningRate(hparams.learning_rate, hparams.decay_rate,
                                hparams.min_learning_rate),
                   epsilon=ADAM_EPSILON)
  if model is not None:
    optimizer.build(model.trainable_variables)
  return optimizer


def shift_right(targets):
  """Decoder inputs: the previous target at each step, zeros at t=0."""
  targets = tf.cast(targets, tf.float32)
  return tf.pad(targets[:, :-1], [[0, 0], [1, 0], [0, 0]])


def reconstruction_loss(logits, targets, lengths, depths):
  """Per example: cross-entropy summed over steps t < length and over parts.

  Returns (r_loss [B], correct [B, T, P] bool, mask [B, T] bool).
  """
  targets = tf.cast(targets, tf.float32)
  mask = tf.sequence_mask(lengths, tf.shape(targets)[1])
  logit_parts = tf.split(logits, depths, -1) if len(depths) > 1 else [logits]
  target_parts = tf.split(targets, depths, -1) if len(depths) > 1 else [targets]
  ce, correct = 0.0, []
  for lg, tg in zip(logit_parts, target_parts):
    ce += tf.nn.softmax_cross_entropy_with_logits(labels=tg, logits=lg)
    correct.append(tf.equal(tf.argmax(lg, -1), tf.argmax(tg, -1)))
  r_loss = tf.reduce_sum(tf.where(mask, ce, 0.0), 1)
  return r_loss, tf.stack(correct, -1), mask


def _unpack(batch):
  if isinstance(batch, dict):
    return batch['inputs'], batch['outputs'], batch.get('controls'), batch['lengths']
  inputs, outputs, controls, lengths = batch
  return inputs, outputs, controls, lengths


@keras.saving.register_keras_serializable(package='mvae_tf')
class MusicVAE(keras.Model):
  """Encoder + decoder of a MusicVAE config.

  Args:
    hparams: HParams or its dict.
    decoder_type: 'flat' or 'hierarchical'.
    input_depth: int, encoder input depth of the converter (drums: 10).
    output_depths: list of int, decoder classes per part ([90], [512], [90, 90, 512]).
    control_depth: int, chord control depth (0: none).
    steps_per_bar: int, for the hierarchical decoder.
    config_name: str, the config this model was built from (informative).

  Batches are (inputs [B,T,Din], outputs [B,T,D], controls [B,T,C], lengths [B]),
  as mvae_tf.data.pipeline yields them.
  """

  def __init__(self, hparams, decoder_type, input_depth, output_depths, control_depth=0,
               steps_per_bar=16, config_name=None, **kwargs):
    super().__init__(**kwargs)
    if isinstance(hparams, dict):
      hparams = HParams.from_dict(hparams)
    if hparams.dropout_keep_prob != 1.0:
      raise ValueError('dropout_keep_prob=%g: dropout is not implemented; use 1.0'
                       % hparams.dropout_keep_prob)
    if decoder_type not in ('flat', 'hierarchical'):
      raise ValueError("decoder_type must be 'flat' or 'hierarchical', got %r" % decoder_type)
    self.hparams = hparams
    self.decoder_type = decoder_type
    self.input_depth = int(input_depth)
    self.output_depths = [int(d) for d in output_depths]
    self.control_depth = int(control_depth)
    self.steps_per_bar = int(steps_per_bar)
    self.config_name = config_name
    self.encoder = BidirectionalLSTMEncoder(
        self.input_depth + self.control_depth, hparams.enc_rnn_size, hparams.z_size,
        name='encoder')
    z_size = hparams.z_size if hparams.conditional else 0
    if decoder_type == 'flat':
      self.decoder = CategoricalLSTMDecoder(self.output_depths, hparams.dec_rnn_size, z_size,
                                            self.control_depth, name='decoder')
    else:
      if hparams.max_seq_len % self.steps_per_bar:
        raise ValueError('max_seq_len %d is not a whole number of %d-step bars' % (
            hparams.max_seq_len, self.steps_per_bar))
      if not hparams.conditional:
        raise ValueError('a hierarchical decoder needs conditional=True')
      self.decoder = HierarchicalLSTMDecoder(
          self.output_depths, hparams.dec_rnn_size, z_size,
          hparams.max_seq_len // self.steps_per_bar, self.steps_per_bar,
          self.control_depth, name='decoder')
    self.built = True

  @classmethod
  def from_config_name(cls, name, hparams_overrides=None):
    """The model of config `name` (mvae_tf.configs), with "key=value,..." overrides."""
    from mvae_tf import configs
    config = configs.get_config(name) if isinstance(name, str) else name
    config = config.with_hparams(hparams_overrides or '')
    input_depth, parts, control_depth, steps_per_bar = config.depths()
    return cls(config.hparams, config.decoder, input_depth, parts, control_depth,
               steps_per_bar, config_name=config.name)

  def get_config(self):
    return dict(hparams=self.hparams.to_dict(), decoder_type=self.decoder_type,
                input_depth=self.input_depth, output_depths=list(self.output_depths),
                control_depth=self.control_depth, steps_per_bar=self.steps_per_bar,
                config_name=self.config_name, name=self.name)

  @property
  def output_depth(self):
    return sum(self.output_depths)

  # --- Pieces. ---

  def _controls(self, controls, like):
    if not self.control_depth:
      return None
    if controls is None:
      raise ValueError('this model is conditioned on controls (depth %d); pass controls'
                       % self.control_depth)
    return tf.cast(controls, tf.float32)

  def encode(self, inputs, lengths, controls=None, hand_written_backward=None):
    """(mu, sigma) of q(z|x), each [B, z_size].

    hand_written_backward=False: no custom gradient in the graph (export).
    """
    x = tf.cast(inputs, tf.float32)
    controls = self._controls(controls, x)
    if controls is not None:
      x = tf.concat([x, controls], -1)
    return self.encoder(x, lengths, hand_written_backward=hand_written_backward)

  def posterior(self, mu, sigma):
    return tfd.MultivariateNormalDiag(loc=mu, scale_diag=sigma)

  def teacher_forced_logits(self, targets, z, controls=None, sampling_probability=0.0,
                            seed=None, rows=None, hand_written_backward=None):
    """Logits [B, T, D] with the decoder fed the previous targets (`rows`,
    `hand_written_backward`: see decoders.CategoricalLSTMDecoder.teacher_forced)."""
    return self.decoder.teacher_forced(shift_right(targets), z,
                                       self._controls(controls, targets),
                                       sampling_probability, seed, rows=rows,
                                       hand_written_backward=hand_written_backward)

  def sample(self, z, num_steps, temperature=0.0, seed=None, controls=None, noise=None):
    """Free-running decode from z: (indices [B, T, P], logits [B, T, D]).

    With `noise` [B, T, D] uniform in (0, 1), sampling is Gumbel-max with that
    noise (temperature a number or [B]; no random op: exported graphs).
    """
    controls = self._controls(controls, z)
    if self.decoder_type == 'flat':
      indices, logits, _ = self.decoder.sample(z, num_steps, temperature, seed, controls,
                                               noise=noise)
      return indices, logits
    return self.decoder.sample(z, num_steps, temperature, seed, controls, noise=noise)

  def call(self, batch, training=False):
    """Teacher-forced logits of a batch, z = mu (eval) or a sample of q (training)."""
    inputs, outputs, controls, lengths = _unpack(batch)
    mu, sigma = self.encode(inputs, lengths, controls)
    z = self.posterior(mu, sigma).sample() if training else mu
    return self.teacher_forced_logits(outputs, z, controls)

  # --- The objective. ---

  def compute_loss(self, batch, step=0, training=True, seed=None, noise=None, rows=None):
    """(loss, metrics dict) of a batch at training step `step`.

    training: z is drawn from q(z|x) and scheduled sampling applies (as in the
    reference's training graph); else z is drawn from q and the decoder is
    teacher-forced. `seed` ([2] ints) makes z and sampling reproducible;
    `noise` [B, z_size], if given, is the standard normal draw behind z;
    `rows` (first, total) places the batch in a global batch whose scheduled-sampling
    draws are made together (see decoders.CategoricalLSTMDecoder.teacher_forced).
    """
    hp = self.hparams
    inputs, outputs, controls, lengths = _unpack(batch)
    lengths = tf.cast(lengths, tf.int32)
    mu, sigma = self.encode(inputs, lengths, controls)
    q = self.posterior(mu, sigma)
    if noise is not None:
      z = mu + sigma * noise
    elif seed is not None:
      z = mu + sigma * tf.random.stateless_normal(tf.shape(mu), seed)
    else:
      z = q.sample()
    p = sampling_probability(hp, step) if training and (
        hp.sampling_schedule != 'constant' or hp.sampling_rate > 0) else 0.0
    logits = self.teacher_forced_logits(outputs, z if hp.conditional else z * 0.0,
                                        controls, p, seed, rows)
    r_loss, correct, mask = reconstruction_loss(logits, outputs, lengths, self.output_depths)
    prior = tfd.MultivariateNormalDiag(loc=tf.zeros_like(mu), scale_diag=tf.ones_like(sigma))
    kl = tfd.kl_divergence(q, prior)
    kl_cost = tf.maximum(kl - hp.free_bits * math.log(2.0), 0.0)
    b = beta(hp, step)
    r_mean, kl_cost_mean = tf.reduce_mean(r_loss), tf.reduce_mean(kl_cost)
    loss = r_mean + b * kl_cost_mean
    maskf = tf.cast(mask, tf.float32)
    real = tf.maximum(tf.reduce_sum(maskf), 1.0)
    per_part = tf.reduce_sum(tf.cast(correct, tf.float32) * maskf[..., None], [0, 1]) / real
    metrics = dict(loss=loss, r_loss=r_mean, kl_loss=kl_cost_mean,
                   kl_bits=tf.reduce_mean(kl) / math.log(2.0),
                   elbo=-(r_mean + tf.reduce_mean(kl)), beta=b,
                   sampling_probability=tf.cast(p, tf.float32),
                   accuracy=tf.reduce_mean(per_part))
    if len(self.output_depths) > 1:
      for i, name in enumerate(('melody', 'bass', 'drums')[:len(self.output_depths)]):
        metrics['accuracy_%s' % name] = per_part[i]
    return loss, metrics


def train_step(model, optimizer, batch, step, seed=None, noise=None, rows=None):
  """One optimisation step; returns metrics (with grad_norm and skipped).

  Works alone or inside a tf.distribute replica function: each replica's
  gradient is of its mean loss divided by the number of replicas, and the
  gradients are summed over replicas here, so the update is that of the
  global batch's mean loss. They are then clipped (global norm or value,
  hparams.clip_mode, grad_clip). A step whose global norm is not finite or
  at least grad_norm_clip_to_zero (1e4) applies zero gradients, as the
  original does: Adam still runs (its moments decay, its momentum still moves
  the weights) and the step counts; `skipped` marks it. `optimizer` is our
  `Adam` (make_optimizer). Wrap in tf.function for speed.
  """
  hp = model.hparams
  context = tf.distribute.get_replica_context()
  num_replicas = context.num_replicas_in_sync
  variables = model.trainable_variables
  with tf.GradientTape() as tape:
    loss, metrics = model.compute_loss(batch, step, training=True, seed=seed, noise=noise,
                                       rows=rows)
    scaled_loss = loss / num_replicas
  grads = tape.gradient(scaled_loss, variables)
  grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
           for g, v in zip(grads, variables)]
  if num_replicas > 1:
    grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
  norm = tf.linalg.global_norm(grads)
  if hp.clip_mode == 'global_norm':
    grads, _ = tf.clip_by_global_norm(grads, hp.grad_clip, use_norm=norm)
  else:
    grads = [tf.clip_by_value(g, -hp.grad_clip, hp.grad_clip) for g in grads]
  ok = tf.logical_and(tf.math.is_finite(norm), norm < hp.grad_norm_clip_to_zero)
  grads = [tf.where(ok, g, tf.zeros_like(g)) for g in grads]  # where: NaNs are not kept
  optimizer.apply_gradients(zip(grads, variables))
  return dict(metrics, grad_norm=norm, skipped=tf.logical_not(ok))
