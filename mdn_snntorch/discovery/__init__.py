"""The paper's method for any snnTorch model: learn each neuron's dynamics, generate meta neurons, transfer them.

1. Train your network with learnable theta (``mdn.MDN("init", learn_theta=True, param_shape=...)`` layers).
2. :func:`collect_theta` takes theta of every neuron of every learnable MDN layer as :class:`ThetaPoints`.
3. :func:`generate` clusters them (MeanShift + KMeans per theta pair), builds the candidates and filters
   them (support, dynamics, your accuracy criterion on held-out data, near-duplicates): a
   :class:`Generation` with the ``library`` (write it with :func:`~mdn_snntorch.meta_neurons.save_library`),
   the record of every ``candidate`` and Fig. 3 / Fig. 4 (:meth:`Generation.figure`).
4. :func:`freeze` gives a copy of a network whose MDN layers run one meta neuron with frozen theta: the
   transfer to a new task.
5. :func:`capability` (paper Eq. 7) and :func:`group_capability` (Fig. 8's spatial and temporal
   capability) score neuron types from a plain ``{task: {neuron: accuracy}}`` table;
   :func:`capability_figure` draws Fig. 8.

A walk-through: docs/discovery.md. Needs the ``pipeline`` extra for the clustering (scikit-learn) and the
figures (matplotlib), imported on first use.
"""

from mdn_snntorch.discovery.clustering import PAPER_CENTRES, SPACES, Clustering, cluster_pair
from mdn_snntorch.discovery.generation import Generation, generate
from mdn_snntorch.discovery.scores import KIND_NAMES, capability, capability_figure, group_capability, task_capability
from mdn_snntorch.discovery.selection import check_names, select_candidates
from mdn_snntorch.discovery.theta import ThetaPoints, collect_theta, theta_layers, unwrap
from mdn_snntorch.discovery.transfer import freeze

__all__ = [
    "KIND_NAMES",
    "PAPER_CENTRES",
    "SPACES",
    "Clustering",
    "Generation",
    "ThetaPoints",
    "capability",
    "capability_figure",
    "check_names",
    "cluster_pair",
    "collect_theta",
    "freeze",
    "generate",
    "group_capability",
    "select_candidates",
    "task_capability",
    "theta_layers",
    "unwrap",
]
