"""The paper's Table 3 (mean test accuracy over 5 seeds, %) and its Eq. 7 / Fig. 8 figures computed by hand."""

NEURONS = ["2-FS", "2-RS", "2-SDS", "2-WDS", "1st-order"]
TABLE3 = {
    "mnist": [98.67, 98.33, 94.87, 95.34, 98.69],
    "fashion-mnist": [90.50, 89.58, 85.37, 85.79, 90.38],
    "nettalk": [91.46, 91.70, 87.15, 89.41, 89.99],
    "cifar10": [54.30, 53.39, 47.26, 49.07, 52.63],
    "tidigits": [65.76, 69.47, 78.00, 76.32, 61.64],
    "timit": [87.61, 87.93, 91.22, 91.98, 76.39],
    "nmnist": [98.14, 97.95, 97.53, 97.63, 98.18],
}
KINDS = {t: "spatial" for t in ("mnist", "fashion-mnist", "nettalk", "cifar10")} | dict.fromkeys(
    ("tidigits", "timit", "nmnist"), "temporal"
)
# Eq. 7 per task (population std over the five types), then the mean over the 4 spatial and the 3 temporal
# tasks, computed separately with numpy from the numbers above
EXPECTED = {
    "2-FS": (0.9647, 0.1150),
    "2-RS": (0.7656, 0.0935),
    "2-SDS": (-1.4666, 0.2174),
    "2-WDS": (-0.8395, 0.2988),
    "1st-order": (0.5758, -0.7248),
}


def table() -> dict[str, dict[str, float]]:
    """Table 3 as ``{task: {neuron: accuracy}}``."""
    return {task: dict(zip(NEURONS, acc)) for task, acc in TABLE3.items()}
