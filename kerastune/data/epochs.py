"""The training epoch as tf.data sees it: shuffles and random masks drawn per epoch number.

tf.data's own reshuffling draws a new order each time an iterator is made,
and Keras makes them at points of its own; a resumed run would then replay
the first epoch's order. Here an epoch's order (and its random masks) is a
function of the seed and the epoch number, which `fit` sets at the start of
every epoch (`EpochSetter`), so an interrupted run resumed at epoch k sees
what an uninterrupted one saw.
"""

import keras
import tensorflow as tf

_epoch = []  # one tf.Variable, made on first use


def epoch_variable() -> tf.Variable:
    if not _epoch:
        with tf.init_scope():
            _epoch.append(tf.Variable(0, dtype=tf.int64, trainable=False, name="kerastune_epoch"))
    return _epoch[0]


def epoch_seed(seed: int):
    """A stateless-random seed, [seed, epoch], read when a pass starts."""
    return tf.stack([tf.cast(seed, tf.int64), epoch_variable().read_value()])


def rows_each_epoch(tensors, seed: int, shuffle: bool = True):
    """A dataset of the rows of `tensors` (a structure of tensors, ragged ones too, with one first dimension),
    in an order drawn from (seed, epoch) when `shuffle`: the same epoch gives the same order in any run."""
    size = int(tf.shape(tf.nest.flatten(tensors)[0])[0])

    def one_pass(_):
        order = tf.range(size, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed=epoch_seed(seed))
        return tf.data.Dataset.from_tensor_slices(order)

    indices = each_pass(one_pass, size)
    return indices.map(lambda i: tf.nest.map_structure(lambda t: tf.gather(t, i), tensors))


def each_pass(make_pass, size: int):
    """A dataset of `size` elements that `make_pass()` builds afresh each time it is read (so tensors in it,
    such as the epoch, are read when a pass starts), with its number of elements known."""
    dataset = tf.data.Dataset.from_tensors(0).flat_map(make_pass)
    return dataset.apply(tf.data.experimental.assert_cardinality(size))


class EpochSetter(keras.callbacks.Callback):
    """Tell the datasets which epoch is starting."""

    def on_epoch_begin(self, epoch, logs=None):
        epoch_variable().assign(epoch)
