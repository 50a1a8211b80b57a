"""Reference timing for `make bench`: pytorch-metric-learning's AccuracyCalculator with
faiss-cpu (k = "max_bin_count", queries = references) on E.npy / L.npy; with the fourth
argument `all`, NMI too (faiss k-means with k = the classes, niter=20).

    python accuracy_calculator.py E.npy L.npy THREADS [retrieval|all [G.npy GL.npy]]

With G.npy and GL.npy the queries E are ranked against that gallery (ref_includes_query=False).

Prints one JSON object: seconds (of get_accuracy only), the metric values, peak RSS in MiB.
"""

import json
import resource
import sys
import time

import numpy as np
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

embeddings = torch.from_numpy(np.load(sys.argv[1]))
labels = torch.from_numpy(np.load(sys.argv[2]))
threads = int(sys.argv[3]) if len(sys.argv) > 3 else torch.get_num_threads()
torch.set_num_threads(threads)
try:
    import faiss

    faiss.omp_set_num_threads(threads)
except ImportError:
    sys.exit("faiss-cpu is not installed in this environment (make bench-env)")

everything = len(sys.argv) > 4 and sys.argv[4] == "all"
include = ("precision_at_1", "r_precision", "mean_average_precision_at_r")
calculator = AccuracyCalculator(
    include=include + (("NMI",) if everything else ()),
    k="max_bin_count",
    device=torch.device("cpu"),
)
gallery = None
if len(sys.argv) > 6:
    gallery = (torch.from_numpy(np.load(sys.argv[5])), torch.from_numpy(np.load(sys.argv[6])))
start = time.perf_counter()
if gallery is None:
    values = calculator.get_accuracy(embeddings, labels)
else:
    values = calculator.get_accuracy(embeddings, labels, gallery[0], gallery[1], ref_includes_query=False)
seconds = time.perf_counter() - start
print(
    json.dumps(
        {
            "seconds": seconds,
            "values": {
                "recall@1": values["precision_at_1"],
                "r_precision": values["r_precision"],
                "map@r": values["mean_average_precision_at_r"],
                **({"nmi": values["NMI"]} if everything else {}),
            },
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "threads": threads,
        }
    )
)
