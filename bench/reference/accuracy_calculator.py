"""Reference timing for `make bench`: pytorch-metric-learning's AccuracyCalculator with
faiss-cpu (k = "max_bin_count", queries = references) on E.npy / L.npy; with the fourth
argument `all`, NMI too (faiss k-means with k = the classes, niter=20).

    python accuracy_calculator.py E.npy L.npy THREADS [retrieval|all [G.npy GL.npy]]

With G.npy and GL.npy the queries E are ranked against that gallery (ref_includes_query=False).

Prints one JSON object: seconds (of get_accuracy only), the metric values, peak RSS in MiB,
and the kernel set faiss's OpenBLAS runs (`blas_core`: its speed decides the reference's; an
old OpenBLAS can take a new CPU for an old one unless OPENBLAS_CORETYPE names it).
"""

import ctypes
import glob
import json
import os
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



def blas_core():
    """OpenBLAS's name for the kernels it chose (e.g. Haswell, SkylakeX), or None."""
    libs = os.path.join(os.path.dirname(faiss.__file__), os.pardir, "faiss_cpu.libs")
    for path in glob.glob(os.path.join(libs, "libopenblas*.so*")):
        lib = ctypes.CDLL(path)
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode()
    return None


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
            "blas_core": blas_core(),
        }
    )
)
