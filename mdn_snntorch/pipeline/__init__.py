"""The paper's experiments on top of the neurons: the 3-layer SNN (:mod:`.model`), its loss
(:mod:`.loss`), the spike-file loader (:mod:`.loader`), training recipes (:mod:`.recipes`), the
trainer with checkpoints and data parallelism (:mod:`.trainer`, :mod:`.checkpoint`,
:mod:`.distributed`), meta-neuron generation (:mod:`.discover`), evaluation (:mod:`.evaluate`) and
report files (:mod:`.report`).

Needs the ``pipeline`` extra (scikit-learn, matplotlib, tqdm, h5py). Never imports the validation,
the data converters or the command line.
"""
