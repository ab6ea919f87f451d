"""The bidirectional LSTM encoder: a sequence -> q(z|x)."""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from mvae_tf.model.lstm import LSTMStack

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package='mvae_tf')
class BidirectionalLSTMEncoder(keras.layers.Layer):
  """Stacked bidirectional LSTM -> mu, softplus sigma.

  Each layer runs forward and backward (within each sequence's length) over
  the previous layer's [fw, bw] outputs. The final forward h and final
  backward h of the top layer, concatenated, give mu = Dense(h) and
  sigma = softplus(Dense(h)); both kernels start N(0, 0.001).

  Args:
    input_size: int, depth of the inputs (converter input depth + control depth).
    rnn_sizes: list of int, units per direction of each layer.
    z_size: int, latent size.

  Call: `encoder(inputs [B, T, input_size], lengths [B])` -> (mu, sigma), each [B, z_size];
  `hand_written_backward=False` traces no custom gradient (inference-only graphs).
  """

  def __init__(self, input_size, rnn_sizes, z_size, **kwargs):
    super().__init__(**kwargs)
    self.input_size = int(input_size)
    self.rnn_sizes = [int(u) for u in rnn_sizes]
    self.z_size = int(z_size)
    self.forward_layers, self.backward_layers = [], []
    size = self.input_size
    for i, u in enumerate(self.rnn_sizes):
      self.forward_layers.append(LSTMStack(size, [u], name='fw_%d' % i))
      self.backward_layers.append(LSTMStack(size, [u], name='bw_%d' % i))
      size = 2 * u
    # N(0, 0.001), a new initializer each: an unseeded one called twice repeats its values
    # (mu and sigma started equal).
    self.mu_kernel = self.add_weight(shape=(size, self.z_size),
                                     initializer=keras.initializers.RandomNormal(stddev=0.001),
                                     name='mu_kernel')
    self.mu_bias = self.add_weight(shape=(self.z_size,), initializer='zeros', name='mu_bias')
    self.sigma_kernel = self.add_weight(shape=(size, self.z_size),
                                        initializer=keras.initializers.RandomNormal(stddev=0.001),
                                        name='sigma_kernel')
    self.sigma_bias = self.add_weight(shape=(self.z_size,), initializer='zeros',
                                      name='sigma_bias')
    self.built = True

  def get_config(self):
    config = super().get_config()
    config.update(input_size=self.input_size, rnn_sizes=list(self.rnn_sizes),
                  z_size=self.z_size)
    return config

  def call(self, inputs, lengths, hand_written_backward=None):
    x = tf.cast(inputs, tf.float32)
    lengths = tf.cast(lengths, tf.int32)
    batch = tf.shape(x)[0]
    for fw, bw in zip(self.forward_layers, self.backward_layers):
      fw_out, fw_state = fw.run(fw.input_projection(x), fw.zero_state(batch), lengths,
                                 hand_written_backward)
      reversed_x = tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0)
      bw_out, bw_state = bw.run(bw.input_projection(reversed_x), bw.zero_state(batch), lengths,
                                 hand_written_backward)
      bw_out = tf.reverse_sequence(bw_out, lengths, seq_axis=1, batch_axis=0)
      x = tf.concat([fw_out, bw_out], -1)
    h = tf.concat([fw_state[-1], bw_state[-1]], -1)
    mu = tf.matmul(h, self.mu_kernel) + self.mu_bias
    sigma = tf.nn.softplus(tf.matmul(h, self.sigma_kernel) + self.sigma_bias)
    return mu, sigma

  @staticmethod
  def posterior(mu, sigma):
    """q(z|x) as a tfp MultivariateNormalDiag."""
    return tfd.MultivariateNormalDiag(loc=mu, scale_diag=sigma)

