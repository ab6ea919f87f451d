"""mvae_tf: MusicVAE (Roberts, Engel et al., ICML 2018) in TensorFlow 2 / Keras 3."""

from setuptools import find_packages, setup

# The stack this project is built and tested on (see BUILD_NOTES.md).
INSTALL_REQUIRES = [
    'tensorflow==2.21.*',
    'keras==3.15.*',
    # tensorflow-probability imports only with tf-keras installed; we use only
    # tfp.distributions.
    'tensorflow-probability==0.25.*',
    'tf-keras==2.21.*',
    # tf.summary (mvae train's TensorBoard summaries); tensorflow no longer pulls it in.
    'tensorboard==2.21.*',
    'note-seq==0.0.5',
    # protobuf 7 breaks parts of note-seq.
    'protobuf==6.33.*',
    'pretty_midi>=0.2.11,<0.3',
    'numpy>=1.26,<2.5',
    'google-crc32c>=1.5',
    'tqdm>=4.60',
    # mvae_tf.inference keeps numpy's BLAS to one thread (much faster for small products).
    'threadpoolctl>=3.1',
    # The TFLite runtime that runs exported models (mvae export's parity checks; edge devices).
    'ai-edge-litert==2.3.*',
]

EXTRAS = {
    # pytest-xdist: the default `./run tests` spreads tests/ over two processes.
    'dev': ['pytest>=8', 'pytest-timeout>=2.3', 'pytest-xdist>=3.5', 'hypothesis>=6.100',
            'matplotlib>=3.5',
            # Tests feed real PredictRequests to the exported SavedModel.
            'tensorflow-serving-api==2.21.*'],
    # mvae generate --plot (piano-roll PNGs).
    'plot': ['matplotlib>=3.5'],
    # The folk corpus reads the ABC collections that music21 ships.
    'corpus': ['music21>=9'],
}

setup(
    name='mvae_tf',
    version='0.1.0',
    description='MusicVAE in TensorFlow 2 / Keras 3, with TFLite and SavedModel export',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.10,<3.13',
    # export/ (top level in the repository) installs as mvae_tf.export.
    packages=find_packages(include=['mvae_tf', 'mvae_tf.*']) + ['mvae_tf.export', 'edge_demo'],
    package_dir={'mvae_tf.export': 'export'},
    # The models that ship with the package (mvae_tf/pretrained/NAME/).
    package_data={'mvae_tf.pretrained': ['*/weights.npz', '*/config.json', '*/attributes.npz',
                                        '*/model.tflite', '*/model_b64.tflite']},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={'console_scripts': ['mvae = mvae_tf.cli.main:entry']},
    license='Apache-2.0',
)
